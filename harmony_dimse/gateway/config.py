"""Load and validate the gateway configuration: Harmony's config.toml plus every pipelines/*.toml.

The schema is Harmony's (the Rust gateway this project re-implements), so Harmony's dicom-backend
example loads unchanged. Each TOML table is type-checked with msgspec, then checked for meaning
(ports, AE titles, timeouts, references between pipelines, networks, endpoints and backends).
Every problem raises ConfigError, whose message names the file, the table and the key.

Keys Harmony knows but harmony-dimse does not use are accepted silently; keys neither knows are
accepted with a warning (collected in GatewayConfig.warnings; setup_logging logs them), so a
misspelt option does not vanish without a word. Harmony features whose absence would change
behaviour in a way the user must know (HTTPS listeners, DICOM TLS, WireGuard, middleware other
than passthru, services other than http endpoints and dicom backends) are errors, not warnings.

Relative paths (pipelines_path, log_file_path, storage path) resolve against the directory of
config.toml, as Harmony does.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import msgspec

from ..http.limits import HTTPLimits

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python < 3.11 has the same parser as tomli
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "ConfigError",
    "DicomBackend",
    "Endpoint",
    "GatewayConfig",
    "HttpConfig",
    "LoggingConfig",
    "Pipeline",
    "ProxyConfig",
    "StorageConfig",
    "load_config",
    "setup_logging",
]

LOG_LEVELS: dict[str, int] = {
    "trace": 5,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}
"""Harmony's log level names (tracing's) mapped to stdlib logging levels; TRACE is level 5."""

ENDPOINT_SERVICES = ("http",)
BACKEND_SERVICES = ("dicom", "dicom_scu")  # Harmony's older and newer name for the DICOM SCU
MIDDLEWARE_TYPES = ("passthru",)
RETRIEVE_MODES = ("move", "get")
MIN_MAX_PDU = 4096
MAX_MAX_PDU = 0xFFFFFFFF
MAX_AE_TITLE_LENGTH = 16


# --------------------------------------------------------------------------------------------
# Public configuration types
# --------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """A configuration problem, located by file, TOML table and key."""

    def __init__(self, file: Path, table: str | None, key: str | None, problem: str) -> None:
        self.file = file
        self.table = table
        self.key = key
        self.problem = problem
        super().__init__(_locate(file, table, key, problem))


class ProxyConfig(msgspec.Struct, frozen=True):
    """The [proxy] table. log_level is the effective level ([logging] log_level wins if set)."""

    id: str
    log_level: str
    pipelines_path: Path
    workers: int


class HttpConfig(msgspec.Struct, frozen=True):
    """The HTTP listener of one [network.NAME.http] table. bind_port 0 means any free port."""

    network: str
    bind_address: str
    bind_port: int
    limits: HTTPLimits = HTTPLimits()


class LoggingConfig(msgspec.Struct, frozen=True):
    """The [logging] table; log_file_path is absolute (None when not configured)."""

    log_to_file: bool
    log_file_path: Path | None
    level: str


class StorageConfig(msgspec.Struct, frozen=True):
    """The [storage] table: where received DICOM files and temporary data go (absolute path)."""

    backend: str
    path: Path


class Pipeline(msgspec.Struct, frozen=True):
    """One [pipelines.NAME] table: requests on its endpoints go to its backends."""

    name: str
    description: str
    networks: tuple[str, ...]
    endpoints: tuple[str, ...]
    middleware: tuple[str, ...]
    backends: tuple[str, ...]
    source: Path


class Endpoint(msgspec.Struct, frozen=True):
    """One [endpoints.NAME] table with service "http"; path_prefix has no trailing slash."""

    name: str
    service: str
    path_prefix: str
    source: Path


class DicomBackend(msgspec.Struct, frozen=True):
    """One [backends.NAME] table with service "dicom": a remote PACS and how to talk to it.

    Timeouts are seconds. max_pdu 0 means unlimited. incoming_store_host/port is where our
    Storage SCP listens for the C-STOREs of a C-MOVE (the PACS must know that address under
    local_aet). When not configured, the host is 127.0.0.1 if the PACS is on this machine
    (localhost, a loopback address) and 0.0.0.0 otherwise, so a remote PACS can reach it.
    """

    name: str
    service: str
    aet: str
    host: str
    port: int
    local_aet: str
    connect_timeout: float
    acse_timeout: float
    dimse_timeout: float
    network_timeout: float
    max_pdu: int
    dimse_retrieve_mode: str
    incoming_store_host: str
    incoming_store_port: int
    persistent_store_scp: bool
    pool_size: int
    pool_idle_timeout: float
    pool_max_operations: int
    pool_wait_timeout: float
    use_tls: bool
    source: Path


class GatewayConfig(msgspec.Struct, frozen=True):
    """The whole validated configuration.

    http is the listener of the one network the pipelines use; networks holds every network
    defined with an HTTP listener. warnings lists accepted-but-suspicious things, each located
    like a ConfigError message.
    """

    proxy: ProxyConfig
    http: HttpConfig
    logging: LoggingConfig
    storage: StorageConfig
    pipelines: tuple[Pipeline, ...]
    endpoints: dict[str, Endpoint]
    backends: dict[str, DicomBackend]
    config_path: Path
    base_dir: Path
    networks: dict[str, HttpConfig]
    warnings: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# The TOML shapes, as msgspec checks them (defaults are harmony-dimse's)
# --------------------------------------------------------------------------------------------


class _ProxyToml(msgspec.Struct):
    id: str
    log_level: str = "info"
    pipelines_path: str | None = None
    workers: int = 1


_DEFAULT_LIMITS = HTTPLimits()


class _HttpToml(msgspec.Struct):
    bind_address: str
    bind_port: int
    cert_path: str | None = None
    key_path: str | None = None
    force_https: bool = False
    # our own: the limits of the HTTP server (see harmony_dimse.http.limits)
    max_body_size: int = _DEFAULT_LIMITS.max_body
    max_connections: int = _DEFAULT_LIMITS.max_connections
    header_timeout: float = _DEFAULT_LIMITS.header_timeout
    body_timeout: float = _DEFAULT_LIMITS.body_timeout
    keepalive_timeout: float = _DEFAULT_LIMITS.keepalive_timeout
    write_timeout: float = _DEFAULT_LIMITS.write_timeout


class _NetworkToml(msgspec.Struct):
    enable_wireguard: bool = False
    interface: str = ""
    http: dict[str, Any] | None = None


class _LoggingToml(msgspec.Struct):
    log_to_file: bool = False
    log_file_path: str | None = None
    log_level: str | None = None


class _StorageToml(msgspec.Struct):
    backend: str = "filesystem"
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class _StorageOptionsToml(msgspec.Struct):
    path: str = "./tmp"


class _ServiceToml(msgspec.Struct):
    module: str = ""


class _PipelineToml(msgspec.Struct):
    networks: list[str]
    endpoints: list[str]
    backends: list[str]
    description: str = ""
    middleware: Any = msgspec.field(default_factory=list)


class _MiddlewareDefToml(msgspec.Struct):
    type: str | None = None


class _EndpointToml(msgspec.Struct):
    service: str
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class _HttpEndpointOptionsToml(msgspec.Struct):
    path_prefix: str


class _BackendToml(msgspec.Struct):
    service: str
    target_ref: str | None = None
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class _DicomOptionsToml(msgspec.Struct):
    aet: str
    host: str | None = None
    port: int | None = None
    local_aet: str = "HARMONY_SCU"
    connect_timeout: float = 5.0
    acse_timeout: float = 10.0
    dimse_timeout: float = 30.0
    network_timeout: float = 60.0
    max_pdu: int = 4194304
    dimse_retrieve_mode: str = "move"
    incoming_store_host: str | None = None
    incoming_store_port: int = 11113
    persistent_store_scp: bool = True
    pool_size: int = 2
    pool_idle_timeout: float = 20.0
    pool_max_operations: int = 1000
    pool_wait_timeout: float = 10.0
    use_tls: bool = False


class _TargetToml(msgspec.Struct):
    connection: dict[str, Any] = msgspec.field(default_factory=dict)


class _TargetConnectionToml(msgspec.Struct):
    host: str | None = None
    port: int | None = None
    protocol: str | None = None


# Keys Harmony defines that harmony-dimse accepts and does not use (no warning for these).
_CONFIG_TOP_KEYS = frozenset(
    {
        "proxy",
        "network",
        "logging",
        "storage",
        "services",
        "pipelines",
        "endpoints",
        "backends",
        "middleware",
        "middleware_types",
        "targets",
        "authentications",
        "management",
        "runbeam",
        "provider",
    }
)
_PIPELINE_FILE_TOP_KEYS = frozenset(
    {
        "pipelines",
        "endpoints",
        "backends",
        "middleware",
        "middleware_types",
        "targets",
        "authentications",
        "services",
    }
)
_PROXY_HARMONY_ONLY = frozenset(
    {
        "transforms_path",
        "mesh_path",
        "store_dir",
        "jwks_cache_duration_hours",
        "content_limits",
        "required_env_vars",
        "sensitive_field_patterns",
        "primary_provider",
    }
)
_NETWORK_HARMONY_ONLY = frozenset({"http3"})
_PIPELINE_HARMONY_ONLY = frozenset({"id", "mesh"})
_ENTRY_HARMONY_ONLY = frozenset({"id", "authentication"})
_TARGET_HARMONY_ONLY = frozenset({"authentication", "timeout_secs", "url", "id"})

_KINDS = ("pipelines", "endpoints", "backends", "middleware", "targets")
_SINGULAR = {
    "pipelines": "pipeline",
    "endpoints": "endpoint",
    "backends": "backend",
    "middleware": "middleware",
    "targets": "target",
}

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Locating problems
# --------------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    """The path relative to the working directory when it lies below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _table_name(parts: tuple[str, ...]) -> str:
    return ".".join(part if _BARE_KEY.fullmatch(part) else json.dumps(part) for part in parts)


def _locate(file: Path, table: str | None, key: str | None, problem: str) -> str:
    where = _display(file) + ":"
    if table:
        where += f" [{table}]"
    if key:
        where += f" {key}"
    elif table:
        where += ":"
    return f"{where}: {problem}" if key else f"{where} {problem}"


class _Where(NamedTuple):
    """A file and the TOML table inside it that is being read."""

    file: Path
    table: tuple[str, ...] = ()

    def at(self, *parts: str) -> _Where:
        return _Where(self.file, self.table + parts)

    def error(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(self.file, _table_name(self.table) or None, key, problem)

    def note(self, key: str | None, problem: str) -> str:
        return _locate(self.file, _table_name(self.table) or None, key, problem)


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"string {json.dumps(shown)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


_TOML_TYPE_NAMES = {
    "int": "integer",
    "str": "string",
    "float": "number",
    "bool": "boolean",
    "object": "table",
    "array": "array",
}
_EXPECTED = re.compile(r"Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]*)`")
_AT_PATH = re.compile(r"^(?P<what>.*?) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _toml_type(msgspec_type: str) -> str:
    # TOML has no null: an optional key's "| null" means "or leave it out", said elsewhere.
    names = [name for name in msgspec_type.split(" | ") if name != "null"] or ["nothing"]
    return " or ".join(_TOML_TYPE_NAMES.get(name, name) for name in names)


def _translate(message: str, raw: object, where: _Where) -> ConfigError:
    """Turn a msgspec ValidationError message into a ConfigError naming table and key."""
    path = ""
    matched = _AT_PATH.match(message)
    if matched:
        message, path = matched["what"], matched["path"]
    steps: list[str | int] = [
        name if name else int(index) for name, index in _PATH_STEP.findall(path)
    ]
    missing = _MISSING.fullmatch(message)
    if missing:
        tables = tuple(str(step) for step in steps if isinstance(step, str))
        return where.at(*tables).error(missing["field"], "missing required key")
    # The key is the last named step plus any array indexes after it; the rest are tables.
    last_name = max((i for i, step in enumerate(steps) if isinstance(step, str)), default=-1)
    tables = tuple(str(step) for step in steps[:last_name] if isinstance(step, str))
    key = "".join(
        str(step) if isinstance(step, str) else f"[{step}]" for step in steps[max(last_name, 0) :]
    )
    value: object = raw
    found = True
    for step in steps:
        try:
            value = value[step]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            found = False
            break
    expected = _EXPECTED.fullmatch(message)
    if expected:
        got = _describe(value) if found else _toml_type(expected["got"])
        problem = f"expected {_toml_type(expected['expected'])}, got {got}"
    else:
        problem = message[:1].lower() + message[1:]
    return where.at(*tables).error(key or None, problem)


def _convert(raw: object, shape: type[_T], where: _Where) -> _T:
    try:
        return msgspec.convert(raw, shape, strict=True)
    except msgspec.ValidationError as exc:
        raise _translate(str(exc), raw, where) from None


def _warn_unknown(
    raw: object,
    known: frozenset[str] | type[msgspec.Struct],
    where: _Where,
    warnings: list[str],
    harmony_only: frozenset[str] = frozenset(),
) -> None:
    if not isinstance(raw, dict):
        return
    names = frozenset(known.__struct_fields__) if isinstance(known, type) else known
    for key in raw:
        if key not in names and key not in harmony_only:
            warnings.append(where.note(key, "unknown key, ignored"))


# --------------------------------------------------------------------------------------------
# Reading TOML
# --------------------------------------------------------------------------------------------

_TOML_POSITION = re.compile(r"^(?P<what>.*?) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")
_TOML_HEADER = re.compile(r"^\s*\[\[?\s*(?P<name>[^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"^\s*(?P<key>[^=#\[\s][^=#]*?)\s*=")


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(file, None, None, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(file, None, None, f"not UTF-8 text (byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(file, text, str(exc)) from None


def _syntax_error(file: Path, text: str, message: str) -> ConfigError:
    """Locate a TOML syntax error: line and column, the table it is in, the key on that line."""
    position = _TOML_POSITION.match(message)
    if not position:
        return ConfigError(file, None, None, f"TOML syntax error: {message}")
    line_number = int(position["line"])
    lines = text.splitlines()
    table: str | None = None
    for line in lines[: line_number - 1]:
        header = _TOML_HEADER.match(line)
        if header:
            table = header["name"]
    key: str | None = None
    if 0 < line_number <= len(lines):
        line = lines[line_number - 1]
        header = _TOML_HEADER.match(line)
        if header:
            table = header["name"]
        elif line.lstrip().startswith("["):  # a broken table header
            table = line.strip().strip("[]").strip() or table
        else:
            assignment = _TOML_KEY.match(lines[line_number - 1])
            key = assignment["key"] if assignment else None
    problem = (
        f"TOML syntax error at line {line_number}, column {position['column']}: {position['what']}"
    )
    return ConfigError(file, table, key, problem)


# --------------------------------------------------------------------------------------------
# Value checks
# --------------------------------------------------------------------------------------------


def _check_port(value: int, where: _Where, key: str, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise where.error(key, f"port {value} is out of range {low}..65535")
    return value


def _check_seconds(value: float, where: _Where, key: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise where.error(key, f"must be a positive number of seconds, got {value}")
    return value


def _check_at_least(value: int, low: int, where: _Where, key: str) -> int:
    if value < low:
        raise where.error(key, f"must be at least {low}, got {value}")
    return value


def _check_ae_title(value: str, where: _Where, key: str) -> str:
    """An AE title (PS3.5 VR AE): 1..16 ASCII characters, no backslash or control character."""
    for char in value:
        if char == "\\":
            raise where.error(key, f"AE title {json.dumps(value)} contains a backslash")
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise where.error(key, f"AE title {json.dumps(value)} contains a control character")
    if not value.isascii():
        raise where.error(key, f"AE title {json.dumps(value)} is not ASCII")
    title = value.strip(" ")  # leading and trailing spaces are not significant in AE
    if not title:
        raise where.error(key, "AE title is empty")
    if len(title) > MAX_AE_TITLE_LENGTH:
        raise where.error(
            key,
            f"AE title is {len(title)} characters, at most {MAX_AE_TITLE_LENGTH} allowed",
        )
    return title


def _check_host(value: str, where: _Where, key: str) -> str:
    if not value or any(char.isspace() for char in value):
        raise where.error(key, f"expected a host name or IP address, got {_describe(value)}")
    return value


def _check_log_level(value: str, where: _Where, key: str) -> str:
    level = value.lower()
    if level not in LOG_LEVELS:
        names = ", ".join(name for name in LOG_LEVELS if name != "warning")
        raise where.error(key, f"unknown log level {json.dumps(value)} (one of: {names})")
    return "warn" if level == "warning" else level


def _check_choice(value: str, choices: tuple[str, ...], where: _Where, key: str) -> str:
    if value not in choices:
        raise where.error(
            key, f"{json.dumps(value)} is not one of: {', '.join(map(json.dumps, choices))}"
        )
    return value


def _unsupported_service(service: str, supported: tuple[str, ...]) -> str:
    return (
        f"service {json.dumps(service)} is not supported by harmony-dimse "
        f"(supported: {', '.join(supported)})"
    )


def _resolve(base_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(os.path.normpath(base_dir / path))


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalise_prefix(value: str, where: _Where, key: str) -> str:
    if not value.startswith("/"):
        raise where.error(key, f'path prefix {json.dumps(value)} must start with "/"')
    if any(char.isspace() or char in "?#" for char in value):
        raise where.error(
            key, f'path prefix {json.dumps(value)} must not contain spaces, "?" or "#"'
        )
    return value.rstrip("/") or "/"


def _names(values: list[str], where: _Where, key: str, what: str) -> tuple[str, ...]:
    if not values:
        raise where.error(key, f"a pipeline needs at least one {what}")
    seen: set[str] = set()
    for name in values:
        if name in seen:
            raise where.error(key, f"{what} {json.dumps(name)} is listed twice")
        seen.add(name)
    return tuple(values)


# --------------------------------------------------------------------------------------------
# Tables of config.toml
# --------------------------------------------------------------------------------------------


def _table(raw: dict[str, Any], name: str, where: _Where) -> dict[str, Any] | None:
    value = raw.get(name)
    if value is None or isinstance(value, dict):
        return value
    raise where.error(name, f"expected a table, got {_describe(value)}")


def _load_proxy(
    raw: dict[str, Any], config_path: Path, base_dir: Path, warnings: list[str]
) -> tuple[ProxyConfig, bool]:
    """[proxy]; also says whether pipelines_path was written (the folder must then exist)."""
    where = _Where(config_path, ("proxy",))
    table = _table(raw, "proxy", _Where(config_path))
    if table is None:
        raise where.error(None, "required table is missing")
    _warn_unknown(table, _ProxyToml, where, warnings, _PROXY_HARMONY_ONLY)
    proxy = _convert(table, _ProxyToml, where)
    if not proxy.id.strip():
        raise where.error("id", "must not be empty")
    if proxy.pipelines_path is not None and not proxy.pipelines_path.strip():
        raise where.error("pipelines_path", "must not be empty")
    config = ProxyConfig(
        id=proxy.id,
        log_level=_check_log_level(proxy.log_level, where, "log_level"),
        pipelines_path=_resolve(base_dir, proxy.pipelines_path or "pipelines"),
        workers=_check_at_least(proxy.workers, 1, where, "workers"),
    )
    return config, proxy.pipelines_path is not None


def _load_networks(
    raw: dict[str, Any], config_path: Path, warnings: list[str]
) -> dict[str, HttpConfig | None]:
    """Every [network.NAME]; None for a network without an [network.NAME.http] listener."""
    table = _table(raw, "network", _Where(config_path)) or {}
    networks: dict[str, HttpConfig | None] = {}
    for name, body in table.items():
        where = _Where(config_path, ("network", name))
        _warn_unknown(body, _NetworkToml, where, warnings, _NETWORK_HARMONY_ONLY)
        network = _convert(body, _NetworkToml, where)
        if network.enable_wireguard:
            raise where.error("enable_wireguard", "WireGuard is not supported by harmony-dimse")
        if isinstance(body, dict) and "http3" in body:
            warnings.append(
                where.note("http3", "HTTP/3 is not supported by harmony-dimse, ignored")
            )
        if network.http is None:
            networks[name] = None
            continue
        http_where = where.at("http")
        _warn_unknown(network.http, _HttpToml, http_where, warnings)
        http = _convert(network.http, _HttpToml, http_where)
        for tls_key in ("cert_path", "key_path"):
            if getattr(http, tls_key) is not None:
                raise http_where.error(
                    tls_key, "HTTPS listeners are not supported by harmony-dimse yet"
                )
        if http.force_https:
            warnings.append(
                http_where.note("force_https", "HTTPS redirects are not supported, ignored")
            )
        networks[name] = HttpConfig(
            network=name,
            bind_address=_check_host(http.bind_address, http_where, "bind_address"),
            bind_port=_check_port(http.bind_port, http_where, "bind_port", allow_zero=True),
            limits=_http_limits(http, http_where),
        )
    return networks


def _http_limits(http: _HttpToml, where: _Where) -> HTTPLimits:
    return HTTPLimits(
        max_request_line=_DEFAULT_LIMITS.max_request_line,
        max_header_bytes=_DEFAULT_LIMITS.max_header_bytes,
        max_headers=_DEFAULT_LIMITS.max_headers,
        max_body=_check_at_least(http.max_body_size, 0, where, "max_body_size"),
        max_connections=_check_at_least(http.max_connections, 1, where, "max_connections"),
        header_timeout=_check_seconds(http.header_timeout, where, "header_timeout"),
        body_timeout=_check_seconds(http.body_timeout, where, "body_timeout"),
        keepalive_timeout=_check_seconds(http.keepalive_timeout, where, "keepalive_timeout"),
        write_timeout=_check_seconds(http.write_timeout, where, "write_timeout"),
        linger_timeout=_DEFAULT_LIMITS.linger_timeout,
    )


def _load_logging(
    raw: dict[str, Any], config_path: Path, base_dir: Path, proxy_level: str, warnings: list[str]
) -> LoggingConfig:
    where = _Where(config_path, ("logging",))
    table = _table(raw, "logging", _Where(config_path)) or {}
    _warn_unknown(table, _LoggingToml, where, warnings)
    settings = _convert(table, _LoggingToml, where)
    if settings.log_to_file and not settings.log_file_path:
        raise where.error("log_file_path", "missing required key (log_to_file is true)")
    level = proxy_level
    if settings.log_level is not None:
        level = _check_log_level(settings.log_level, where, "log_level")
    return LoggingConfig(
        log_to_file=settings.log_to_file,
        log_file_path=_resolve(base_dir, settings.log_file_path)
        if settings.log_file_path
        else None,
        level=level,
    )


def _load_storage(
    raw: dict[str, Any], config_path: Path, base_dir: Path, warnings: list[str]
) -> StorageConfig:
    where = _Where(config_path, ("storage",))
    table = _table(raw, "storage", _Where(config_path)) or {}
    _warn_unknown(table, _StorageToml, where, warnings)
    storage = _convert(table, _StorageToml, where)
    if storage.backend != "filesystem":
        raise where.error(
            "backend",
            f"storage backend {json.dumps(storage.backend)} is not supported by harmony-dimse "
            "(supported: filesystem)",
        )
    options_where = where.at("options")
    _warn_unknown(storage.options, _StorageOptionsToml, options_where, warnings)
    options = _convert(storage.options, _StorageOptionsToml, options_where)
    if not options.path.strip():
        raise options_where.error("path", "must not be empty")
    return StorageConfig(backend=storage.backend, path=_resolve(base_dir, options.path))


def _check_services(raw: dict[str, Any], file: Path, warnings: list[str]) -> None:
    """[services.NAME] registrations: Harmony's plug-in modules; harmony-dimse has built-ins."""
    table = _table(raw, "services", _Where(file)) or {}
    for name, body in table.items():
        where = _Where(file, ("services", name))
        _warn_unknown(body, _ServiceToml, where, warnings)
        service = _convert(body, _ServiceToml, where)
        if service.module:
            warnings.append(
                where.note("module", "service modules are not loaded by harmony-dimse, ignored")
            )


# --------------------------------------------------------------------------------------------
# Pipelines, endpoints, backends (config.toml and pipelines/*.toml alike)
# --------------------------------------------------------------------------------------------


class _Entry(NamedTuple):
    raw: object
    where: _Where


def _collect(raw: dict[str, Any], file: Path, entries: dict[str, dict[str, _Entry]]) -> None:
    for kind in _KINDS:
        section = _table(raw, kind, _Where(file))
        for name, body in (section or {}).items():
            where = _Where(file, (kind, name))
            earlier = entries[kind].get(name)
            if earlier is not None:
                raise where.error(
                    None,
                    f"{_SINGULAR[kind]} {json.dumps(name)} is already defined in "
                    f"{_display(earlier.where.file)}",
                )
            entries[kind][name] = _Entry(body, where)


def _load_endpoint(name: str, entry: _Entry, warnings: list[str]) -> Endpoint:
    where = entry.where
    _warn_unknown(entry.raw, _EndpointToml, where, warnings, _ENTRY_HARMONY_ONLY)
    endpoint = _convert(entry.raw, _EndpointToml, where)
    if endpoint.service not in ENDPOINT_SERVICES:
        raise where.error("service", _unsupported_service(endpoint.service, ENDPOINT_SERVICES))
    options_where = where.at("options")
    _warn_unknown(endpoint.options, _HttpEndpointOptionsToml, options_where, warnings)
    options = _convert(endpoint.options, _HttpEndpointOptionsToml, options_where)
    return Endpoint(
        name=name,
        service=endpoint.service,
        path_prefix=_normalise_prefix(options.path_prefix, options_where, "path_prefix"),
        source=where.file,
    )


def _target_connection(
    target_ref: str, targets: dict[str, _Entry], where: _Where, warnings: list[str]
) -> _TargetConnectionToml:
    entry = targets.get(target_ref)
    if entry is None:
        raise where.error("target_ref", f"no target {json.dumps(target_ref)} is defined")
    _warn_unknown(entry.raw, _TargetToml, entry.where, warnings, _TARGET_HARMONY_ONLY)
    target = _convert(entry.raw, _TargetToml, entry.where)
    connection_where = entry.where.at("connection")
    _warn_unknown(target.connection, _TargetConnectionToml, connection_where, warnings)
    connection = _convert(target.connection, _TargetConnectionToml, connection_where)
    if connection.protocol is not None and connection.protocol != "dicom":
        raise connection_where.error(
            "protocol",
            f"backend {where.table[-1]} is a DICOM backend, the target's protocol is "
            f"{json.dumps(connection.protocol)}",
        )
    return connection


def _load_backend(
    name: str, entry: _Entry, targets: dict[str, _Entry], warnings: list[str]
) -> DicomBackend:
    where = entry.where
    _warn_unknown(entry.raw, _BackendToml, where, warnings, _ENTRY_HARMONY_ONLY)
    backend = _convert(entry.raw, _BackendToml, where)
    if backend.service not in BACKEND_SERVICES:
        raise where.error("service", _unsupported_service(backend.service, BACKEND_SERVICES))
    at = where.at("options")
    _warn_unknown(backend.options, _DicomOptionsToml, at, warnings)
    options = _convert(backend.options, _DicomOptionsToml, at)
    host, port = options.host, options.port
    if backend.target_ref is not None:
        connection = _target_connection(backend.target_ref, targets, where, warnings)
        host = host if host is not None else connection.host
        port = port if port is not None else connection.port
    if host is None:
        raise at.error("host", "missing required key")
    if port is None:
        raise at.error("port", "missing required key")
    if options.use_tls:
        raise at.error("use_tls", "DICOM TLS is not supported by harmony-dimse yet")
    max_pdu = options.max_pdu
    if max_pdu != 0 and not MIN_MAX_PDU <= max_pdu <= MAX_MAX_PDU:
        raise at.error(
            "max_pdu",
            f"{max_pdu} is out of range: 0 (unlimited) or {MIN_MAX_PDU}..{MAX_MAX_PDU}",
        )
    host = _check_host(host, at, "host")
    store_host = options.incoming_store_host
    if store_host is None:
        store_host = "127.0.0.1" if _is_loopback(host) else "0.0.0.0"
    return DicomBackend(
        name=name,
        service=backend.service,
        aet=_check_ae_title(options.aet, at, "aet"),
        host=host,
        port=_check_port(port, at, "port"),
        local_aet=_check_ae_title(options.local_aet, at, "local_aet"),
        connect_timeout=_check_seconds(options.connect_timeout, at, "connect_timeout"),
        acse_timeout=_check_seconds(options.acse_timeout, at, "acse_timeout"),
        dimse_timeout=_check_seconds(options.dimse_timeout, at, "dimse_timeout"),
        network_timeout=_check_seconds(options.network_timeout, at, "network_timeout"),
        max_pdu=max_pdu,
        dimse_retrieve_mode=_check_choice(
            options.dimse_retrieve_mode, RETRIEVE_MODES, at, "dimse_retrieve_mode"
        ),
        incoming_store_host=_check_host(store_host, at, "incoming_store_host"),
        incoming_store_port=_check_port(options.incoming_store_port, at, "incoming_store_port"),
        persistent_store_scp=options.persistent_store_scp,
        pool_size=_check_at_least(options.pool_size, 1, at, "pool_size"),
        pool_idle_timeout=_check_seconds(options.pool_idle_timeout, at, "pool_idle_timeout"),
        pool_max_operations=_check_at_least(
            options.pool_max_operations, 1, at, "pool_max_operations"
        ),
        pool_wait_timeout=_check_seconds(options.pool_wait_timeout, at, "pool_wait_timeout"),
        use_tls=options.use_tls,
        source=where.file,
    )


def _middleware_names(raw: object, where: _Where, warnings: list[str]) -> list[tuple[str, str]]:
    """(name, key) pairs from Harmony's two forms: a list, or {incoming = [...], outgoing = [...]}.

    List items are middleware names, or inline tables with a "type" (and optional "name").
    """
    if isinstance(raw, dict):
        _warn_unknown(raw, frozenset({"incoming", "outgoing"}), where.at("middleware"), warnings)
        pairs: list[tuple[str, str]] = []
        for phase in ("incoming", "outgoing"):
            pairs += _middleware_list(raw.get(phase, []), where, f"middleware.{phase}")
        return pairs
    return _middleware_list(raw, where, "middleware")


def _middleware_list(raw: object, where: _Where, key: str) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        raise where.error(
            key, f"expected an array of middleware names or a table, got {_describe(raw)}"
        )
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(raw):
        item_key = f"{key}[{index}]"
        if isinstance(item, str):
            pairs.append((item, item_key))
        elif isinstance(item, dict) and isinstance(item.get("type"), str):
            name = item.get("name", item["type"])
            if not isinstance(name, str):
                raise where.error(f"{item_key}.name", f"expected string, got {_describe(name)}")
            pairs.append((name, item_key))
        else:
            raise where.error(
                item_key,
                f"expected a middleware name or a table with a type, got {_describe(item)}",
            )
    return pairs


def _check_middleware(
    name: str, key: str, definitions: dict[str, _Entry], where: _Where, warnings: list[str]
) -> None:
    """A middleware name resolves to [middleware.NAME] type, else is itself the type."""
    kind = name
    definition = definitions.get(name)
    if definition is not None:
        _warn_unknown(
            definition.raw,
            frozenset({"type", "options"}),
            definition.where,
            warnings,
            _ENTRY_HARMONY_ONLY,
        )
        kind = _convert(definition.raw, _MiddlewareDefToml, definition.where).type or name
    if kind not in MIDDLEWARE_TYPES:
        typed = f" (type {json.dumps(kind)})" if kind != name else ""
        raise where.error(
            key,
            f"middleware {json.dumps(name)}{typed} is not supported by harmony-dimse "
            f"(supported: {', '.join(MIDDLEWARE_TYPES)}); remove it from the pipeline rather "
            "than run without it",
        )


def _load_pipeline(
    name: str,
    entry: _Entry,
    entries: dict[str, dict[str, _Entry]],
    networks: dict[str, HttpConfig | None],
    config_path: Path,
    warnings: list[str],
) -> Pipeline:
    where = entry.where
    _warn_unknown(entry.raw, _PipelineToml, where, warnings, _PIPELINE_HARMONY_ONLY)
    pipeline = _convert(entry.raw, _PipelineToml, where)
    network_names = _names(pipeline.networks, where, "networks", "network")
    for network in network_names:
        if network not in networks:
            defined = ", ".join(networks) or "none"
            raise where.error(
                "networks",
                f"network {json.dumps(network)} is not defined in {_display(config_path)} "
                f"(defined: {defined})",
            )
        if networks[network] is None:
            raise where.error(
                "networks",
                f"network {json.dumps(network)} has no [network.{network}.http] listener",
            )
    endpoint_names = _names(pipeline.endpoints, where, "endpoints", "endpoint")
    backend_names = _names(pipeline.backends, where, "backends", "backend")
    for what, listed, defined_names in (
        ("endpoint", endpoint_names, entries["endpoints"]),
        ("backend", backend_names, entries["backends"]),
    ):
        for listed_name in listed:
            if listed_name not in defined_names:
                raise where.error(
                    f"{what}s",
                    f"{what} {json.dumps(listed_name)} is not defined "
                    f"(no [{_table_name((what + 's', listed_name))}] in any file)",
                )
    middleware = _middleware_names(pipeline.middleware, where, warnings)
    for middleware_name, key in middleware:
        _check_middleware(middleware_name, key, entries["middleware"], where, warnings)
    return Pipeline(
        name=name,
        description=pipeline.description,
        networks=network_names,
        endpoints=endpoint_names,
        middleware=tuple(middleware_name for middleware_name, _ in middleware),
        backends=backend_names,
        source=where.file,
    )


def _check_routes(
    pipelines: list[Pipeline],
    endpoints: dict[str, Endpoint],
    entries: dict[str, dict[str, _Entry]],
) -> None:
    """One endpoint per path prefix, one pipeline per endpoint."""
    by_prefix: dict[str, str] = {}
    for endpoint in endpoints.values():
        other = by_prefix.setdefault(endpoint.path_prefix, endpoint.name)
        if other != endpoint.name:
            raise (
                entries["endpoints"][endpoint.name]
                .where.at("options")
                .error(
                    "path_prefix",
                    f"path prefix {json.dumps(endpoint.path_prefix)} is already used by endpoint "
                    f"{json.dumps(other)}",
                )
            )
    owner: dict[str, str] = {}
    for pipeline in pipelines:
        for endpoint_name in pipeline.endpoints:
            other = owner.setdefault(endpoint_name, pipeline.name)
            if other != pipeline.name:
                raise entries["pipelines"][pipeline.name].where.error(
                    "endpoints",
                    f"endpoint {json.dumps(endpoint_name)} (path prefix "
                    f"{json.dumps(endpoints[endpoint_name].path_prefix)}) is already served by "
                    f"pipeline {json.dumps(other)}",
                )


def _pick_network(
    pipelines: list[Pipeline],
    networks: dict[str, HttpConfig | None],
    entries: dict[str, dict[str, _Entry]],
) -> HttpConfig:
    """harmony-dimse serves one HTTP listener: every pipeline must use the same network."""
    chosen: tuple[str, str] | None = None  # (network, the pipeline that chose it)
    for pipeline in pipelines:
        for network in pipeline.networks:
            if chosen is None:
                chosen = (network, pipeline.name)
            elif network != chosen[0]:
                raise entries["pipelines"][pipeline.name].where.error(
                    "networks",
                    f"harmony-dimse serves one HTTP network; pipeline {json.dumps(chosen[1])} "
                    f"already uses {json.dumps(chosen[0])}, this one names {json.dumps(network)}",
                )
    assert chosen is not None  # every pipeline names at least one network
    listener = networks[chosen[0]]
    assert listener is not None  # checked in _load_pipeline
    return listener


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def load_config(path: str | Path) -> GatewayConfig:
    """Read config.toml and every *.toml in its pipelines_path; raise ConfigError on a problem."""
    config_path = Path(path).expanduser().absolute()
    if not config_path.is_file():
        raise ConfigError(config_path, None, None, "configuration file not found")
    base_dir = config_path.parent
    warnings: list[str] = []
    raw = _read_toml(config_path)
    _warn_unknown(raw, _CONFIG_TOP_KEYS, _Where(config_path), warnings)

    proxy, pipelines_path_written = _load_proxy(raw, config_path, base_dir, warnings)
    networks = _load_networks(raw, config_path, warnings)
    logging_config = _load_logging(raw, config_path, base_dir, proxy.log_level, warnings)
    if logging_config.level != proxy.log_level:
        proxy = msgspec.structs.replace(proxy, log_level=logging_config.level)
    storage = _load_storage(raw, config_path, base_dir, warnings)
    _check_services(raw, config_path, warnings)

    entries: dict[str, dict[str, _Entry]] = {kind: {} for kind in _KINDS}
    _collect(raw, config_path, entries)
    pipeline_dir = proxy.pipelines_path
    if pipeline_dir.is_dir():
        for file in sorted(pipeline_dir.glob("*.toml")):
            if file.resolve() == config_path.resolve() or not file.is_file():
                continue
            pipeline_raw = _read_toml(file)
            _warn_unknown(pipeline_raw, _PIPELINE_FILE_TOP_KEYS, _Where(file), warnings)
            _check_services(pipeline_raw, file, warnings)
            _collect(pipeline_raw, file, entries)
    elif pipelines_path_written or not entries["pipelines"]:
        raise _Where(config_path, ("proxy",)).error(
            "pipelines_path",
            f"{_display(pipeline_dir)} is not a folder"
            if pipeline_dir.exists()
            else f"folder {_display(pipeline_dir)} does not exist",
        )
    if not entries["pipelines"]:
        raise _Where(config_path, ("pipelines",)).error(
            None,
            f"no pipeline is defined (looked in {_display(config_path)} and "
            f"{_display(pipeline_dir)}/*.toml)",
        )

    endpoints = {
        name: _load_endpoint(name, entry, warnings) for name, entry in entries["endpoints"].items()
    }
    backends = {
        name: _load_backend(name, entry, entries["targets"], warnings)
        for name, entry in entries["backends"].items()
    }
    pipelines = [
        _load_pipeline(name, entry, entries, networks, config_path, warnings)
        for name, entry in entries["pipelines"].items()
    ]
    _check_routes(pipelines, endpoints, entries)
    http = _pick_network(pipelines, networks, entries)
    used = {name for pipeline in pipelines for name in pipeline.endpoints + pipeline.backends}
    for kind in ("endpoints", "backends"):
        for name, entry in entries[kind].items():
            if name not in used:
                warnings.append(entry.where.note(None, "not used by any pipeline"))

    return GatewayConfig(
        proxy=proxy,
        http=http,
        logging=logging_config,
        storage=storage,
        pipelines=tuple(pipelines),
        endpoints=endpoints,
        backends=backends,
        config_path=config_path,
        base_dir=base_dir,
        networks={name: listener for name, listener in networks.items() if listener is not None},
        warnings=tuple(warnings),
    )


_installed_handlers: list[logging.Handler] = []


def setup_logging(cfg: GatewayConfig) -> None:
    """Log to stderr and, when configured, to the log file (its folder is created), at the
    configured level; then log the configuration warnings. Calling it again replaces the
    handlers it installed before."""
    logging.addLevelName(LOG_LEVELS["trace"], "TRACE")
    root = logging.getLogger()
    while _installed_handlers:
        handler = _installed_handlers.pop()
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    log_file = cfg.logging.log_file_path
    if cfg.logging.log_to_file and log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                cfg.config_path,
                "logging",
                "log_file_path",
                f"cannot open {_display(log_file)}: {exc.strerror or exc}",
            ) from None
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
        _installed_handlers.append(handler)
    root.setLevel(LOG_LEVELS[cfg.logging.level])
    log = logging.getLogger(__name__)
    for warning in cfg.warnings:
        log.warning("%s", warning)
