"""The HTTP/1.1 server over real loopback sockets, driven by raw asyncio streams, on both loops.

Every scenario runs under the default asyncio loop and under uvloop, and ends by checking that the
server left no task behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
import uvloop

from harmony_dimse.http import (
    HTTPLimits,
    HTTPServer,
    Request,
    Response,
    StreamingResponse,
    start_http_server,
)
from harmony_dimse.http.response import encode_head

Scenario = Callable[[], Awaitable[None]]
Run = Callable[[Scenario], None]

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    factory = LOOP_FACTORIES[request.param]

    async def checked(scenario: Scenario) -> None:
        await asyncio.wait_for(scenario(), 10)
        await asyncio.sleep(0)
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"tasks left running: {leftover}"

    def runner(scenario: Scenario) -> None:
        with asyncio.Runner(loop_factory=factory) as loop_runner:
            loop_runner.run(checked(scenario))

    yield runner


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """A raw HTTP client on asyncio streams: writes bytes, reads and de-frames responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: HTTPServer) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def get(self, target: str = "/", extra: bytes = b"") -> None:
        self.send(f"GET {target} HTTP/1.1\r\nHost: test\r\n".encode() + extra + b"\r\n")

    async def head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        version, status, *_ = lines[0].split(" ")
        assert version == "HTTP/1.1"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                assert name.lower() not in headers, f"duplicate header {name}"
                headers[name.lower()] = value.strip()
        return int(status), headers

    async def response(self, *, no_body: bool = False) -> Reply:
        status, headers = await self.head()
        if no_body:
            body = b""
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = await self.chunked_body()
        else:
            body = await self.reader.read()
        return Reply(status, headers, body)

    async def chunked_body(self) -> bytes:
        body = bytearray()
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                assert await self.reader.readuntil(b"\r\n") == b"\r\n"
                return bytes(body)
            body += await self.reader.readexactly(size)
            assert await self.reader.readexactly(2) == b"\r\n"

    async def closed_by_server(self) -> bool:
        """True when the server closes with nothing more to read."""
        try:
            return await self.reader.read() == b""
        except ConnectionResetError:
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[Request], Awaitable[Response | StreamingResponse]], **limits: Any
) -> AsyncIterator[HTTPServer]:
    server = await start_http_server(handler, "127.0.0.1", 0, limits=HTTPLimits(**limits))
    try:
        yield server
    finally:
        await server.close()


async def echo(request: Request) -> Response:
    return Response.json(
        200,
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "version": request.version,
            "body": request.body.decode("latin-1"),
            "headers": request.headers,
            "client": request.client,
            "accept": request.header("ACCEPT", "none"),
        },
    )


async def wait_until(predicate: Callable[[], bool]) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


def test_keep_alive_serves_several_requests_on_one_connection(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo) as server:
            client = await Client.connect(server)
            for number in range(3):
                client.get(f"/n{number}?x={number}", b"Accept: text/x\r\n")
                reply = await client.response()
                assert reply.status == 200
                assert "connection" not in reply.headers
                assert reply.headers["server"] == "harmony-dimse"
                assert reply.headers["date"].endswith(" GMT")
                data = json.loads(reply.body)
                assert (data["path"], data["query"], data["accept"]) == (
                    f"/n{number}",
                    f"x={number}",
                    "text/x",
                )
                assert data["headers"] == [["host", "test"], ["accept", "text/x"]]
                assert data["client"][0] == "127.0.0.1"
            client.get("/last", b"Connection: close\r\n")
            reply = await client.response()
            assert reply.status == 200 and reply.headers["connection"] == "close"
            assert await client.closed_by_server()
            await client.close()

    run(scenario)


def test_http10_closes_unless_keep_alive_asked(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo) as server:
            client = await Client.connect(server)
            client.send(b"GET /a HTTP/1.0\r\n\r\n")
            reply = await client.response()
            assert reply.status == 200 and reply.headers["connection"] == "close"
            assert json.loads(reply.body)["version"] == "HTTP/1.0"
            assert await client.closed_by_server()
            await client.close()

            client = await Client.connect(server)
            for _ in range(2):
                client.send(b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                reply = await client.response()
                assert reply.status == 200 and reply.headers["connection"] == "keep-alive"
            await client.close()

    run(scenario)


def test_pipelined_requests_run_one_at_a_time_and_answer_in_order(run: Run) -> None:
    async def scenario() -> None:
        gates = {"/slow1": asyncio.Event(), "/slow3": asyncio.Event()}
        started: list[str] = []
        running = 0

        async def handler(request: Request) -> Response:
            nonlocal running
            running += 1
            assert running == 1, "handlers of one connection overlapped"
            started.append(request.path)
            if request.path in gates:
                await gates[request.path].wait()
            running -= 1
            return Response(200, request.path.encode() + b":" + request.body)

        async with serving(handler) as server:
            client = await Client.connect(server)
            client.send(
                b"GET /slow1 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"POST /fast2 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"
                b"GET /slow3 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"POST /fast4 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n"
            )
            await wait_until(lambda: started == ["/slow1"])
            for _ in range(20):
                await asyncio.sleep(0)
            assert started == ["/slow1"]
            gates["/slow1"].set()
            assert (await client.response()).body == b"/slow1:"
            assert (await client.response()).body == b"/fast2:hi"
            await wait_until(lambda: started[-1] == "/slow3")
            gates["/slow3"].set()
            assert (await client.response()).body == b"/slow3:"
            assert (await client.response()).body == b"/fast4:abc"
            assert started == ["/slow1", "/fast2", "/slow3", "/fast4"]
            await client.close()

    run(scenario)


def test_many_pipelined_requests_past_the_read_buffer(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo, max_header_bytes=1024, max_request_line=1024) as server:
            client = await Client.connect(server)
            padding = b"X-Pad: " + b"p" * 900 + b"\r\n"
            client.send(
                b"".join(
                    f"GET /{n} HTTP/1.1\r\nHost: t\r\n".encode() + padding + b"\r\n"
                    for n in range(200)
                )
            )
            for number in range(200):
                reply = await client.response()
                assert json.loads(reply.body)["path"] == f"/{number}"
            await client.close()

    run(scenario)


def test_chunked_request_body_sent_in_pieces(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo) as server:
            client = await Client.connect(server)
            client.send(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4;ext")
            await client.writer.drain()
            await asyncio.sleep(0)
            client.send(b"=1\r\nWiki\r\n5\r\npe")
            await client.writer.drain()
            client.send(b"dia\r\n0\r\nX-Trailer: yes\r\n\r\n")
            reply = await client.response()
            assert reply.status == 200
            assert json.loads(reply.body)["body"] == "Wikipedia"
            await client.close()

    run(scenario)


def test_content_length_bodies_whole_split_and_pipelined(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo) as server:
            client = await Client.connect(server)
            post = b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
            client.send(post + b"0123456789")
            assert json.loads((await client.response()).body)["body"] == "0123456789"
            client.send(post)
            await client.writer.drain()
            await asyncio.sleep(0.05)
            client.send(b"01234")
            await client.writer.drain()
            await asyncio.sleep(0.05)
            client.send(b"56789" + post + b"abcdefghij" + post + b"ABC")
            for body in ("0123456789", "abcdefghij"):
                assert json.loads((await client.response()).body)["body"] == body
            client.send(b"DEFGHIJ")
            assert json.loads((await client.response()).body)["body"] == "ABCDEFGHIJ"
            await client.close()

    run(scenario)


def test_disconnected_made_late_is_already_set(run: Run) -> None:
    async def scenario() -> None:
        seen: list[Request] = []

        async def handler(request: Request) -> Response:
            seen.append(request)
            await asyncio.Event().wait()
            return Response(200)

        async with serving(handler) as server:
            client = await Client.connect(server)
            client.get("/")
            await wait_until(lambda: len(seen) == 1)
            await client.close()
            await wait_until(lambda: not server.connections)
            assert seen[0].disconnected.is_set()
            await asyncio.wait_for(seen[0].disconnected.wait(), 1)

    run(scenario)


def test_expect_100_continue(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo) as server:
            client = await Client.connect(server)
            client.send(
                b"PUT /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            assert await client.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            client.send(b"hello")
            reply = await client.response()
            assert reply.status == 200 and json.loads(reply.body)["body"] == "hello"

            client.send(
                b"PUT /up HTTP/1.1\r\nHost: t\r\nExpect: magic\r\nContent-Length: 5\r\n\r\n"
            )
            reply = await client.response()
            assert reply.status == 417 and reply.headers["connection"] == "close"
            assert await client.closed_by_server()
            await client.close()

    run(scenario)


def test_streaming_response_and_head_requests(run: Run) -> None:
    async def scenario() -> None:
        pieces = [b"first,", b"", b"second," * 1000, b"third"]

        async def handler(request: Request) -> Response | StreamingResponse:
            if request.path == "/fixed":
                return Response(200, b"0123456789", content_type="text/plain")

            async def produce() -> AsyncIterator[bytes]:
                for piece in pieces:
                    await asyncio.sleep(0)
                    yield piece

            return StreamingResponse(200, produce(), content_type="text/plain")

        async with serving(handler) as server:
            client = await Client.connect(server)
            client.get("/stream")
            reply = await client.response()
            assert reply.headers["transfer-encoding"] == "chunked"
            assert "content-length" not in reply.headers
            assert reply.body == b"".join(pieces)

            client.send(
                b"HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\nHEAD /fixed HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            reply = await client.response(no_body=True)
            assert reply.status == 200 and reply.headers["transfer-encoding"] == "chunked"
            reply = await client.response(no_body=True)
            assert reply.headers["content-length"] == "10"
            client.get("/fixed")
            reply = await client.response()
            assert reply.body == b"0123456789"

            client.send(b"GET /stream HTTP/1.0\r\n\r\n")
            reply = await client.response()
            assert "transfer-encoding" not in reply.headers
            assert reply.headers["connection"] == "close"
            assert reply.body == b"".join(pieces)
            await client.close()

    run(scenario)


def test_no_body_statuses_send_no_framing(run: Run) -> None:
    async def scenario() -> None:
        async def handler(request: Request) -> Response:
            return Response(204, b"ignored", headers=[("Content-Length", "99"), ("X-A", "1")])

        async with serving(handler) as server:
            client = await Client.connect(server)
            client.get("/")
            client.get("/")
            for _ in range(2):
                status, headers = await client.head()
                assert status == 204 and headers["x-a"] == "1"
                assert "content-length" not in headers and "transfer-encoding" not in headers
            await client.close()

    run(scenario)


def test_handler_connection_close_header_closes_after_the_response(run: Run) -> None:
    async def scenario() -> None:
        async def handler(request: Request) -> Response:
            return Response(200, b"bye", headers=[("Connection", "close")])

        async with serving(handler) as server:
            client = await Client.connect(server)
            client.get("/")
            reply = await client.response()
            assert reply.body == b"bye" and reply.headers["connection"] == "close"
            assert await client.closed_by_server()
            await client.close()

    run(scenario)


@pytest.mark.parametrize("http10", [False, True])
@pytest.mark.parametrize("keep_alive", [False, True])
@pytest.mark.parametrize("status", [200, 204, 404])
def test_encoded_heads_stay_right_when_reused(status: int, keep_alive: bool, http10: bool) -> None:
    def lines(head: bytes) -> list[bytes]:
        assert head.endswith(b"\r\n\r\n")
        return [line for line in head.split(b"\r\n") if not line.startswith(b"Date: ")]

    headers = [("Content-Type", "application/json"), ("X-A", "1")]
    for length in (5, 5, 1234, None, None):
        head, stays_open = encode_head(
            status, headers, body_length=length, keep_alive=keep_alive, http10=http10
        )
        expected = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
        expected += [b"Server: harmony-dimse", b"Content-Type: application/json", b"X-A: 1"]
        open_after = keep_alive and not (http10 and length is None and status != 204)
        if status != 204:
            if length is not None:
                expected.append(b"Content-Length: %d" % length)
            elif not http10:
                expected.append(b"Transfer-Encoding: chunked")
        if not open_after:
            expected.append(b"Connection: close")
        elif http10:
            expected.append(b"Connection: keep-alive")
        assert lines(head) == [*expected, b"", b""]
        assert stays_open is open_after
    head, stays_open = encode_head(
        status, [("Connection", "Close")], body_length=0, keep_alive=True, http10=http10
    )
    assert b"Connection: close\r\n" in head and not stays_open
    with pytest.raises(ValueError):
        encode_head(status, [("X-Bad", "a\r\nb")], body_length=0, keep_alive=True)


def test_handler_errors_give_500_and_the_server_goes_on(run: Run) -> None:
    async def scenario() -> None:
        async def handler(request: Request) -> Response:
            if request.path == "/raise":
                raise KeyError("boom")
            if request.path == "/stray-cancel":
                raise asyncio.CancelledError
            if request.path == "/wrong-type":
                return "not a response"  # type: ignore[return-value]
            if request.path == "/bad-header":
                return Response(200, b"x", headers=[("X-Evil", "a\r\nSet-Cookie: 1")])
            return Response(200, b"ok")

        async with serving(handler) as server:
            client = await Client.connect(server)
            for path in ("/raise", "/stray-cancel", "/wrong-type", "/bad-header"):
                client.get(path)
                reply = await client.response()
                assert reply.status == 500
                assert reply.headers["content-type"] == "application/json"
                assert set(json.loads(reply.body)) == {"error"}
                assert "set-cookie" not in reply.headers
            client.get("/fine")
            assert (await client.response()).body == b"ok"
            await client.close()

    run(scenario)


def test_stream_failing_midway_closes_the_connection(run: Run) -> None:
    async def scenario() -> None:
        async def handler(request: Request) -> StreamingResponse:
            async def produce() -> AsyncIterator[bytes]:
                yield b"partial"
                if request.path == "/cancel":
                    raise asyncio.CancelledError
                raise RuntimeError("source broke")

            return StreamingResponse(200, produce())

        async with serving(handler) as server:
            for path in ("/raise", "/cancel"):
                client = await Client.connect(server)
                client.get(path)
                status, headers = await client.head()
                assert status == 200 and headers["transfer-encoding"] == "chunked"
                with pytest.raises((asyncio.IncompleteReadError, ConnectionResetError)):
                    await client.chunked_body()
                await client.close()
            await wait_until(lambda: not server.connections)

    run(scenario)


def test_client_disconnect_mid_stream_cancels_and_sets_disconnected(run: Run) -> None:
    async def scenario() -> None:
        seen: list[Request] = []
        generator_cancelled = asyncio.Event()
        handler_cancelled = asyncio.Event()

        async def handler(request: Request) -> Response | StreamingResponse:
            seen.append(request)
            if request.path == "/wait":
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    handler_cancelled.set()
                    raise

            async def produce() -> AsyncIterator[bytes]:
                try:
                    yield b"first"
                    await asyncio.Event().wait()
                    yield b"never"
                except asyncio.CancelledError:
                    generator_cancelled.set()
                    raise

            return StreamingResponse(200, produce())

        async with serving(handler) as server:
            client = await Client.connect(server)
            client.get("/stream")
            await client.head()
            assert await client.reader.readuntil(b"first\r\n")
            await client.close()
            await asyncio.wait_for(generator_cancelled.wait(), 2)
            await asyncio.wait_for(seen[0].disconnected.wait(), 2)

            client = await Client.connect(server)
            client.get("/wait")
            await wait_until(lambda: len(seen) == 2)
            assert not seen[1].disconnected.is_set()
            await client.close()
            await asyncio.wait_for(handler_cancelled.wait(), 2)
            assert seen[1].disconnected.is_set()
            await wait_until(lambda: not server.connections)

    run(scenario)


def test_streaming_honours_write_backpressure(run: Run) -> None:
    async def scenario() -> None:
        piece = b"z" * 65536
        total = 256
        produced = 0

        async def handler(request: Request) -> StreamingResponse:
            async def produce() -> AsyncIterator[bytes]:
                nonlocal produced
                for _ in range(total):
                    produced += 1
                    yield piece

            return StreamingResponse(200, produce())

        async with serving(handler) as server:
            client = await Client.connect(server)
            client.get("/big")
            await wait_until(lambda: any(c._write_paused for c in server.connections))
            stalled_at = produced
            for _ in range(20):
                await asyncio.sleep(0)
            assert produced == stalled_at < total
            reply = await client.response()
            assert len(reply.body) == total * len(piece)
            assert reply.body.count(b"z") == len(reply.body)
            await client.close()

    run(scenario)


def test_client_that_never_reads_is_dropped_after_write_timeout(run: Run) -> None:
    async def scenario() -> None:
        seen: list[Request] = []

        async def handler(request: Request) -> StreamingResponse:
            seen.append(request)

            async def produce() -> AsyncIterator[bytes]:
                while True:
                    yield b"w" * 65536

            return StreamingResponse(200, produce())

        async with serving(handler, write_timeout=0.2) as server:
            client = await Client.connect(server)
            client.get("/")
            await wait_until(lambda: len(seen) == 1)
            await asyncio.wait_for(seen[0].disconnected.wait(), 3)
            await wait_until(lambda: not server.connections)
            await client.close()

    run(scenario)


def test_closing_connection_whose_client_never_reads_is_aborted(run: Run) -> None:
    async def scenario() -> None:
        async def handler(request: Request) -> Response:
            return Response(200, b"b" * (32 * 1024 * 1024))

        async with serving(handler, write_timeout=0.2) as server:
            client = await Client.connect(server)
            client.get("/", b"Connection: close\r\n")
            await wait_until(lambda: not server.connections)
            await client.close()

    run(scenario)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 600 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"A: b\r\n" * 10 + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"200\r\n" + b"c" * 512 + b"\r\n200\r\n",
            413,
        ),
        (b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: t\r\n\r\n", 411),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\n folded\r\n\r\n", 400),
        (b"GET /\x00 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n", 400),
        (b"NONSENSE\r\n\r\n", 400),
    ],
)
def test_bad_requests_get_their_status_then_close(run: Run, raw: bytes, status: int) -> None:
    async def scenario() -> None:
        limits = {"max_request_line": 256, "max_header_bytes": 512, "max_headers": 8}
        async with serving(echo, max_body=1000, **limits) as server:
            client = await Client.connect(server)
            client.get("/before")
            assert (await client.response()).status == 200
            client.send(raw)
            reply = await client.response()
            assert reply.status == status
            assert reply.headers["connection"] == "close"
            assert set(json.loads(reply.body)) == {"error"}
            assert await client.closed_by_server()
            await client.close()
            client = await Client.connect(server)
            client.get("/after")
            assert (await client.response()).status == 200
            await client.close()

    run(scenario)


def test_slow_header_and_body_get_408(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo, header_timeout=0.2, body_timeout=0.2) as server:
            slow_head = await Client.connect(server)
            slow_head.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
            slow_body = await Client.connect(server)
            slow_body.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
            for client in (slow_head, slow_body):
                reply = await client.response()
                assert reply.status == 408 and reply.headers["connection"] == "close"
                assert await client.closed_by_server()
                await client.close()

    run(scenario)


def test_a_slow_body_that_keeps_coming_is_not_cut_off(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo, body_timeout=0.2) as server:
            client = await Client.connect(server)
            client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n")
            for piece in (b"ab", b"cd", b"ef", b"gh"):  # 0.45 s in all, 0.15 s between pieces
                await asyncio.sleep(0.15)
                client.send(piece)
            reply = await client.response()
            assert reply.status == 200
            assert json.loads(reply.body)["body"] == "abcdefgh"
            await client.close()

    run(scenario)


def test_idle_connections_are_closed_silently(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo, header_timeout=0.2, keepalive_timeout=0.2) as server:
            fresh = await Client.connect(server)
            used = await Client.connect(server)
            used.get("/")
            assert (await used.response()).status == 200
            for client in (fresh, used):
                assert await client.reader.read() == b""
                await client.close()

    run(scenario)


def test_connection_cap_answers_503_at_accept(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo, max_connections=2) as server:
            first = await Client.connect(server)
            second = await Client.connect(server)
            for client in (first, second):
                client.get("/")
                assert (await client.response()).status == 200
            third = await Client.connect(server)
            reply = await third.response()
            assert reply.status == 503 and reply.headers["connection"] == "close"
            assert await third.closed_by_server()
            await third.close()
            await first.close()
            await wait_until(lambda: server.active == 1)
            fourth = await Client.connect(server)
            fourth.get("/")
            assert (await fourth.response()).status == 200
            await fourth.close()
            await second.close()

    run(scenario)


def test_server_close_cancels_handlers_and_closes_connections(run: Run) -> None:
    async def scenario() -> None:
        seen: list[Request] = []
        cancelled = asyncio.Event()

        async def handler(request: Request) -> Response:
            seen.append(request)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return Response(200)

        server = await start_http_server(handler, "127.0.0.1", 0)
        port = server.port
        busy = await Client.connect(server)
        busy.get("/")
        idle = await Client.connect(server)
        await wait_until(lambda: len(seen) == 1 and len(server.connections) == 2)
        await server.close()
        assert cancelled.is_set() and seen[0].disconnected.is_set()
        assert not server.connections
        for client in (busy, idle):
            assert await client.closed_by_server()
            await client.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    run(scenario)


def test_server_on_a_given_socket(run: Run) -> None:
    async def scenario() -> None:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = await start_http_server(echo, sock=sock)
        try:
            assert server.port == sock.getsockname()[1]
            client = await Client.connect(server)
            client.send(b"GET http://test/abs?q=1 HTTP/1.1\r\nHost: test\r\n\r\n")
            data = json.loads((await client.response()).body)
            assert (data["path"], data["query"]) == ("/abs", "q=1")
            await client.close()
        finally:
            await server.close()

    run(scenario)


def only_connection(server: HTTPServer) -> Any:
    (connection,) = server.connections
    return connection


def test_one_task_answers_pipelined_and_later_requests_in_order(run: Run) -> None:
    async def scenario() -> None:
        tasks: list[asyncio.Task[Any] | None] = []

        async def handler(request: Request) -> Response:
            tasks.append(asyncio.current_task())
            if request.path == "/slow":
                await asyncio.sleep(0.01)
            return Response(200, request.path.encode() + b":" + request.body)

        async with serving(handler) as server:
            client = await Client.connect(server)
            client.send(
                b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n1"
                b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
                b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz"
            )
            for expected in (b"/slow:", b"/a:1", b"/b:", b"/c:xyz"):
                assert (await client.response()).body == expected
            client.get("/later")
            assert (await client.response()).body == b"/later:"
            assert len(tasks) == 5 and len(set(tasks)) == 1
            task = only_connection(server)._task
            assert task is tasks[0] and not task.done()
            await client.close()
            await wait_until(task.done)
            assert not server.connections

    run(scenario)


def test_disconnect_while_handling_cancels_and_ends_the_connection_task(run: Run) -> None:
    async def scenario() -> None:
        seen: list[Request] = []
        tasks: list[asyncio.Task[Any] | None] = []
        cancelled = asyncio.Event()

        async def handler(request: Request) -> Response:
            seen.append(request)
            tasks.append(asyncio.current_task())
            if request.path == "/wait":
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    cancelled.set()
                    raise
            return Response(200, b"ok")

        async with serving(handler) as server:
            client = await Client.connect(server)
            client.get("/first")
            assert (await client.response()).body == b"ok"
            client.get("/wait")
            await wait_until(lambda: len(seen) == 2)
            task = tasks[1]
            assert task is not None and task is tasks[0]
            await client.close()
            await asyncio.wait_for(cancelled.wait(), 2)
            await wait_until(task.done)
            assert task.cancelled()
            assert seen[1].disconnected.is_set() and not seen[0].disconnected.is_set()
            await wait_until(lambda: not server.connections)

    run(scenario)


def test_failing_handlers_leave_the_connection_task_serving(run: Run) -> None:
    async def scenario() -> None:
        tasks: set[asyncio.Task[Any] | None] = set()

        async def handler(request: Request) -> Response:
            tasks.add(asyncio.current_task())
            if request.path == "/raise":
                raise RuntimeError("boom")
            if request.path == "/stray-cancel":
                raise asyncio.CancelledError
            return Response(200, b"fine")

        async with serving(handler) as server:
            client = await Client.connect(server)
            for path in ("/raise", "/fine", "/stray-cancel", "/fine"):
                client.get(path)
                reply = await client.response()
                assert reply.status == (200 if path == "/fine" else 500)
            client.get("/raise")
            client.get("/stray-cancel")
            client.get("/fine")
            assert [(await client.response()).status for _ in range(3)] == [500, 500, 200]
            assert len(tasks) == 1
            (task,) = tasks
            assert task is not None and not task.done() and task.cancelling() == 0
            await client.close()
            await wait_until(task.done)
            assert not task.cancelled() and task.exception() is None

    run(scenario)


def test_server_close_ends_the_tasks_of_idle_keep_alive_connections(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        server = await start_http_server(echo, "127.0.0.1", 0)
        clients = [await Client.connect(server) for _ in range(3)]
        for client in clients:
            client.get("/")
            assert (await client.response()).status == 200
        fresh = await Client.connect(server)
        await wait_until(lambda: len(server.connections) == 4)
        tasks = [c._task for c in server.connections if c._task is not None]
        assert len(tasks) == 3 and not any(task.done() for task in tasks)
        await server.close()
        assert all(task.done() and not task.cancelled() for task in tasks)
        assert not server.connections and server.active == 0
        for client in [*clients, fresh]:
            assert await client.closed_by_server()
            await client.close()

    with caplog.at_level("DEBUG", logger="asyncio"):
        run(scenario)
    assert not [r for r in caplog.records if "pending" in r.getMessage()]


def test_idle_timeout_and_client_close_end_the_connection_task(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo, keepalive_timeout=0.2) as server:
            timed_out = await Client.connect(server)
            timed_out.get("/")
            assert (await timed_out.response()).status == 200
            first_task = only_connection(server)._task
            assert first_task is not None and not first_task.done()
            assert await timed_out.closed_by_server()
            await timed_out.close()
            await wait_until(first_task.done)

            gone = await Client.connect(server)
            gone.get("/")
            assert (await gone.response()).status == 200
            second_task = only_connection(server)._task
            await gone.close()
            await wait_until(second_task.done)
            assert not second_task.cancelled()
            await wait_until(lambda: not server.connections)

    run(scenario)


def test_connection_task_cancelled_from_outside_aborts_the_connection(run: Run) -> None:
    async def scenario() -> None:
        async with serving(echo) as server:
            client = await Client.connect(server)
            client.get("/")
            assert (await client.response()).status == 200
            task = only_connection(server)._task
            task.cancel()
            await wait_until(task.done)
            assert await client.closed_by_server()
            await client.close()
            await wait_until(lambda: not server.connections)

    run(scenario)


def test_unparsable_absolute_target_is_400_first_or_pipelined(run: Run) -> None:
    bad = b"GET http://[x/ HTTP/1.1\r\nHost: t\r\n\r\n"

    async def scenario() -> None:
        async with serving(echo, header_timeout=1.0) as server:
            first = await Client.connect(server)
            first.send(bad)
            assert (await first.response()).status == 400
            assert await first.closed_by_server()
            await first.close()
            behind = await Client.connect(server)
            behind.send(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n" + bad)
            assert (await behind.response()).status == 200
            assert (await behind.response()).status == 400
            assert await behind.closed_by_server()
            await behind.close()

    run(scenario)
