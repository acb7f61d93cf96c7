"""C-FIND answers streamed to HTTP: large bodies chunked and valid, NDJSON, limits, and a client
that disconnects mid-stream cancelling the C-FIND and leaving a clean pooled association."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from pydicom import Dataset

from harmony_dimse.data.query import encode_identifier
from harmony_dimse.dimse.fragments import ReceivedMessage
from harmony_dimse.net.contexts import STUDY_ROOT_FIND
from harmony_dimse.net.server import SCPAssociation, SCPHandlers, serve
from tests.gateway_harness import HttpClient, running_gateway, write_gateway_config
from tests.peers import free_port

EXPLICIT = "1.2.840.10008.1.2.1"


class SlowPACS:
    """A C-FIND SCP of ours answering ``total`` study matches, ``delay`` apart, noting a cancel."""

    def __init__(self, total: int, delay: float = 0.0) -> None:
        self.total = total
        self.delay = delay
        self.cancelled = asyncio.Event()
        self.sent = 0

    async def find(
        self, msg: ReceivedMessage, assoc: SCPAssociation
    ) -> AsyncGenerator[tuple[int, bytes | None, dict[str, Any]], None]:
        try:
            for i in range(self.total):
                ds = Dataset()
                ds.QueryRetrieveLevel = "STUDY"
                ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.9.{i}"
                ds.PatientName = f"SLOW^{i}"
                self.sent += 1
                yield (
                    0xFF00,
                    encode_identifier(ds, assoc.contexts[msg.context_id].transfer_syntax),
                    {},
                )
                if self.delay:
                    await asyncio.sleep(self.delay)
            yield 0x0000, None, {}
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def start(pacs: SlowPACS, tmp_path: Path) -> tuple[Any, Path]:
    server = await serve(
        "127.0.0.1",
        0,
        ae_title="SLOWPACS",
        handlers=SCPHandlers(find=pacs.find, find_sop_classes={STUDY_ROOT_FIND}),
    )
    config = write_gateway_config(
        tmp_path, backend_port=server.port, incoming_port=free_port(), aet="SLOWPACS"
    )
    return server, config


QUERY = {
    "operation": "C-FIND",
    "level": "STUDY",
    "query": {"StudyInstanceUID": "", "PatientName": ""},
}


async def test_large_answer_is_streamed_as_valid_json(tmp_path: Path) -> None:
    pacs = SlowPACS(500)
    server, config = await start(pacs, tmp_path)
    async with server, running_gateway(config) as gw, HttpClient(gw.port) as client:
        reply = await client.request(
            "POST",
            "/trigger-dicom",
            json.dumps(QUERY).encode(),
            {"Content-Type": "application/json"},
        )
        assert reply.status == 200
        assert reply.headers.get("transfer-encoding") == "chunked"
        body = reply.json()
        assert body["count"] == 500 and len(body["matches"]) == 500 and body["success"]
        assert body["matches"][7]["00100010"]["Value"] == [{"Alphabetic": "SLOW^7"}]
        small = {**QUERY, "limit": 3}
        reply = await client.request(
            "POST",
            "/trigger-dicom",
            json.dumps(small).encode(),
            {"Content-Type": "application/json"},
        )
        assert "transfer-encoding" not in reply.headers  # a small answer is one fixed body
        assert reply.json()["count"] == 3 and reply.json()["limited"] is True


async def test_ndjson_one_match_per_line(tmp_path: Path) -> None:
    pacs = SlowPACS(120)
    server, config = await start(pacs, tmp_path)
    async with server, running_gateway(config) as gw, HttpClient(gw.port) as client:
        reply = await client.request(
            "POST", "/trigger-dicom", json.dumps(QUERY).encode(),
            {"Content-Type": "application/json", "Accept": "application/x-ndjson"},
        )  # fmt: skip
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in reply.body.splitlines()]
        assert len(lines) == 120
        assert all("0020000D" in line for line in lines)


async def test_disconnect_cancels_the_find_and_keeps_the_association(tmp_path: Path) -> None:
    pacs = SlowPACS(10_000, delay=0.005)
    server, config = await start(pacs, tmp_path)
    async with server, running_gateway(config) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        body = json.dumps(QUERY).encode()
        writer.write(
            b"POST /trigger-dicom HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Accept: application/x-ndjson\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        await reader.readuntil(b"SLOW^3")  # a few matches streamed, then the client goes away
        writer.close()
        await asyncio.wait_for(pacs.cancelled.wait(), 5)  # the PACS saw C-CANCEL
        assert pacs.sent < 10_000
        pool = gw.backends["dicom_pacs"].pool
        await asyncio.sleep(0.1)
        async with HttpClient(gw.port) as client:
            reply = await client.request(
                "POST", "/trigger-dicom", json.dumps({"operation": "C-ECHO"}).encode(),
                {"Content-Type": "application/json"},
            )  # fmt: skip
        assert reply.status == 200
        assert pool.opened == 1  # the same association, cleanly back in the pool
