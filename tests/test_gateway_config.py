"""Tests for the gateway configuration loader: the shipped files, Harmony's schema, every error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from harmony_dimse.gateway.config import (
    ConfigError,
    GatewayConfig,
    load_config,
    setup_logging,
)

REPO = Path(__file__).resolve().parent.parent

CONFIG = """\
[proxy]
id = "test-gateway"
log_level = "info"
pipelines_path = "pipelines"

[network.http_net]
enable_wireguard = false
interface = "wg0"

[network.http_net.http]
bind_address = "127.0.0.1"
bind_port = 8085

[logging]
log_to_file = true
log_file_path = "./tmp/gateway.log"

[storage]
backend = "filesystem"

[storage.options]
path = "./tmp"

[services.http]
module = ""

[services.dicom]
module = ""
"""

PIPELINE = """\
[pipelines.query]
description = "HTTP to DIMSE"
networks = ["http_net"]
endpoints = ["trigger"]
middleware = []
backends = ["pacs"]

[endpoints.trigger]
service = "http"
[endpoints.trigger.options]
path_prefix = "/trigger-dicom"

[backends.pacs]
service = "dicom"
[backends.pacs.options]
aet = "ORTHANC"
host = "localhost"
port = 4242
local_aet = "HARMONY_SCU"
"""


def write(tmp_path: Path, config: str = CONFIG, pipelines: dict[str, str] | None = None) -> Path:
    """Write config.toml and pipelines/NAME.toml files; return the config path."""
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    for name, text in (pipelines if pipelines is not None else {"main": PIPELINE}).items():
        (tmp_path / "pipelines" / f"{name}.toml").write_text(text)
    config_path = tmp_path / "config.toml"
    config_path.write_text(config)
    return config_path


def load_pipeline(tmp_path: Path, pipeline: str, config: str = CONFIG) -> GatewayConfig:
    return load_config(write(tmp_path, config, {"main": pipeline}))


def error_of(tmp_path: Path, pipeline: str = PIPELINE, config: str = CONFIG) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, config, {"main": pipeline}))
    return caught.value


def assert_located(error: ConfigError, file: str, table: str | None, key: str | None) -> None:
    """The message names the file, the [table] and the key, in that order."""
    message = str(error)
    assert file in message
    prefix = message.split(": ", 1)[0]
    assert prefix.endswith(file), message
    if table is not None:
        assert error.table == table, message
        assert f"[{table}]" in message
    if key is not None:
        assert error.key == key, message
        assert f"] {key}: " in message or message.startswith(f"{prefix}: {key}: "), message


def backend_with(option_lines: str) -> str:
    return PIPELINE.replace(
        'local_aet = "HARMONY_SCU"\n', 'local_aet = "HARMONY_SCU"\n' + option_lines
    )


# --------------------------------------------------------------------------------------------
# The shipped files
# --------------------------------------------------------------------------------------------


def test_shipped_config_matches_the_brief() -> None:
    cfg = load_config(REPO / "config.toml")
    assert cfg.warnings == ()
    assert cfg.proxy.id == "harmony-dicom-backend"
    assert cfg.proxy.log_level == "info"
    assert cfg.proxy.workers == 1
    assert (cfg.http.bind_address, cfg.http.bind_port) == ("127.0.0.1", 8085)
    assert cfg.http.network == "http_net"
    assert cfg.base_dir == REPO
    assert cfg.config_path == REPO / "config.toml"
    assert cfg.logging.log_to_file is True
    assert cfg.logging.log_file_path == REPO / "tmp" / "harmony_dicom_backend.log"
    assert cfg.storage.backend == "filesystem"
    assert cfg.storage.path == REPO / "tmp"

    (pipeline,) = cfg.pipelines
    assert pipeline.networks == ("http_net",)
    assert pipeline.source == REPO / "pipelines" / "dicom-backend.toml"
    (endpoint_name,) = pipeline.endpoints
    assert cfg.endpoints[endpoint_name].path_prefix == "/trigger-dicom"
    assert cfg.endpoints[endpoint_name].service == "http"
    (backend_name,) = pipeline.backends
    backend = cfg.backends[backend_name]
    assert (backend.aet, backend.host, backend.port) == ("ORTHANC", "localhost", 4242)
    assert backend.local_aet == "HARMONY_SCU"
    assert backend.dimse_retrieve_mode == "move"
    assert backend.use_tls is False


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(write(site))
    assert cfg.base_dir == site
    assert cfg.proxy.pipelines_path == site / "pipelines"
    assert cfg.logging.log_file_path == site / "tmp" / "gateway.log"
    assert cfg.storage.path == site / "tmp"


def test_backend_option_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path))
    backend = cfg.backends["pacs"]
    assert backend.service == "dicom"
    assert backend.connect_timeout == 5.0
    assert backend.acse_timeout == 10.0
    assert backend.dimse_timeout == 30.0
    assert backend.network_timeout == 60.0
    assert backend.max_pdu == 4194304
    assert backend.dimse_retrieve_mode == "move"
    assert backend.incoming_store_port == 11113
    assert backend.incoming_store_host == "127.0.0.1"  # the PACS is on this machine
    assert backend.pool_size == 2
    assert backend.pool_idle_timeout == 20.0
    assert backend.pool_max_operations == 1000
    assert backend.pool_wait_timeout == 10.0
    assert backend.persistent_store_scp is True
    assert backend.use_tls is False
    assert cfg.pipelines[0].middleware == ()


def test_backend_options_are_read(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace('host = "localhost"', 'host = "pacs.example.org"') + (
        "connect_timeout = 1\nacse_timeout = 2.5\ndimse_timeout = 3.0\nnetwork_timeout = 4.0\n"
        'max_pdu = 0\ndimse_retrieve_mode = "get"\nincoming_store_port = 11112\n'
        "pool_size = 4\npool_idle_timeout = 5.0\npool_max_operations = 7\n"
        "pool_wait_timeout = 0.5\npersistent_store_scp = false\n"
    )
    backend = load_pipeline(tmp_path, pipeline).backends["pacs"]
    assert backend.connect_timeout == 1.0 and isinstance(backend.connect_timeout, float)
    assert (backend.acse_timeout, backend.dimse_timeout, backend.network_timeout) == (2.5, 3, 4)
    assert backend.max_pdu == 0
    assert backend.dimse_retrieve_mode == "get"
    assert backend.incoming_store_port == 11112
    assert backend.incoming_store_host == "0.0.0.0"  # a remote PACS must reach us
    assert (backend.pool_size, backend.pool_max_operations) == (4, 7)
    assert (backend.pool_idle_timeout, backend.pool_wait_timeout) == (5.0, 0.5)
    assert backend.persistent_store_scp is False


def test_explicit_incoming_store_host_is_kept(tmp_path: Path) -> None:
    pipeline = backend_with('incoming_store_host = "192.0.2.10"\n')
    assert load_pipeline(tmp_path, pipeline).backends["pacs"].incoming_store_host == "192.0.2.10"


def test_ae_titles_lose_insignificant_spaces(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace('aet = "ORTHANC"', 'aet = "  ORTHANC "')
    assert load_pipeline(tmp_path, pipeline).backends["pacs"].aet == "ORTHANC"


def test_several_pipelines_and_backends_across_files(tmp_path: Path) -> None:
    second = (
        PIPELINE.replace("query", "archive")
        .replace("/trigger-dicom", "/archive")
        .replace("trigger", "archive_http")
        .replace("pacs", "archive_pacs")
        .replace('aet = "ORTHANC"', 'aet = "ARCHIVE"')
        .replace("port = 4242", "port = 11112")
        .replace('service = "dicom"', 'service = "dicom_scu"')
    )
    cfg = load_config(write(tmp_path, CONFIG, {"a": PIPELINE, "b": second}))
    assert [p.name for p in cfg.pipelines] == ["query", "archive"]
    assert cfg.pipelines[1].source == tmp_path / "pipelines" / "b.toml"
    assert set(cfg.backends) == {"pacs", "archive_pacs"}
    assert cfg.backends["archive_pacs"].aet == "ARCHIVE"
    assert cfg.backends["archive_pacs"].port == 11112
    assert cfg.backends["archive_pacs"].service == "dicom_scu"
    assert {e.path_prefix for e in cfg.endpoints.values()} == {"/trigger-dicom", "/archive"}


def test_pipeline_with_several_backends(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace('backends = ["pacs"]', 'backends = ["pacs", "other"]') + (
        '[backends.other]\nservice = "dicom"\n[backends.other.options]\n'
        'aet = "OTHER"\nhost = "127.0.0.1"\nport = 104\n'
    )
    cfg = load_pipeline(tmp_path, pipeline)
    assert cfg.pipelines[0].backends == ("pacs", "other")
    assert cfg.backends["other"].local_aet == "HARMONY_SCU"  # Harmony's default


def test_pipelines_may_live_in_config_toml(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, CONFIG + PIPELINE, {}))
    assert [p.name for p in cfg.pipelines] == ["query"]
    assert cfg.pipelines[0].source == tmp_path / "config.toml"


def test_harmony_newer_schema_with_target_ref(tmp_path: Path) -> None:
    config = CONFIG.replace('[services.dicom]\nmodule = ""\n', "") + (
        "[targets.orthanc]\n"
        'connection.host = "localhost"\nconnection.port = 4242\nconnection.protocol = "dicom"\n'
    )
    pipeline = (
        PIPELINE.replace('service = "dicom"', 'service = "dicom_scu"\ntarget_ref = "orthanc"')
        .replace('host = "localhost"\n', "")
        .replace("port = 4242\n", "")
        + 'dimse_retrieve_mode = "get"\nincoming_store_port = 11112\n'
        "persistent_store_scp = true\nuse_tls = false\n"
    )
    cfg = load_pipeline(tmp_path, pipeline, config)
    backend = cfg.backends["pacs"]
    assert (backend.host, backend.port, backend.service) == ("localhost", 4242, "dicom_scu")
    assert cfg.warnings == ()


def test_harmony_keys_we_ignore_do_not_warn(tmp_path: Path) -> None:
    config = (
        CONFIG.replace(
            'pipelines_path = "pipelines"',
            'pipelines_path = "pipelines"\ntransforms_path = "transforms"\nstore_dir = "./tmp"',
        )
        + "[management]\nenabled = false\n[runbeam]\nenabled = false\n"
    )
    pipeline = PIPELINE.replace("middleware = []", 'middleware = ["passthru"]') + (
        '[middleware.passthru]\ntype = "passthru"\n'
    )
    cfg = load_pipeline(tmp_path, pipeline, config)
    assert cfg.warnings == ()
    assert cfg.pipelines[0].middleware == ("passthru",)


def test_middleware_as_incoming_outgoing_table(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace(
        "middleware = []", 'middleware = { incoming = ["passthru"], outgoing = [] }'
    )
    assert load_pipeline(tmp_path, pipeline).pipelines[0].middleware == ("passthru",)


def test_unknown_keys_warn_with_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = CONFIG.replace('log_level = "info"', 'log_level = "info"\nflavour = "mint"')
    cfg = load_pipeline(tmp_path, backend_with("dimse_timout = 5.0\n"), config)
    assert "config.toml: [proxy] flavour: unknown key, ignored" in cfg.warnings
    assert (
        "pipelines/main.toml: [backends.pacs.options] dimse_timout: unknown key, ignored"
        in cfg.warnings
    )
    assert cfg.backends["pacs"].dimse_timeout == 30.0


def test_unused_endpoint_warns(tmp_path: Path) -> None:
    pipeline = PIPELINE + (
        '[endpoints.spare]\nservice = "http"\n[endpoints.spare.options]\npath_prefix = "/spare"\n'
    )
    cfg = load_pipeline(tmp_path, pipeline)
    assert any("[endpoints.spare]" in w and "not used by any pipeline" in w for w in cfg.warnings)


def test_bind_port_zero_means_any_free_port(tmp_path: Path) -> None:
    config = CONFIG.replace("bind_port = 8085", "bind_port = 0")
    assert load_config(write(tmp_path, config)).http.bind_port == 0


def test_path_prefix_trailing_slash_is_dropped(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace('"/trigger-dicom"', '"/trigger-dicom/"')
    assert load_pipeline(tmp_path, pipeline).endpoints["trigger"].path_prefix == "/trigger-dicom"


def test_logging_table_log_level_overrides_proxy(tmp_path: Path) -> None:
    config = CONFIG.replace("log_to_file = true", 'log_to_file = true\nlog_level = "WARNING"')
    cfg = load_config(write(tmp_path, config))
    assert cfg.logging.level == "warn"
    assert cfg.proxy.log_level == "warn"


# --------------------------------------------------------------------------------------------
# Errors: each names the file, the table and the key
# --------------------------------------------------------------------------------------------


def test_error_message_format_matches_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    error = error_of(tmp_path, PIPELINE.replace('aet = "ORTHANC"', 'aet = "ORTHANC_ORTHANC_O"'))
    assert str(error) == (
        "pipelines/main.toml: [backends.pacs.options] aet: "
        "AE title is 17 characters, at most 16 allowed"
    )
    assert error.file == tmp_path / "pipelines" / "main.toml"


@pytest.mark.parametrize(
    ("remove", "table", "key"),
    [
        ('aet = "ORTHANC"\n', "backends.pacs.options", "aet"),
        ('host = "localhost"\n', "backends.pacs.options", "host"),
        ("port = 4242\n", "backends.pacs.options", "port"),
        ('service = "dicom"\n', "backends.pacs", "service"),
        ('service = "http"\n', "endpoints.trigger", "service"),
        ('path_prefix = "/trigger-dicom"\n', "endpoints.trigger.options", "path_prefix"),
        ('networks = ["http_net"]\n', "pipelines.query", "networks"),
        ('endpoints = ["trigger"]\n', "pipelines.query", "endpoints"),
        ('backends = ["pacs"]\n', "pipelines.query", "backends"),
    ],
)
def test_missing_required_key_in_pipeline_file(
    tmp_path: Path, remove: str, table: str, key: str
) -> None:
    assert remove in PIPELINE
    error = error_of(tmp_path, PIPELINE.replace(remove, "", 1))
    assert_located(error, "main.toml", table, key)
    assert "missing required key" in str(error)


@pytest.mark.parametrize(
    ("remove", "table", "key"),
    [
        ('id = "test-gateway"\n', "proxy", "id"),
        ('bind_address = "127.0.0.1"\n', "network.http_net.http", "bind_address"),
        ("bind_port = 8085\n", "network.http_net.http", "bind_port"),
        ('log_file_path = "./tmp/gateway.log"\n', "logging", "log_file_path"),
    ],
)
def test_missing_required_key_in_config(tmp_path: Path, remove: str, table: str, key: str) -> None:
    error = error_of(tmp_path, config=CONFIG.replace(remove, ""))
    assert_located(error, "config.toml", table, key)
    assert "missing required key" in str(error)


def test_missing_proxy_table(tmp_path: Path) -> None:
    config = CONFIG.replace('[proxy]\nid = "test-gateway"\nlog_level = "info"\n', "")
    config = config.replace('pipelines_path = "pipelines"\n', "")
    error = error_of(tmp_path, config=config)
    assert_located(error, "config.toml", "proxy", None)
    assert "required table is missing" in str(error)


@pytest.mark.parametrize(
    ("find", "replace", "file", "table", "key", "expected"),
    [
        (
            "port = 4242",
            'port = "4242"',
            "main.toml",
            "backends.pacs.options",
            "port",
            'expected integer, got string "4242"',
        ),
        (
            "port = 4242",
            "port = 4242.0",
            "main.toml",
            "backends.pacs.options",
            "port",
            "expected integer, got number 4242.0",
        ),
        (
            'aet = "ORTHANC"',
            "aet = 7",
            "main.toml",
            "backends.pacs.options",
            "aet",
            "expected string, got integer 7",
        ),
        (
            'networks = ["http_net"]',
            'networks = "http_net"',
            "main.toml",
            "pipelines.query",
            "networks",
            'expected array, got string "http_net"',
        ),
        (
            'endpoints = ["trigger"]',
            "endpoints = [1]",
            "main.toml",
            "pipelines.query",
            "endpoints[0]",
            "expected string, got integer 1",
        ),
        (
            '[backends.pacs]\nservice = "dicom"\n[backends.pacs.options]',
            '[backends.pacs]\nservice = "dicom"\noptions = 5\n[unused]',
            "main.toml",
            "backends.pacs",
            "options",
            "expected table, got integer 5",
        ),
        (
            'local_aet = "HARMONY_SCU"',
            'local_aet = "HARMONY_SCU"\nuse_tls = "no"',
            "main.toml",
            "backends.pacs.options",
            "use_tls",
            'expected boolean, got string "no"',
        ),
        (
            'local_aet = "HARMONY_SCU"',
            'local_aet = "HARMONY_SCU"\ndimse_timeout = "30"',
            "main.toml",
            "backends.pacs.options",
            "dimse_timeout",
            'expected number, got string "30"',
        ),
    ],
)
def test_wrong_type_says_expected_and_got(
    tmp_path: Path, find: str, replace: str, file: str, table: str, key: str, expected: str
) -> None:
    assert find in PIPELINE
    error = error_of(tmp_path, PIPELINE.replace(find, replace))
    assert_located(error, file, table, key)
    assert str(error).endswith(expected)


def test_wrong_type_in_config(tmp_path: Path) -> None:
    error = error_of(tmp_path, config=CONFIG.replace("bind_port = 8085", "bind_port = true"))
    assert_located(error, "config.toml", "network.http_net.http", "bind_port")
    assert str(error).endswith("expected integer, got boolean true")


def test_whole_backend_not_a_table(tmp_path: Path) -> None:
    pipeline = PIPELINE.split("[backends.pacs]")[0] + "[backends]\npacs = 5\n"
    error = error_of(tmp_path, pipeline)
    assert_located(error, "main.toml", "backends.pacs", None)
    assert "expected table, got integer 5" in str(error)


@pytest.mark.parametrize("service", ["fhir", "dicomweb", "echo", "http"])
def test_backend_service_not_supported(tmp_path: Path, service: str) -> None:
    pipeline = PIPELINE.replace('service = "dicom"', f'service = "{service}"')
    error = error_of(tmp_path, pipeline)
    assert_located(error, "main.toml", "backends.pacs", "service")
    assert f'service "{service}" is not supported by harmony-dimse (supported: dicom' in str(error)


@pytest.mark.parametrize("service", ["fhir", "dicom", "jmix"])
def test_endpoint_service_not_supported(tmp_path: Path, service: str) -> None:
    pipeline = PIPELINE.replace('service = "http"', f'service = "{service}"')
    error = error_of(tmp_path, pipeline)
    assert_located(error, "main.toml", "endpoints.trigger", "service")
    assert "(supported: http)" in str(error)


@pytest.mark.parametrize(
    ("find", "replace", "key", "needle"),
    [
        ('endpoints = ["trigger"]', 'endpoints = ["nope"]', "endpoints", 'endpoint "nope"'),
        ('backends = ["pacs"]', 'backends = ["nope"]', "backends", 'backend "nope"'),
        ('networks = ["http_net"]', 'networks = ["nope"]', "networks", 'network "nope"'),
        ('networks = ["http_net"]', "networks = []", "networks", "at least one network"),
        ('endpoints = ["trigger"]', "endpoints = []", "endpoints", "at least one endpoint"),
        ('backends = ["pacs"]', "backends = []", "backends", "at least one backend"),
        ('backends = ["pacs"]', 'backends = ["pacs", "pacs"]', "backends", "listed twice"),
    ],
)
def test_pipeline_references(
    tmp_path: Path, find: str, replace: str, key: str, needle: str
) -> None:
    error = error_of(tmp_path, PIPELINE.replace(find, replace))
    assert_located(error, "main.toml", "pipelines.query", key)
    assert needle in str(error)


def test_network_without_http_listener(tmp_path: Path) -> None:
    config = CONFIG + '[network.other]\ninterface = "eth0"\n'
    pipeline = PIPELINE.replace('networks = ["http_net"]', 'networks = ["other"]')
    error = error_of(tmp_path, pipeline, config)
    assert_located(error, "main.toml", "pipelines.query", "networks")
    assert "[network.other.http]" in str(error)


def test_pipelines_on_two_networks(tmp_path: Path) -> None:
    config = CONFIG + '[network.other.http]\nbind_address = "127.0.0.1"\nbind_port = 9000\n'
    second = (
        PIPELINE.replace("query", "second")
        .replace('"http_net"', '"other"')
        .replace("/trigger-dicom", "/second")
        .replace("trigger", "second_http")
        .replace("pacs", "second_pacs")
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, config, {"a": PIPELINE, "b": second}))
    assert_located(caught.value, "b.toml", "pipelines.second", "networks")
    assert "one HTTP network" in str(caught.value)


def test_two_endpoints_on_one_path_prefix(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace('endpoints = ["trigger"]', 'endpoints = ["trigger", "again"]') + (
        '[endpoints.again]\nservice = "http"\n[endpoints.again.options]\n'
        'path_prefix = "/trigger-dicom/"\n'
    )
    error = error_of(tmp_path, pipeline)
    assert_located(error, "main.toml", "endpoints.again.options", "path_prefix")
    assert 'already used by endpoint "trigger"' in str(error)


def test_two_pipelines_on_one_endpoint(tmp_path: Path) -> None:
    second = PIPELINE.split("[endpoints.trigger]")[0].replace("query", "second")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, CONFIG, {"a": PIPELINE, "b": second}))
    assert_located(caught.value, "b.toml", "pipelines.second", "endpoints")
    assert 'already served by pipeline "query"' in str(caught.value)


@pytest.mark.parametrize(
    ("section", "name"),
    [("pipelines", "query"), ("endpoints", "trigger"), ("backends", "pacs")],
)
def test_same_name_in_two_files(tmp_path: Path, section: str, name: str) -> None:
    duplicate = PIPELINE.split(f"[{section}.{name}]")[1].split("\n\n")[0]
    with pytest.raises(ConfigError) as caught:
        load_config(
            write(tmp_path, CONFIG, {"a": PIPELINE, "b": f"[{section}.{name}]{duplicate}\n"})
        )
    assert_located(caught.value, "b.toml", f"{section}.{name}", None)
    assert "already defined in" in str(caught.value) and "a.toml" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ('"ORTHANC_ORTHANC_1"', "AE title is 17 characters, at most 16 allowed"),
        ('""', "AE title is empty"),
        ('"    "', "AE title is empty"),
        ('"ORT\\\\HANC"', "contains a backslash"),
        ('"ORT\\tHANC"', "contains a control character"),
        ('"ORTHANÇ"', "is not ASCII"),
    ],
)
@pytest.mark.parametrize("key", ["aet", "local_aet"])
def test_bad_ae_titles(tmp_path: Path, key: str, value: str, needle: str) -> None:
    original = '"ORTHANC"' if key == "aet" else '"HARMONY_SCU"'
    pipeline = PIPELINE.replace(f"{key} = {original}", f"{key} = {value}")
    error = error_of(tmp_path, pipeline)
    assert_located(error, "main.toml", "backends.pacs.options", key)
    assert needle in str(error)


def test_sixteen_character_ae_title_is_fine(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace('aet = "ORTHANC"', 'aet = "ORTHANC_ORTHANC_"')
    assert load_pipeline(tmp_path, pipeline).backends["pacs"].aet == "ORTHANC_ORTHANC_"


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_backend_port_out_of_range(tmp_path: Path, port: int) -> None:
    error = error_of(tmp_path, PIPELINE.replace("port = 4242", f"port = {port}"))
    assert_located(error, "main.toml", "backends.pacs.options", "port")
    assert f"port {port} is out of range 1..65535" in str(error)


@pytest.mark.parametrize("port", [1, 65535])
def test_backend_port_edges_are_fine(tmp_path: Path, port: int) -> None:
    pipeline = PIPELINE.replace("port = 4242", f"port = {port}")
    assert load_pipeline(tmp_path, pipeline).backends["pacs"].port == port


@pytest.mark.parametrize("port", [-1, 65536])
def test_bind_port_out_of_range(tmp_path: Path, port: int) -> None:
    error = error_of(tmp_path, config=CONFIG.replace("bind_port = 8085", f"bind_port = {port}"))
    assert_located(error, "config.toml", "network.http_net.http", "bind_port")
    assert "out of range 0..65535" in str(error)


@pytest.mark.parametrize("port", [0, 65536])
def test_incoming_store_port_out_of_range(tmp_path: Path, port: int) -> None:
    error = error_of(tmp_path, backend_with(f"incoming_store_port = {port}\n"))
    assert_located(error, "main.toml", "backends.pacs.options", "incoming_store_port")


@pytest.mark.parametrize("prefix", ["trigger-dicom", "", "/a b", "/a?b"])
def test_bad_path_prefix(tmp_path: Path, prefix: str) -> None:
    error = error_of(tmp_path, PIPELINE.replace('"/trigger-dicom"', f'"{prefix}"'))
    assert_located(error, "main.toml", "endpoints.trigger.options", "path_prefix")
    assert "path prefix" in str(error)


@pytest.mark.parametrize(
    ("option", "key", "needle"),
    [
        ("use_tls = true", "use_tls", "DICOM TLS is not supported by harmony-dimse yet"),
        ("max_pdu = 100", "max_pdu", "0 (unlimited) or 4096..4294967295"),
        ("max_pdu = 4294967296", "max_pdu", "out of range"),
        ("max_pdu = -1", "max_pdu", "out of range"),
        ('dimse_retrieve_mode = "push"', "dimse_retrieve_mode", 'is not one of: "move", "get"'),
        ("connect_timeout = 0", "connect_timeout", "positive number of seconds"),
        ("acse_timeout = -1.0", "acse_timeout", "positive number of seconds"),
        ("dimse_timeout = nan", "dimse_timeout", "positive number of seconds"),
        ("network_timeout = inf", "network_timeout", "positive number of seconds"),
        ("pool_idle_timeout = 0.0", "pool_idle_timeout", "positive number of seconds"),
        ("pool_wait_timeout = -2", "pool_wait_timeout", "positive number of seconds"),
        ("pool_size = 0", "pool_size", "must be at least 1"),
        ("pool_max_operations = 0", "pool_max_operations", "must be at least 1"),
        ('incoming_store_host = ""', "incoming_store_host", "host name or IP address"),
    ],
)
def test_bad_backend_option(tmp_path: Path, option: str, key: str, needle: str) -> None:
    error = error_of(tmp_path, backend_with(option + "\n"))
    assert_located(error, "main.toml", "backends.pacs.options", key)
    assert needle in str(error)


def test_max_pdu_lowest_allowed(tmp_path: Path) -> None:
    assert (
        load_pipeline(tmp_path, backend_with("max_pdu = 4096\n")).backends["pacs"].max_pdu == 4096
    )


def test_empty_host(tmp_path: Path) -> None:
    error = error_of(tmp_path, PIPELINE.replace('host = "localhost"', 'host = ""'))
    assert_located(error, "main.toml", "backends.pacs.options", "host")


@pytest.mark.parametrize(
    ("find", "replace", "table", "key", "needle"),
    [
        ('log_level = "info"', 'log_level = "verbose"', "proxy", "log_level", "unknown log level"),
        (
            'pipelines_path = "pipelines"',
            'pipelines_path = "pipelines"\nworkers = 0',
            "proxy",
            "workers",
            "must be at least 1",
        ),
        ('id = "test-gateway"', 'id = " "', "proxy", "id", "must not be empty"),
        (
            'backend = "filesystem"',
            'backend = "s3"',
            "storage",
            "backend",
            'storage backend "s3" is not supported',
        ),
        (
            "enable_wireguard = false",
            "enable_wireguard = true",
            "network.http_net",
            "enable_wireguard",
            "WireGuard is not supported",
        ),
        (
            "bind_port = 8085",
            'bind_port = 8085\ncert_path = "c.pem"',
            "network.http_net.http",
            "cert_path",
            "HTTPS listeners are not supported",
        ),
        (
            'bind_address = "127.0.0.1"',
            'bind_address = ""',
            "network.http_net.http",
            "bind_address",
            "host name or IP address",
        ),
        (
            "log_to_file = true",
            'log_to_file = true\nlog_level = "loud"',
            "logging",
            "log_level",
            "unknown log level",
        ),
    ],
)
def test_bad_config_value(
    tmp_path: Path, find: str, replace: str, table: str, key: str, needle: str
) -> None:
    assert find in CONFIG
    error = error_of(tmp_path, config=CONFIG.replace(find, replace))
    assert_located(error, "config.toml", table, key)
    assert needle in str(error)


@pytest.mark.parametrize(
    "middleware",
    ['["jwt_auth"]', '{ incoming = ["jwt_auth"], outgoing = [] }'],
)
def test_unsupported_middleware(tmp_path: Path, middleware: str) -> None:
    pipeline = PIPELINE.replace("middleware = []", f"middleware = {middleware}")
    error = error_of(tmp_path, pipeline)
    assert_located(error, "main.toml", "pipelines.query", None)
    assert error.key is not None and error.key.startswith("middleware")
    assert 'middleware "jwt_auth"' in str(error) and "supported: passthru" in str(error)


def test_middleware_defined_with_unsupported_type(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace("middleware = []", 'middleware = ["passthru"]') + (
        '[middleware.passthru]\ntype = "transform"\n'
    )
    error = error_of(tmp_path, pipeline)
    assert_located(error, "main.toml", "pipelines.query", "middleware[0]")
    assert 'type "transform"' in str(error)


def test_middleware_wrong_shape(tmp_path: Path) -> None:
    error = error_of(tmp_path, PIPELINE.replace("middleware = []", "middleware = [3]"))
    assert_located(error, "main.toml", "pipelines.query", "middleware[0]")


def test_target_ref_to_missing_target(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace('service = "dicom"', 'service = "dicom"\ntarget_ref = "nowhere"')
    error = error_of(tmp_path, pipeline)
    assert_located(error, "main.toml", "backends.pacs", "target_ref")
    assert 'no target "nowhere"' in str(error)


def test_toml_syntax_error_has_line_column_table_and_key(tmp_path: Path) -> None:
    pipeline = PIPELINE.replace("port = 4242", "port = 42 42")
    error = error_of(tmp_path, pipeline)
    line = pipeline.splitlines().index("port = 42 42") + 1
    assert_located(error, "main.toml", "backends.pacs.options", "port")
    assert f"TOML syntax error at line {line}, column" in str(error)


def test_toml_syntax_error_in_config(tmp_path: Path) -> None:
    error = error_of(tmp_path, config=CONFIG.replace("[logging]", "[logging"))
    assert "config.toml" in str(error)
    assert "TOML syntax error at line" in str(error)


def test_duplicate_key_is_a_syntax_error(tmp_path: Path) -> None:
    error = error_of(tmp_path, PIPELINE.replace("port = 4242", "port = 4242\nport = 4243"))
    assert_located(error, "main.toml", "backends.pacs.options", "port")
    assert "TOML syntax error" in str(error)


def test_pipelines_folder_missing(tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text(CONFIG.replace('"pipelines"', '"nowhere"'))
    with pytest.raises(ConfigError) as caught:
        load_config(config_path)
    assert_located(caught.value, "config.toml", "proxy", "pipelines_path")
    assert "does not exist" in str(caught.value)


def test_no_pipelines_at_all(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, CONFIG, {}))
    assert_located(caught.value, "config.toml", "pipelines", None)
    assert "no pipeline is defined" in str(caught.value)


def test_config_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml")
    assert "absent.toml" in str(caught.value)
    assert "not found" in str(caught.value)


def test_not_utf8(tmp_path: Path) -> None:
    config_path = write(tmp_path)
    config_path.write_bytes(CONFIG.encode() + b"# \xff\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config_path)
    assert "not UTF-8" in str(caught.value)


# --------------------------------------------------------------------------------------------
# setup_logging
# --------------------------------------------------------------------------------------------


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level restored after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_setup_logging_writes_the_file_and_creates_its_folder(
    tmp_path: Path, root_logger: logging.Logger
) -> None:
    config = CONFIG.replace("./tmp/gateway.log", "./logs/deep/gateway.log").replace(
        'log_level = "info"', 'log_level = "debug"\nunknown_knob = 1'
    )
    cfg = load_config(write(tmp_path, config))
    setup_logging(cfg)
    setup_logging(cfg)  # a second call replaces its handlers, no duplicate lines
    assert root_logger.level == logging.DEBUG
    logging.getLogger("harmony_dimse.test").debug("hello %s", "file")
    log_text = (tmp_path / "logs" / "deep" / "gateway.log").read_text()
    assert log_text.count("hello file") == 1
    assert "DEBUG harmony_dimse.test: hello file" in log_text
    assert "[proxy] unknown_knob: unknown key, ignored" in log_text  # warnings are logged


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("trace", 5),
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warn", logging.WARNING),
        ("warning", logging.WARNING),
        ("error", logging.ERROR),
        ("ERROR", logging.ERROR),
    ],
)
def test_setup_logging_maps_harmony_levels(
    tmp_path: Path, root_logger: logging.Logger, name: str, level: int
) -> None:
    config = CONFIG.replace('log_level = "info"', f'log_level = "{name}"').replace(
        "log_to_file = true", "log_to_file = false"
    )
    setup_logging(load_config(write(tmp_path, config)))
    assert root_logger.level == level
    assert not (tmp_path / "tmp").exists()  # no file logging asked for, no folder made


def test_setup_logging_reports_an_unwritable_log_file(
    tmp_path: Path, root_logger: logging.Logger
) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    config = CONFIG.replace("./tmp/gateway.log", "./blocker/gateway.log")
    cfg = load_config(write(tmp_path, config))
    with pytest.raises(ConfigError) as caught:
        setup_logging(cfg)
    assert_located(caught.value, "config.toml", "logging", "log_file_path")


def test_http_limits_default_and_are_read(tmp_path: Path) -> None:
    from harmony_dimse.http.limits import HTTPLimits

    assert load_config(write(tmp_path)).http.limits == HTTPLimits()
    config = CONFIG.replace(
        "bind_port = 8085\n",
        "bind_port = 8085\nmax_body_size = 1048576\nmax_connections = 10\n"
        "header_timeout = 1\nbody_timeout = 2.5\nkeepalive_timeout = 3\nwrite_timeout = 4\n",
    )
    limits = load_config(write(tmp_path, config)).http.limits
    assert (limits.max_body, limits.max_connections) == (1048576, 10)
    assert (limits.header_timeout, limits.body_timeout) == (1.0, 2.5)
    assert (limits.keepalive_timeout, limits.write_timeout) == (3.0, 4.0)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("max_body_size = -1", "max_body_size"),
        ("max_connections = 0", "max_connections"),
        ("body_timeout = 0", "body_timeout"),
        ("keepalive_timeout = -5", "keepalive_timeout"),
    ],
)
def test_bad_http_limits_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    error = error_of(
        tmp_path, config=CONFIG.replace("bind_port = 8085\n", f"bind_port = 8085\n{line}\n")
    )
    assert_located(error, "config.toml", "network.http_net.http", key)
