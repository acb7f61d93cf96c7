"""Unit tests of the gateway's request validation, multipart framing and error mapping."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmony_dimse.data.query import QueryError
from harmony_dimse.dimse.status import describe_status
from harmony_dimse.gateway.errors import (
    RequestError,
    error_response,
    status_json,
)
from harmony_dimse.gateway.multipart import (
    closing,
    content_type_params,
    new_boundary,
    part_header,
    preferred,
    split_multipart,
)
from harmony_dimse.gateway.request import (
    KNOWN_FIELDS,
    OPERATIONS,
    normalize_operation,
    parse_json_body,
    parse_operation,
)
from harmony_dimse.net.errors import (
    AssociationAborted,
    AssociationRejected,
    DicomTimeout,
    DimseFailure,
    NegotiationError,
    PeerUnreachable,
    ProtocolError,
)
from harmony_dimse.net.pool import PoolTimeout
from harmony_dimse.ul.pdu import AssociateRJ


def request_error(call: Any, *args: Any, **kwargs: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        call(*args, **kwargs)
    return caught.value


# --------------------------------------------------------------------------------------------
# request.py
# --------------------------------------------------------------------------------------------


def test_parse_json_body() -> None:
    assert parse_json_body(b' {"operation": "C-ECHO"} ') == {"operation": "C-ECHO"}
    assert request_error(parse_json_body, b"  ").reason.startswith("empty")
    bad = request_error(parse_json_body, b'{"operation": ')
    assert (bad.field, bad.status) == ("body", 400)
    assert bad.reason.startswith("invalid JSON: ")
    assert request_error(parse_json_body, b"[1]").reason == "must be a JSON object, got an array"
    assert request_error(parse_json_body, b'"x"').reason == "must be a JSON object, got a string"
    assert request_error(parse_json_body, b"null").reason == "must be a JSON object, got null"


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("C-FIND", "C-FIND"),
        ("c-find", "C-FIND"),
        ("CFIND", "C-FIND"),
        ("C_FIND", "C-FIND"),
        (" find ", "C-FIND"),
        ("echo", "C-ECHO"),
        ("Move", "C-MOVE"),
        ("cget", "C-GET"),
        ("STORE", "C-STORE"),
    ],
)
def test_operation_names(given_name: str, expected: str) -> None:
    assert normalize_operation(given_name) == expected


def test_unknown_or_mistyped_operation() -> None:
    unknown = request_error(normalize_operation, "C-FOO")
    assert unknown.field == "operation"
    assert "'C-FOO'" in unknown.reason
    assert all(op in unknown.reason for op in OPERATIONS)
    assert request_error(normalize_operation, ["C-FIND"]).reason == "must be a string, got an array"
    assert request_error(normalize_operation, None).reason == "must be a string, got null"


def test_minimal_request_has_defaults() -> None:
    req = parse_operation({"operation": "C-ECHO"})
    assert (req.operation, req.level, req.model, req.query) == ("C-ECHO", None, "STUDY", {})
    assert (req.destination, req.limit, req.priority, req.dicom_json) == (None, None, 0, False)


@pytest.mark.parametrize(
    ("level", "expected"),
    [("study", "STUDY"), (" Series ", "SERIES"), ("IMAGE", "IMAGE"), ("instance", "IMAGE")],
)
def test_levels_are_normalized(level: str, expected: str) -> None:
    assert parse_operation({"operation": "C-FIND", "level": level}).level == expected


def test_patient_level_defaults_to_patient_root_but_an_explicit_model_wins() -> None:
    assert parse_operation({"operation": "C-FIND", "level": "patient"}).model == "PATIENT"
    explicit = parse_operation({"operation": "C-FIND", "level": "PATIENT", "model": "study"})
    assert explicit.model == "STUDY"  # left for the identifier builder to refuse, by name
    assert parse_operation({"operation": "C-FIND", "model": "patient"}).model == "PATIENT"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "operation", "missing"),
        ({"operation": "C-FIND", "level": 3}, "level", "must be a string, got a number"),
        ({"operation": "C-FIND", "level": "SERIESS"}, "level", "'SERIESS' is not PATIENT"),
        ({"operation": "C-FIND", "model": "WORKLIST"}, "model", "'WORKLIST' is not STUDY"),
        ({"operation": "C-FIND", "model": 1}, "model", "1 is not STUDY or PATIENT"),
        ({"operation": "C-FIND", "query": "PatientID=1"}, "query", "got a string"),
        ({"operation": "C-FIND", "identifier": []}, "identifier", "got an array"),
        (
            {"operation": "C-FIND", "query": {}, "identifier": {}},
            "identifier",
            "either query or identifier",
        ),
        ({"operation": "C-MOVE"}, "query", "C-MOVE needs a query"),
        ({"operation": "C-GET", "query": {}}, "query", "C-GET needs a query"),
        ({"operation": "C-GET", "query": {"a": 1}, "destination": "X"}, "destination", "only"),
        ({"operation": "C-MOVE", "query": {"a": 1}, "destination": ""}, "destination", "AE"),
        (
            {"operation": "C-MOVE", "query": {"a": 1}, "destination": "A" * 17},
            "destination",
            "1 to 16 printable ASCII characters",
        ),
        ({"operation": "C-MOVE", "query": {"a": 1}, "destination": "A\\B"}, "destination", "AE"),
        ({"operation": "C-MOVE", "query": {"a": 1}, "destination": 7}, "destination", "AE"),
        ({"operation": "C-ECHO", "limit": 1}, "limit", "only C-FIND"),
        ({"operation": "C-FIND", "limit": 0}, "limit", "positive integer, got 0"),
        ({"operation": "C-FIND", "limit": True}, "limit", "positive integer, got True"),
        ({"operation": "C-FIND", "limit": "5"}, "limit", "positive integer, got '5'"),
        ({"operation": "C-FIND", "limit": 2.5}, "limit", "positive integer"),
        ({"operation": "C-FIND", "priority": 3}, "priority", "0 (medium), 1 (high) or 2 (low)"),
        ({"operation": "C-FIND", "priority": True}, "priority", "0 (medium)"),
        ({"operation": "C-FIND", "priority": 1.0}, "priority", "0 (medium)"),
        ({"operation": "C-FIND", "priority": "1"}, "priority", "0 (medium)"),
        ({"operation": "C-ECHO", "verbose": True}, "verbose", "unknown field; allowed fields"),
        ({"operation": "C-FIND", "PatientName": "DOE*"}, "PatientName", 'put it in "query"'),
        ({"operation": "C-FIND", "0020000D": {"vr": "UI"}}, "0020000D", '"identifier"'),
    ],
)
def test_invalid_requests_name_the_field(body: dict[str, Any], field: str, words: str) -> None:
    error = request_error(parse_operation, body)
    assert error.field == field
    assert words in error.reason, error.reason
    assert error.status == 400
    assert str(error) == f"{field}: {error.reason}"


def test_unknown_field_lists_the_allowed_ones() -> None:
    error = request_error(parse_operation, {"operation": "C-ECHO", "zzz": 1, "aaa": 2})
    assert error.field == "aaa"  # the first in sorted order, so the answer is stable
    assert all(name in error.reason for name in KNOWN_FIELDS)


def test_valid_fields_are_kept() -> None:
    req = parse_operation(
        {
            "operation": "c-move",
            "level": "SERIES",
            "query": {"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3"},
            "destination": " STORESCP ",
            "priority": 2,
        }
    )
    assert (req.operation, req.level, req.destination, req.priority) == (
        "C-MOVE",
        "SERIES",
        "STORESCP",
        2,
    )
    assert req.query == {"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3"}
    found = parse_operation({"operation": "C-FIND", "limit": 5, "identifier": {"00100020": {}}})
    assert (found.limit, found.dicom_json, found.query) == (5, True, {"00100020": {}})


def test_operation_in_the_url() -> None:
    identifier = {"0020000D": {"vr": "UI", "Value": ["1.2"]}}
    harmony = parse_operation(identifier, operation="C-FIND")
    assert (harmony.operation, harmony.query, harmony.dicom_json) == ("C-FIND", identifier, True)
    assert parse_operation({}, operation="C-ECHO").operation == "C-ECHO"
    agreeing = parse_operation({"operation": "find", "query": {"a": 1}}, operation="C-FIND")
    assert agreeing.query == {"a": 1} and not agreeing.dicom_json
    conflict = request_error(parse_operation, {"operation": "C-ECHO"}, operation="C-FIND")
    assert conflict.field == "operation"
    assert "C-FIND" in conflict.reason and "C-ECHO" in conflict.reason


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from(sorted(KNOWN_FIELDS)) | st.text(max_size=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6), st.sampled_from([None, *OPERATIONS]))
def test_any_json_object_is_accepted_or_a_request_error(
    body: dict[str, Any], operation: str | None
) -> None:
    try:
        req = parse_operation(body, operation=operation)
    except RequestError as error:
        assert error.reason and error.status in (400, 415)
        assert error.field or "" in body  # a field is named, unless its name is empty
    else:
        assert req.operation in OPERATIONS
        assert isinstance(req.query, dict)
        assert req.priority in (0, 1, 2) and type(req.priority) is int


# --------------------------------------------------------------------------------------------
# multipart.py
# --------------------------------------------------------------------------------------------


def test_content_type_params() -> None:
    media, params = content_type_params(
        'Multipart/Related; TYPE="application/dicom"; boundary=abc-123'
    )
    assert media == "multipart/related"
    assert params == {"type": "application/dicom", "boundary": "abc-123"}
    assert content_type_params("") == ("", {})
    assert content_type_params("application/json; charset") == ("application/json", {})


def frame(parts: list[bytes], boundary: str) -> bytes:
    body = b"".join(
        part_header(boundary, "application/dicom", {"Content-Location": f"n:{i}"}) + p + b"\r\n"
        for i, p in enumerate(parts)
    )
    return body + closing(boundary)


def test_split_what_part_header_and_closing_frame() -> None:
    parts = [b"first", b"", b"ends with CRLF\r\n", b"--not-the-boundary\r\n\r\n"]
    split = split_multipart(frame(parts, "bnd"), "bnd")
    assert [content for _, content in split] == parts
    assert split[2][0] == {"content-type": "application/dicom", "content-location": "n:2"}


def test_split_ignores_preamble_and_epilogue_and_allows_bare_parts() -> None:
    body = (
        b"preamble\r\n--b \t\r\n\r\nno headers\r\n--b\r\nX-Note: 1\r\n\r\n"
        b"two\r\n--bb is content\r\n--b--\r\nepilogue --b\r\n"
    )
    assert split_multipart(body, "b") == [
        ({}, b"no headers"),
        ({"x-note": "1"}, b"two\r\n--bb is content"),
    ]


@pytest.mark.parametrize(
    ("body", "boundary", "field", "words"),
    [
        (b"--b\r\n\r\nx\r\n--b--", "", "Content-Type", "without a boundary"),
        (b"just bytes", "b", "body", "no multipart part"),
        (b"--b--\r\n", "b", "body", "no multipart part"),
        (b"--b\r\nContent-Type: x\r\nno blank line", "b", "body", "part 1 has no blank line"),
        (b"--b\r\n\r\ntruncated", "b", "body", "without the close delimiter --b--"),
    ],
)
def test_split_errors(body: bytes, boundary: str, field: str, words: str) -> None:
    error = request_error(split_multipart, body, boundary)
    assert error.field == field and words in error.reason, error.reason


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=5))
def test_split_round_trip(parts: list[bytes]) -> None:
    boundary = new_boundary()
    assert [content for _, content in split_multipart(frame(parts, boundary), boundary)] == parts


def test_new_boundaries_differ() -> None:
    boundaries = {new_boundary() for _ in range(50)}
    assert len(boundaries) == 50
    assert all(b.startswith("harmony-") and b.isascii() and " " not in b for b in boundaries)


# --------------------------------------------------------------------------------------------
# errors.py
# --------------------------------------------------------------------------------------------

BACKEND = SimpleNamespace(
    name="pacs", aet="ORTHANC", host="127.0.0.1", port=4242, local_aet="HARMONY_SCU"
)


def no_nulls(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nulls(v) for v in value)
    return True


def test_request_and_query_errors() -> None:
    status, body = error_response(RequestError("limit", "must be positive"))
    assert status == 400
    assert body == {
        "error": "invalid request",
        "field": "limit",
        "reason": "must be positive",
        "message": "limit: must be positive",
    }
    assert error_response(RequestError("Content-Type", "no", 415))[0] == 415
    status, body = error_response(
        QueryError("query.PatientNam", "unknown DICOM keyword", hint="did you mean PatientName?")
    )
    assert (status, body["field"], body["hint"]) == (
        400,
        "query.PatientNam",
        "did you mean PatientName?",
    )
    assert body["message"] == "query.PatientNam: unknown DICOM keyword; did you mean PatientName?"
    _, plain = error_response(QueryError("query.StudyDate", "not a date"))
    assert plain["message"] == "query.StudyDate: not a date"
    assert "DICOM keywords" in plain["hint"]


def test_dicom_failures_name_what_happened_and_where() -> None:
    status, body = error_response(PeerUnreachable("127.0.0.1", 4242, "connection refused"), BACKEND)
    assert (status, body["error"]) == (502, "connection refused")
    assert body["message"] == "connection to 127.0.0.1:4242 failed: connection refused"
    assert (body["backend"], body["remote_aet"], body["local_aet"]) == (
        "pacs",
        "ORTHANC",
        "HARMONY_SCU",
    )

    status, body = error_response(
        AssociationRejected(AssociateRJ(1, 1, 7), called_aet="ORTHANC"), BACKEND
    )
    assert (status, body["error"], body["result"], body["source"], body["reason"]) == (
        502,
        "association rejected",
        1,
        1,
        7,
    )
    assert body["reason_text"] == "called AE title not recognized"
    assert body["result_text"] == "rejected-permanent"
    assert "called AE title not recognized" in body["message"]

    _, transient = error_response(AssociationRejected(AssociateRJ(2, 3, 1)), BACKEND)
    assert transient["result_text"] == "rejected-transient"
    assert transient["reason_text"] == "temporary congestion"

    status, body = error_response(AssociationAborted(2, 1), BACKEND)
    assert (status, body["source_text"], body["reason_text"]) == (
        502,
        "DICOM UL service-provider",
        "unrecognized PDU",
    )
    _, by_user = error_response(AssociationAborted(0, 0), BACKEND)
    assert by_user["source_text"] == "DICOM UL service-user" and "reason_text" not in by_user

    status, body = error_response(DicomTimeout("dimse", 2.5, "waiting for C-FIND"), BACKEND)
    assert (status, body["timer"], body["seconds"]) == (504, "dimse", 2.5)
    assert "DIMSE response timeout expired after 2.5 s" in body["message"]
    assert "dimse_timeout" in body["hint"]


def test_dimse_failure_omits_what_the_peer_did_not_send() -> None:
    status, body = error_response(
        DimseFailure("C-FIND", 0xC000, "failure", "Failed: unable to process"), BACKEND
    )
    assert status == 502
    assert body["status"] == {
        "code": 0xC000,
        "hex": "0xC000",
        "category": "failure",
        "meaning": "Failed: unable to process",
    }
    assert "failed_instances" not in body and "hint" not in body

    _, full = error_response(
        DimseFailure(
            "C-MOVE", 0xA801, "failure", "Refused: move destination unknown", "who?", ["1"]
        )
    )
    assert full["status"]["error_comment"] == "who?"
    assert full["failed_instances"] == ["1"]
    assert "destination" in full["hint"]
    assert full["message"].endswith(": who?")


def test_other_failures() -> None:
    status, body = error_response(NegotiationError("no context for CT"), BACKEND)
    assert (status, body["error"]) == (502, "presentation context not accepted")
    status, body = error_response(PoolTimeout("ORTHANC@127.0.0.1:4242", 10, 2), BACKEND)
    assert (status, body["error"]) == (503, "backend busy")
    assert "pool_size" in body["message"]
    status, body = error_response(ProtocolError("odd PDU"), BACKEND)
    assert (status, body["error"], body["message"]) == (502, "DICOM error", "odd PDU")
    status, body = error_response(KeyError("boom"))
    assert (status, body["error"]) == (500, "internal error")
    assert body["message"].startswith("KeyError")


@pytest.mark.parametrize(
    "exc",
    [
        RequestError("f", "r"),
        QueryError("f", "r"),
        PeerUnreachable("h", 1, "refused"),
        AssociationRejected(AssociateRJ(1, 2, 9)),
        AssociationAborted(1, 99),
        DicomTimeout("acse", 1.0),
        DimseFailure("C-STORE", 0xA700, "failure", "Refused: out of resources"),
        NegotiationError("x"),
        PoolTimeout("p", 1, 1),
        RuntimeError("x"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_error_bodies_carry_no_nulls(exc: BaseException) -> None:
    status, body = error_response(exc, BACKEND)
    assert 400 <= status < 600
    assert no_nulls(body), body
    assert body["message"]


def test_status_json() -> None:
    info = describe_status(0x0000, "C-ECHO")
    assert status_json(info) == {
        "code": 0,
        "hex": "0x0000",
        "category": "success",
        "meaning": "Success",
    }
    assert "error_comment" not in status_json(info, "")
    assert status_json(describe_status(0xFE00, "C-FIND"))["category"] == "cancel"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"\xff\xfe{}", "invalid JSON"),
    ],
)
def test_hostile_json_is_a_400(body: bytes, words: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_json_body(body)
    assert err.value.field == "body" and words in err.value.reason


def test_multipart_delimiter_without_line_break_is_a_400() -> None:
    with pytest.raises(RequestError) as err:
        split_multipart(b"--bX\r\n\r\ndata\r\n--b--\r\n", "b")
    assert "not followed by a line break" in err.value.reason


@pytest.mark.parametrize(
    ("accept", "ndjson"),
    [
        ("application/x-ndjson", True),
        ("application/json", False),
        ("", False),
        ("*/*", False),
        ("application/json, application/x-ndjson;q=0.1", False),
        ("application/json;q=0.5, application/x-ndjson", True),
        ("application/*;q=0.2, application/x-ndjson;q=0.9", True),
        ("application/x-ndjson;q=0", False),
    ],
)
def test_accept_prefers_with_q_values(accept: str, ndjson: bool) -> None:
    assert preferred(accept, "application/x-ndjson") is ndjson


def test_accept_multipart_with_parameters() -> None:
    assert preferred('multipart/related; type="application/dicom"', "multipart/related")
    assert not preferred("application/json", "multipart/related")
