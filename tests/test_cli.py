"""The command line tools, run as a user would: real processes against real peers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.corpus import make_instance, patient_id, write_corpus
from tests.peers import OrthancPeer, free_port, peer_environment, run_tool

pytestmark = pytest.mark.interop


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harmony_dimse", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=peer_environment(),
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancPeer, int]]:
    scp_port = free_port()
    src = tmp_path_factory.mktemp("src")
    write_corpus(src, [make_instance(p, 1, 1, i) for p in (1, 2) for i in (1, 2)])
    with OrthancPeer(
        workdir=tmp_path_factory.mktemp("orthanc"),
        modalities={"cli": ["CLI_SCP", "127.0.0.1", scp_port]},
    ) as orthanc:
        orthanc.upload_dir(src)
        yield orthanc, scp_port


def test_echo(loaded: tuple[OrthancPeer, int]) -> None:
    orthanc, _ = loaded
    result = cli("echo", "127.0.0.1", str(orthanc.dicom_port), "-aec", "ORTHANC", "--repeat", "5")
    assert result.returncode == 0, result.stderr
    assert "Success" in result.stdout


def test_find_prints_dicom_json_lines(loaded: tuple[OrthancPeer, int]) -> None:
    orthanc, _ = loaded
    result = cli(
        "find", "127.0.0.1", str(orthanc.dicom_port), "-aec", "ORTHANC",
        "-L", "STUDY", "-k", f"PatientID={patient_id(2)}",
        "-k", "StudyInstanceUID", "-k", "PatientName",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1
    assert lines[0]["00100020"]["Value"] == [patient_id(2)]
    assert lines[0]["0020000D"]["Value"] == [str(make_instance(2, 1, 1, 1).StudyInstanceUID)]
    assert "Alphabetic" in lines[0]["00100010"]["Value"][0]


def test_move_into_our_scp_then_get(loaded: tuple[OrthancPeer, int], tmp_path: Path) -> None:
    orthanc, scp_port = loaded
    received = tmp_path / "received"
    scp = subprocess.Popen(
        [sys.executable, "-m", "harmony_dimse", "scp", "--aet", "CLI_SCP", "--host", "127.0.0.1",
         "--port", str(scp_port), "--storage", str(received)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert scp.stdout is not None
        assert "listening" in scp.stdout.readline()
        study = str(make_instance(1, 1, 1, 1).StudyInstanceUID)
        result = cli(
            "move", "127.0.0.1", str(orthanc.dicom_port), "-aec", "ORTHANC",
            "-aem", "CLI_SCP", "-k", f"StudyInstanceUID={study}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "completed=2" in result.stdout
        assert len(list(received.glob("*.dcm"))) == 2
        echo = run_tool("echoscu", "-aec", "CLI_SCP", "127.0.0.1", str(scp_port))
        assert echo.returncode == 0, echo.stderr
    finally:
        scp.send_signal(signal.SIGINT)
        scp.wait(10)
    out = tmp_path / "got"
    result = cli(
        "get", "127.0.0.1", str(orthanc.dicom_port), "-aec", "ORTHANC",
        "-k", f"StudyInstanceUID={make_instance(2, 1, 1, 1).StudyInstanceUID}", "-od", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = list(out.glob("*.dcm"))
    assert len(files) == 2
    assert all(pydicom.dcmread(f).PatientID == patient_id(2) for f in files)


def test_store_folder(orthanc: OrthancPeer, tmp_path: Path) -> None:
    write_corpus(tmp_path / "in", [make_instance(7, 1, 1, i) for i in range(3)])
    (tmp_path / "in" / "notes.txt").write_text("not dicom")
    result = cli(
        "store", "127.0.0.1", str(orthanc.dicom_port), "-aec", "ORTHANC", str(tmp_path / "in")
    )
    assert result.returncode == 0, result.stderr
    assert "3 stored, 0 failed, 1 skipped" in result.stdout
    assert "notes.txt" in result.stderr
    assert orthanc.count_instances() == 3


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("echo", "127.0.0.1", "{closed}", "-aec", "X"), "connection refused"),
        (
            ("echo", "127.0.0.1", "{orthanc}", "-aec", "X", "-ta", "2"),
            "called AE title not recognized",
        ),
        (("find", "127.0.0.1", "{orthanc}", "-aec", "ORTHANC", "-k", "PatientNam=x"), "PatientNam"),
        (("store", "127.0.0.1", "{orthanc}", "/nonexistent/file.dcm"), "no such file"),
    ],
)
def test_errors_are_one_clear_line(
    orthanc_factory: object, args: tuple[str, ...], words: str
) -> None:
    orthanc = orthanc_factory(check_called_aet=True)  # type: ignore[operator]
    filled = [a.format(closed=free_port(), orthanc=orthanc.dicom_port) for a in args]
    result = cli(*filled)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_rejects_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text('[proxy]\nid = "x"\npipelines_path = "nowhere"\n')
    result = cli("serve", "--config", str(bad), timeout=30)
    assert result.returncode == 2
    assert "config.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_scp_rejects_unknown_called_aet(tmp_path: Path) -> None:
    port = free_port()
    scp = subprocess.Popen(
        [sys.executable, "-m", "harmony_dimse", "scp", "--aet", "ONLY_ME", "--host", "127.0.0.1",
         "--port", str(port), "--storage", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        assert scp.stdout is not None
        assert "listening" in scp.stdout.readline()
        start = time.monotonic()
        result = run_tool("echoscu", "-aec", "SOMEONE_ELSE", "127.0.0.1", str(port))
        assert result.returncode != 0
        assert time.monotonic() - start < 30
    finally:
        scp.send_signal(signal.SIGINT)
        scp.wait(10)
