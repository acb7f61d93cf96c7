"""The PACS on loopback against our own SCU: every service, cancels, failures, restarts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset

from harmony_dimse.data.files import encode_dataset
from harmony_dimse.net.association import ReceivedInstance, connect
from harmony_dimse.net.contexts import (
    COMMON_STORAGE_SOP_CLASSES,
    IMPLICIT_VR_LE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    UNCOMPRESSED,
    ContextSpec,
)
from harmony_dimse.net.errors import AssociationRejected, DimseFailure
from harmony_dimse.net.server import SCPAssociation, SCPHandlers, serve
from harmony_dimse.pacs import PACS
from harmony_dimse.pacs.attributes import describe_instance
from tests.corpus import (
    make_corpus,
    make_instance,
    pydicom_test_files,
    sop_instance_uid,
    study_instance_uid,
    write_corpus,
)
from tests.peers import free_port

EXPLICIT = "1.2.840.10008.1.2.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("source")
    write_corpus(folder, make_corpus())
    return folder


@pytest.fixture
async def pacs(tmp_path: Path, source: Path) -> AsyncIterator[PACS]:
    server = PACS(tmp_path / "store", ae_title="PACS", host="127.0.0.1", port=0)
    server.import_folder(source)
    async with server:
        yield server


async def _uids(pacs: PACS, query: dict[str, str], level: str, model: str = "STUDY") -> list[str]:
    unique = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID"}.get(level, "SOPInstanceUID")
    if level == "SERIES":
        unique = "SeriesInstanceUID"
    async with connect("127.0.0.1", pacs.port, called_aet="PACS") as assoc:
        return [
            str(getattr(ds, unique))
            async for ds in assoc.find(
                {**query, unique: query.get(unique, "")}, level=level, model=model
            )
        ]


async def test_store_find_and_restart(tmp_path: Path) -> None:
    datasets = [make_instance(7, 1, 1, i) for i in (1, 2, 3)]
    store = tmp_path / "store"
    async with PACS(store, ae_title="PACS", host="127.0.0.1", port=0) as pacs:
        async with connect("127.0.0.1", pacs.port, called_aet="PACS", datasets=datasets) as assoc:
            assert (await assoc.echo()).code == 0
            for ds in datasets:
                assert (await assoc.store(ds)).code == 0
        assert await _uids(pacs, {"PatientID": "PID0007"}, "STUDY") == [study_instance_uid(7, 1)]
    stored = sorted(store.rglob("*.dcm"))
    assert len(stored) == 3
    copy = pydicom.dcmread(stored[0])
    assert copy.PixelData == datasets[0].PixelData
    # a new PACS over the same folder keeps its index
    async with PACS(store, host="127.0.0.1", port=0) as again:
        assert await _uids(again, {}, "IMAGE") == [sop_instance_uid(7, 1, 1, i) for i in (1, 2, 3)]


@pytest.mark.parametrize(
    ("level", "model", "query", "expected"),
    [
        ("PATIENT", "PATIENT", {"PatientName": "doe*"}, ["PID0001", "PID0002"]),
        (
            "STUDY",
            "PATIENT",
            {"PatientID": "PID0002"},
            [study_instance_uid(2, 1), study_instance_uid(2, 2)],
        ),
        ("STUDY", "STUDY", {"StudyDate": "-20150601"}, [study_instance_uid(1, 1)]),
        (
            "SERIES",
            "STUDY",
            {"StudyInstanceUID": study_instance_uid(1, 2), "SeriesNumber": "2"},
            None,
        ),
        (
            "IMAGE",
            "STUDY",
            {"SOPInstanceUID": sop_instance_uid(2, 1, 2, 3)},
            [sop_instance_uid(2, 1, 2, 3)],
        ),
    ],
)
async def test_find_at_every_level(
    pacs: PACS, level: str, model: str, query: dict[str, str], expected: list[str] | None
) -> None:
    found = await _uids(pacs, query, level, model)
    if expected is None:
        assert len(found) == 1 and found[0].endswith(".1.2.2")
    else:
        assert found == expected


async def test_find_over_implicit_vr(pacs: PACS) -> None:
    contexts = [ContextSpec(STUDY_ROOT_FIND, (IMPLICIT_VR_LE,))]
    async with connect("127.0.0.1", pacs.port, called_aet="PACS", contexts=contexts) as assoc:
        results = [
            r
            async for r in assoc.find_raw(
                {"StudyInstanceUID": study_instance_uid(1, 1), "PatientName": "", "StudyDate": ""},
                level="STUDY",
            )
        ]
    assert len(results) == 1 and results[0].transfer_syntax == IMPLICIT_VR_LE
    ds = results[0].dataset()
    assert str(ds.PatientName) == "DOE^JOHN1" and ds.StudyDate == "20150509"


async def test_keys_it_cannot_match_give_a_warning_status(pacs: PACS) -> None:
    async with connect("127.0.0.1", pacs.port, called_aet="PACS") as assoc:
        results = [
            r
            async for r in assoc.find_raw(
                {"PatientID": "PID0001", "StudyInstanceUID": "", "InstanceNumber": "1"},
                level="STUDY",
            )
        ]
    assert len(results) == 2 and {r.status for r in results} == {0xFF01}


async def test_bad_identifier_is_refused_with_a_comment(pacs: PACS) -> None:
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = ""
    async with connect("127.0.0.1", pacs.port, called_aet="PACS") as assoc:
        with pytest.raises(DimseFailure) as err:
            async for _ in assoc.find(ds, model="STUDY"):
                pass
        assert err.value.status == 0xA900
        assert "Study Root" in (err.value.error_comment or "")
        assert (await assoc.echo()).code == 0


async def test_store_of_an_unusable_instance_fails(pacs: PACS) -> None:
    ds = make_instance(8, 1, 1, 1)
    del ds.StudyInstanceUID
    async with connect("127.0.0.1", pacs.port, called_aet="PACS", datasets=[ds]) as assoc:
        with pytest.raises(DimseFailure) as err:
            await assoc.store(ds)
    assert err.value.status == 0xC000
    assert pacs.index.counts()["instances"] == 26


async def test_find_cancel(tmp_path: Path) -> None:
    # a large result, so the C-CANCEL arrives while answers are still being sent
    pacs = PACS(tmp_path / "store", ae_title="PACS", host="127.0.0.1", port=0)
    template = describe_instance(encode_dataset(make_instance(1, 1, 1, 1), EXPLICIT), EXPLICIT)
    with pacs.index.transaction():
        for number in range(3000):
            template.sop_instance_uid = f"1.2.3.{number}"
            pacs.index.add(template, f"nowhere/{number}.dcm")
    statuses: list[int] = []
    find = pacs.config.handlers.find
    assert find is not None

    async def counted(msg: Any, assoc: SCPAssociation) -> AsyncIterator[Any]:
        async for response in find(msg, assoc):
            statuses.append(response[0])
            yield response

    pacs.config.handlers.find = counted  # type: ignore[assignment]
    async with pacs, connect("127.0.0.1", pacs.port, called_aet="PACS") as assoc:
        received = 0
        finding = assoc.find_raw({"SOPInstanceUID": ""}, level="IMAGE")
        async with contextlib.aclosing(finding):
            async for _ in finding:
                received += 1
                if received == 3:
                    break  # aclosing: C-CANCEL, then the SCU reads up to the final response
        assert 3 <= len(statuses) < 3000 and 0x0000 not in statuses  # the search stopped
        assert (await assoc.echo()).code == 0
        found = [r async for r in assoc.find_raw({"SOPInstanceUID": "1.2.3.2999"}, level="IMAGE")]
        assert len(found) == 1


async def test_get_converts_and_reports_what_it_could_not_send(pacs: PACS, tmp_path: Path) -> None:
    implicit = make_instance(9, 1, 1, 1)
    jpeg = pydicom.dcmread(pydicom_test_files()[0].parent / "SC_rgb_jpeg_gdcm.dcm")
    jpeg.StudyInstanceUID = study_instance_uid(9, 1)
    jpeg.PatientID = "PID0009"
    pacs.archive.ingest(encode_dataset(implicit, IMPLICIT_VR_LE), IMPLICIT_VR_LE)
    pacs.archive.ingest(encode_dataset(jpeg, "1.2.840.10008.1.2.4.70"), "1.2.840.10008.1.2.4.70")
    contexts = [
        ContextSpec(STUDY_ROOT_GET, (IMPLICIT_VR_LE,)),
        ContextSpec("1.2.840.10008.5.1.4.1.1.2", UNCOMPRESSED, scu_role=False, scp_role=True),
        ContextSpec(SECONDARY_CAPTURE, UNCOMPRESSED, scu_role=False, scp_role=True),
    ]
    received = tmp_path / "received"
    async with connect("127.0.0.1", pacs.port, called_aet="PACS", contexts=contexts) as assoc:
        progress = [
            p
            async for p in assoc.get(
                {"StudyInstanceUID": study_instance_uid(9, 1)}, level="STUDY", folder=received
            )
        ]
    final = progress[-1]
    assert final.status.code == 0xB000  # warning: one sent, one failed
    assert (final.completed, final.failed) == (1, 1)
    assert final.failed_instances == [str(jpeg.SOPInstanceUID)]
    (copy,) = received.glob("*.dcm")
    got = pydicom.dcmread(copy)
    assert got.file_meta.TransferSyntaxUID == EXPLICIT  # stored implicit, sent as accepted
    assert got.PixelData == implicit.PixelData


async def test_get_a_study(pacs: PACS, tmp_path: Path) -> None:
    received = tmp_path / "received"
    async with connect(
        "127.0.0.1",
        pacs.port,
        called_aet="PACS",
        get_storage_classes=COMMON_STORAGE_SOP_CLASSES,
    ) as assoc:
        progress = [
            p
            async for p in assoc.get(
                {"StudyInstanceUID": study_instance_uid(1, 2)}, level="STUDY", folder=received
            )
        ]
    final = progress[-1]
    assert final.final and final.status.code == 0 and final.completed == 6 and final.failed == 0
    assert [p.remaining for p in progress[:-1]] == [5, 4, 3, 2, 1]
    assert len(list(received.glob("*.dcm"))) == 6


async def test_move_cancel(pacs: PACS) -> None:
    arrived: list[str] = []
    gate = asyncio.Event()

    async def slow(instance: ReceivedInstance, assoc: SCPAssociation) -> int:
        arrived.append(instance.sop_instance_uid)
        if len(arrived) == 2:
            await gate.wait()  # the PACS waits for this answer when the C-CANCEL comes
        return 0

    destination = await serve("127.0.0.1", 0, ae_title="DEST", handlers=SCPHandlers(store=slow))
    pacs.add_destination("DEST", "127.0.0.1", destination.port)
    async with destination, connect("127.0.0.1", pacs.port, called_aet="PACS") as assoc:
        moving = assoc.move({"StudyInstanceUID": study_instance_uid(1, 1)}, "DEST")
        async with contextlib.aclosing(moving):
            async for progress in moving:
                assert progress.completed == 1 and progress.remaining == 5
                break  # aclosing: C-CANCEL, then the SCU reads up to the final response
        gate.set()
        assert (await assoc.echo()).code == 0
    assert len(arrived) == 2


async def test_move_to_a_known_destination(pacs: PACS) -> None:
    arrived: list[ReceivedInstance] = []

    async def keep(instance: ReceivedInstance, assoc: SCPAssociation) -> int:
        arrived.append(instance)
        return 0

    destination = await serve(
        "127.0.0.1", 0, ae_title="DEST", handlers=SCPHandlers(store=keep), check_called_aet=True
    )
    pacs.add_destination("DEST", "127.0.0.1", destination.port)
    async with (
        destination,
        connect("127.0.0.1", pacs.port, called_aet="PACS", calling_aet="MOVER") as assoc,
    ):
        progress = [
            p
            async for p in assoc.move(
                {"PatientID": "PID0002"}, "DEST", level="PATIENT", model="PATIENT", message_id=4242
            )
        ]
    assert progress[-1].completed == 12 and progress[-1].failed == 0
    assert len(arrived) == 12
    assert {(i.move_originator_aet, i.move_originator_message_id) for i in arrived} == {
        ("MOVER", 4242)
    }
    assert {i.calling_aet for i in arrived} == {"PACS"}


async def test_move_failures_say_why(pacs: PACS) -> None:
    pacs.add_destination("DOWN", "127.0.0.1", free_port())
    async with connect("127.0.0.1", pacs.port, called_aet="PACS") as assoc:
        with pytest.raises(DimseFailure) as unknown:
            async for _ in assoc.move({"StudyInstanceUID": study_instance_uid(1, 1)}, "NOBODY"):
                pass
        assert unknown.value.status == 0xA801
        assert "NOBODY" in (unknown.value.error_comment or "")
        with pytest.raises(DimseFailure) as down:
            async for _ in assoc.move({"StudyInstanceUID": study_instance_uid(1, 1)}, "DOWN"):
                pass
        assert down.value.status == 0xA702
        assert "refused" in (down.value.error_comment or "")
        # nothing matched: success with no sub-operations
        progress = [p async for p in assoc.move({"StudyInstanceUID": "1.2.3.4"}, "DOWN")]
        assert progress[-1].status.code == 0 and progress[-1].completed == 0


async def test_calling_aet_filter(tmp_path: Path) -> None:
    async with PACS(
        tmp_path / "store",
        ae_title="PACS",
        host="127.0.0.1",
        port=0,
        allowed_calling_aets={"FRIEND"},
        check_called_aet=True,
    ) as pacs:
        with pytest.raises(AssociationRejected):
            async with connect("127.0.0.1", pacs.port, called_aet="PACS", calling_aet="STRANGER"):
                pass
        with pytest.raises(AssociationRejected):
            async with connect("127.0.0.1", pacs.port, called_aet="OTHER", calling_aet="FRIEND"):
                pass
        async with connect("127.0.0.1", pacs.port, called_aet="PACS", calling_aet="FRIEND") as a:
            assert (await a.echo()).code == 0
        await asyncio.sleep(0)
