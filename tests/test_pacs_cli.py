"""``harmony-dimse pacs``: settings, import-only runs, and a served PACS driven by DCMTK tools."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harmony_dimse.pacs.cli import add_arguments, parse_destination, settings_from
from tests.corpus import make_instance, study_instance_uid, write_corpus
from tests.peers import LOCALHOST, echoscu, findscu_values, free_port, peer_environment, run_tool


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text(
        'aet = "FROMFILE"\nport = 4000\nstorage = "data"\nimport = ["seed"]\n'
        'check_called_aet = true\n[destinations]\nORTHANC = "127.0.0.1:4242"\n'
    )
    settings = settings_from(
        _args("--config", str(config), "--port", "5000", "--destination", "X=[::1]:104")
    )
    assert settings.aet == "FROMFILE" and settings.port == 5000
    assert settings.storage == Path("data") and settings.imports == [Path("seed")]
    assert settings.check_called_aet is True and settings.fsync is False
    assert settings.destinations == {"ORTHANC": ("127.0.0.1", 4242), "X": ("::1", 104)}
    defaults = settings_from(_args())
    assert (defaults.aet, defaults.port, defaults.destinations) == ("HARMONY_PACS", 11112, {})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ORTHANC", "expected AE=HOST:PORT"),
        ("ORTHANC=host", "expected AE=HOST:PORT"),
        ("ORTHANC=host:abc", "is not a number"),
        ("ORTHANC=host:70000", "out of range"),
        ("A_VERY_LONG_AE_TITLE=host:1", "at most 16"),
    ],
)
def test_bad_destinations_say_why(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_destination(text)


def test_bad_config_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text('aet = "X"\nprot = 1\n')
    with pytest.raises(ValueError, match=r"unknown setting.*prot"):
        settings_from(_args("--config", str(config)))
    config.write_text("port = 'abc'\n")
    with pytest.raises(ValueError, match="port must be an integer"):
        settings_from(_args("--config", str(config)))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harmony_dimse", "pacs", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=peer_environment(),
    )


def test_import_only_reports_skipped_files(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    write_corpus(seed, [make_instance(1, 1, 1, i) for i in (1, 2)])
    (seed / "README.txt").write_text("hello")
    result = _cli("--storage", str(tmp_path / "store"), "--import", str(seed), "--import-only")
    assert result.returncode == 0, result.stderr
    assert "2 instance(s) imported, 1 file(s) skipped" in result.stdout
    assert "1 patients, 1 studies, 1 series, 2 instances" in result.stdout
    assert "README.txt" in result.stderr
    missing = _cli("--storage", str(tmp_path / "store"), "--import", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "not a folder" in missing.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    seed = tmp_path / "seed"
    write_corpus(seed, [make_instance(1, 1, 1, i) for i in (1, 2, 3)])
    port, destination_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "harmony_dimse", "pacs",
            "--aet", "CLIPACS",
            "--host", LOCALHOST,
            "--port", str(port),
            "--storage", str(tmp_path / "store"),
            "--import", str(seed),
            "--destination", f"MOVESCU={LOCALHOST}:{destination_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=peer_environment(),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if "listening" in line or not line:
                break
        assert "CLIPACS listening" in line, process.stderr.read() if process.stderr else ""
        yield process, port, destination_port
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.interop
def test_served_pacs_answers_dcmtk_and_stops_cleanly(
    served: tuple[subprocess.Popen[str], int, int], tmp_path: Path
) -> None:
    process, port, destination_port = served
    assert echoscu("CLIPACS", port).returncode == 0
    uids = findscu_values(
        "CLIPACS", port, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"], "0020,000D"
    )
    assert uids == [study_instance_uid(1, 1)]
    moved = tmp_path / "moved"
    moved.mkdir()
    result = run_tool(
        "movescu", "-S", "-aet", "MOVESCU", "-aec", "CLIPACS", "-aem", "MOVESCU",
        "--port", str(destination_port), "-od", str(moved),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_instance_uid(1, 1)}",
        LOCALHOST, str(port),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list(moved.iterdir())) == 3
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert process.stderr is not None and "PACS stopping" in process.stderr.read()
