"""Gateway test harness: a config written to disk, the gateway run in-process, an HTTP/1.1 client.

The client is deliberately small and strict: one connection, keep-alive, Content-Length or
chunked bodies, so the tests see exactly what the server framed.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite

from harmony_dimse.gateway.app import Gateway
from harmony_dimse.gateway.config import load_config
from harmony_dimse.http.limits import HTTPLimits

LOCALHOST = "127.0.0.1"
PREFIX = "/trigger-dicom"
CLIENT_TIMEOUT = 30.0

CONFIG_TOML = """\
[proxy]
id = "gateway-test"
log_level = "warn"
pipelines_path = "pipelines"

[network.http_net]
enable_wireguard = false
interface = "wg0"

[network.http_net.http]
bind_address = "127.0.0.1"
bind_port = {bind_port}

[logging]
log_to_file = false

[storage]
backend = "filesystem"

[storage.options]
path = "./storage"
"""

PIPELINE_TOML = """\
[pipelines.dicom_backend]
description = "HTTP request triggers DIMSE SCU operations via DICOM backend"
networks = ["http_net"]
endpoints = ["http_to_dicom"]
middleware = []
backends = ["dicom_pacs"]

[endpoints.http_to_dicom]
service = "http"

[endpoints.http_to_dicom.options]
path_prefix = "{prefix}"

[backends.dicom_pacs]
service = "dicom"

[backends.dicom_pacs.options]
aet = "{aet}"
host = "127.0.0.1"
port = {port}
local_aet = "{local_aet}"
incoming_store_port = {incoming_port}
"""


def write_gateway_config(
    directory: Path,
    *,
    backend_port: int,
    incoming_port: int,
    aet: str = "ORTHANC",
    local_aet: str = "HARMONY_SCU",
    prefix: str = PREFIX,
    bind_port: int = 0,
    options: Mapping[str, float | int | str] | None = None,
) -> Path:
    """Write config.toml and pipelines/x.toml into ``directory``; return the config path."""
    pipeline = PIPELINE_TOML.format(
        prefix=prefix,
        aet=aet,
        port=backend_port,
        local_aet=local_aet,
        incoming_port=incoming_port,
    )
    for key, value in (options or {}).items():
        pipeline += f"{key} = {json.dumps(value)}\n"
    (directory / "pipelines").mkdir(parents=True, exist_ok=True)
    (directory / "pipelines" / "x.toml").write_text(pipeline)
    config_path = directory / "config.toml"
    config_path.write_text(CONFIG_TOML.format(bind_port=bind_port))
    return config_path


@asynccontextmanager
async def running_gateway(
    config_path: Path, *, limits: HTTPLimits | None = None
) -> AsyncIterator[Gateway]:
    """The gateway of ``config_path`` started on its (free) ports; closed on exit."""
    gateway = Gateway(load_config(config_path), limits=limits)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.close()


@dataclass
class Reply:
    """One HTTP response as the client read it (header names lower-case)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)


class HttpClient:
    """One HTTP/1.1 connection to 127.0.0.1:port, reused for every request (keep-alive)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> HttpClient:
        self.reader, self.writer = await asyncio.open_connection(LOCALHOST, self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        json_body: Any = None,
    ) -> Reply:
        if json_body is not None:
            body = json.dumps(json_body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        data = body.encode() if isinstance(body, str) else (body or b"")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {LOCALHOST}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if data or method == "POST":
            lines.append(f"Content-Length: {len(data)}")
        assert self.writer is not None
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        await self.writer.drain()
        return await asyncio.wait_for(self.read_reply(method), CLIENT_TIMEOUT)

    async def read_reply(self, method: str = "POST") -> Reply:
        reader = self.reader
        assert reader is not None
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection without an answer")
        version, status, _ = status_line.decode("latin-1").split(" ", 2)
        assert version == "HTTP/1.1", status_line
        head = await reader.readuntil(b"\r\n\r\n")
        message = BytesParser(policy=HTTP).parsebytes(head)
        headers = {name.lower(): str(value) for name, value in message.items()}
        if method == "HEAD" or status in ("204", "304"):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
        return Reply(int(status), headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    pieces: list[bytes] = []
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are sent
            return b"".join(pieces)
        pieces.append(await reader.readexactly(size))
        assert await reader.readexactly(2) == b"\r\n"


async def http(
    port: int,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    json_body: Any = None,
) -> Reply:
    """One request on a fresh connection."""
    async with HttpClient(port) as client:
        return await client.request(method, path, body, headers, json_body=json_body)


async def trigger(port: int, body: Any, path: str = PREFIX) -> Reply:
    """POST a JSON body to the endpoint, as the brief's curl examples do."""
    return await http(port, "POST", path, json_body=body)


def split_multipart_reply(reply: Reply) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related response as (headers, content), strictly framed."""
    content_type = reply.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    params = dict(part.strip().split("=", 1) for part in content_type.split(";")[1:] if "=" in part)
    assert params["type"].strip('"') == "application/dicom", content_type
    boundary = params["boundary"].strip('"').encode()
    body = reply.body
    if body == b"--" + boundary + b"--\r\n":
        return []
    assert body.startswith(b"--" + boundary + b"\r\n"), body[:100]
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n"), body[-100:]
    parts = []
    for piece in body.split(b"--" + boundary)[1:-1]:
        assert piece.startswith(b"\r\n") and piece.endswith(b"\r\n")
        head, _, content = piece[2:-2].partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def multipart_body(parts: list[tuple[str, bytes]], boundary: str = "test-boundary-7d1") -> bytes:
    """A multipart/related body of (content type, content) parts."""
    out = b""
    for content_type, content in parts:
        out += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def part10(ds: Dataset) -> bytes:
    """A dataset with file meta as the bytes of a DICOM Part 10 file."""
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
