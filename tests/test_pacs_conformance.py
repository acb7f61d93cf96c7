"""C-FIND conformance with Orthanc as the oracle: one corpus in both, the same queries, compared.

Answers are compared as sets of identifiers restricted to the keys the query asked for. Orthanc runs
with ``DefaultEncoding: Utf8`` so that names outside Latin-1 survive its answers (by default it
answers in Latin-1; the PACS answers in each instance's own character set). Where the two differ on
purpose, ``test_known_differences`` pins both behaviours down.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.datadict import tag_for_keyword

from harmony_dimse.data.dicomjson import dataset_bytes_to_json
from harmony_dimse.net.association import connect
from harmony_dimse.net.contexts import IMPLICIT_VR_LE
from harmony_dimse.pacs import PACS
from harmony_dimse.pacs.storage import Archive
from tests.corpus import (
    CT_IMAGE_STORAGE,
    SECONDARY_CAPTURE_IMAGE_STORAGE,
    make_corpus,
    make_instance,
    series_instance_uid,
    sop_instance_uid,
    study_instance_uid,
    write_corpus,
)
from tests.peers import LOCALHOST, OrthancPeer

pytestmark = pytest.mark.interop

Query = tuple[str, str, dict[str, Any]]  # level, model, keys (keyword -> value or list)

S11, S12, S21, S22 = (study_instance_uid(p, s) for p in (1, 2) for s in (1, 2))


def _code(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    return item


QUERIES: list[Query] = [
    # universal matching, every level
    ("PATIENT", "PATIENT", {"PatientName": "", "PatientID": "", "PatientBirthDate": ""}),
    (
        "STUDY",
        "STUDY",
        {"PatientName": "", "PatientID": "", "StudyInstanceUID": "", "StudyDate": ""},
    ),
    ("SERIES", "STUDY", {"SeriesInstanceUID": "", "Modality": "", "SeriesNumber": ""}),
    ("IMAGE", "STUDY", {"SOPInstanceUID": "", "SOPClassUID": "", "InstanceNumber": ""}),
    # single value, person names without regard to case, wildcards
    ("STUDY", "STUDY", {"PatientName": "DOE^JOHN1", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientName": "doe^john1", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientName": "DOE*", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientName": "*JOHN?", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientName": "D?E^*", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientName": "DOE", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientID": "PID0001", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientID": "pid0001", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientID": "PID000*", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"AccessionNumber": "ACC0001*", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"StudyDescription": "Study 1*", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"StudyDescription": "study 1*", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"ReferringPhysicianName": "referrer*", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"StudyID": "S1", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientSex": "F", "PatientBirthDate": "", "StudyInstanceUID": ""}),
    # character sets: names stored in Latin-1 and UTF-8, queries in UTF-8
    ("STUDY", "STUDY", {"PatientName": "müller*", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientName": "MÜLLER^JÜRGEN", "StudyDescription": ""}),
    ("STUDY", "STUDY", {"PatientName": "MULLER*", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientName": "王*", "StudyDescription": "", "StudyInstanceUID": ""}),
    # date and time: single values and ranges
    ("STUDY", "STUDY", {"StudyDate": "20150509", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"StudyDate": "20150101-20170101", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"StudyDate": "-20160101", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"StudyDate": "20160101-", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"StudyTime": "090713", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"StudyTime": "0907", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"StudyTime": "0900-091000", "StudyInstanceUID": ""}),
    ("PATIENT", "PATIENT", {"PatientBirthDate": "19400101-19430101", "PatientID": ""}),
    ("IMAGE", "STUDY", {"SOPInstanceUID": "", "ContentDate": "20150101-20160101"}),
    # lists: of UIDs, and several values of other keys
    ("STUDY", "STUDY", {"StudyInstanceUID": [S11, S22]}),
    (
        "IMAGE",
        "STUDY",
        {"SOPInstanceUID": [sop_instance_uid(1, 1, 1, 1), sop_instance_uid(2, 2, 2, 3)]},
    ),
    ("STUDY", "STUDY", {"StudyDate": ["20150509", "20150609"], "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"PatientName": ["DOE^JOHN1", "DOE^JOHN2"], "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"ModalitiesInStudy": "MR", "StudyInstanceUID": ""}),
    ("STUDY", "STUDY", {"ModalitiesInStudy": ["CT", "MR"], "StudyInstanceUID": ""}),
    # computed attributes
    (
        "STUDY",
        "STUDY",
        {
            "StudyInstanceUID": "",
            "ModalitiesInStudy": "",
            "NumberOfStudyRelatedSeries": "",
            "NumberOfStudyRelatedInstances": "",
        },
    ),
    (
        "PATIENT",
        "PATIENT",
        {
            "PatientSex": "M",
            "PatientID": "",
            "NumberOfPatientRelatedStudies": "",
            "NumberOfPatientRelatedSeries": "",
            "NumberOfPatientRelatedInstances": "",
        },
    ),
    ("SERIES", "STUDY", {"SeriesDescription": "Ser*", "NumberOfSeriesRelatedInstances": ""}),
    # hierarchical queries in both models
    ("STUDY", "PATIENT", {"PatientID": "PID0002", "StudyInstanceUID": "", "StudyDate": ""}),
    (
        "SERIES",
        "STUDY",
        {"StudyInstanceUID": S11, "SeriesInstanceUID": "", "SeriesDescription": ""},
    ),
    ("SERIES", "STUDY", {"Modality": "MR", "SeriesInstanceUID": ""}),
    ("SERIES", "STUDY", {"SeriesNumber": "2", "SeriesInstanceUID": ""}),
    (
        "SERIES",
        "PATIENT",
        {"PatientID": "PID0001", "StudyInstanceUID": S12, "SeriesInstanceUID": ""},
    ),
    (
        "IMAGE",
        "STUDY",
        {
            "StudyInstanceUID": S11,
            "SeriesInstanceUID": series_instance_uid(1, 1, 1),
            "SOPInstanceUID": "",
            "InstanceNumber": "2",
        },
    ),
    (
        "IMAGE",
        "PATIENT",
        {
            "PatientID": "PID0002",
            "StudyInstanceUID": S21,
            "SeriesInstanceUID": series_instance_uid(2, 1, 2),
            "SOPInstanceUID": "",
        },
    ),
    ("IMAGE", "STUDY", {"SOPInstanceUID": "", "SOPClassUID": SECONDARY_CAPTURE_IMAGE_STORAGE}),
    # sequences as return keys
    ("STUDY", "STUDY", {"StudyInstanceUID": S11, "ProcedureCodeSequence": []}),
]


def _corpus() -> list[Dataset]:
    datasets = make_corpus()
    datasets += [make_instance(5, 1, 1, 1, modality="MR"), make_instance(5, 1, 2, 1)]
    code = _code("24725-4")
    code.CodingSchemeDesignator = "LN"
    code.CodeMeaning = "CT HEAD"
    for ds in datasets:
        if ds.StudyInstanceUID == S11:
            ds.ProcedureCodeSequence = [code]
    return datasets


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_corpus(tmp_path_factory.mktemp("conformance"), _corpus())


@pytest.fixture(scope="module")
def oracle(
    tmp_path_factory: pytest.TempPathFactory, corpus_files: list[Path]
) -> Iterator[OrthancPeer]:
    with OrthancPeer(
        workdir=tmp_path_factory.mktemp("orthanc"), extra={"DefaultEncoding": "Utf8"}
    ) as peer:
        for path in corpus_files:
            peer.upload(path)
        yield peer


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory, corpus_files: list[Path]) -> Path:
    root = tmp_path_factory.mktemp("pacs")
    archive = Archive(root)
    report = archive.import_folder(corpus_files[0].parent)
    assert report.imported == len(corpus_files)
    archive.close()
    return root


@pytest.fixture
async def pacs(storage: Path) -> AsyncIterator[PACS]:
    async with PACS(storage, ae_title="PACS", host=LOCALHOST, port=0) as server:
        yield server


def _identifier(level: str, keys: dict[str, Any]) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    ds.QueryRetrieveLevel = level
    if any(not str(v).isascii() for v in keys.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


async def _answers(port: int, aet: str, query: Query) -> list[dict[str, Any]]:
    level, model, keys = query
    async with connect(LOCALHOST, port, called_aet=aet) as assoc:
        return [
            dataset_bytes_to_json(result.data, implicit_vr=result.transfer_syntax == IMPLICIT_VR_LE)
            async for result in assoc.find_raw(_identifier(level, keys), model=model)
        ]


def _as_set(answers: list[dict[str, Any]], query: Query) -> set[tuple[Any, ...]]:
    wanted = sorted(f"{tag_for_keyword(keyword):08X}" for keyword in query[2])
    rows = set()
    for answer in answers:
        row = []
        for key in wanted:
            values = answer.get(key, {}).get("Value")
            if values and key in ("00080061", "00080062"):  # sets, in any order
                values = sorted(values)
            row.append((key, json.dumps(values, sort_keys=True, ensure_ascii=False)))
        rows.add(tuple(row))
    return rows


@pytest.mark.parametrize(
    "query", QUERIES, ids=[f"{q[1][0]}R-{q[0]}-{'-'.join(q[2])}" for q in QUERIES]
)
async def test_same_answers_as_orthanc(pacs: PACS, oracle: OrthancPeer, query: Query) -> None:
    ours = await _answers(pacs.port, "PACS", query)
    theirs = await _answers(oracle.dicom_port, oracle.aet, query)
    assert len(ours) == len(theirs)
    assert _as_set(ours, query) == _as_set(theirs, query)
    wanted = {f"{tag_for_keyword(keyword):08X}" for keyword in query[2]}
    assert all(wanted <= set(answer) for answer in ours)  # every asked key is answered


# (query, what the PACS answers: the matched Study Instance UIDs, or None for "all of them")
KNOWN_DIFFERENCES: list[tuple[str, Query, set[str]]] = [
    (
        # a range's upper bound "0907" covers 09:07:00-09:07:59; Orthanc ends it at 09:07:00
        "time range upper bound",
        ("STUDY", "STUDY", {"StudyTime": "0900-0907", "StudyInstanceUID": ""}),
        {S11},
    ),
    (
        # wildcards keep their meaning inside a list of values; Orthanc compares the items literally
        "wildcards inside a list",
        (
            "STUDY",
            "STUDY",
            {"StudyDescription": ["Study 1 of patient 1", "Study 2*"], "StudyInstanceUID": ""},
        ),
        {S11, S12, S22},
    ),
    (
        # trailing empty name components are insignificant (PS3.5 6.2); Orthanc compares literally
        "trailing name delimiters",
        ("STUDY", "STUDY", {"PatientName": "DOE^JOHN1^^", "StudyInstanceUID": ""}),
        {S11, S12},
    ),
    (
        # sequence matching (PS3.4 C.2.2.2.6); Orthanc 1.10 ignores sequence keys when matching
        "sequence matching",
        ("STUDY", "STUDY", {"ProcedureCodeSequence": [_code("24725-4")], "StudyInstanceUID": ""}),
        {S11},
    ),
]


@pytest.mark.parametrize(
    ("what", "query", "ours"), KNOWN_DIFFERENCES, ids=[d[0] for d in KNOWN_DIFFERENCES]
)
async def test_known_differences(
    pacs: PACS, oracle: OrthancPeer, what: str, query: Query, ours: set[str]
) -> None:
    found = {a["0020000D"]["Value"][0] for a in await _answers(pacs.port, "PACS", query)}
    theirs = {
        a["0020000D"]["Value"][0] for a in await _answers(oracle.dicom_port, oracle.aet, query)
    }
    assert found == ours
    assert theirs != ours


async def test_orthanc_and_pacs_hold_the_same_corpus(pacs: PACS, oracle: OrthancPeer) -> None:
    assert pacs.index.counts()["instances"] == oracle.count_instances()
    classes = {CT_IMAGE_STORAGE, SECONDARY_CAPTURE_IMAGE_STORAGE}
    answers = await _answers(pacs.port, "PACS", ("IMAGE", "STUDY", {"SOPClassUID": ""}))
    assert {a["00080016"]["Value"][0] for a in answers} == classes
