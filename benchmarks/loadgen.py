"""A small HTTP/1.1 load generator: N keep-alive connections, each sending requests back to back.

Both our gateway and Orthanc's REST API are driven by this same client, so neither gains from the
client. A job is a list of (method, path, body, headers) steps sent in order and timed as one
operation (Orthanc's C-FIND over REST takes two requests: query, then answers).
"""

from __future__ import annotations

import asyncio
import itertools
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


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def request(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = None
        chunked = False
        close = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and "close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            data = b"".join(parts)
        elif length is not None:
            data = await self.reader.readexactly(length)
        else:
            data = await self.reader.read()
            close = True
        if close:
            await self.close()
            self.writer = None
        return status, data


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
                client.writer = None

    await asyncio.gather(*(worker(c) for c in clients))
    result.seconds = time.perf_counter() - t0
    for c in clients:
        await c.close()
    return result
