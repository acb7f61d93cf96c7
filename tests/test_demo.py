"""The README's first command: scripts/run.sh starts the demo PACS and the gateway, and the
brief's curl examples answer with real data."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
URL = "http://127.0.0.1:8085/trigger-dicom"

pytestmark = pytest.mark.interop


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def demo() -> Iterator[None]:
    busy = [p for p in (8085, 11112, 11113) if not port_is_free(p)]
    if busy:
        pytest.fail(f"the demo's ports {busy} are in use; stop what listens there")
    proc = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while port_is_free(8085):
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"scripts/run.sh did not start the gateway:\n{out[-3000:]}")
            time.sleep(0.1)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def post(body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        URL, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200
        answer: dict[str, object] = json.loads(reply.read())
        return answer


def test_brief_examples_answer_with_real_data(demo: None) -> None:
    assert post({"operation": "C-ECHO"})["success"] is True
    every = post(
        {
            "operation": "C-FIND",
            "query": {"PatientID": "*", "PatientName": "*", "StudyInstanceUID": ""},
        }
    )
    assert every["count"] == 3
    one = post(
        {"operation": "C-FIND", "level": "STUDY", "query": {"StudyInstanceUID": "1.2.3.4.5.6"}}
    )
    assert one["count"] == 1
    moved = post(
        {
            "operation": "C-MOVE",
            "destination": "HARMONY_SCU",
            "query": {"StudyInstanceUID": "1.2.3.4.5.6"},
        }
    )
    assert moved["completed"] == 3
    instances = moved["instances"]
    assert isinstance(instances, list)
    assert all(Path(str(i["path"])).exists() for i in instances)
    got = post(
        {"operation": "C-GET", "level": "STUDY", "query": {"StudyInstanceUID": "1.2.3.4.5.6"}}
    )
    assert got["completed"] == 3
