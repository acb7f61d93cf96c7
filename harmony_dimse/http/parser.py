"""Sans-IO HTTP/1.1 request parser: bytes in; request head, body chunk and end-of-request out.

The parser never touches a socket. Feed it what arrived with `feed()`, then call `next_event()`
until it answers `ParserSignal.NEED_DATA`. Every violation of the protocol or of the `HTTPLimits`
raises `HTTPParseError` carrying the status code the server should answer with before closing;
once it has raised, the parser stays failed. Requests follow one another on the same parser
(keep-alive and pipelining): after `END_OF_REQUEST` the next event is the head of the next request.
Between requests, `next_request()` gives in one step a head together with its whole body when both
are buffered already, and otherwise hands the body over to the events.

Framing is strict, because a lenient parser in front of other parsers invites request smuggling:
CRLF line ends only, no obs-fold, no control bytes, one agreed Content-Length, Transfer-Encoding
only as the single coding "chunked" and never together with Content-Length.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from harmony_dimse.http.limits import HTTPLimits

__all__ = [
    "BodyChunk",
    "HTTPParseError",
    "ParserEvent",
    "ParserSignal",
    "RequestHead",
    "RequestParser",
]


class HTTPParseError(Exception):
    """The client sent something the server must refuse; `status` is the answer to give it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"HTTPParseError({self.status}, {self.reason!r})"


class ParserSignal(enum.Enum):
    """Events that carry no data."""

    NEED_DATA = "need-data"
    END_OF_REQUEST = "end-of-request"


@dataclass(slots=True)
class RequestHead:
    """The request line and headers of one request, with its body framing already decided."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    content_length: int | None
    """Body length in bytes; None when the body is chunked; 0 when there is no body."""
    chunked: bool
    keep_alive: bool
    expect_continue: bool
    """The client waits for `100 Continue` before it sends the body."""

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


@dataclass(slots=True)
class BodyChunk:
    """A piece of the request body, already de-chunked."""

    data: bytes


ParserEvent = RequestHead | BodyChunk | ParserSignal

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# Control bytes other than HTAB, plus any CR or LF that is not part of a CRLF pair.
_BAD_HEAD_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")
# A head with nothing to refuse: request line, then header fields of token names and values of
# visible characters, spaces, tabs and obs-text (RFC 9110 section 5.5). Anything else goes through
# the checks that name the problem.
_WELL_FORMED_HEAD = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/1\.([01])"
    rb"((?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*)"
)
# Name and value of each field of such a head, the value without surrounding spaces and tabs. The
# possessive leading run and the lookbehind keep it linear: a lazy value followed by a lookahead
# took quadratic time on a long run of blanks inside a value.
_FIELD = re.compile(r"\r\n([^:]+):[ \t]*+((?:[^\r]*(?<![ \t]))?)[ \t]*")
_BAD_LINE_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

_MAX_CHUNK_LINE = 4096
_MAX_LENGTH_DIGITS = 18
_METHODS_NEEDING_LENGTH = frozenset(("POST", "PUT", "PATCH"))
_FRAMING_HEADERS = frozenset(
    ("content-length", "transfer-encoding", "connection", "expect", "host")
)

_HEAD = 0
_BODY_LENGTH = 1
_CHUNK_SIZE = 2
_CHUNK_DATA = 3
_CHUNK_DATA_END = 4
_TRAILERS = 5
_END = 6
_FAILED = 7


def _content_length(value: str, max_body: int) -> int:
    """One Content-Length field value: digits, or a list of equal ones (RFC 9110 section 8.6).

    A length of more digits than an int64 holds counts as `max_body + 1`, so it is refused as
    too large.
    """
    if value.isdigit() and value.isascii() and len(value) <= _MAX_LENGTH_DIGITS:
        return int(value)
    content_length: int | None = None
    for item in value.split(","):
        digits = item.strip(" \t")
        if _DIGITS.fullmatch(digits) is None:
            raise HTTPParseError(400, "invalid Content-Length")
        length = int(digits) if len(digits) <= _MAX_LENGTH_DIGITS else max_body + 1
        if content_length is not None and length != content_length:
            raise HTTPParseError(400, "conflicting Content-Length")
        content_length = length
    assert content_length is not None  # split() gives at least one item
    return content_length


class RequestParser:
    """Parses a stream of HTTP/1.0 and HTTP/1.1 requests arriving on one connection."""

    __slots__ = (
        "_body_received",
        "_buffer",
        "_error",
        "_limits",
        "_remaining",
        "_scan_from",
        "_state",
        "_trailer_bytes",
    )

    def __init__(self, limits: HTTPLimits | None = None) -> None:
        self._limits = limits if limits is not None else HTTPLimits()
        self._buffer = bytearray()
        self._state = _HEAD
        self._scan_from = 0
        self._remaining = 0
        self._body_received = 0
        self._trailer_bytes = 0
        self._error: HTTPParseError | None = None

    def feed(self, data: bytes) -> None:
        """Append bytes received from the client. After a failure they are dropped."""
        if self._error is None:
            self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buffer)

    @property
    def between_requests(self) -> bool:
        """True when no part of a request head has been parsed yet (the next event is a head)."""
        return self._state == _HEAD

    def next_event(self) -> ParserEvent:
        """The next event, or `ParserSignal.NEED_DATA` when more bytes are needed to go on."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except HTTPParseError as exc:
            self._fail(exc)
            raise

    def next_request(self) -> tuple[RequestHead, bytes | None] | None:
        """Between requests: the next head and, when it is all buffered already, its whole body.

        A shortcut past the events of the common request. None while the head is incomplete. The
        body is None when it is chunked or not all here yet: `next_event()` then gives its chunks
        and `END_OF_REQUEST` as usual. Raises like `next_event()`.
        """
        if self._state != _HEAD:
            if self._error is not None:
                raise self._error
            raise RuntimeError("next_request() called inside a request")
        try:
            head = self._parse_head()
        except HTTPParseError as exc:
            self._fail(exc)
            raise
        if head is None:
            return None
        state = self._state
        if state == _END:
            self._state = _HEAD
            return head, b""
        buffer = self._buffer
        wanted = self._remaining
        if state != _BODY_LENGTH or len(buffer) < wanted:
            return head, None
        if len(buffer) == wanted:
            body = bytes(buffer)
            buffer.clear()
        else:
            body = bytes(buffer[:wanted])
            del buffer[:wanted]
        self._remaining = 0
        self._state = _HEAD
        return head, body

    def _fail(self, error: HTTPParseError) -> None:
        self._error = error
        self._state = _FAILED
        self._buffer.clear()

    def _next_event(self) -> ParserEvent:
        buffer = self._buffer
        while True:
            state = self._state
            if state == _HEAD:
                head = self._parse_head()
                return ParserSignal.NEED_DATA if head is None else head
            if state in (_BODY_LENGTH, _CHUNK_DATA):
                if not buffer:
                    return ParserSignal.NEED_DATA
                wanted = self._remaining
                if len(buffer) <= wanted:
                    data = bytes(buffer)
                    buffer.clear()
                else:
                    data = bytes(buffer[:wanted])
                    del buffer[:wanted]
                self._remaining = wanted - len(data)
                if not self._remaining:
                    self._state = _END if state == _BODY_LENGTH else _CHUNK_DATA_END
                return BodyChunk(data)
            if state == _END:
                self._state = _HEAD
                return ParserSignal.END_OF_REQUEST
            if state == _CHUNK_SIZE:
                if not self._parse_chunk_size():
                    return ParserSignal.NEED_DATA
            elif state == _CHUNK_DATA_END:
                if len(buffer) < 2:
                    if buffer and buffer[0] != 0x0D:
                        raise HTTPParseError(400, "chunk data not followed by CRLF")
                    return ParserSignal.NEED_DATA
                if buffer[0] != 0x0D or buffer[1] != 0x0A:
                    raise HTTPParseError(400, "chunk data not followed by CRLF")
                del buffer[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                if not self._parse_trailer_line():
                    return ParserSignal.NEED_DATA
            else:
                raise HTTPParseError(400, "parser used after failure")

    def _parse_head(self) -> RequestHead | None:
        """The next head, consumed from the buffer, or None while it is incomplete."""
        buffer = self._buffer
        limits = self._limits
        # RFC 9112 section 2.2: ignore empty lines received before the request line.
        if buffer.startswith(b"\r\n"):
            while buffer.startswith(b"\r\n"):
                del buffer[:2]
            self._scan_from = 0
        end = buffer.find(b"\r\n\r\n", self._scan_from)
        line_end = buffer.find(b"\r\n", 0, limits.max_request_line + 2)
        if line_end < 0:
            if len(buffer) >= limits.max_request_line + 2 or end >= 0:
                raise HTTPParseError(414, "request line too long")
            self._scan_from = max(0, len(buffer) - 3)
            return None
        if end < 0:
            if len(buffer) - line_end - 2 > limits.max_header_bytes + 2:
                raise HTTPParseError(431, "request header section too large")
            self._scan_from = max(0, len(buffer) - 3)
            return None
        if end - line_end > limits.max_header_bytes:
            raise HTTPParseError(431, "request header section too large")
        self._scan_from = 0
        fast = _WELL_FORMED_HEAD.fullmatch(buffer, 0, end)
        if fast is None:
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            return self._frame(*self._check_head(head))
        # The groups are read from the buffer itself, so before it is cut.
        raw_method, raw_target, minor, fields = fast.groups()
        del buffer[: end + 4]
        headers = [
            (name.lower(), value) for name, value in _FIELD.findall(fields.decode("latin-1"))
        ]
        if len(headers) > limits.max_headers:
            raise HTTPParseError(431, "too many request headers")
        version = "HTTP/1.1" if minor == b"1" else "HTTP/1.0"
        return self._frame(raw_method.decode("ascii"), raw_target, version, headers)

    def _check_head(self, head: bytes) -> tuple[str, bytes, str, list[tuple[str, str]]]:
        """The request line and headers of a head the fast pattern refused, or the reason."""
        limits = self._limits
        if _BAD_HEAD_BYTES.search(head) is not None:
            raise HTTPParseError(400, "control character or bare CR/LF in request head")
        lines = head.split(b"\r\n")
        if len(lines) - 1 > limits.max_headers:
            raise HTTPParseError(431, "too many request headers")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise HTTPParseError(400, "malformed request line")
        raw_method, raw_target, raw_version = parts
        if _TOKEN.fullmatch(raw_method) is None:
            raise HTTPParseError(400, "invalid method")
        if _TARGET.fullmatch(raw_target) is None:
            raise HTTPParseError(400, "invalid request target")
        if raw_version == b"HTTP/1.1":
            version = "HTTP/1.1"
        elif raw_version == b"HTTP/1.0":
            version = "HTTP/1.0"
        elif _VERSION.fullmatch(raw_version) is not None:
            raise HTTPParseError(505, "HTTP version not supported")
        else:
            raise HTTPParseError(400, "malformed HTTP version")
        headers: list[tuple[str, str]] = []
        for index in range(1, len(lines)):
            line = lines[index]
            colon = line.find(b":")
            raw_name = line[:colon] if colon > 0 else b""
            if colon <= 0 or _TOKEN.fullmatch(raw_name) is None:
                if line[:1] in (b" ", b"\t"):
                    raise HTTPParseError(400, "obsolete line folding in header")
                raise HTTPParseError(400, "malformed header line")
            name = raw_name.decode("ascii").lower()
            value = line[colon + 1 :].strip(b" \t").decode("latin-1")
            headers.append((name, value))
        return raw_method.decode("ascii"), raw_target, version, headers

    def _frame(
        self, method: str, raw_target: bytes, version: str, headers: list[tuple[str, str]]
    ) -> RequestHead:
        """Decide the body framing and connection persistence from the framing headers."""
        limits = self._limits
        http11 = version == "HTTP/1.1"
        content_length: int | None = None
        codings: list[str] = []
        connection_options: list[str] = []
        expectation: str | None = None
        hosts = 0
        for name, value in headers:
            if name not in _FRAMING_HEADERS:
                continue
            if name == "content-length":
                length = _content_length(value, limits.max_body)
                if content_length is not None and length != content_length:
                    raise HTTPParseError(400, "conflicting Content-Length")
                content_length = length
            elif name == "transfer-encoding":
                codings.extend(coding.strip(" \t").lower() for coding in value.split(","))
            elif name == "connection":
                connection_options.extend(
                    option.strip(" \t").lower() for option in value.split(",")
                )
            elif name == "expect":
                expectation = value.lower()
            else:
                hosts += 1

        if http11 and hosts != 1:
            raise HTTPParseError(400, "HTTP/1.1 request needs exactly one Host header")
        chunked = False
        if codings:
            if not http11:
                raise HTTPParseError(400, "Transfer-Encoding in an HTTP/1.0 request")
            if content_length is not None:
                raise HTTPParseError(400, "both Content-Length and Transfer-Encoding")
            if codings[-1] != "chunked":
                raise HTTPParseError(400, "chunked is not the final transfer coding")
            if len(codings) != 1:
                raise HTTPParseError(501, "transfer coding not implemented")
            chunked = True
        elif content_length is None:
            if method in _METHODS_NEEDING_LENGTH:
                raise HTTPParseError(411, "Content-Length or chunked body required")
            content_length = 0
        elif content_length > limits.max_body:
            raise HTTPParseError(413, "request body too large")

        expect_continue = False
        if expectation is not None and http11:
            if expectation != "100-continue":
                raise HTTPParseError(417, "unsupported expectation")
            expect_continue = chunked or bool(content_length)

        if "close" in connection_options:
            keep_alive = False
        else:
            keep_alive = http11 or "keep-alive" in connection_options

        if chunked:
            self._state = _CHUNK_SIZE
            self._body_received = 0
        elif content_length:
            self._state = _BODY_LENGTH
            self._remaining = content_length
        else:
            self._state = _END
        return RequestHead(
            method,
            raw_target.decode("ascii"),
            version,
            headers,
            None if chunked else content_length,
            chunked,
            keep_alive,
            expect_continue,
        )

    def _parse_chunk_size(self) -> bool:
        buffer = self._buffer
        line_end = buffer.find(b"\r\n", 0, _MAX_CHUNK_LINE + 2)
        if line_end < 0:
            if len(buffer) >= _MAX_CHUNK_LINE + 2:
                raise HTTPParseError(400, "chunk size line too long")
            return False
        line = bytes(buffer[:line_end])
        del buffer[: line_end + 2]
        size_text, _, extensions = line.partition(b";")
        size_text = size_text.rstrip(b" \t")
        if _HEX.fullmatch(size_text) is None:
            raise HTTPParseError(400, "invalid chunk size")
        if _BAD_LINE_BYTES.search(extensions) is not None:
            raise HTTPParseError(400, "control character in chunk extension")
        size = int(size_text, 16)
        if size == 0:
            self._state = _TRAILERS
            self._trailer_bytes = 0
            return True
        self._body_received += size
        if self._body_received > self._limits.max_body:
            raise HTTPParseError(413, "request body too large")
        self._remaining = size
        self._state = _CHUNK_DATA
        return True

    def _parse_trailer_line(self) -> bool:
        """Consume one trailer line (trailers are checked, then discarded)."""
        buffer = self._buffer
        max_bytes = self._limits.max_header_bytes
        line_end = buffer.find(b"\r\n", 0, max_bytes - self._trailer_bytes + 2)
        if line_end < 0:
            if self._trailer_bytes + len(buffer) > max_bytes + 1:
                raise HTTPParseError(431, "request trailer section too large")
            return False
        if line_end == 0:
            del buffer[:2]
            self._state = _END
            return True
        line = bytes(buffer[:line_end])
        del buffer[: line_end + 2]
        self._trailer_bytes += line_end + 2
        if self._trailer_bytes > max_bytes:
            raise HTTPParseError(431, "request trailer section too large")
        colon = line.find(b":")
        if (
            colon <= 0
            or _TOKEN.fullmatch(line, 0, colon) is None
            or _BAD_LINE_BYTES.search(line, colon) is not None
        ):
            raise HTTPParseError(400, "malformed trailer line")
        return True
