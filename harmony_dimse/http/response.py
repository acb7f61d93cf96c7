"""HTTP responses a handler returns, and their encoding to bytes: status line, headers and framing.

The server owns the framing: it writes Content-Length, Transfer-Encoding and Connection itself, so
a handler's own values for the first two are dropped, and `Connection: close` from a handler
closes the connection after the response.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterable
from email.utils import formatdate
from http import HTTPStatus

import msgspec

__all__ = [
    "Response",
    "StreamingResponse",
    "encode_chunk",
    "encode_error",
    "encode_head",
    "status_allows_body",
]

SERVER_NAME = "harmony-dimse"
LAST_CHUNK = b"0\r\n\r\n"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SERVER_OWNED = frozenset(("content-length", "transfer-encoding", "connection"))
_JSON_ENCODER = msgspec.json.Encoder()


class Response:
    """A response with a body known in full; sent with Content-Length."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: list[tuple[str, str]] = list(headers) if headers else []
        if content_type is not None:
            self.headers.append(("Content-Type", content_type))

    @classmethod
    def json(
        cls, status: int, obj: object, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        """`obj` encoded with msgspec as application/json."""
        return cls(status, _JSON_ENCODER.encode(obj), headers, "application/json")

    @classmethod
    def text(cls, status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, text.encode(), headers, "text/plain; charset=utf-8")

    def __repr__(self) -> str:
        return f"Response({self.status}, {len(self.body)} bytes)"


class StreamingResponse:
    """A response whose body is produced piece by piece; sent with chunked transfer-encoding.

    Empty pieces are skipped. If `chunks` raises midway the status is already sent, so the server
    aborts the connection and the client sees a truncated chunked body.
    """

    __slots__ = ("chunks", "headers", "status")

    def __init__(
        self,
        status: int,
        chunks: AsyncIterable[bytes],
        headers: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.status = status
        self.chunks = chunks
        self.headers: list[tuple[str, str]] = list(headers) if headers else []
        if content_type is not None:
            self.headers.append(("Content-Type", content_type))

    def __repr__(self) -> str:
        return f"StreamingResponse({self.status})"


def status_allows_body(status: int) -> bool:
    """False for 1xx, 204 and 304, which never carry a body or body framing."""
    return status >= 200 and status != 204 and status != 304


_status_lines: dict[int, str] = {}


def _status_line(status: int) -> str:
    line = _status_lines.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status code {status}")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = f"HTTP/1.1 {status} {phrase}\r\n"
        _status_lines[status] = line
    return line


class _HeadCache:
    """Encoded response heads, kept for the second their Date header names."""

    __slots__ = ("date", "entries", "second")

    def __init__(self) -> None:
        self.second = -1
        self.date = ""
        self.entries: dict[tuple[object, ...], tuple[bytes, bytes, bool]] = {}

    def current(self) -> dict[tuple[object, ...], tuple[bytes, bytes, bool]]:
        """The heads of this second; the Date line is updated and older heads dropped as it ends."""
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.date = f"Date: {formatdate(now, usegmt=True)}\r\n"
            self.entries = {}
        return self.entries


_heads = _HeadCache()
_MAX_CACHED_HEADS = 64


def encode_head(
    status: int,
    headers: list[tuple[str, str]],
    *,
    body_length: int | None,
    keep_alive: bool,
    http10: bool = False,
) -> tuple[bytes, bool]:
    """Encode the status line and headers of a response.

    `body_length` is the Content-Length, or None for a streamed body (chunked for HTTP/1.1, ended by
    closing the connection for HTTP/1.0). Returns the bytes and whether the connection stays open
    afterwards. Raises ValueError for a header that cannot be sent safely.
    """
    entries = _heads.current()
    key = (status, body_length is None, keep_alive, http10, *headers)
    try:
        entry = entries[key]
    except KeyError:
        entry = _encode_head(status, headers, body_length is None, keep_alive, http10)
        if len(entries) < _MAX_CACHED_HEADS:
            entries[key] = entry
    except TypeError:  # an unhashable header pair, against the annotation: not cached
        entry = _encode_head(status, headers, body_length is None, keep_alive, http10)
    start, end, keep_alive = entry
    if end and body_length is not None:
        return b"%s%d%s" % (start, body_length, end), keep_alive
    return start, keep_alive


def _encode_head(
    status: int, headers: list[tuple[str, str]], streamed: bool, keep_alive: bool, http10: bool
) -> tuple[bytes, bytes, bool]:
    """A head as (start, end, keep_alive): the Content-Length value goes between start and end,
    unless end is empty (the head has no Content-Length then)."""
    parts = [_status_line(status), "Server: harmony-dimse\r\n", _heads.date]
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None:
            raise ValueError(f"invalid response header name {name!r}")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise ValueError(f"invalid character in response header {name!r}")
        lowered = name.lower()
        if lowered in _SERVER_OWNED:
            if lowered == "connection" and "close" in value.lower():
                keep_alive = False
            continue
        parts.append(f"{name}: {value}\r\n")
    with_length = False
    if status_allows_body(status):
        if not streamed:
            parts.append("Content-Length: ")
            with_length = True
        elif http10:
            keep_alive = False
        else:
            parts.append("Transfer-Encoding: chunked\r\n")
    start = "".join(parts).encode("latin-1")
    if not keep_alive:
        end = b"Connection: close\r\n\r\n"
    elif http10:
        end = b"Connection: keep-alive\r\n\r\n"
    else:
        end = b"\r\n"
    if with_length:
        return start, b"\r\n" + end, keep_alive
    return start + end, b"", keep_alive


def encode_chunk(data: bytes) -> tuple[bytes, bytes, bytes]:
    """The three pieces of one chunk of a chunked body, for `transport.writelines`."""
    return b"%x\r\n" % len(data), data, b"\r\n"


def encode_error(status: int, reason: str) -> bytes:
    """A complete `Connection: close` response with the JSON body {"error": reason}."""
    body = _JSON_ENCODER.encode({"error": reason})
    head, _ = encode_head(
        status, [("Content-Type", "application/json")], body_length=len(body), keep_alive=False
    )
    return head + body
