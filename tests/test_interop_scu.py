"""Our SCU against real peers: Orthanc, DCMTK storescp and dcmqrscp, and pynetdicom's SCP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from harmony_dimse.net.association import connect
from harmony_dimse.net.contexts import COMMON_STORAGE_SOP_CLASSES
from harmony_dimse.net.errors import AssociationRejected, DimseFailure
from harmony_dimse.net.server import serve
from tests.corpus import make_corpus, make_instance, patient_id, pydicom_test_files, write_corpus
from tests.peers import DcmQrSCP, OrthancPeer, StoreSCP, free_port

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def loaded_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancPeer, int]]:
    """Orthanc holding the synthetic corpus, knowing our SCP as modality HARMONY (port returned)."""
    scp_port = free_port()
    corpus = tmp_path_factory.mktemp("corpus")
    write_corpus(corpus, make_corpus())
    with OrthancPeer(
        workdir=tmp_path_factory.mktemp("orthanc"),
        modalities={"harmony": ["HARMONY", "127.0.0.1", scp_port]},
    ) as orthanc:
        orthanc.upload_dir(corpus)
        yield orthanc, scp_port


async def test_orthanc_echo(loaded_orthanc: tuple[OrthancPeer, int]) -> None:
    orthanc, _ = loaded_orthanc
    async with connect("127.0.0.1", orthanc.dicom_port, called_aet="ORTHANC") as assoc:
        assert (await assoc.echo()).code == 0
        assert assoc.peer_implementation_class_uid


@pytest.mark.parametrize(
    ("level", "model", "query", "key", "expected"),
    [
        (
            "PATIENT",
            "PATIENT",
            {"PatientID": "PID0001", "PatientName": ""},
            "PatientID",
            {"PID0001"},
        ),
        (
            "STUDY",
            "STUDY",
            {"PatientID": "PID0002", "StudyInstanceUID": ""},
            "PatientID",
            {"PID0002"},
        ),
        ("SERIES", "STUDY", None, "SeriesNumber", {"1", "2"}),
        ("IMAGE", "STUDY", None, "InstanceNumber", {"1", "2", "3"}),
    ],
)
async def test_orthanc_find_every_level(
    loaded_orthanc: tuple[OrthancPeer, int],
    level: str,
    model: str,
    query: dict[str, str] | None,
    key: str,
    expected: set[str],
) -> None:
    orthanc, _ = loaded_orthanc
    first = make_instance(1, 1, 1, 1)
    if query is None:
        query = {"StudyInstanceUID": str(first.StudyInstanceUID), key: ""}
        if level == "IMAGE":
            query["SeriesInstanceUID"] = str(first.SeriesInstanceUID)
            query["SOPInstanceUID"] = ""
        else:
            query["SeriesInstanceUID"] = ""
    async with connect("127.0.0.1", orthanc.dicom_port, called_aet="ORTHANC") as assoc:
        matches = [m async for m in assoc.find(query, level=level, model=model)]
    assert {str(m.get(key, "")) for m in matches} == expected
    if level == "STUDY":
        assert len(matches) == 2  # two studies for that patient
        assert all(m.StudyInstanceUID for m in matches)


async def test_orthanc_find_wildcard_and_charsets(loaded_orthanc: tuple[OrthancPeer, int]) -> None:
    orthanc, _ = loaded_orthanc
    async with connect("127.0.0.1", orthanc.dicom_port, called_aet="ORTHANC") as assoc:
        matches = [
            m
            async for m in assoc.find({"PatientName": "*", "PatientID": "", "StudyInstanceUID": ""})
        ]
    assert len(matches) == 2 * 2 + 2
    names = {str(m.PatientName) for m in matches}
    assert any("Ü" in n or "ü" in n for n in names), names


async def test_orthanc_find_cancel_keeps_association(
    loaded_orthanc: tuple[OrthancPeer, int],
) -> None:
    orthanc, _ = loaded_orthanc
    async with connect("127.0.0.1", orthanc.dicom_port, called_aet="ORTHANC") as assoc:
        results = assoc.find({"StudyInstanceUID": ""}, level="STUDY")
        first = await results.__anext__()
        assert first.StudyInstanceUID
        await results.aclose()  # sends C-CANCEL and drains to the final response
        assert assoc.is_open
        assert (await assoc.echo()).code == 0


async def test_orthanc_move_to_our_scp(
    loaded_orthanc: tuple[OrthancPeer, int], tmp_path: Path
) -> None:
    orthanc, scp_port = loaded_orthanc
    study = make_instance(2, 1, 1, 1).StudyInstanceUID
    server = await serve("127.0.0.1", scp_port, ae_title="HARMONY", storage_dir=tmp_path)
    async with server, connect("127.0.0.1", orthanc.dicom_port, called_aet="ORTHANC") as assoc:
        progress = [
            p async for p in assoc.move({"StudyInstanceUID": str(study)}, "HARMONY", level="STUDY")
        ]
    final = progress[-1]
    assert final.final and final.status.code == 0
    assert final.completed == 6 and final.failed == 0
    files = sorted(tmp_path.glob("*.dcm"))
    assert len(files) == 6
    assert {str(pydicom.dcmread(f).StudyInstanceUID) for f in files} == {str(study)}


async def test_orthanc_move_unknown_destination_is_a_failure(
    loaded_orthanc: tuple[OrthancPeer, int],
) -> None:
    orthanc, _ = loaded_orthanc
    study = make_instance(2, 1, 1, 1).StudyInstanceUID
    async with connect("127.0.0.1", orthanc.dicom_port, called_aet="ORTHANC") as assoc:
        with pytest.raises(DimseFailure) as err:
            async for _ in assoc.move({"StudyInstanceUID": str(study)}, "NOBODY", level="STUDY"):
                pass
    assert err.value.category == "failure"
    assert err.value.status in (0xA801, 0xC000) or err.value.status >> 12 == 0xC


async def test_orthanc_get(loaded_orthanc: tuple[OrthancPeer, int], tmp_path: Path) -> None:
    orthanc, _ = loaded_orthanc
    series = make_instance(1, 2, 1, 1)
    seen: list[str] = []
    async with connect(
        "127.0.0.1",
        orthanc.dicom_port,
        called_aet="ORTHANC",
        get_storage_classes=COMMON_STORAGE_SOP_CLASSES,
    ) as assoc:
        progress = [
            p
            async for p in assoc.get(
                {"StudyInstanceUID": str(series.StudyInstanceUID)},
                level="STUDY",
                folder=tmp_path,
                on_instance=lambda inst: seen.append(inst.sop_instance_uid),
            )
        ]
    assert progress[-1].final and progress[-1].completed == 6
    assert len(seen) == 6
    for uid in seen:
        ds = pydicom.dcmread(tmp_path / f"{uid}.dcm")
        assert ds.PatientID == patient_id(1)


async def test_orthanc_store(orthanc: OrthancPeer, tmp_path: Path) -> None:
    files = pydicom_test_files() + write_corpus(
        tmp_path, [make_instance(9, 1, 1, i) for i in range(4)]
    )
    async with connect(
        "127.0.0.1", orthanc.dicom_port, called_aet="ORTHANC", datasets=files
    ) as assoc:
        for f in files:
            assert (await assoc.store(f)).category == "success"
    assert orthanc.count_instances() == len(files)


async def test_orthanc_checks_called_aet(orthanc_factory: Any) -> None:
    orthanc = orthanc_factory(check_called_aet=True)
    with pytest.raises(AssociationRejected) as err:
        async with connect("127.0.0.1", orthanc.dicom_port, called_aet="WRONG"):
            pass
    assert "called AE title not recognized" in str(err.value)


async def test_dcmtk_storescp_receives(storescp_factory: Any, tmp_path: Path) -> None:
    scp: StoreSCP = storescp_factory(ignore=False)
    files = pydicom_test_files() + write_corpus(
        tmp_path, [make_instance(8, 1, 1, i, rows=256, cols=256) for i in range(3)]
    )
    async with connect(
        "127.0.0.1", scp.port, called_aet=scp.aet, datasets=files, max_pdu=16384
    ) as assoc:
        assert (await assoc.echo()).code == 0
        for f in files:
            await assoc.store(f)
    received = scp.received_files()
    assert len(received) == len(files)
    want = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in files}
    for r in received:
        ds = pydicom.dcmread(r)
        assert ds.PixelData == want[str(ds.SOPInstanceUID)].PixelData


async def test_dcmtk_dcmqrscp_find_and_move(dcmqrscp_factory: Any, tmp_path: Path) -> None:
    scp_port = free_port()
    qr: DcmQrSCP = dcmqrscp_factory(move_destinations={"HARMONY": ("127.0.0.1", scp_port)})
    files = write_corpus(
        tmp_path / "src", [make_instance(4, st, 1, i) for st in (1, 2) for i in (1, 2)]
    )
    qr.index_files(files)
    async with connect("127.0.0.1", qr.port, called_aet=qr.aet, max_pdu=16384) as assoc:
        studies = [
            m async for m in assoc.find({"PatientID": "", "StudyInstanceUID": ""}, level="STUDY")
        ]
        assert len(studies) == 2
        server = await serve("127.0.0.1", scp_port, ae_title="HARMONY", storage_dir=tmp_path / "in")
        async with server:
            uid = str(make_instance(4, 2, 1, 1).StudyInstanceUID)
            progress = [
                p
                async for p in assoc.move(
                    {"PatientID": patient_id(4), "StudyInstanceUID": uid}, "HARMONY", level="STUDY"
                )
            ]
    assert progress[-1].completed == 2
    assert len(list((tmp_path / "in").glob("*.dcm"))) == 2


def _start_pynetdicom_scp(received: list[Any]) -> tuple[Any, int]:
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind,
        Verification,
    )

    def on_store(event: Any) -> int:
        received.append(event.dataset)
        return 0x0000

    def on_find(event: Any) -> Iterator[tuple[int, Any]]:
        for i in range(3):
            ds = pydicom.Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.StudyInstanceUID = f"1.2.3.{i}"
            ds.PatientName = "PYNET^DICOM"
            yield 0xFF00, ds

    ae = AE(ae_title="PYNETSCP")
    ae.add_supported_context(Verification)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    for ctx in AllStoragePresentationContexts:
        ae.add_supported_context(ctx.abstract_syntax)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_C_FIND, on_find)],
    )
    return server, port


async def test_pynetdicom_scp(tmp_path: Path) -> None:
    received: list[Any] = []
    server, port = _start_pynetdicom_scp(received)
    try:
        ds = make_instance(5, 1, 1, 1)
        async with connect("127.0.0.1", port, called_aet="PYNETSCP", datasets=[ds]) as assoc:
            assert (await assoc.echo()).code == 0
            await assoc.store(ds)
            matches = [m async for m in assoc.find({"StudyInstanceUID": ""}, level="STUDY")]
        assert [m.StudyInstanceUID for m in matches] == ["1.2.3.0", "1.2.3.1", "1.2.3.2"]
        assert str(received[0].SOPInstanceUID) == str(ds.SOPInstanceUID)
    finally:
        await asyncio.to_thread(server.shutdown)
