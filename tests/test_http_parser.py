"""Sans-IO tests of the HTTP/1.1 request parser: byte strings in, events or typed errors out."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmony_dimse.http import (
    BodyChunk,
    HTTPLimits,
    HTTPParseError,
    ParserEvent,
    ParserSignal,
    RequestHead,
    RequestParser,
)

END = ParserSignal.END_OF_REQUEST
NEED_DATA = ParserSignal.NEED_DATA


def drain(parser: RequestParser) -> list[ParserEvent]:
    """Every event the parser can give now, up to (not including) NEED_DATA."""
    events: list[ParserEvent] = []
    while (event := parser.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def parse(data: bytes, limits: HTTPLimits | None = None) -> list[ParserEvent]:
    parser = RequestParser(limits)
    parser.feed(data)
    return drain(parser)


def parse_in_pieces(pieces: list[bytes], limits: HTTPLimits | None = None) -> list[ParserEvent]:
    parser = RequestParser(limits)
    events: list[ParserEvent] = []
    for piece in pieces:
        parser.feed(piece)
        events.extend(drain(parser))
    return events


WholeRequest = tuple[RequestHead, bytes]


def requests_of(events: list[ParserEvent]) -> list[WholeRequest]:
    """Group events into (head, whole body) per complete request."""
    done: list[WholeRequest] = []
    head: RequestHead | None = None
    body = bytearray()
    for event in events:
        if isinstance(event, RequestHead):
            assert head is None, "head inside a request"
            head, body = event, bytearray()
        elif isinstance(event, BodyChunk):
            assert head is not None
            body += event.data
        else:
            assert event is END and head is not None
            done.append((head, bytes(body)))
            head = None
    return done


def read_requests(parser: RequestParser, pending: list[RequestHead | bytes]) -> list[WholeRequest]:
    """Whole requests read the way the server reads them: `next_request()` between requests,
    events inside one. `pending` holds the head and body so far of a request still incomplete."""
    done: list[WholeRequest] = []
    while True:
        if not pending:
            found = parser.next_request()
            if found is None:
                return done
            head, body = found
            if body is not None:
                done.append((head, body))
                continue
            pending[:] = [head, b""]
        event = parser.next_event()
        if event is NEED_DATA:
            return done
        head, body = pending
        assert isinstance(head, RequestHead) and isinstance(body, bytes)
        if event is END:
            done.append((head, body))
            pending.clear()
        else:
            assert isinstance(event, BodyChunk)
            pending[1] = body + event.data


def requests_in_pieces(pieces: list[bytes], limits: HTTPLimits | None = None) -> list[WholeRequest]:
    parser = RequestParser(limits)
    pending: list[RequestHead | bytes] = []
    done: list[WholeRequest] = []
    for piece in pieces:
        parser.feed(piece)
        done.extend(read_requests(parser, pending))
    return done


def status_of(data: bytes, limits: HTTPLimits | None = None) -> int:
    """The status of the error, the same whether read by events or by `next_request()`."""
    with pytest.raises(HTTPParseError) as by_events:
        parse(data, limits)
    with pytest.raises(HTTPParseError) as by_requests:
        requests_in_pieces([data], limits)
    assert by_requests.value.status == by_events.value.status
    return by_events.value.status


def test_simple_get() -> None:
    events = parse(b"GET /studies?PatientID=7 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
    assert len(events) == 2 and events[1] is END
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.method == "GET"
    assert head.target == "/studies?PatientID=7"
    assert head.version == "HTTP/1.1"
    assert head.headers == [("host", "x"), ("accept", "*/*")]
    assert head.content_length == 0 and not head.chunked and not head.has_body
    assert head.keep_alive and not head.expect_continue


def test_header_names_lowered_and_values_trimmed_latin1() -> None:
    [(head, _)] = requests_of(parse(b"GET / HTTP/1.1\r\nHOST:\t h \r\nX-Name: caf\xe9\r\n\r\n"))
    assert head.headers == [("host", "h"), ("x-name", "café")]


@pytest.mark.parametrize(
    ("request_bytes", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, CLOSE\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
    ],
)
def test_keep_alive_rules(request_bytes: bytes, keep_alive: bool) -> None:
    [(head, _)] = requests_of(parse(request_bytes))
    assert head.keep_alive is keep_alive


def test_content_length_body() -> None:
    raw = b"POST /q HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
    [(head, body)] = requests_of(parse(raw))
    assert head.content_length == 11 and head.has_body
    assert body == b"hello world"


def test_body_arriving_in_pieces_gives_partial_chunks() -> None:
    parser = RequestParser()
    parser.feed(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab")
    events = drain(parser)
    assert isinstance(events[0], RequestHead)
    assert events[1:] == [BodyChunk(b"ab")]
    parser.feed(b"cdefGET")
    assert drain(parser) == [BodyChunk(b"cdef"), END]
    assert parser.buffered == 3 and parser.between_requests


def test_identical_duplicate_content_length_is_accepted() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc"
    [(head, body)] = requests_of(parse(raw))
    assert head.content_length == 3 and body == b"abc"


def test_chunked_body_with_extensions_and_trailers() -> None:
    raw = (
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b'6 ; a="q"\r\n world\r\n'
        b"A\r\n0123456789\r\n"
        b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
    )
    [(head, body)] = requests_of(parse(raw))
    assert head.chunked and head.content_length is None and head.has_body
    assert body == b"hello world0123456789"


def test_pipelined_requests_in_one_feed() -> None:
    raw = (
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
        b"POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nyo\r\n0\r\n\r\n"
        b"GET /4 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    requests = requests_of(parse(raw))
    assert [(head.target, body) for head, body in requests] == [
        ("/1", b""),
        ("/2", b"hi"),
        ("/3", b"yo"),
        ("/4", b""),
    ]


def test_empty_lines_before_request_line_are_ignored() -> None:
    [(head, _)] = requests_of(parse(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert head.target == "/"


def test_expect_continue_only_when_a_body_follows() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"
    [event] = parse(raw)
    assert isinstance(event, RequestHead) and event.expect_continue
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n"
    [(head, _)] = requests_of(parse(raw))
    assert not head.expect_continue
    [(head, _)] = requests_of(parse(b"GET / HTTP/1.0\r\nExpect: whatever\r\n\r\n"))
    assert not head.expect_continue


def test_methods_without_body_need_no_length() -> None:
    for method in (b"GET", b"HEAD", b"DELETE", b"OPTIONS"):
        [(head, body)] = requests_of(parse(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert head.content_length == 0 and body == b""


def test_absolute_and_asterisk_targets_are_accepted() -> None:
    raw = b"GET http://h:1/p?q=1 HTTP/1.1\r\nHost: h\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"
    assert [head.target for head, _ in requests_of(parse(raw))] == ["http://h:1/p?q=1", "*"]


SMALL = HTTPLimits(max_request_line=64, max_header_bytes=128, max_headers=4, max_body=100)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        # request line too long: complete, and still incomplete
        (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /" + b"a" * 100, 414),
        # header section too large: complete, and still incomplete; too many headers
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 150 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 150, 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: 1\r\n" * 4 + b"\r\n", 431),
        # body too large: declared up front, or grown by chunks
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 413),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"32\r\n" + b"x" * 50 + b"\r\n33\r\n",
            413,
        ),
    ],
)
def test_limits(raw: bytes, status: int) -> None:
    assert status_of(raw, SMALL) == status


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/11\r\nHost: x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        (b"PUT / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        (b"PATCH / HTTP/1.0\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", 417),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ],
)
def test_protocol_statuses(raw: bytes, status: int) -> None:
    assert status_of(raw) == status


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GET /\r\nHost: x\r\n\r\n", id="request line with two parts"),
        pytest.param(b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", id="double space"),
        pytest.param(b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", id="trailing space"),
        pytest.param(b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", id="method not a token"),
        pytest.param(b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", id="DEL in target"),
        pytest.param(b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", id="NUL in target"),
        pytest.param(b"GET /\xe9 HTTP/1.1\r\nHost: x\r\n\r\n", id="non-ASCII target"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", id="header without colon"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", id="empty header name"),
        pytest.param(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", id="space before colon"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n 2\r\n\r\n", id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\t2\r\n\r\n", id="obs-fold tab"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nA: a\x00b\r\n\r\n", id="NUL in value"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nA: a\nB: b\r\n\r\n", id="bare LF"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nA: a\rB: b\r\n\r\n", id="bare CR"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="HTTP/1.1 without Host"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", id="two Host headers"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            id="Content-Length and Transfer-Encoding",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            id="conflicting Content-Length headers",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n",
            id="conflicting Content-Length list",
        ),
        *(
            pytest.param(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\n",
                id=f"Content-Length {value!r}",
            )
            for value in (b"abc", b"+5", b"-1", b"1e3", b"0x10", b"", b"1 2", b"\xd9\xa3")
        ),
        pytest.param(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", id="chunked in HTTP/1.0"
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            id="chunked not final",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: gzip\r\n\r\n",
            id="chunked not final across headers",
        ),
        *(
            pytest.param(
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
                id=f"chunked body {chunk!r}",
            )
            for chunk in (
                b"zz\r\n",
                b"0x5\r\nhello\r\n",
                b"-1\r\n",
                b"+5\r\n",
                b" 5\r\nhello\r\n",
                b"\r\n",
                b"11111111111111111\r\n",
                b"5;a\x00b\r\nhello\r\n",
                b"5\r\nhelloXX",
                b"5\r\nhelloX",
                b"0\r\nbad trailer\r\n\r\n",
                b"0\r\nX: a\x01b\r\n\r\n",
            )
        ),
    ],
)
def test_bad_syntax_is_400(raw: bytes) -> None:
    assert status_of(raw) == 400


def test_limit_boundaries_are_inclusive() -> None:
    limits = HTTPLimits(max_request_line=64, max_header_bytes=40, max_headers=2)
    line = b"GET /" + b"a" * (64 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == 64
    # header section: "\r\nHost: x" and "\r\nX: ..." counted with their CRLFs, 40 bytes in all
    headers = b"\r\nHost: x\r\nX: " + b"v" * (40 - 9 - 5)
    [(head, _)] = requests_of(parse(line + headers + b"\r\n\r\n", limits))
    assert len(head.target) == 64 - len(b"GET  HTTP/1.1")
    assert status_of(line.replace(b"/", b"/a") + headers + b"\r\n\r\n", limits) == 414
    assert status_of(line + headers + b"v\r\n\r\n", limits) == 431
    assert status_of(line + headers + b"\r\nY: 1\r\n\r\n", limits) == 431


def test_chunk_size_line_and_trailers_are_bounded() -> None:
    start = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert status_of(start + b"5;" + b"e" * 5000) == 400
    assert status_of(start + b"0\r\nX: " + b"t" * 200, SMALL) == 431
    assert status_of(start + b"0\r\n" + b"X: tttttttttttttttttttt\r\n" * 10, SMALL) == 431


def test_parser_stays_failed_and_drops_input() -> None:
    parser = RequestParser()
    parser.feed(b"BAD\r\n\r\n")
    with pytest.raises(HTTPParseError):
        parser.next_event()
    parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parser.buffered == 0
    with pytest.raises(HTTPParseError) as info:
        parser.next_event()
    assert info.value.status == 400


def test_waits_for_more_data_without_error() -> None:
    parser = RequestParser()
    for piece in (b"", b"GET / HT", b"TP/1.1\r\nHost: x\r", b"\n\r"):
        parser.feed(piece)
        assert parser.next_event() is NEED_DATA
    parser.feed(b"\n")
    assert isinstance(parser.next_event(), RequestHead)
    assert parser.next_event() is END
    assert parser.next_event() is NEED_DATA


POST_23 = b'POST /q HTTP/1.1\r\nHost: x\r\nContent-Length: 23\r\n\r\n{"query":"x","limit":1}'


def test_next_request_gives_a_whole_request_in_one_step() -> None:
    parser = RequestParser()
    parser.feed(POST_23)
    found = parser.next_request()
    assert found is not None
    head, body = found
    assert (head.method, head.target, head.content_length) == ("POST", "/q", 23)
    assert body == b'{"query":"x","limit":1}'
    assert parser.between_requests and not parser.buffered
    assert parser.next_request() is None
    assert parser.next_event() is NEED_DATA


def test_next_request_without_body() -> None:
    parser = RequestParser()
    parser.feed(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b")
    found = parser.next_request()
    assert found is not None and found[0].target == "/a" and found[1] == b""
    assert parser.between_requests and parser.buffered == 6
    assert parser.next_request() is None


def test_next_request_two_pipelined_requests_in_one_feed() -> None:
    parser = RequestParser()
    parser.feed(POST_23 + POST_23.replace(b"/q", b"/r"))
    first, second = parser.next_request(), parser.next_request()
    assert first is not None and second is not None
    assert [(head.target, body) for head, body in (first, second)] == [
        ("/q", b'{"query":"x","limit":1}'),
        ("/r", b'{"query":"x","limit":1}'),
    ]
    assert parser.next_request() is None and not parser.buffered


def test_next_request_head_complete_body_not_yet() -> None:
    parser = RequestParser()
    parser.feed(POST_23[:-23])
    found = parser.next_request()
    assert found is not None and found[1] is None
    assert not parser.between_requests
    assert parser.next_event() is NEED_DATA
    parser.feed(POST_23[-23:])
    assert drain(parser) == [BodyChunk(b'{"query":"x","limit":1}'), END]
    assert parser.between_requests


def test_next_request_body_split_across_feeds() -> None:
    parser = RequestParser()
    parser.feed(POST_23[:-10])
    found = parser.next_request()
    assert found is not None and found[1] is None
    assert drain(parser) == [BodyChunk(b'{"query":"x",')]
    parser.feed(POST_23[-10:] + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parser.next_event() == BodyChunk(b'"limit":1}')
    assert parser.next_event() is END
    found = parser.next_request()
    assert found is not None and found[0].method == "GET" and found[1] == b""


def test_next_request_incomplete_head_waits() -> None:
    parser = RequestParser()
    for piece in (b"POST /q HTTP/1.1\r\nHo", b"st: x\r\nContent-Length: 23\r\n\r"):
        parser.feed(piece)
        assert parser.next_request() is None
        assert parser.between_requests
    parser.feed(b'\n{"query":"x","limit":1}')
    found = parser.next_request()
    assert found is not None and found[1] == b'{"query":"x","limit":1}'


def test_next_request_leaves_a_chunked_body_to_the_events() -> None:
    parser = RequestParser()
    parser.feed(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    found = parser.next_request()
    assert found is not None and found[0].chunked and found[1] is None
    assert drain(parser) == [BodyChunk(b"hi"), END]
    assert parser.between_requests


def test_next_request_after_failure_and_inside_a_request() -> None:
    parser = RequestParser()
    parser.feed(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
    assert parser.next_request() is not None
    with pytest.raises(RuntimeError):
        parser.next_request()
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(HTTPParseError) as first:
        parser.next_request()
    assert first.value.status == 411 and not parser.buffered
    parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(HTTPParseError) as again:
        parser.next_request()
    assert again.value is first.value
    with pytest.raises(HTTPParseError):
        parser.next_event()


def test_long_blank_runs_in_a_header_value_parse_in_linear_time() -> None:
    blanks = b" \t" * 15000
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a" + blanks + b"b\r\nX-B:" + blanks + b"\r\n\r\n"
    started = time.perf_counter()
    [(head, _)] = requests_of(parse(raw, HTTPLimits(max_header_bytes=65536)))
    assert time.perf_counter() - started < 1.0  # quadratic matching took seconds
    assert head.headers[1:] == [("x-a", "a" + blanks.decode() + "b"), ("x-b", "")]


SAMPLE = (
    b"GET /a?b=c HTTP/1.1\r\nHost: example\r\nAccept: application/json\r\n\r\n"
    b'POST /find HTTP/1.1\r\nHost: example\r\nContent-Length: 13\r\n\r\n{"q": "abc"}\n'
    b"POST /move HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;x=y\r\nabcd\r\n3\r\nefg\r\n0\r\nT: 1\r\n\r\n"
    b"\r\nGET /last HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SAMPLE)), max_size=30))
def test_any_split_gives_the_same_requests(cuts: list[int]) -> None:
    edges = [0, *sorted(cuts), len(SAMPLE)]
    pieces = [SAMPLE[start:stop] for start, stop in itertools.pairwise(edges)]
    requests = requests_of(parse_in_pieces(pieces))
    assert requests == requests_of(parse(SAMPLE))
    assert requests_in_pieces(pieces) == requests
    assert [(head.target, body) for head, body in requests] == [
        ("/a?b=c", b""),
        ("/find", b'{"q": "abc"}\n'),
        ("/move", b"abcdefg"),
        ("/last", b""),
    ]


def _mutations() -> st.SearchStrategy[bytes]:
    """Valid requests with random bytes spliced in or cut out."""

    def mutate(data: tuple[int, int, bytes]) -> bytes:
        position, cut, noise = data
        position %= len(SAMPLE) + 1
        return SAMPLE[:position] + noise + SAMPLE[position + cut :]

    return st.tuples(st.integers(0, len(SAMPLE)), st.integers(0, 8), st.binary(max_size=12)).map(
        mutate
    )


def _events_in_pieces(pieces: list[bytes], limits: HTTPLimits | None) -> list[WholeRequest]:
    return requests_of(parse_in_pieces(pieces, limits))


def _outcome(
    read: Callable[[list[bytes], HTTPLimits | None], list[WholeRequest]],
    pieces: list[bytes],
    limits: HTTPLimits | None,
) -> list[WholeRequest] | int:
    """The requests read, or the status of the error that stopped the reading."""
    try:
        return read(pieces, limits)
    except HTTPParseError as exc:
        return exc.status


@pytest.mark.parametrize("limits", [None, SMALL])
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), _mutations()), st.integers(0, 400))
def test_next_request_reads_what_the_events_read(
    limits: HTTPLimits | None, data: bytes, cut: int
) -> None:
    pieces = [data[:cut], data[cut:]]
    by_requests = _outcome(requests_in_pieces, pieces, limits)
    assert by_requests == _outcome(_events_in_pieces, pieces, limits)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.binary(max_size=300), _mutations()),
    st.lists(st.integers(min_value=1, max_value=64), max_size=8),
)
def test_arbitrary_bytes_only_raise_parse_errors(data: bytes, sizes: list[int]) -> None:
    parser = RequestParser(SMALL if len(sizes) % 2 else None)
    pieces, offset = [], 0
    for size in sizes:
        pieces.append(data[offset : offset + size])
        offset += size
    pieces.append(data[offset:])
    try:
        for piece in pieces:
            parser.feed(piece)
            for event in drain(parser):
                assert isinstance(event, RequestHead | BodyChunk | ParserSignal)
    except HTTPParseError as exc:
        assert exc.status in {400, 411, 413, 414, 417, 431, 501, 505}
