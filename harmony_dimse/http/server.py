"""The asyncio HTTP/1.1 server: one `asyncio.Protocol` per connection driving the sans-IO parser.

Per connection, requests are parsed one at a time and answered strictly in order: while a handler
runs, bytes of pipelined requests are only buffered (reading pauses if they pile up), and the next
request is parsed once the response has been written. The whole body is read before the handler
runs. One task per connection, made at its first request, runs the handlers and writes the
responses; between requests it waits on a future. Every wait has a deadline (header, body,
keep-alive idle, blocked write); a client that closes its side, or a connection closed by the
server, cancels the running handler and sets `Request.disconnected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from harmony_dimse.http.limits import HTTPLimits
from harmony_dimse.http.parser import (
    BodyChunk,
    HTTPParseError,
    ParserSignal,
    RequestHead,
    RequestParser,
)
from harmony_dimse.http.response import (
    LAST_CHUNK,
    Response,
    StreamingResponse,
    encode_chunk,
    encode_error,
    encode_head,
    status_allows_body,
)

__all__ = ["HTTPServer", "Handler", "Request", "start_http_server"]

logger = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Request:
    """One request, body included, as a handler sees it."""

    method: str
    target: str
    path: str
    """The path of the target, still percent-encoded."""
    query: str
    """The query string of the target without the "?", still percent-encoded."""
    version: str
    headers: list[tuple[str, str]]
    """Header names are lower-cased; values are decoded as latin-1, in arrival order."""
    body: bytes = b""
    client: tuple[str, int] | None = None
    _disconnected: asyncio.Event | None = field(default=None, init=False, repr=False)

    @property
    def disconnected(self) -> asyncio.Event:
        """Set when the connection goes away while the handler runs (the handler is then cancelled).

        Made on first use: most requests never need it.
        """
        event = self._disconnected
        if event is None:
            event = self._disconnected = asyncio.Event()
        return event

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (any case), or `default`."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default


Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_INTERNAL_ERROR_BODY = b'{"error":"internal server error"}'
_RESPONSE_TYPES = (Response, StreamingResponse)
_COPY_LIMIT = 65536
"""Bodies up to this size are joined with the head into one write; larger ones are written apart."""

# Connection phases, in the order a request goes through them.
_FRESH = 0  # connected, nothing received yet: closed silently after header_timeout
_IDLE = 1  # between keep-alive requests: closed silently after keepalive_timeout
_HEAD = 2  # part of a request head received: 408 after header_timeout
_BODY = 3  # head done, reading the body: 408 after body_timeout without any of it
_HANDLING = 4  # handler running or response being written: only write_timeout applies
_LINGER = 5  # error sent, write side shut, discarding input until EOF or linger_timeout
_CLOSING = (
    6  # transport closing once flushed: aborted if the client reads nothing for write_timeout
)
_CLOSED = 7


class _HTTPConnection(asyncio.Protocol):
    __slots__ = (
        "_body_parts",
        "_client",
        "_deadline",
        "_drain_waiter",
        "_handler",
        "_head",
        "_limits",
        "_loop",
        "_parser",
        "_pending",
        "_phase",
        "_pipeline_limit",
        "_reading_paused",
        "_request",
        "_server",
        "_task",
        "_timer",
        "_transport",
        "_waiter",
        "_write_paused",
        "counted",
    )

    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._loop = server.loop
        self._handler = server.handler
        self._limits = server.limits
        self._parser = RequestParser(server.limits)
        self._pipeline_limit = max(
            65536, server.limits.max_request_line + server.limits.max_header_bytes
        )
        self._transport: asyncio.Transport | None = None
        self._phase = _FRESH
        self._head: RequestHead | None = None
        self._body_parts: list[bytes] = []
        self._request: Request | None = None
        self._pending: RequestHead | None = None
        """The head of `_request` when it is parsed and waits for the connection's task."""
        self._task: asyncio.Task[None] | None = None
        """The connection's task (see `_serve`), made at the first request."""
        self._waiter: asyncio.Future[None] | None = None
        """What the task awaits between requests: set when the next one is pending or to end it."""
        self._client: tuple[str, int] | None = None
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.counted = False

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        server = self._server
        if server.closing:
            transport.abort()
            return
        server.connections.add(self)
        if server.active >= self._limits.max_connections:
            self._fail(503, "too many connections")
            return
        self.counted = True
        server.active += 1
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._client = (str(peer[0]), int(peer[1]))
        self._set_deadline(self._limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase >= _LINGER:
            return
        self._parser.feed(data)
        if phase <= _IDLE:
            self._begin_request()
        elif phase != _HANDLING:
            if phase == _BODY:  # body_timeout bounds the silence between pieces of the body
                self._deadline = self._loop.time() + self._limits.body_timeout
            self._process()
        elif self._parser.buffered > self._pipeline_limit and not self._reading_paused:
            self._reading_paused = True
            if self._transport is not None:
                self._transport.pause_reading()

    def eof_received(self) -> bool:
        # A client that shuts its write side is treated as gone: returning False closes the
        # transport, and connection_lost cancels any running handler.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._phase == _CLOSED:
            return
        self._phase = _CLOSED
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop_task()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.cancel()
        self._drain_waiter = None
        self._server._forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._phase == _HANDLING:
            self._set_deadline(self._limits.write_timeout)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._phase == _HANDLING:
            self._deadline = None
        elif self._phase == _CLOSING and self._deadline is not None:
            self._set_deadline(self._limits.write_timeout)
        waiter = self._drain_waiter
        self._drain_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # request assembly

    def _begin_request(self) -> None:
        """Parse what is buffered; a head left incomplete must be done within header_timeout."""
        self._phase = _HEAD
        try:
            self._process()
        finally:
            if self._phase == _HEAD:
                self._set_deadline(self._limits.header_timeout)

    def _process(self) -> None:
        """Parse buffered bytes until a request is complete (then answer it) or data runs out."""
        try:
            head = self._head
            if head is None:
                found = self._parser.next_request()
                if found is None:
                    return
                head, body = found
                if body is None:
                    self._begin_body(head)
                    body = self._read_body()
            else:
                body = self._read_body()
        except HTTPParseError as exc:
            self._fail(exc.status, exc.reason)
            return
        if body is not None:
            self._start_handler(head, body)

    def _begin_body(self, head: RequestHead) -> None:
        """Wait for the rest of the body (each piece within body_timeout of the one before),
        inviting it if the client asks."""
        self._head = head
        self._phase = _BODY
        self._set_deadline(self._limits.body_timeout)
        if head.expect_continue and not self._parser.buffered and self._transport:
            self._transport.write(_CONTINUE)

    def _read_body(self) -> bytes | None:
        """The whole body of the current request, or None while more of it is to come."""
        parser = self._parser
        parts = self._body_parts
        while True:
            event = parser.next_event()
            if event is ParserSignal.NEED_DATA:
                return None
            if event is ParserSignal.END_OF_REQUEST:
                self._body_parts = []
                return b"".join(parts) if len(parts) != 1 else parts[0]
            assert type(event) is BodyChunk
            parts.append(event.data)

    def _start_handler(self, head: RequestHead, body: bytes) -> None:
        self._head = None
        target = head.target
        if target.startswith("/"):
            path, _, query = target.partition("?")
        elif "://" in target:
            try:
                split = urlsplit(target)
            except ValueError:  # e.g. "http://[x/": an unparsable absolute-form target
                self._fail(400, "invalid request target")
                return
            path, query = split.path or "/", split.query
        else:
            path, query = target, ""
        request = Request(
            head.method, target, path, query, head.version, head.headers, body, self._client
        )
        self._request = request
        self._phase = _HANDLING
        self._deadline = None
        self._pending = head
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # else the task was cancelled from outside and aborts
                waiter.set_result(None)
        elif self._task is None:
            self._task = self._loop.create_task(self._serve())
        # else the task itself parsed this pipelined request after its response and goes on with it

    def _stop_task(self) -> None:
        """End the connection's task: wake it if it waits between requests, else cancel it."""
        task = self._task
        if task is None or task.done():
            return
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)  # with nothing pending, the task ends
        else:
            if self._request is not None:
                self._request.disconnected.set()
            task.cancel()

    # the connection's task

    async def _serve(self) -> None:
        """Answer the connection's requests one after the other, waiting on a future between them.

        A task per request would cost a Task (and its registration in asyncio's weak set of all
        tasks) each time; this one lives as long as the connection. So handlers share the task's
        context: a context variable a handler sets is still set for the next request on the same
        connection, and handlers must not count on per-request context isolation.
        """
        try:
            while True:
                request = self._request
                head = self._pending
                assert request is not None and head is not None
                self._pending = None
                try:
                    try:
                        response = await self._handler(request)
                        if not isinstance(response, _RESPONSE_TYPES):
                            raise TypeError(
                                f"handler returned {type(response).__name__}, not a response"
                            )
                    except asyncio.CancelledError:
                        if self._cancel_requested():
                            raise
                        # The handler let out a CancelledError of its own: a failure like any other.
                        logger.exception(
                            "HTTP handler failed on %s %s", request.method, request.target
                        )
                        response = Response(
                            500, _INTERNAL_ERROR_BODY, content_type="application/json"
                        )
                    except Exception:
                        logger.exception(
                            "HTTP handler failed on %s %s", request.method, request.target
                        )
                        response = Response(
                            500, _INTERNAL_ERROR_BODY, content_type="application/json"
                        )
                    if self._phase != _HANDLING:
                        return
                    keep_alive = head.keep_alive and not self._server.closing
                    if isinstance(response, StreamingResponse):
                        keep_alive = await self._write_stream(response, head, keep_alive)
                    else:
                        keep_alive = self._write_fixed(response, head, keep_alive)
                    if self._phase != _HANDLING:
                        return
                    if not keep_alive:
                        self._close()
                        return
                    if self._write_paused:
                        await self._drain()
                except asyncio.CancelledError:
                    if self._phase == _HANDLING:
                        self._abort()
                    raise
                except Exception:
                    logger.exception("HTTP connection failed while answering %s", request.target)
                    self._abort()
                    return
                del request, response  # not kept alive while waiting for the next request
                self._next_request()
                if self._pending is not None:
                    # A pipelined request was parsed from the buffer: let the loop run other work
                    # first, as it did when every request had its own task.
                    await asyncio.sleep(0)
                    continue
                if self._phase >= _LINGER:
                    return
                waiter = self._waiter = self._loop.create_future()
                await waiter
                if self._pending is None:  # woken to end: the connection is closing
                    return
        except asyncio.CancelledError:
            # Cancelled while no handler runs (by the loop shutting down, say): the connection
            # cannot go on without its task.
            self._waiter = None
            if self._phase < _LINGER:
                self._abort()
            raise

    def _cancel_requested(self) -> bool:
        """Whether the connection's task was asked to cancel (rather than a handler's own error)."""
        task = self._task
        return task is None or task.cancelling() > 0

    # response writing

    def _write_fixed(self, response: Response, head: RequestHead, keep_alive: bool) -> bool:
        transport = self._transport
        assert transport is not None
        status = response.status
        body = response.body
        try:
            head_bytes, keep_alive = encode_head(
                status,
                response.headers,
                body_length=len(body),
                keep_alive=keep_alive,
                http10=head.version == "HTTP/1.0",
            )
        except ValueError:
            logger.exception("HTTP handler returned an unsendable response to %s", head.target)
            status, body = 500, _INTERNAL_ERROR_BODY
            head_bytes, keep_alive = encode_head(
                500,
                [("Content-Type", "application/json")],
                body_length=len(body),
                keep_alive=keep_alive,
            )
        if not body or head.method == "HEAD" or not status_allows_body(status):
            transport.write(head_bytes)
        elif len(body) <= _COPY_LIMIT:
            transport.write(head_bytes + body)  # one small write is cheaper than writelines
        else:
            transport.write(head_bytes)
            transport.write(body)
        return keep_alive

    async def _write_stream(
        self, response: StreamingResponse, head: RequestHead, keep_alive: bool
    ) -> bool:
        transport = self._transport
        assert transport is not None
        chunks = response.chunks
        http10 = head.version == "HTTP/1.0"
        try:
            try:
                head_bytes, keep_alive = encode_head(
                    response.status,
                    response.headers,
                    body_length=None,
                    keep_alive=keep_alive,
                    http10=http10,
                )
            except ValueError:
                logger.exception("HTTP handler returned an unsendable response to %s", head.target)
                error = Response(500, _INTERNAL_ERROR_BODY, content_type="application/json")
                return self._write_fixed(error, head, keep_alive)
            transport.write(head_bytes)
            if head.method == "HEAD" or not status_allows_body(response.status):
                return keep_alive
            try:
                async for data in chunks:
                    if not data:
                        continue
                    if http10:
                        transport.write(data)
                    else:
                        transport.writelines(encode_chunk(data))
                    if self._write_paused:
                        await self._drain()
            except asyncio.CancelledError:
                if self._cancel_requested():
                    raise
                logger.exception("HTTP streaming response to %s failed midway", head.target)
                self._abort()
                return False
            except Exception:
                logger.exception("HTTP streaming response to %s failed midway", head.target)
                self._abort()
                return False
            if not http10:
                transport.write(LAST_CHUNK)
            return keep_alive
        finally:
            await _close_iterator(chunks)

    async def _drain(self) -> None:
        if self._phase == _CLOSED:
            raise ConnectionResetError("HTTP client connection closed")
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = self._loop.create_future()
        await waiter

    def _next_request(self) -> None:
        self._request = None
        transport = self._transport
        if self._phase == _CLOSED or transport is None or transport.is_closing():
            return
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        if self._parser.buffered:
            self._begin_request()
        else:
            self._phase = _IDLE
            self._set_deadline(self._limits.keepalive_timeout)

    # closing

    def _fail(self, status: int, reason: str) -> None:
        """Answer with an error, shut the write side and discard input for a short while."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._phase = _LINGER
        transport.write(encode_error(status, reason))
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
            self._set_deadline(self._limits.linger_timeout)
        else:
            self._close()

    def _close(self) -> None:
        """Close once what was written is flushed, or abort if the client stops reading it."""
        transport = self._transport
        if transport is None or self._phase == _CLOSED:
            return
        self._phase = _CLOSING
        transport.close()
        if transport.get_write_buffer_size():
            self._set_deadline(self._limits.write_timeout)
        else:
            self._deadline = None

    def _abort(self) -> None:
        self._phase = _CLOSING
        if self._transport is not None:
            self._transport.abort()

    def shutdown(self) -> None:
        """Cancel the running handler and close the connection (the server is closing)."""
        self._stop_task()
        transport = self._transport
        if transport is None or self._phase == _CLOSED:
            return
        if transport.get_write_buffer_size():
            self._abort()
        else:
            self._close()

    # deadlines: one timer per connection, re-armed lazily when it fires before the deadline

    def _set_deadline(self, seconds: float) -> None:
        when = self._loop.time() + seconds
        self._deadline = when
        timer = self._timer
        if timer is None or timer.when() > when:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self._phase == _CLOSED:
            return
        if deadline - self._loop.time() > 0.001:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        self._deadline = None
        phase = self._phase
        transport = self._transport
        if transport is None:
            return
        if phase in (_HEAD, _BODY):
            transport.write(encode_error(408, "request timeout"))
            self._close()
        elif phase == _HANDLING:
            logger.warning(
                "HTTP client did not read its response for %ss", self._limits.write_timeout
            )
            if self._task is not None and self._request is not None:
                self._request.disconnected.set()
                self._task.cancel()
            self._abort()
        elif phase == _CLOSING or transport.get_write_buffer_size():
            self._abort()
        else:
            self._close()


async def _close_iterator(chunks: AsyncIterable[bytes]) -> None:
    aclose: Callable[[], Awaitable[Any]] | None = getattr(chunks, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            logger.exception("closing a streaming response body failed")


class HTTPServer:
    """A listening HTTP/1.1 server; create it with `start_http_server`."""

    def __init__(
        self, handler: Handler, limits: HTTPLimits, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.loop = loop
        self.connections: set[_HTTPConnection] = set()
        self.active = 0
        """Connections counted against max_connections (refused ones are not)."""
        self.closing = False
        self._server: asyncio.Server | None = None
        self._all_gone: asyncio.Future[None] | None = None

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        if self._server is None:
            return ()
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        """The port of the first listening socket (useful after binding port 0)."""
        return int(self.sockets[0].getsockname()[1])

    def _forget(self, connection: _HTTPConnection) -> None:
        self.connections.discard(connection)
        if connection.counted:
            connection.counted = False
            self.active -= 1
        if not self.connections and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    def _make_connection(self) -> _HTTPConnection:
        return _HTTPConnection(self)

    async def close(self) -> None:
        """Stop accepting, cancel running handlers, close every connection and wait for it all."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        connections = list(self.connections)
        tasks = [c._task for c in connections if c._task is not None]
        for connection in connections:
            connection.shutdown()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.connections:
            self._all_gone = self.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._all_gone), 1.0)
            except TimeoutError:
                for connection in list(self.connections):
                    if connection._transport is not None:
                        connection._transport.abort()
                    connection.connection_lost(None)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> HTTPServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def start_http_server(
    handler: Handler,
    host: str | None = None,
    port: int | None = None,
    *,
    limits: HTTPLimits | None = None,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
    backlog: int = 1024,
) -> HTTPServer:
    """Listen on host:port (or on the bound `sock`) and answer every request with `handler`."""
    loop = asyncio.get_running_loop()
    server = HTTPServer(handler, limits if limits is not None else HTTPLimits(), loop)
    if sock is not None:
        server._server = await loop.create_server(
            server._make_connection, sock=sock, backlog=backlog
        )
    elif reuse_port:
        server._server = await loop.create_server(
            server._make_connection, host, port or 0, backlog=backlog, reuse_port=True
        )
    else:
        server._server = await loop.create_server(
            server._make_connection, host, port or 0, backlog=backlog
        )
    return server
