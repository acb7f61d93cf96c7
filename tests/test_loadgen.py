"""The benchmark load generator against a tiny HTTP/1.1 server: framing, errors, multi-step jobs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.loadgen import LoadResult, Step, _Connection, _Run, run_load

CHUNKED_BODY = b"hello chunked world"


class TinyServer:
    """Answers by path: /cl, /chunked (in 3-byte writes), /close, /maybe/<i> (500 when i % 3 == 0),
    /fail (500), POST /query -> {"ID": ...}, /answers/<id> (404 for an id never given)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.connections = 0
        self.ids: set[str] = set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> TinyServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        if self._handlers:  # the client closed its connections: the handlers end
            await asyncio.wait(self._handlers, timeout=1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, target, _ = line.decode().split(" ", 2)
                length = 0
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b""):
                        break
                    name, _, value = header.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                self.requests.append((method, target, body))
                if not await self._respond(method, target, body, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _respond(
        self, method: str, target: str, body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Write the response; False to close the connection."""
        if target == "/chunked":
            wire = (
                b"HTTP/1.1 200 OK\r\ntransfer-ENCODING: Chunked\r\n\r\n"
                + b"5;name=value\r\nhello\r\n"
                + b"E\r\n chunked world\r\n"
                + b"0\r\nX-Trailer: yes\r\n\r\n"
            )
            for i in range(0, len(wire), 3):
                writer.write(wire[i : i + 3])
                await writer.drain()
                await asyncio.sleep(0)
            return True
        close = False
        status, payload = 200, b"ok"
        if target == "/close":
            close = True
        elif target.startswith("/maybe/"):
            status = 500 if int(target.rsplit("/", 1)[1]) % 3 == 0 else 200
        elif target == "/fail":
            status, payload = 500, b"no"
        elif target == "/query" and method == "POST":
            qid = f"q{json.loads(body)['n']}"
            self.ids.add(qid)
            payload = json.dumps({"ID": qid}).encode()
        elif target.startswith("/answers/") and target.rsplit("/", 1)[1] not in self.ids:
            status, payload = 404, b"unknown query"
        head = f"HTTP/1.1 {status} X\r\ncontent-LENGTH: {len(payload)}\r\n"
        if close:
            head += "Connection: close\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        await writer.drain()
        return not close


def check(result: LoadResult, seconds: float) -> None:
    assert result.operations > 0
    assert len(result.latencies) == result.operations
    assert all(x > 0 for x in result.latencies)
    assert seconds <= result.seconds < seconds + 0.5
    assert result.rate == pytest.approx(result.operations / result.seconds)
    assert result.percentile(0.5) <= result.percentile(0.99)


async def test_content_length_keep_alive() -> None:
    async with TinyServer() as server:
        result = await run_load(
            "127.0.0.1",
            server.port,
            lambda i: [("GET", "/cl", b"", {})],
            concurrency=4,
            seconds=0.1,
            warmup=2,
        )
    check(result, 0.1)
    assert result.errors == 0 and result.first_error == ""
    # every operation started completed: the server saw exactly the warm-up and the timed ones
    assert len(server.requests) == result.operations + 4 * 2
    assert server.connections == 4


async def test_chunked_split_across_reads() -> None:
    bodies: list[bytes] = []

    def after(previous: bytes) -> Step:
        bodies.append(previous)
        return ("GET", "/cl", b"", {})

    async with TinyServer() as server:
        result = await run_load(
            "127.0.0.1",
            server.port,
            lambda i: [("GET", "/chunked", b"", {}), after],
            concurrency=2,
            seconds=0.1,
        )
    check(result, 0.1)
    assert result.errors == 0
    assert bodies and set(bodies) == {CHUNKED_BODY}
    assert server.connections == 2


async def test_connection_close_reconnects() -> None:
    async with TinyServer() as server:
        result = await run_load(
            "127.0.0.1",
            server.port,
            lambda i: [("POST", "/close", b"{}", {"Content-Type": "application/json"})],
            concurrency=3,
            seconds=0.1,
        )
    check(result, 0.1)
    assert result.errors == 0
    assert server.connections == len(server.requests) == result.operations + 3 * 3
    assert {body for _, _, body in server.requests} == {b"{}"}


async def test_errors_are_counted_and_reconnect() -> None:
    async with TinyServer() as server:
        result = await run_load(
            "127.0.0.1",
            server.port,
            lambda i: [("GET", f"/maybe/{i}", b"", {})],
            concurrency=2,
            seconds=0.1,
            warmup=0,
        )
    check(result, 0.1)
    assert result.errors > 0
    assert result.first_error.startswith("GET /maybe/") and "-> 500: b'ok'" in result.first_error
    assert result.operations + result.errors == len(server.requests)
    # each 500 closes the connection; the next request opens another (unless the window is over)
    assert 2 + result.errors - 2 <= server.connections <= 2 + result.errors


async def test_two_step_job_uses_first_answer() -> None:
    def job(i: int) -> list[Step | Callable[[bytes], Step]]:
        def answers(previous: bytes) -> Step:
            return ("GET", f"/answers/{json.loads(previous)['ID']}", b"", {})

        return [("POST", "/query", json.dumps({"n": i}).encode(), {"X-Job": str(i)}), answers]

    async with TinyServer() as server:
        result = await run_load("127.0.0.1", server.port, job, concurrency=3, seconds=0.1)
    check(result, 0.1)
    assert result.errors == 0, result.first_error
    posts = [r for r in server.requests if r[0] == "POST"]
    gets = [r for r in server.requests if r[0] == "GET"]
    assert len(posts) == len(gets) == result.operations + 3 * 3
    assert {t for _, t, _ in gets} == {f"/answers/q{json.loads(b)['n']}" for _, _, b in posts}


async def test_failure_while_warming_up_raises() -> None:
    async with TinyServer() as server:
        with pytest.raises(RuntimeError, match=r"GET /fail -> 500: b'no'"):
            await run_load(
                "127.0.0.1",
                server.port,
                lambda i: [("GET", "/fail", b"", {})],
                concurrency=2,
                seconds=0.1,
            )


async def test_refused_connection_fails_the_warm_up() -> None:
    async with TinyServer() as server:
        port = server.port
    with pytest.raises(OSError):
        await run_load(
            "127.0.0.1", port, lambda i: [("GET", "/", b"", {})], concurrency=1, seconds=1
        )


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> Any:
        return None


@pytest.mark.parametrize(
    ("response", "body", "closes"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", b"abcd", False),
        (b"HTTP/1.1 200 OK\r\ncontent-length:4\r\nCONNECTION: Close\r\n\r\nabcd", b"abcd", True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nab", b"ab", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", False),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", b"", False),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
            b"z",
            False,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n"
            b"3\r\nabc\r\n10;x=y\r\n0123456789abcdef\r\n0\r\n\r\n",
            b"abc0123456789abcdef",
            False,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: keep-alive, close\r\n\r\n"
            b"1\r\nq\r\n0\r\nA: b\r\nC: d\r\n\r\n",
            b"q",
            True,
        ),
    ],
)
@pytest.mark.parametrize("piece", [1, 2, 7, 1000])
async def test_parser_byte_by_byte(response: bytes, body: bytes, closes: bool, piece: int) -> None:
    """Each response, fed in pieces of ``piece`` bytes, yields its body to the next step."""
    seen: list[bytes] = []

    def then(previous: bytes) -> Step:
        seen.append(previous)
        return ("GET", "/next", b"", {})

    run = _Run("127.0.0.1", 9, lambda i: [("GET", "/first", b"", {}), then], 1, 60.0, 0)
    conn: _Connection = run.connections[0]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    run.start()
    assert transport.written == [
        b"GET /first HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 0\r\n\r\n"
    ]
    for i in range(0, len(response), piece):
        conn.data_received(response[i : i + piece])
    assert seen == [body]
    assert transport.aborted is closes
    if closes:  # the next request waits for a new connection
        assert len(transport.written) == 1 and conn.pending is not None
    else:
        assert transport.written[1].startswith(b"GET /next HTTP/1.1\r\n")
    run.close()
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nuntil the end",
    ],
)
async def test_body_until_close(response: bytes) -> None:
    seen: list[bytes] = []

    def then(previous: bytes) -> Step:
        seen.append(previous)
        return ("GET", "/next", b"", {})

    run = _Run("127.0.0.1", 9, lambda i: [("GET", "/first", b"", {}), then], 1, 60.0, 0)
    conn = run.connections[0]
    conn.connection_made(FakeTransport())  # type: ignore[arg-type]
    run.start()
    for i in range(0, len(response), 5):
        conn.data_received(response[i : i + 5])
    assert seen == []
    conn.connection_lost(None)
    assert seen == [b"until the end"] and conn.pending is not None  # reconnecting
    run.close()
    await asyncio.sleep(0)


def test_uvloop_end_to_end() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> LoadResult:
        async with TinyServer() as server:
            return await run_load(
                "127.0.0.1",
                server.port,
                lambda i: [("GET", "/chunked" if i % 2 else "/close", b"", {})],
                concurrency=2,
                seconds=0.1,
            )

    result = uvloop.run(scenario())
    check(result, 0.1)
    assert result.errors == 0


def test_repr_leaves_out_latencies() -> None:
    result = LoadResult(3, 1.0, [0.1, 0.2, 0.3])
    assert "0.2" not in repr(result) and result.percentile(0.5) == 0.2
