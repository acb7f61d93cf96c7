"""--workers N: several gateway processes on one port, C-MOVE results routed to the right one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest

from tests.corpus import make_instance, write_corpus
from tests.gateway_harness import write_gateway_config
from tests.peers import OrthancPeer, free_port

pytestmark = pytest.mark.interop


def post(port: int, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/trigger-dicom",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Connection": "close"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    incoming = free_port()
    src = tmp_path_factory.mktemp("src")
    write_corpus(src, [make_instance(p, 1, 1, i) for p in range(1, 7) for i in range(1, 4)])
    work = tmp_path_factory.mktemp("gw")
    with OrthancPeer(
        workdir=tmp_path_factory.mktemp("orthanc"),
        modalities={"harmony": ["HARMONY_SCU", "127.0.0.1", incoming]},
        dicom_threads=8,
    ) as orthanc:
        orthanc.upload_dir(src)
        http_port = free_port()
        config = write_gateway_config(
            work, backend_port=orthanc.dicom_port, incoming_port=incoming, bind_port=http_port
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harmony_dimse",
                "serve",
                "--config",
                str(config),
                "--workers",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise AssertionError(
                        proc.stderr.read().decode() if proc.stderr else ""
                    ) from None
                time.sleep(0.05)
        try:
            yield http_port, proc
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0


def test_both_workers_answer(two_workers: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, _ = two_workers
    seen = set()
    for _ in range(40):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            seen.add(json.loads(reply.read())["worker"])
    assert seen == {0, 1}


def test_concurrent_moves_land_with_the_worker_that_asked(
    two_workers: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = two_workers
    studies = {p: str(make_instance(p, 1, 1, 1).StudyInstanceUID) for p in range(1, 7)}

    def move(p: int) -> tuple[int, dict[str, object]]:
        return post(port, {"operation": "C-MOVE", "level": "STUDY",
                           "query": {"StudyInstanceUID": studies[p]}})  # fmt: skip

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(move, [*studies, *studies]))
    for (status, body), p in zip(answers, [*studies, *studies], strict=True):
        assert status == 200, body
        instances = body["instances"]
        assert isinstance(instances, list) and len(instances) == 3, body
        for inst in instances:
            ds = pydicom.dcmread(Path(inst["path"]))
            assert str(ds.StudyInstanceUID) == studies[p]
