"""A small HTTP/1.1 load generator: N keep-alive connections, each sending requests back to back.

Both our gateway and Orthanc's REST API are driven by this same client, so neither gains from the
client. A job is a list of (method, path, body, headers) steps sent in order and timed as one
operation (Orthanc's C-FIND over REST takes two requests: query, then answers).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Step = tuple[str, str, bytes, dict[str, str]]
# a job may depend on the previous step's answer (Orthanc's query id)
JobFactory = Callable[[int], Sequence[Step | Callable[[bytes], Step]]]


@dataclass
class LoadResult:
    operations: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Client(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, as an asyncio Protocol with a small response parser,
    so the load generator spends little CPU of its own on the shared machine."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._encoded: dict[tuple[str, str, bytes, tuple[tuple[str, str], ...]], bytes] = {}

    # asyncio Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = self._parse()
        except Exception as exc:
            waiter.set_exception(exc)
            return
        if parsed is not None:
            waiter.set_result(parsed)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("server closed the connection"))

    def _parse(self) -> tuple[int, bytes] | None:
        buf = self._buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).lower()
        status = int(head[9:12])
        start = end + 4
        if b"transfer-encoding: chunked" in head:
            parts, pos = [], start
            while True:
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
                if size == 0:
                    if len(buf) < line_end + 4:
                        return None
                    consumed = line_end + 4
                    break
                if len(buf) < line_end + 2 + size + 2:
                    return None
                parts.append(bytes(buf[line_end + 2 : line_end + 2 + size]))
                pos = line_end + 2 + size + 2
            body = b"".join(parts)
        else:
            marker = head.find(b"content-length:")
            length = 0
            if marker >= 0:
                line_end = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : line_end if line_end >= 0 else len(head)])
            if len(buf) < start + length:
                return None
            body = bytes(buf[start : start + length])
            consumed = start + length
        del buf[:consumed]
        if b"connection: close" in head and self.transport is not None:
            self.transport.close()
        return status, body

    def _request_bytes(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        key = (method, path, body, tuple(headers.items()))
        encoded = self._encoded.get(key)
        if encoded is None:
            lines = [
                f"{method} {path} HTTP/1.1",
                f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(body)}",
                *(f"{k}: {v}" for k, v in headers.items()),
            ]
            encoded = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
            if len(self._encoded) < 4096:
                self._encoded[key] = encoded
        return encoded

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    async def request(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        if self.transport is None:
            self._buffer.clear()
            await loop.create_connection(lambda: self, self.host, self.port)
        assert self.transport is not None
        self._waiter = loop.create_future()
        self.transport.write(self._request_bytes(method, path, body, headers))
        return await self._waiter


async def run_load(
    host: str, port: int, job: JobFactory, *, concurrency: int, seconds: float, warmup: int = 3
) -> LoadResult:
    """Run ``job`` from ``concurrency`` connections for about ``seconds``; time each operation."""
    clients = [Client(host, port) for _ in range(concurrency)]
    result = LoadResult(0, 0.0)
    ids = itertools.count()

    async def one(client: Client, record: bool) -> None:
        answer = b""
        start = time.perf_counter()
        for step in job(next(ids)):
            method, path, body, headers = step(answer) if callable(step) else step
            status, answer = await client.request(method, path, body, headers)
            if status >= 400:
                raise RuntimeError(f"{method} {path} -> {status}: {answer[:300]!r}")
        if record:
            result.latencies.append(time.perf_counter() - start)
            result.operations += 1

    async def warm(client: Client) -> None:
        for _ in range(warmup):
            await one(client, False)

    await asyncio.gather(*(warm(c) for c in clients))  # opens connections, fills pools
    t0 = time.perf_counter()
    deadline = t0 + seconds

    async def worker(client: Client) -> None:
        while time.perf_counter() < deadline:
            try:
                await one(client, True)
            except Exception as exc:  # keep measuring; report the first failure
                result.errors += 1
                if not result.first_error:
                    result.first_error = str(exc)
                await client.close()

    await asyncio.gather(*(worker(c) for c in clients))
    result.seconds = time.perf_counter() - t0
    for c in clients:
        await c.close()
    return result
