"""Other implementations against the PACS: DCMTK SCUs, pynetdicom, Orthanc moving both ways."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset

from harmony_dimse.net.association import connect
from harmony_dimse.pacs import PACS
from tests.corpus import (
    LATIN1_CHARSET,
    UTF8_CHARSET,
    make_corpus,
    make_instance,
    patient_id,
    pydicom_test_files,
    series_instance_uid,
    sop_instance_uid,
    study_instance_uid,
    write_corpus,
)
from tests.peers import (
    LOCALHOST,
    OrthancPeer,
    echoscu,
    findscu_values,
    free_port,
    run_tool,
    storescu,
)

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"), make_corpus())


@pytest.fixture
async def pacs(tmp_path: Path, corpus: list[Path]) -> AsyncIterator[PACS]:
    server = PACS(tmp_path / "store", ae_title="PACS", host=LOCALHOST, port=0)
    server.import_folder(corpus[0].parent)
    async with server:
        yield server


# --- DCMTK ----------------------------------------------------------------------------------------


async def test_dcmtk_echoscu_and_storescu(tmp_path: Path, corpus: list[Path]) -> None:
    files = [*corpus[:4], *pydicom_test_files()]
    async with PACS(tmp_path / "store", ae_title="PACS", host=LOCALHOST, port=0) as pacs:
        echo = await asyncio.to_thread(echoscu, "PACS", pacs.port)
        assert echo.returncode == 0, echo.stderr
        stored = await asyncio.to_thread(storescu, files, "PACS", pacs.port)
        assert stored.returncode == 0, stored.stdout + stored.stderr
        assert pacs.index.counts()["instances"] == 6
        uids = await asyncio.to_thread(
            findscu_values,
            "PACS",
            pacs.port,
            ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID", "PatientName"],
            "0008,0018",
        )
    assert sorted(uids) == sorted(str(pydicom.dcmread(f).SOPInstanceUID) for f in files)


@pytest.mark.parametrize(
    ("keys", "tag", "study_root", "expected"),
    [
        (
            ["QueryRetrieveLevel=PATIENT", "PatientID", "PatientName=DOE*"],
            "0010,0020",
            False,
            ["PID0001", "PID0002"],
        ),
        (
            ["QueryRetrieveLevel=STUDY", "PatientID=PID0002", "StudyInstanceUID"],
            "0020,000D",
            False,
            [study_instance_uid(2, 1), study_instance_uid(2, 2)],
        ),
        (
            ["QueryRetrieveLevel=STUDY", "StudyDate=20150101-20150630", "StudyInstanceUID"],
            "0020,000D",
            True,
            [study_instance_uid(1, 1), study_instance_uid(1, 2)],
        ),
        (
            [
                "QueryRetrieveLevel=SERIES",
                f"StudyInstanceUID={study_instance_uid(1, 1)}",
                "SeriesNumber=2",
                "SeriesInstanceUID",
            ],
            "0020,0011",
            True,
            ["2"],
        ),
        (
            [
                "QueryRetrieveLevel=IMAGE",
                f"StudyInstanceUID={study_instance_uid(2, 2)}",
                "InstanceNumber=3",
                "SOPInstanceUID",
            ],
            "0008,0018",
            True,
            [sop_instance_uid(2, 2, 1, 3), sop_instance_uid(2, 2, 2, 3)],
        ),
    ],
)
async def test_dcmtk_findscu(
    pacs: PACS, keys: list[str], tag: str, study_root: bool, expected: list[str]
) -> None:
    values = await asyncio.to_thread(
        findscu_values, "PACS", pacs.port, keys, tag, study_root=study_root
    )
    assert sorted(values) == sorted(expected)


async def test_dcmtk_movescu_and_getscu(pacs: PACS, tmp_path: Path) -> None:
    move_port = free_port()
    pacs.add_destination("MOVESCU", LOCALHOST, move_port)
    moved = tmp_path / "moved"
    moved.mkdir()
    result = await asyncio.to_thread(
        run_tool,
        "movescu",
        "-S",
        "-aet", "MOVESCU",
        "-aec", "PACS",
        "-aem", "MOVESCU",
        "--port", str(move_port),
        "-od", str(moved),
        "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study_instance_uid(1, 2)}",
        LOCALHOST, str(pacs.port),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list(moved.iterdir())) == 6
    got = tmp_path / "got"
    got.mkdir()
    result = await asyncio.to_thread(
        run_tool,
        "getscu",
        "-P",
        "-aec", "PACS",
        "-od", str(got),
        "-k", "QueryRetrieveLevel=SERIES",
        "-k", f"PatientID={patient_id(2)}",
        "-k", f"StudyInstanceUID={study_instance_uid(2, 1)}",
        "-k", f"SeriesInstanceUID={series_instance_uid(2, 1, 1)}",
        LOCALHOST, str(pacs.port),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    received = sorted(str(pydicom.dcmread(f).SOPInstanceUID) for f in got.iterdir())
    assert received == [sop_instance_uid(2, 1, 1, i) for i in (1, 2, 3)]


async def test_dcmtk_movescu_to_unknown_destination(pacs: PACS) -> None:
    result = await asyncio.to_thread(
        run_tool,
        "movescu",
        "-v",
        "-S",
        "-aec", "PACS",
        "-aem", "NOWHERE",
        "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study_instance_uid(1, 2)}",
        LOCALHOST, str(pacs.port),
    )  # fmt: skip
    assert "Refused: MoveDestinationUnknown" in result.stdout + result.stderr


# --- pynetdicom -----------------------------------------------------------------------------------


def _pynetdicom_find(port: int) -> list[str]:
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        PatientRootQueryRetrieveInformationModelFind,
    )

    ae = AE(ae_title="PYNETSCU")
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(LOCALHOST, port, ae_title="PACS")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = ""
    query.PatientName = "*"
    names = []
    for status, identifier in assoc.send_c_find(
        query, PatientRootQueryRetrieveInformationModelFind
    ):
        if status.Status in (0xFF00, 0xFF01):
            names.append(str(identifier.PatientName))
    assoc.release()
    return names


def _pynetdicom_get(
    port: int, study_uid: str, cancel_at: int | None
) -> tuple[list[int], list[str]]:
    """C-GET a study with pynetdicom; with ``cancel_at``, C-CANCEL while that instance arrives."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        CTImageStorage,
        StudyRootQueryRetrieveInformationModelGet,
    )

    received: list[str] = []
    holder: dict[str, Any] = {}
    lock = threading.Lock()

    def on_store(event: Any) -> int:
        with lock:
            received.append(str(event.dataset.SOPInstanceUID))
            if cancel_at is not None and len(received) == cancel_at:
                assoc = holder["assoc"]
                context = next(
                    c
                    for c in assoc.accepted_contexts
                    if c.abstract_syntax == StudyRootQueryRetrieveInformationModelGet
                )
                assoc.send_c_cancel(7, context.context_id)
        return 0x0000

    ae = AE(ae_title="PYNETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        LOCALHOST,
        port,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    holder["assoc"] = assoc
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    statuses = [
        int(status.Status)
        for status, _ in assoc.send_c_get(
            query, StudyRootQueryRetrieveInformationModelGet, msg_id=7
        )
        if status
    ]
    assoc.release()
    return statuses, received


async def test_pynetdicom_find_and_get(pacs: PACS) -> None:
    names = await asyncio.to_thread(_pynetdicom_find, pacs.port)
    assert sorted(names)[:2] == ["DOE^JOHN1", "DOE^JOHN2"] and len(names) == 4
    statuses, received = await asyncio.to_thread(
        _pynetdicom_get, pacs.port, study_instance_uid(1, 1), None
    )
    assert statuses[-1] == 0x0000 and statuses[:-1] == [0xFF00] * 5
    assert sorted(received) == sorted(
        sop_instance_uid(1, 1, s, i) for s in (1, 2) for i in (1, 2, 3)
    )


async def test_pynetdicom_get_cancel(pacs: PACS) -> None:
    statuses, received = await asyncio.to_thread(
        _pynetdicom_get, pacs.port, study_instance_uid(2, 2), 2
    )
    assert statuses[-1] == 0xFE00
    assert len(received) == 2
    async with connect(LOCALHOST, pacs.port, called_aet="PACS") as assoc:
        assert (await assoc.echo()).code == 0


# --- Orthanc --------------------------------------------------------------------------------------

PACS_PORT = free_port()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    with OrthancPeer(
        workdir=tmp_path_factory.mktemp("orthanc"),
        modalities={"pacs": ["PACS", LOCALHOST, PACS_PORT]},
        extra={"DefaultEncoding": "Utf8"},
    ) as peer:
        yield peer


async def test_orthanc_queries_and_moves_from_the_pacs(
    orthanc: OrthancPeer, tmp_path: Path, corpus: list[Path]
) -> None:
    pacs = PACS(
        tmp_path / "store",
        ae_title="PACS",
        host=LOCALHOST,
        port=PACS_PORT,
        destinations={"ORTHANC": (LOCALHOST, orthanc.dicom_port)},
    )
    pacs.import_folder(corpus[0].parent)
    uid = study_instance_uid(2, 1)
    async with pacs:
        answers = await asyncio.to_thread(
            orthanc.rest_json,
            "POST",
            "/modalities/pacs/query",
            {"Level": "Study", "Query": {"PatientID": "PID000*", "StudyInstanceUID": ""}},
        )
        found = await asyncio.to_thread(
            orthanc.rest_json, "GET", f"{answers['Path']}/answers?expand"
        )
        assert sorted(a["0020,000d"]["Value"] for a in found) == sorted(
            [study_instance_uid(p, s) for p in (1, 2) for s in (1, 2)]
            + [study_instance_uid(3, 1), study_instance_uid(4, 1)]
        )
        await asyncio.to_thread(
            orthanc.rest_json,
            "POST",
            "/modalities/pacs/move",
            {"Level": "Study", "Resources": [{"StudyInstanceUID": uid}], "TargetAet": "ORTHANC"},
        )
    studies = await asyncio.to_thread(orthanc.rest_json, "GET", "/studies?expand")
    (study,) = [s for s in studies if s["MainDicomTags"]["StudyInstanceUID"] == uid]
    instances = await asyncio.to_thread(
        orthanc.rest_json, "GET", f"/studies/{study['ID']}/instances"
    )
    assert len(instances) == 6


async def test_orthanc_moves_to_the_pacs(orthanc: OrthancPeer, tmp_path: Path) -> None:
    instances = [make_instance(6, 1, 1, i) for i in (1, 2, 3)]
    instances += [
        make_instance(7, 1, 1, 1, charset=LATIN1_CHARSET),
        make_instance(8, 1, 1, 1, charset=UTF8_CHARSET),
    ]
    source = write_corpus(tmp_path / "source", instances)
    for path in source:
        await asyncio.to_thread(orthanc.upload, path)
    async with PACS(tmp_path / "store", ae_title="PACS", host=LOCALHOST, port=PACS_PORT) as pacs:
        async with connect(LOCALHOST, orthanc.dicom_port, called_aet="ORTHANC") as assoc:
            for patient in (6, 7, 8):
                progress = [
                    p
                    async for p in assoc.move(
                        {"StudyInstanceUID": study_instance_uid(patient, 1)}, "PACS"
                    )
                ]
                assert progress[-1].failed == 0 and progress[-1].completed >= 1
        async with connect(LOCALHOST, pacs.port, called_aet="PACS") as assoc:
            names = [
                json.dumps(str(ds.PatientName), ensure_ascii=False)
                async for ds in assoc.find(
                    {"PatientName": "", "StudyInstanceUID": ""}, level="STUDY"
                )
            ]
        assert pacs.index.counts()["instances"] == 5
    assert sorted(names) == ['"DOE^JOHN6"', '"MÜLLER^JÜRGEN"', '"王^小東"']
