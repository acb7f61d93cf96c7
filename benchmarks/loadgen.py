"""A small HTTP/1.1 load generator: N keep-alive connections, each sending requests back to back.

Both our gateway and Orthanc's REST API are driven by this same client, so neither gains from the
client. A job is a list of (method, path, body, headers) steps sent in order and timed as one
operation (Orthanc's C-FIND over REST takes two requests: query, then answers).

The generator shares the CPU with the servers it measures, so it is built to cost little per
request: each connection is an asyncio Protocol that drives itself. When a response completes in
``data_received`` it records the latency and writes the next request right away, with no Future,
coroutine or Task per request; request bytes are encoded once per distinct step.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

Step = tuple[str, str, bytes, dict[str, str]]
# a job may depend on the previous step's answer (Orthanc's query id)
JobFactory = Callable[[int], Sequence[Step | Callable[[bytes], Step]]]

_perf = time.perf_counter
_INF = float("inf")
_CACHE_LIMIT = 4096  # distinct encoded requests kept per run

# response parser states
_HEAD, _LENGTH, _CHUNKED, _UNTIL_EOF = range(4)


@dataclass
class LoadResult:
    operations: int
    seconds: float
    # not in the repr: asyncio may repr the run_load task (and so its result) when it ends
    latencies: list[float] = field(default_factory=list, repr=False)
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


class _HTTPError(RuntimeError):
    pass


def _header_has(head: bytes, name: bytes, token: bytes) -> bool:
    """Whether the (lower-cased) header ``name`` (b"\\r\\nname:") of ``head`` contains ``token``."""
    i = head.find(name)
    while i >= 0:
        j = head.find(b"\r\n", i + len(name))
        if token in head[i + len(name) : j if j >= 0 else len(head)]:
            return True
        i = head.find(name, i + len(name))
    return False


class _Run:
    """State shared by the connections of one ``run_load`` call."""

    def __init__(
        self, host: str, port: int, job: JobFactory, concurrency: int, seconds: float, warmup: int
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.job = job
        self.ids = itertools.count()
        self.seconds = seconds
        self.warmup = warmup
        self.result = LoadResult(0, 0.0)
        self.encoded: dict[tuple[str, str, bytes, tuple[tuple[str, str], ...]], bytes] = {}
        self.host_header = f"Host: {host}:{port}"
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.over = False
        self.t0 = self.end = 0.0
        self.connections = [_Connection(self) for _ in range(concurrency)]
        self.warming = self.running = len(self.connections)

    def encode(self, key: tuple[str, str, bytes, tuple[tuple[str, str], ...]]) -> bytes:
        method, path, body, headers = key
        lines = [
            f"{method} {path} HTTP/1.1",
            self.host_header,
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers),
        ]
        encoded = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        if len(self.encoded) < _CACHE_LIMIT:
            self.encoded[key] = encoded
        return encoded

    def start(self) -> None:
        if not self.connections:
            self.done.set_result(None)
        elif self.warmup > 0:  # each connection does ``warmup`` unrecorded operations first
            now = _perf()
            for c in self.connections:
                c.next_operation(now)
        else:
            self.start_timed()

    def warmed(self) -> None:
        self.warming -= 1
        if self.warming == 0:
            self.start_timed()

    def start_timed(self) -> None:
        if self.over:
            return
        self.t0 = self.end = _perf()
        deadline = self.t0 + self.seconds
        for c in self.connections:
            c.timed = True
            c.deadline = deadline
        for c in self.connections:
            c.next_operation(_perf())

    def finished(self, now: float) -> None:
        self.end = max(self.end, now)
        self.running -= 1
        if self.running == 0 and not self.done.done():
            self.done.set_result(None)

    def abort(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.over = True
        for c in self.connections:
            c.close()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that runs operations back to back by itself."""

    __slots__ = (
        "answer",
        "buf",
        "busy",
        "close_after",
        "deadline",
        "encoded",
        "job",
        "loop",
        "next_id",
        "parts",
        "pending",
        "pos",
        "record",
        "remaining",
        "run",
        "start",
        "state",
        "status",
        "step",
        "steps",
        "task",
        "timed",
        "transport",
        "warm_left",
    )

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.loop = run.loop
        self.job = run.job
        self.next_id = run.ids.__next__
        self.encoded = run.encoded
        self.record = run.result.latencies.append
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.warm_left = run.warmup
        self.timed = False
        self.deadline = _INF
        # the operation in flight
        self.steps: Iterator[Step | Callable[[bytes], Step]] = iter(())
        self.step: Step = ("", "", b"", {})
        self.answer = b""
        self.start = 0.0
        self.busy = False  # a request is sent (or waits for a connection) and not yet answered
        self.pending: bytes | None = None  # request to send once connected
        # response parser
        self.state = _HEAD
        self.buf: bytes | bytearray = b""
        self.pos = 0
        self.status = 0
        self.close_after = False
        self.parts: list[bytes | bytearray] = []
        self.remaining = 0

    # ---------------------------------------------------------------- operations

    def next_operation(self, now: float) -> None:
        """Start the next operation, or finish if the timed window is over (never raises)."""
        if self.run.over:
            return
        if now >= self.deadline:
            self.run.finished(now)
            return
        try:
            self._begin(now)
        except Exception as exc:
            self._fail(exc)

    def _begin(self, now: float) -> None:
        self.start = now
        self.answer = b""
        self.steps = steps = iter(self.job(self.next_id()))
        step = next(steps, None)
        if step is None:
            raise ValueError("the job returned no steps")
        self._send(step)

    def _send(self, step: Step | Callable[[bytes], Step]) -> None:
        if callable(step):
            step = step(self.answer)
        self.step = step
        method, path, body, headers = step
        key = (method, path, body, tuple(headers.items()))
        data = self.encoded.get(key)
        if data is None:
            data = self.run.encode(key)
        self.busy = True
        transport = self.transport
        if transport is None:
            self.pending = data
            self.task = self.loop.create_task(self._connect())
        else:
            transport.write(data)

    def _complete(self, status: int, body: bytes, close: bool) -> None:
        """A whole response arrived: send the next step, or end the operation and start another."""
        self.busy = False
        if close:
            self._drop()
        if status >= 400:
            method, path = self.step[0], self.step[1]
            raise _HTTPError(f"{method} {path} -> {status}: {body[:300]!r}")
        self.answer = body
        step = next(self.steps, None)
        if step is not None:
            self._send(step)
            return
        now = _perf()
        if self.timed:
            self.record(now - self.start)
            if now < self.deadline:
                self._begin(now)
            else:
                self.run.finished(now)
        else:
            self.warm_left -= 1
            if self.warm_left > 0:
                self._begin(now)
            else:
                self.run.warmed()

    def _fail(self, exc: BaseException) -> None:
        """The operation failed: count it (a failure while warming up fails the run), reconnect."""
        self.busy = False
        self.pending = None
        self._drop()
        run = self.run
        if run.over:
            return
        if not self.timed:
            run.abort(exc)
            return
        result = run.result
        result.errors += 1
        if not result.first_error:
            result.first_error = str(exc)
        # not synchronously: a job that always fails must not recurse
        self.loop.call_soon(self._after_failure)

    def _after_failure(self) -> None:
        self.next_operation(_perf())

    # ---------------------------------------------------------------- connection

    async def _connect(self) -> None:
        try:
            await self.loop.create_connection(lambda: self, self.run.host, self.run.port)
        except Exception as exc:
            if self.pending is not None:
                self._fail(exc)

    def _drop(self) -> None:
        """Close the connection (the next request opens another) and reset the parser."""
        transport = self.transport
        if transport is not None:
            self.transport = None  # its connection_lost is then ignored
            transport.abort()
        self.state = _HEAD
        self.buf = b""
        self.parts = []

    def close(self) -> None:
        self.busy = False
        self.pending = None
        self._drop()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        if self.run.over:
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport
        data, self.pending = self.pending, None
        if data is not None:
            transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:  # closed on our side
            return
        self.transport = None
        if not self.busy:
            self._drop()
            return
        if self.state == _UNTIL_EOF:  # the body ran until the server closed
            body = b"".join(self.parts)
            self.state = _HEAD
            self.parts = []
            try:
                self._complete(self.status, body, False)
            except Exception as e:
                self._fail(e)
            return
        self._fail(ConnectionError("server closed the connection"))

    # ---------------------------------------------------------------- response parser

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            return  # nothing asked: ignore
        try:
            if self.state == _HEAD:
                self._head(data)
            else:
                self._body(data)
        except Exception as exc:
            self._fail(exc)

    def _head(self, data: bytes) -> None:
        if self.buf:
            data = bytes(self.buf) + data
            self.buf = b""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self.buf = data
            return
        head = data[:end].lower()
        if not head.startswith(b"http/1."):
            raise ValueError(f"not an HTTP/1.x response: {data[:40]!r}")
        status = int(head[9:12])
        start = end + 4
        if status < 200:  # interim response (100 Continue): the real one follows
            if len(data) > start:
                self._head(data[start:])
            return
        close = b"close" in head and _header_has(head, b"\r\nconnection:", b"close")
        if head[7] == 48 and not _header_has(head, b"\r\nconnection:", b"keep-alive"):
            close = True  # HTTP/1.0
        if status == 204 or status == 304:  # never a body
            need = start
        elif (i := head.find(b"\r\ntransfer-encoding:")) >= 0:
            j = head.find(b"\r\n", i + 20)
            if b"chunked" in head[i + 20 : j if j >= 0 else end]:
                self.status, self.close_after = status, close
                self.state = _CHUNKED
                self.buf, self.pos, self.parts = data, start, []
                self._chunks()
                return
            need = -1  # chunked is not the last coding
        elif (i := head.find(b"\r\ncontent-length:")) >= 0:
            j = head.find(b"\r\n", i + 17)
            need = start + int(head[i + 17 : j if j >= 0 else end])
        else:
            need = -1
        if need < 0:  # no length: the body runs until the server closes
            self.status = status
            self.state = _UNTIL_EOF
            self.parts = [data[start:]]
            return
        if len(data) >= need:  # (bytes past the response were not asked for: dropped)
            self._complete(status, data[start:need], close)
            return
        self.status, self.close_after = status, close
        self.state = _LENGTH
        self.parts = [data[start:]]
        self.remaining = need - len(data)

    def _body(self, data: bytes) -> None:
        """More of a body that did not come with its head."""
        state = self.state
        if state == _LENGTH:
            remaining = self.remaining - len(data)
            if remaining > 0:
                self.parts.append(data)
                self.remaining = remaining
                return
            self.parts.append(data[: len(data) + remaining] if remaining else data)
            body = b"".join(self.parts)
            self.parts = []
            self.state = _HEAD
            self._complete(self.status, body, self.close_after)
        elif state == _CHUNKED:
            buf = self.buf
            if isinstance(buf, bytearray):
                buf += data
            else:  # the first piece, still the bytes the head came in
                self.buf = bytearray(buf[self.pos :])
                self.buf += data
                self.pos = 0
            self._chunks()
        else:
            self.parts.append(data)

    def _chunks(self) -> None:
        """Consume the whole chunks ``self.buf`` holds from ``self.pos``; complete at the last one.

        ``self.pos`` stays at a chunk-size line until its chunk is all here (the line is parsed
        again then: cheaper than a state per half-chunk)."""
        buf, pos, parts = self.buf, self.pos, self.parts
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            line = buf[pos:line_end]
            try:
                size = int(line, 16)
            except ValueError:  # with a chunk extension
                size = int(line.split(b";", 1)[0], 16)
            start = line_end + 2
            if size == 0:  # the last chunk; then trailers, if any, and an empty line
                if buf[start : start + 2] != b"\r\n" and buf.find(b"\r\n\r\n", start) < 0:
                    break
                self.state = _HEAD
                self.buf, self.parts = b"", []
                self._complete(self.status, b"".join(parts), self.close_after)
                return
            end = start + size
            if len(buf) < end + 2:
                break
            parts.append(buf[start:end])  # (a copy, also of a bytearray)
            pos = end + 2
        if isinstance(buf, bytearray) and pos:
            del buf[:pos]
            pos = 0
        self.pos = pos


async def run_load(
    host: str, port: int, job: JobFactory, *, concurrency: int, seconds: float, warmup: int = 3
) -> LoadResult:
    """Run ``job`` from ``concurrency`` connections for about ``seconds``; time each operation.

    Each connection first runs ``warmup`` unrecorded operations; the timed window starts once all
    have. Operations started before its deadline complete and count; the rate is measured until
    the last connection finished. A response status >= 400 counts as an error (the first message
    is kept) and reopens the connection.
    """
    run = _Run(host, port, job, concurrency, seconds, warmup)
    try:
        run.start()
        await run.done
    finally:
        run.close()
    result = run.result
    result.operations = len(result.latencies)
    result.seconds = run.end - run.t0
    return result
