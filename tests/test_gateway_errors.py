"""The gateway's failures produced for real: each HTTP status and a message naming what happened.

DICOM failures come from real peers (a stopped Orthanc, an Orthanc checking the called AE title,
a TCP server that never answers, an Orthanc asked to C-MOVE to an AE it does not know); HTTP
failures from real bytes on a socket. After all of them the gateway still answers.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from harmony_dimse.gateway.app import Gateway
from harmony_dimse.http.limits import HTTPLimits
from tests.corpus import make_instance, study_instance_uid
from tests.gateway_harness import (
    LOCALHOST,
    PREFIX,
    HttpClient,
    Reply,
    http,
    part10,
    running_gateway,
    trigger,
    write_gateway_config,
)
from tests.peers import DcmQrSCPFactory, OrthancFactory, free_port

pytestmark = pytest.mark.interop

HEADER_TIMEOUT = 0.3
QUICK_LIMITS = HTTPLimits(header_timeout=HEADER_TIMEOUT, linger_timeout=0.1)


def error_body(reply: Reply, status: int) -> dict[str, Any]:
    """The JSON error of a reply with this status; error bodies never carry nulls."""
    assert reply.status == status, (reply.status, reply.body)
    body: dict[str, Any] = reply.json()
    assert b"null" not in reply.body, body
    assert isinstance(body["error"], str) and body["error"]
    return body


@pytest.fixture
async def unreachable_gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway whose backend port has nothing listening (enough for request validation)."""
    config = write_gateway_config(tmp_path, backend_port=free_port(), incoming_port=free_port())
    async with running_gateway(config, limits=QUICK_LIMITS) as gw:
        yield gw


# --------------------------------------------------------------------------------------------
# DICOM failures: 502 and 504
# --------------------------------------------------------------------------------------------


async def test_stopped_orthanc_is_connection_refused(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory()
    config = write_gateway_config(
        tmp_path, backend_port=orthanc.dicom_port, incoming_port=free_port()
    )
    async with running_gateway(config) as gw:
        assert (await trigger(gw.port, {"operation": "C-ECHO"})).status == 200
        orthanc.stop()
        body = error_body(await trigger(gw.port, {"operation": "C-ECHO"}), 502)
    assert body["error"] == "connection refused"
    assert "connection refused" in body["message"].lower()
    assert f"127.0.0.1:{orthanc.dicom_port}" in body["message"]
    assert (body["remote_aet"], body["port"]) == ("ORTHANC", orthanc.dicom_port)
    assert "Connection Refused" in body["hint"]


async def test_wrong_called_aet_is_rejected(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory(check_called_aet=True)
    config = write_gateway_config(
        tmp_path, backend_port=orthanc.dicom_port, incoming_port=free_port(), aet="WRONG"
    )
    async with running_gateway(config) as gw:
        body = error_body(await trigger(gw.port, {"operation": "C-ECHO"}), 502)
    assert body["error"] == "association rejected"
    assert (body["result"], body["source"], body["reason"]) == (1, 1, 7)
    assert body["result_text"] == "rejected-permanent"
    assert body["source_text"] == "DICOM UL service-user"
    assert body["reason_text"] == "called AE title not recognized"
    assert "called AE title not recognized" in body["message"]
    assert "WRONG" in body["message"]
    assert body["remote_aet"] == "WRONG"


async def test_silent_peer_is_a_504_naming_the_association_timer(tmp_path: Path) -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        held.append(writer)

    silent = await asyncio.start_server(accept_and_say_nothing, LOCALHOST, 0)
    port = silent.sockets[0].getsockname()[1]
    config = write_gateway_config(
        tmp_path,
        backend_port=port,
        incoming_port=free_port(),
        options={"acse_timeout": 0.3},
    )
    try:
        async with running_gateway(config) as gw:
            body = error_body(await trigger(gw.port, {"operation": "C-ECHO"}), 504)
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert body["error"] == "timeout"
    assert body["timer"] == "acse"
    assert body["seconds"] == 0.3
    assert "association (ACSE/ARTIM) timeout expired after 0.3 s" in body["message"]
    assert "acse_timeout" in body["hint"]
    assert held, "the gateway never connected"


async def test_move_to_unknown_destination_is_a_502_with_the_dimse_status(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory()
    orthanc.upload(part10(make_instance(1, 1, 1, 1)))
    config = write_gateway_config(
        tmp_path, backend_port=orthanc.dicom_port, incoming_port=free_port()
    )
    request = {
        "operation": "C-MOVE",
        "destination": "NOWHERE",
        "query": {"StudyInstanceUID": study_instance_uid(1, 1)},
    }
    async with running_gateway(config) as gw:
        body = error_body(await trigger(gw.port, request), 502)
    assert body["error"] == "DIMSE failure"
    assert body["operation"] == "C-MOVE"
    assert body["destination"] == "NOWHERE"
    assert body["status"] == {
        "code": 0xC000,
        "hex": "0xC000",
        "category": "failure",
        "meaning": "Failed: unable to process",
    }
    assert "C-MOVE failed with status 0xC000" in body["message"]
    assert "could not send to NOWHERE: it must know NOWHERE with its host and port" in body["hint"]


async def test_move_the_pacs_cannot_deliver_says_why(
    dcmqrscp_factory: DcmQrSCPFactory, tmp_path: Path
) -> None:
    """dcmqrscp knows HARMONY_SCU, but at a port where nothing listens."""
    qrscp = dcmqrscp_factory(move_destinations={"HARMONY_SCU": ("127.0.0.1", free_port())})
    instance = tmp_path / "instance.dcm"
    instance.write_bytes(part10(make_instance(1, 1, 1, 1)))
    qrscp.index_files([instance])
    config = write_gateway_config(
        tmp_path, backend_port=qrscp.port, incoming_port=free_port(), aet=qrscp.aet
    )
    request = {"operation": "C-MOVE", "query": {"StudyInstanceUID": study_instance_uid(1, 1)}}
    async with running_gateway(config) as gw:
        reply = await trigger(gw.port, request)
    body = error_body(reply, 502)
    assert body["error"] == "DIMSE failure"
    assert body["status"]["category"] == "failure" and body["status"]["hex"] == "0xA702"
    assert body["failed_instances"] == [make_instance(1, 1, 1, 1).SOPInstanceUID]
    assert "could not send to HARMONY_SCU" in body["hint"]
    assert "port " + str(gw.backends["dicom_pacs"].config.incoming_store_port) in body["hint"]


# --------------------------------------------------------------------------------------------
# Bad requests: 400 naming the field, 404, 405, 413, 415, 408
# --------------------------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}

BAD_REQUESTS: list[tuple[str, bytes, dict[str, str], int, str, str]] = [
    # (id, body, headers, status, field, words the message must contain)
    ("garbage-json", b'{"operation": "C-ECHO"', JSON, 400, "body", "invalid JSON"),
    ("json-array", b'["C-ECHO"]', JSON, 400, "body", "must be a JSON object, got an array"),
    ("empty-body", b"", JSON, 400, "body", "empty"),
    ("missing-operation", b'{"query": {}}', JSON, 400, "operation", "missing"),
    ("unknown-operation", b'{"operation": "C-FOO"}', JSON, 400, "operation", "'C-FOO'"),
    ("operation-type", b'{"operation": 5}', JSON, 400, "operation", "must be a string"),
    (
        "bad-level",
        b'{"operation": "C-FIND", "level": "SERIESS"}',
        JSON,
        400,
        "level",
        "'SERIESS' is not PATIENT, STUDY, SERIES or IMAGE",
    ),
    (
        "unknown-keyword",
        b'{"operation": "C-FIND", "query": {"PatientNam": "DOE*"}}',
        JSON,
        400,
        "query.PatientNam",
        "unknown DICOM keyword; did you mean PatientName?",
    ),
    (
        "bad-date",
        b'{"operation": "C-FIND", "query": {"StudyDate": "2024-01-01"}}',
        JSON,
        400,
        "query.StudyDate",
        "query.StudyDate",
    ),
    (
        "query-type",
        b'{"operation": "C-FIND", "query": ["PatientID"]}',
        JSON,
        400,
        "query",
        "must be a JSON object of DICOM keywords, got an array",
    ),
    (
        "limit-type",
        b'{"operation": "C-FIND", "limit": "5"}',
        JSON,
        400,
        "limit",
        "must be a positive integer",
    ),
    (
        "priority-type",
        b'{"operation": "C-FIND", "priority": 1.5}',
        JSON,
        400,
        "priority",
        "must be 0 (medium), 1 (high) or 2 (low)",
    ),
    ("unknown-field", b'{"operation": "C-ECHO", "verbose": true}', JSON, 400, "verbose", "unknown"),
    (
        "attribute-at-top",
        b'{"operation": "C-FIND", "PatientID": "PID1"}',
        JSON,
        400,
        "PatientID",
        'put it in "query"',
    ),
    (
        "destination-for-find",
        b'{"operation": "C-FIND", "destination": "X"}',
        JSON,
        400,
        "destination",
        "only C-MOVE",
    ),
    ("move-without-query", b'{"operation": "C-MOVE"}', JSON, 400, "query", "needs a query"),
    (
        "move-without-uid",
        b'{"operation": "C-MOVE", "query": {"PatientID": "PID1"}}',
        JSON,
        400,
        "query.StudyInstanceUID",
        "required for C-MOVE",
    ),
    (
        "store-as-json",
        b'{"operation": "C-STORE"}',
        JSON,
        415,
        "Content-Type",
        "application/dicom",
    ),
    (
        "text-plain",
        b"operation=C-ECHO",
        {"Content-Type": "text/plain"},
        415,
        "Content-Type",
        "text/plain is not accepted",
    ),
    (
        "empty-dicom",
        b"",
        {"Content-Type": "application/dicom"},
        400,
        "body",
        "no DICOM instance",
    ),
    (
        "not-dicom",
        b"hello",
        {"Content-Type": "application/dicom"},
        400,
        "body",
        "not a DICOM Part 10 file",
    ),
    (
        "multipart-no-boundary",
        b"--x\r\n\r\n--x--",
        {"Content-Type": "multipart/related"},
        400,
        "Content-Type",
        "boundary",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "field", "words"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_bad_request_names_the_field(
    unreachable_gateway: Gateway,
    body: bytes,
    headers: dict[str, str],
    status: int,
    field: str,
    words: str,
) -> None:
    reply = await http(unreachable_gateway.port, "POST", PREFIX, body, headers)
    answer = error_body(reply, status)
    assert answer["field"] == field, answer
    assert words in answer["message"], answer
    assert answer["message"].startswith(f"{field}: "), answer


async def test_dicom_body_on_a_json_operation_path_is_415(unreachable_gateway: Gateway) -> None:
    reply = await http(
        unreachable_gateway.port,
        "POST",
        f"{PREFIX}/find",
        part10(make_instance(1, 1, 1, 1)),
        {"Content-Type": "application/dicom"},
    )
    answer = error_body(reply, 415)
    assert f"{PREFIX}/find takes a JSON body" in answer["message"]


async def test_unknown_paths_and_methods(unreachable_gateway: Gateway) -> None:
    async with HttpClient(unreachable_gateway.port) as client:
        missing = error_body(await client.request("POST", "/nowhere", json_body={}), 404)
        assert "/nowhere" in missing["message"] and missing["endpoints"] == [PREFIX]
        sub = error_body(await client.request("POST", f"{PREFIX}/frobnicate"), 404)
        assert f"{PREFIX}/frobnicate" in sub["message"] and "/find" in sub["message"]
        wrong_method = await client.request("GET", PREFIX)
        assert error_body(wrong_method, 405)["message"] == "use POST"
        assert wrong_method.headers["allow"] == "POST"
        health = await client.request("GET", "/healthz")
        assert health.status == 200 and health.json()["status"] == "ok"
        assert error_body(await client.request("POST", "/healthz"), 405)["message"] == "use GET"


async def test_oversized_body_is_413(unreachable_gateway: Gateway) -> None:
    too_big = HTTPLimits().max_body + 1
    async with HttpClient(unreachable_gateway.port) as client:
        assert client.writer is not None
        client.writer.write(
            f"POST {PREFIX} HTTP/1.1\r\nHost: x\r\nContent-Type: application/dicom\r\n"
            f"Content-Length: {too_big}\r\n\r\n".encode()
        )
        reply = await client.read_reply()
    assert error_body(reply, 413)["error"] == "request body too large"
    assert reply.headers["connection"] == "close"


async def test_slow_client_is_408(unreachable_gateway: Gateway) -> None:
    async with HttpClient(unreachable_gateway.port) as client:
        assert client.writer is not None
        client.writer.write(f"POST {PREFIX} HTTP/1.1\r\nHost: x\r\n".encode())  # never finished
        reply = await asyncio.wait_for(client.read_reply(), HEADER_TIMEOUT * 20)
    assert error_body(reply, 408)["error"] == "request timeout"


async def test_gateway_keeps_serving_after_every_failure(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory()
    config = write_gateway_config(
        tmp_path, backend_port=orthanc.dicom_port, incoming_port=free_port()
    )
    async with running_gateway(config, limits=QUICK_LIMITS) as gw:
        async with HttpClient(gw.port) as client:  # one keep-alive connection for all 4xx
            for _, body, headers, status, _, _ in BAD_REQUESTS:
                reply = await client.request("POST", PREFIX, body, headers)
                assert reply.status == status, reply.body
            assert (await client.request("GET", PREFIX)).status == 405
            assert (await client.request("POST", "/nowhere")).status == 404
        async with HttpClient(gw.port) as client:
            assert client.writer is not None
            client.writer.write(
                f"POST {PREFIX} HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n".encode()
            )
            assert (await client.read_reply()).status == 413
        async with HttpClient(gw.port) as client:
            assert client.writer is not None
            client.writer.write(b"POST / HTTP/1.1\r\n")
            assert (await client.read_reply()).status == 408
        move = {
            "operation": "C-MOVE",
            "destination": "NOWHERE",
            "query": {"StudyInstanceUID": "1.2"},
        }
        assert (await trigger(gw.port, move)).status == 502
        echo = await trigger(gw.port, {"operation": "C-ECHO"})
        assert echo.status == 200 and json.loads(echo.body)["success"] is True
        assert (await http(gw.port, "GET", "/healthz")).status == 200


async def test_ports_in_use_are_named_and_nothing_is_left_listening(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOCALHOST, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        incoming = free_port()
        config = write_gateway_config(
            tmp_path, backend_port=free_port(), incoming_port=incoming, bind_port=busy
        )
        with pytest.raises(OSError) as http_busy:
            async with running_gateway(config):
                pass
        message = str(http_busy.value)
        assert "[network.http_net.http]" in message and f"127.0.0.1:{busy}" in message
        with socket.socket() as probe:  # the C-MOVE listener started first, and was closed
            probe.bind((LOCALHOST, incoming))

        config = write_gateway_config(tmp_path, backend_port=free_port(), incoming_port=busy)
        with pytest.raises(OSError) as scp_busy:
            async with running_gateway(config):
                pass
        assert f"127.0.0.1:{busy} (incoming_store_port)" in str(scp_busy.value)


async def test_body_limit_from_config_toml(tmp_path: Path) -> None:
    config = write_gateway_config(tmp_path, backend_port=free_port(), incoming_port=free_port())
    text = config.read_text()
    config.write_text(text.replace("bind_port = 0\n", "bind_port = 0\nmax_body_size = 1000\n"))
    async with running_gateway(config) as gateway, HttpClient(gateway.port) as client:
        assert client.writer is not None
        client.writer.write(
            f"POST {PREFIX} HTTP/1.1\r\nHost: x\r\nContent-Type: application/dicom\r\n"
            "Content-Length: 1001\r\n\r\n".encode()
        )
        reply = await client.read_reply()
    assert error_body(reply, 413)["error"] == "request body too large"
