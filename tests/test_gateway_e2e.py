"""The gateway end to end: real HTTP in, real DIMSE out to Orthanc (and DCMTK), every operation.

One Orthanc per module holds make_corpus() plus one study whose Study Instance UID is the brief's
"1.2.3.4.5.6", so the brief's curl examples run as written. Each test starts its own gateway
in-process on free ports. Answers are checked against Orthanc's own REST API or DCMTK findscu.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from harmony_dimse.gateway.app import Gateway
from tests.corpus import (
    make_corpus,
    make_instance,
    pydicom_test_files,
    series_instance_uid,
    sop_instance_uid,
    study_instance_uid,
    write_corpus,
)
from tests.gateway_harness import (
    PREFIX,
    HttpClient,
    Reply,
    http,
    multipart_body,
    part10,
    running_gateway,
    split_multipart_reply,
    trigger,
    write_gateway_config,
)
from tests.peers import OrthancFactory, OrthancPeer, StoreSCP, findscu_values, free_port

pytestmark = pytest.mark.interop

BRIEF_STUDY_UID = "1.2.3.4.5.6"
STUDY_11 = study_instance_uid(1, 1)  # 2 series x 3 instances
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def brief_instance() -> Dataset:
    """One instance in the study the brief's examples name (Study Instance UID 1.2.3.4.5.6)."""
    ds = make_instance(9, 1, 1, 1)
    ds.StudyInstanceUID = BRIEF_STUDY_UID
    ds.PatientID = "BRIEF"
    ds.PatientName = "BRIEF^EXAMPLE"
    return ds


@dataclass
class Pacs:
    orthanc: OrthancPeer
    incoming_port: int  # where Orthanc sends C-MOVE results for HARMONY_SCU
    storescp: StoreSCP  # another C-MOVE destination Orthanc knows, as STORESCP


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    incoming_port = free_port()
    with StoreSCP(ignore=False, workdir=tmp_path_factory.mktemp("storescp")) as storescp:
        modalities = {
            "harmony": ["HARMONY_SCU", "127.0.0.1", incoming_port],
            "storescp": ["STORESCP", "127.0.0.1", storescp.port],
        }
        with OrthancPeer(
            workdir=tmp_path_factory.mktemp("orthanc"), modalities=modalities
        ) as orthanc:
            corpus = tmp_path_factory.mktemp("corpus")
            write_corpus(corpus, make_corpus())
            orthanc.upload_dir(corpus)
            orthanc.upload(part10(brief_instance()))
            yield Pacs(orthanc, incoming_port, storescp)


@pytest.fixture
async def gateway(pacs: Pacs, tmp_path: Path) -> AsyncIterator[Gateway]:
    config = write_gateway_config(
        tmp_path, backend_port=pacs.orthanc.dicom_port, incoming_port=pacs.incoming_port
    )
    async with running_gateway(config) as gw:
        yield gw


def orthanc_find(orthanc: OrthancPeer, level: str, query: dict[str, str]) -> list[dict[str, Any]]:
    """Orthanc's own answer (REST /tools/find) as the main DICOM tags of each match."""
    answer = orthanc.rest_json(
        "POST", "/tools/find", {"Level": level, "Query": query, "Expand": True}
    )
    found = []
    for resource in answer:
        tags = dict(resource["MainDicomTags"])
        tags.update(resource.get("PatientMainDicomTags", {}))
        found.append(tags)
    return found


def values(matches: list[dict[str, Any]], tag: str) -> set[Any]:
    """The first value of a tag in each DICOM JSON match."""
    return {m[tag]["Value"][0] for m in matches if m.get(tag, {}).get("Value")}


def ok(reply: Reply) -> dict[str, Any]:
    """The JSON of a successful answer, which carries no nulls outside the DICOM JSON matches."""
    body: dict[str, Any] = reply.json()
    assert reply.status == 200, body
    assert body["success"] is True, body
    assert "null" not in json.dumps({k: v for k, v in body.items() if k != "matches"}), body
    return body


# --------------------------------------------------------------------------------------------
# C-ECHO and C-FIND
# --------------------------------------------------------------------------------------------


async def test_echo_reports_peer_and_round_trip(gateway: Gateway, pacs: Pacs) -> None:
    body = ok(await trigger(gateway.port, {"operation": "C-ECHO"}))
    assert body["operation"] == "C-ECHO"
    assert body["remote_aet"] == "ORTHANC"
    assert body["host"] == "127.0.0.1"
    assert body["port"] == pacs.orthanc.dicom_port
    assert body["local_aet"] == "HARMONY_SCU"
    assert isinstance(body["round_trip_ms"], float) and body["round_trip_ms"] > 0
    assert body["status"] == {
        "code": 0,
        "hex": "0x0000",
        "category": "success",
        "meaning": "Success",
    }


@pytest.mark.parametrize(
    ("request_body", "orthanc_level", "orthanc_query", "tag", "orthanc_tag"),
    [
        (
            {"level": "PATIENT", "model": "PATIENT", "query": {"PatientID": "PID*"}},
            "Patient",
            {"PatientID": "PID*"},
            "00100020",
            "PatientID",
        ),
        (
            {"level": "STUDY", "query": {"PatientID": "PID0002"}},
            "Study",
            {"PatientID": "PID0002"},
            "0020000D",
            "StudyInstanceUID",
        ),
        (
            {"level": "SERIES", "query": {"StudyInstanceUID": STUDY_11, "Modality": ""}},
            "Series",
            {"StudyInstanceUID": STUDY_11},
            "0020000E",
            "SeriesInstanceUID",
        ),
        (
            {
                "level": "IMAGE",
                "query": {
                    "StudyInstanceUID": STUDY_11,
                    "SeriesInstanceUID": series_instance_uid(1, 1, 2),
                },
            },
            "Instance",
            {"SeriesInstanceUID": series_instance_uid(1, 1, 2)},
            "00080018",
            "SOPInstanceUID",
        ),
    ],
    ids=["PATIENT", "STUDY", "SERIES", "IMAGE"],
)
async def test_find_every_level_matches_orthanc_rest(
    gateway: Gateway,
    pacs: Pacs,
    request_body: dict[str, Any],
    orthanc_level: str,
    orthanc_query: dict[str, str],
    tag: str,
    orthanc_tag: str,
) -> None:
    body = ok(await trigger(gateway.port, {"operation": "C-FIND", **request_body}))
    expected = {m[orthanc_tag] for m in orthanc_find(pacs.orthanc, orthanc_level, orthanc_query)}
    assert len(expected) >= 2  # a real comparison, not two empty sets
    assert values(body["matches"], tag) == expected
    assert body["count"] == len(body["matches"]) == len(expected)
    assert body["level"] == request_body["level"]
    assert body["model"] == request_body.get("model", "STUDY")
    assert body["status"]["code"] == 0 and body["limited"] is False
    for match in body["matches"]:
        assert match["00080052"] == {"vr": "CS", "Value": [request_body["level"]]}


async def test_patient_level_picks_the_patient_root_model(gateway: Gateway, pacs: Pacs) -> None:
    body = ok(
        await trigger(
            gateway.port,
            {"operation": "C-FIND", "level": "PATIENT", "query": {"PatientID": "PID0001"}},
        )
    )
    assert body["model"] == "PATIENT"
    assert values(body["matches"], "00100020") == {"PID0001"}


async def test_find_matches_dcmtk_findscu(gateway: Gateway, pacs: Pacs) -> None:
    body = ok(
        await trigger(
            gateway.port,
            {"operation": "C-FIND", "level": "SERIES", "query": {"PatientID": "PID0002"}},
        )
    )
    dcmtk = findscu_values(
        "ORTHANC",
        pacs.orthanc.dicom_port,
        ["0008,0052=SERIES", "0010,0020=PID0002", "0020,000E"],
        "0020,000e",
    )
    assert len(dcmtk) == 4
    assert values(body["matches"], "0020000E") == set(dcmtk)


# The brief's examples exactly as its curl commands send them.
BRIEF_FIND_ANY = """{
    "operation": "C-FIND",
    "query": {
      "PatientID": "*",
      "PatientName": "*",
      "StudyInstanceUID": ""
    }
  }"""
BRIEF_FIND_STUDY = """{
    "operation": "C-FIND",
    "level": "STUDY",
    "query": {
      "StudyInstanceUID": "1.2.3.4.5.6"
    }
  }"""
BRIEF_MOVE = """{
    "operation": "C-MOVE",
    "destination": "HARMONY_SCU",
    "query": {
      "StudyInstanceUID": "1.2.3.4.5.6"
    }
  }"""
JSON_HEADERS = {"Content-Type": "application/json"}


async def test_brief_examples_as_written(gateway: Gateway, pacs: Pacs) -> None:
    async with HttpClient(gateway.port) as client:
        echo = ok(await client.request("POST", PREFIX, '{"operation": "C-ECHO"}', JSON_HEADERS))
        assert echo["operation"] == "C-ECHO"

        # no level: derived from the keys (StudyInstanceUID -> STUDY); every study comes back
        every = ok(await client.request("POST", PREFIX, BRIEF_FIND_ANY, JSON_HEADERS))
        assert every["level"] == "STUDY"
        assert sorted(values(every["matches"], "0020000D")) == pacs.orthanc.find_study_uids()
        assert every["count"] == len(pacs.orthanc.find_study_uids())
        for match in every["matches"]:
            assert set(match) >= {"00100010", "00100020", "0020000D"}
            assert match["00100010"]["vr"] == "PN"
            assert set(match["00100010"]["Value"][0]) == {"Alphabetic"}

        one = ok(await client.request("POST", PREFIX, BRIEF_FIND_STUDY, JSON_HEADERS))
        assert one["count"] == 1
        assert one["matches"][0]["0020000D"] == {"vr": "UI", "Value": [BRIEF_STUDY_UID]}

        moved = ok(await client.request("POST", PREFIX, BRIEF_MOVE, JSON_HEADERS))
        assert moved["destination"] == "HARMONY_SCU"
        assert moved["completed"] == 1 and moved["failed"] == 0
        [instance] = moved["instances"]
        assert instance["sop_instance_uid"] == str(brief_instance().SOPInstanceUID)
        assert pydicom.dcmread(instance["path"]).StudyInstanceUID == BRIEF_STUDY_UID


async def test_dicom_json_person_names_in_latin1(gateway: Gateway) -> None:
    """Orthanc answers in its DefaultEncoding, Latin-1 here: ISO_IR 100 decoded right."""
    body = ok(
        await trigger(
            gateway.port,
            {
                "operation": "C-FIND",
                "query": {"PatientID": "PID0003", "PatientName": "", "StudyDescription": ""},
            },
        )
    )
    [match] = body["matches"]
    assert match["00080005"] == {"vr": "CS", "Value": ["ISO_IR 100"]}
    assert match["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "MÜLLER^JÜRGEN"}]}
    assert match["00081030"] == {"vr": "LO", "Value": ["Thorax ÉTUDE"]}


async def test_dicom_json_person_names_in_utf8(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    """With DefaultEncoding Utf8 Orthanc answers in ISO_IR 192: both names survive."""
    orthanc = orthanc_factory(extra={"DefaultEncoding": "Utf8"})
    for ds in make_corpus(patients=0, studies=0):
        orthanc.upload(part10(ds))
    config = write_gateway_config(
        tmp_path, backend_port=orthanc.dicom_port, incoming_port=free_port()
    )
    async with running_gateway(config) as gw:
        body = ok(
            await trigger(
                gw.port,
                {
                    "operation": "C-FIND",
                    "level": "PATIENT",
                    "query": {"PatientID": "", "PatientName": "", "PatientBirthDate": ""},
                },
            )
        )
    by_id = {m["00100020"]["Value"][0]: m for m in body["matches"]}
    assert set(by_id) == {"PID0001", "PID0002"}
    assert by_id["PID0001"]["00100010"]["Value"] == [{"Alphabetic": "MÜLLER^JÜRGEN"}]
    assert by_id["PID0002"]["00100010"]["Value"] == [{"Alphabetic": "王^小東"}]
    for match in body["matches"]:
        assert match["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
        assert match["00100030"]["vr"] == "DA"


async def test_dicom_json_numbers_and_dates(gateway: Gateway) -> None:
    body = ok(
        await trigger(
            gateway.port,
            {
                "operation": "C-FIND",
                "level": "SERIES",
                "query": {
                    "StudyInstanceUID": STUDY_11,
                    "SeriesNumber": "",
                    "SeriesDate": "",
                    "Modality": "CT",
                },
            },
        )
    )
    assert {m["00200011"]["Value"][0] for m in body["matches"]} == {1, 2}  # IS as JSON numbers
    for match in body["matches"]:
        assert match["00200011"]["vr"] == "IS"
        assert match["00080021"]["vr"] == "DA"
        assert len(match["00080021"]["Value"][0]) == 8
        assert match["00080060"] == {"vr": "CS", "Value": ["CT"]}


async def test_limit_stops_find_early(gateway: Gateway) -> None:
    query = {"StudyInstanceUID": STUDY_11, "SeriesInstanceUID": "", "SOPInstanceUID": ""}
    async with HttpClient(gateway.port) as client:
        everything = ok(
            await client.request(
                "POST", PREFIX, json_body={"operation": "C-FIND", "level": "IMAGE", "query": query}
            )
        )
        assert everything["count"] == 6
        limited = ok(
            await client.request(
                "POST",
                PREFIX,
                json_body={"operation": "C-FIND", "level": "IMAGE", "query": query, "limit": 2},
            )
        )
        assert limited["count"] == len(limited["matches"]) == 2
        assert limited["limited"] is True
        assert limited["status"]["code"] == 0xFE00
        assert values(limited["matches"], "00080018") <= values(everything["matches"], "00080018")
        roomy = ok(
            await client.request(
                "POST",
                PREFIX,
                json_body={"operation": "C-FIND", "level": "IMAGE", "query": query, "limit": 50},
            )
        )
        assert roomy["count"] == 6 and roomy["limited"] is False


# --------------------------------------------------------------------------------------------
# C-MOVE and C-GET
# --------------------------------------------------------------------------------------------


def study_instances(orthanc: OrthancPeer, study_uid: str) -> set[str]:
    found = orthanc_find(orthanc, "Instance", {"StudyInstanceUID": study_uid})
    return {m["SOPInstanceUID"] for m in found}


def assert_files_of_study(body: dict[str, Any], storage: Path, study_uid: str) -> None:
    folder = Path(body["folder"])
    assert folder.is_dir() and folder.is_relative_to(storage)
    paths = [Path(i["path"]) for i in body["instances"]]
    assert sorted(paths) == sorted(folder.iterdir())
    for instance, path in zip(body["instances"], paths, strict=True):
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == study_uid
        assert ds.SOPInstanceUID == instance["sop_instance_uid"]
        assert ds.SOPClassUID == instance["sop_class_uid"]


async def test_move_to_the_gateway_files_per_request(gateway: Gateway, pacs: Pacs) -> None:
    body = ok(
        await trigger(
            gateway.port,
            {"operation": "C-MOVE", "level": "STUDY", "query": {"StudyInstanceUID": STUDY_11}},
        )
    )
    assert body["destination"] == "HARMONY_SCU"
    assert (body["completed"], body["failed"], body["warning"], body["remaining"]) == (6, 0, 0, 0)
    assert {i["sop_instance_uid"] for i in body["instances"]} == study_instances(
        pacs.orthanc, STUDY_11
    )
    storage = gateway.storage
    assert Path(body["folder"]).parent == storage / "move"
    assert_files_of_study(body, storage, STUDY_11)


async def test_concurrent_moves_do_not_mix_files(gateway: Gateway, pacs: Pacs) -> None:
    studies = [study_instance_uid(1, 2), study_instance_uid(2, 1), study_instance_uid(2, 2)]
    replies = await asyncio.gather(
        *(
            trigger(gateway.port, {"operation": "C-MOVE", "query": {"StudyInstanceUID": uid}})
            for uid in studies
        )
    )
    folders = set()
    for uid, reply in zip(studies, replies, strict=True):
        body = ok(reply)
        assert body["completed"] == 6
        assert {i["sop_instance_uid"] for i in body["instances"]} == study_instances(
            pacs.orthanc, uid
        )
        assert_files_of_study(body, gateway.storage, uid)
        folders.add(body["folder"])
    assert len(folders) == 3
    assert not (gateway.storage / "unsolicited").exists()


async def test_move_to_another_destination_gives_counts(gateway: Gateway, pacs: Pacs) -> None:
    study = study_instance_uid(2, 1)
    before = set(pacs.storescp.received_files())
    body = ok(
        await trigger(
            gateway.port,
            {
                "operation": "C-MOVE",
                "destination": "STORESCP",
                "query": {"StudyInstanceUID": study},
            },
        )
    )
    assert body["destination"] == "STORESCP"
    assert (body["completed"], body["failed"]) == (6, 0)
    assert "instances" not in body and "folder" not in body
    arrived = set(pacs.storescp.received_files()) - before
    assert {pydicom.dcmread(f).SOPInstanceUID for f in arrived} == study_instances(
        pacs.orthanc, study
    )


async def test_get_stores_files_and_lists_them(gateway: Gateway, pacs: Pacs) -> None:
    # the README's C-GET example
    body = ok(
        await trigger(
            gateway.port,
            {"operation": "C-GET", "level": "STUDY", "query": {"StudyInstanceUID": STUDY_11}},
        )
    )
    assert (body["completed"], body["failed"]) == (6, 0)
    assert Path(body["folder"]).parent == gateway.storage / "get"
    assert {i["sop_instance_uid"] for i in body["instances"]} == study_instances(
        pacs.orthanc, STUDY_11
    )
    assert_files_of_study(body, gateway.storage, STUDY_11)


async def test_get_streams_multipart_dicom(gateway: Gateway, pacs: Pacs) -> None:
    study = study_instance_uid(2, 2)
    accept = {"Accept": 'multipart/related; type="application/dicom"'}
    async with HttpClient(gateway.port) as client:
        reply = await client.request(
            "POST",
            PREFIX,
            json_body={"operation": "C-GET", "query": {"StudyInstanceUID": study}},
            headers=accept,
        )
        assert reply.status == 200
        assert reply.headers["transfer-encoding"] == "chunked"
        parts = split_multipart_reply(reply)
        assert len(parts) == 6
        uids = set()
        for headers, content in parts:
            assert headers["content-type"].startswith("application/dicom")
            ds = pydicom.dcmread(io.BytesIO(content))
            assert ds.StudyInstanceUID == study
            assert headers["content-location"] == f"sop:{ds.SOPInstanceUID}"
            assert ds.file_meta.TransferSyntaxUID in headers["content-type"]
            uids.add(ds.SOPInstanceUID)
        assert uids == study_instances(pacs.orthanc, study)
        # the chunked framing ended cleanly: the same connection serves the next request
        ok(await client.request("POST", PREFIX, json_body={"operation": "C-ECHO"}))
    assert not (gateway.storage / "get").exists()  # streamed, not stored


async def test_streamed_get_that_fails_at_once_is_a_json_error(gateway: Gateway) -> None:
    reply = await http(
        gateway.port,
        "POST",
        PREFIX,
        json.dumps({"operation": "C-GET", "query": {"StudyInstanceUID": "1.2.3.999"}}),
        {"Content-Type": "application/json", "Accept": "multipart/related; type=application/dicom"},
    )
    body = reply.json()
    assert reply.status == 502, body
    assert body["error"] == "DIMSE failure" and body["operation"] == "C-GET"
    assert body["status"]["category"] == "failure"


async def test_retrieve_mode_get_serves_move_to_the_gateway(pacs: Pacs, tmp_path: Path) -> None:
    """dimse_retrieve_mode = "get": a C-MOVE into the gateway runs as C-GET."""
    config = write_gateway_config(
        tmp_path,
        backend_port=pacs.orthanc.dicom_port,
        incoming_port=free_port(),  # a port Orthanc does not know: C-MOVE would fail
        options={"dimse_retrieve_mode": "get"},
    )
    async with running_gateway(config) as gw:
        body = ok(
            await trigger(gw.port, {"operation": "C-MOVE", "query": {"StudyInstanceUID": STUDY_11}})
        )
    assert body["operation"] == "C-MOVE" and body["retrieved_with"] == "C-GET"
    assert body["completed"] == 6
    assert_files_of_study(body, gw.storage, STUDY_11)


# --------------------------------------------------------------------------------------------
# C-STORE
# --------------------------------------------------------------------------------------------


def orthanc_has(orthanc: OrthancPeer, sop_uid: str) -> bool:
    return len(orthanc_find(orthanc, "Instance", {"SOPInstanceUID": sop_uid})) == 1


@pytest.mark.parametrize("path", pydicom_test_files(), ids=lambda p: p.name)
async def test_store_one_file(gateway: Gateway, pacs: Pacs, path: Path) -> None:
    ds = pydicom.dcmread(path)
    reply = await http(
        gateway.port,
        "POST",
        PREFIX,
        path.read_bytes(),
        {"Content-Type": "application/dicom"},
    )
    body = ok(reply)
    assert body["operation"] == "C-STORE"
    assert (body["stored"], body["failed"]) == (1, 0)
    [entry] = body["instances"]
    assert entry["sop_instance_uid"] == ds.SOPInstanceUID
    assert entry["sop_class_uid"] == ds.SOPClassUID
    assert entry["stored"] is True and entry["status"]["code"] == 0
    assert "error_comment" not in entry["status"]
    assert orthanc_has(pacs.orthanc, ds.SOPInstanceUID)


async def test_store_multipart_of_several(gateway: Gateway, pacs: Pacs) -> None:
    instances = [make_instance(8, 1, 1, i) for i in (1, 2, 3)]
    body_bytes = multipart_body([("application/dicom", part10(ds)) for ds in instances])
    reply = await http(
        gateway.port,
        "POST",
        f"{PREFIX}/store",
        body_bytes,
        {"Content-Type": 'multipart/related; type="application/dicom"; boundary=test-boundary-7d1'},
    )
    body = ok(reply)
    assert (body["stored"], body["failed"]) == (3, 0)
    assert [e["sop_instance_uid"] for e in body["instances"]] == [
        ds.SOPInstanceUID for ds in instances
    ]
    assert all(e["stored"] and e["status"]["code"] == 0 for e in body["instances"])
    stored = orthanc_find(pacs.orthanc, "Instance", {"PatientID": "PID0008"})
    assert {m["SOPInstanceUID"] for m in stored} == {ds.SOPInstanceUID for ds in instances}


async def test_store_reports_each_failing_instance(gateway: Gateway, pacs: Pacs) -> None:
    good = make_instance(7, 1, 1, 1)
    no_series = make_instance(7, 1, 1, 2)
    del no_series.SeriesInstanceUID  # Orthanc refuses to index it: 0xA700
    private_class = make_instance(7, 1, 1, 3)
    private_class.SOPClassUID = "1.2.826.0.1.3680043.10.1234.99"
    private_class.file_meta.MediaStorageSOPClassUID = private_class.SOPClassUID
    parts = [("application/dicom", part10(ds)) for ds in (good, no_series, private_class)]
    reply = await http(
        gateway.port,
        "POST",
        PREFIX,
        multipart_body(parts, "b0undary"),
        {"Content-Type": "multipart/related; type=application/dicom; boundary=b0undary"},
    )
    assert reply.status == 502
    body = reply.json()
    assert (body["success"], body["stored"], body["failed"]) == (False, 1, 2)
    by_uid = {e["sop_instance_uid"]: e for e in body["instances"]}
    assert by_uid[good.SOPInstanceUID]["stored"] is True
    refused = by_uid[no_series.SOPInstanceUID]
    assert refused["stored"] is False
    assert refused["status"]["code"] == 0xA700 and refused["status"]["category"] == "failure"
    unsupported = by_uid[private_class.SOPInstanceUID]
    assert unsupported["stored"] is False
    assert "presentation context" in unsupported["error"]
    assert private_class.SOPClassUID in unsupported["error"]
    assert orthanc_has(pacs.orthanc, good.SOPInstanceUID)
    assert not orthanc_has(pacs.orthanc, no_series.SOPInstanceUID)


async def test_store_non_dicom_part_is_a_400_naming_the_part(gateway: Gateway, pacs: Pacs) -> None:
    first = make_instance(6, 1, 1, 1)
    parts = [("application/dicom", part10(first)), ("application/dicom", b"not a dicom file")]
    reply = await http(
        gateway.port,
        "POST",
        PREFIX,
        multipart_body(parts),
        {"Content-Type": 'multipart/related; type="application/dicom"; boundary=test-boundary-7d1'},
    )
    assert reply.status == 400
    body = reply.json()
    assert body["field"] == "body part 2"
    assert "not a DICOM Part 10 file" in body["message"]
    assert not orthanc_has(pacs.orthanc, first.SOPInstanceUID)  # nothing sent


# --------------------------------------------------------------------------------------------
# Harmony's own forms: the operation in the path, a DICOM JSON identifier as the body
# --------------------------------------------------------------------------------------------


async def test_harmony_forms(gateway: Gateway, pacs: Pacs) -> None:
    async with HttpClient(gateway.port) as client:
        echo = ok(await client.request("POST", f"{PREFIX}/echo"))
        assert echo["operation"] == "C-ECHO"

        identifier = {
            "0020000D": {"vr": "UI", "Value": [STUDY_11]},
            "00100010": {"vr": "PN"},
        }
        found = ok(await client.request("POST", f"{PREFIX}/find", json_body=identifier))
        [match] = found["matches"]
        assert found["level"] == "STUDY"
        assert match["00100010"]["Value"] == [{"Alphabetic": "DOE^JOHN1"}]

        series_identifier = {
            "0020000D": {"vr": "UI", "Value": [STUDY_11]},
            "0020000E": {"vr": "UI"},
        }
        series = ok(
            await client.request(
                "POST", PREFIX, json_body={"operation": "C-FIND", "identifier": series_identifier}
            )
        )
        assert series["level"] == "SERIES"  # derived from the keys, as for keywords
        assert values(series["matches"], "0020000E") == {
            series_instance_uid(1, 1, 1),
            series_instance_uid(1, 1, 2),
        }

        image = {"00080018": {"vr": "UI", "Value": [sop_instance_uid(1, 1, 1, 1)]}}
        level = {"00080052": {"vr": "CS", "Value": ["IMAGE"]}}
        moved = ok(
            await client.request(
                "POST",
                f"{PREFIX}/move",
                json_body={
                    **level,
                    "0020000D": {"vr": "UI", "Value": [STUDY_11]},
                    "0020000E": {"vr": "UI", "Value": [series_instance_uid(1, 1, 1)]},
                    **image,
                },
            )
        )
        assert [i["sop_instance_uid"] for i in moved["instances"]] == [sop_instance_uid(1, 1, 1, 1)]

        got = ok(
            await client.request(
                "POST", f"{PREFIX}/get", json_body={"StudyInstanceUID": study_instance_uid(1, 2)}
            )
        )
        assert got["completed"] == 6


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def _gateway_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "harmony_dimse", "serve", "--config", str(config)]


def test_serve_command_starts_answers_and_stops(pacs: Pacs, tmp_path: Path) -> None:
    config = write_gateway_config(
        tmp_path, backend_port=pacs.orthanc.dicom_port, incoming_port=free_port()
    )
    log = tmp_path / "stderr.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            _gateway_command(config),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as process,
    ):
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert "listening on http://127.0.0.1:" in banner, banner + log.read_text()
            port = int(banner.split("http://127.0.0.1:")[1].split()[0])
            health = f"http://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(health, timeout=10) as answer:
                assert answer.status == 200
                assert json.loads(answer.read())["status"] == "ok"
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{PREFIX}",
                data=b'{"operation": "C-ECHO"}',
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert json.loads(answer.read())["success"] is True
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_serve_command_config_error_is_one_line(tmp_path: Path) -> None:
    config = write_gateway_config(tmp_path, backend_port=70000, incoming_port=free_port())
    result = subprocess.run(
        _gateway_command(config), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert "x.toml" in line and "[backends.dicom_pacs.options]" in line and "port" in line, line
