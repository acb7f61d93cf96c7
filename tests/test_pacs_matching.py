"""The PACS without a network: what ingest keeps, the index, and C-FIND matching (PS3.4 C.2.2.2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import Dataset

from harmony_dimse.data.dicomjson import dataset_bytes_to_json
from harmony_dimse.data.files import encode_dataset
from harmony_dimse.pacs.attributes import (
    IMAGE,
    PATIENT,
    SERIES,
    STUDY,
    InstanceError,
    describe_instance,
    level_of,
)
from harmony_dimse.pacs.index import Index
from harmony_dimse.pacs.matching import QueryError, QueryPlanner, compile_key
from harmony_dimse.pacs.storage import Archive
from tests.corpus import (
    LATIN1_CHARSET,
    UTF8_CHARSET,
    make_instance,
    patient_name,
    series_instance_uid,
    sop_instance_uid,
    study_instance_uid,
    write_corpus,
)

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"


def _key(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def _matches(vr: str, query: Any, stored: list[Any]) -> bool:
    test = compile_key(vr, _key(vr, query) if query is not None else _key(vr))
    return True if test is None else test(stored)


# --- single keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vr", "query", "stored", "expected"),
    [
        ("LO", "PID1", ["PID1"], True),  # single value
        ("LO", "PID1", ["pid1"], False),  # case-sensitive outside PN
        ("LO", "PID1", [], False),  # an absent value matches only universal keys
        ("LO", None, [], True),  # universal
        ("LO", "*", [], True),  # "*" alone is universal
        ("LO", "P?D*", ["PID12"], True),
        ("LO", "P?D*", ["PD12"], False),
        ("SH", "A.B*", ["AxB"], False),  # regex characters are literal
        ("CS", "CT", ["OT", "CT"], True),  # any stored value
        ("UI", "1.2.3", ["1.2.3"], True),
        ("UI", "1.2.3", ["1.2.30"], False),
        ("DA", "20150101-20151231", ["20150509"], True),
        ("DA", "20150101-20151231", ["20160101"], False),
        ("DA", "-20150101", ["20141231"], True),
        ("DA", "20150101-", ["20141231"], False),
        ("DA", "20150509", ["20150509"], True),
        ("DA", "20150101-20151231", ["2015.05.09"], True),  # ACR-NEMA style dates still compare
        ("TM", "0800-0900", ["083015.5"], True),
        ("TM", "0800-0900", ["090001"], True),  # the upper bound covers its whole minute
        ("TM", "0800-0900", ["090100"], False),
        ("TM", "0907", ["090713"], False),  # a single value is that instant only
        ("TM", "090713", ["090713"], True),
        ("DT", "20150101-20151231", ["20150509120000.5+0100"], True),
        ("DT", "2015-", ["20141231235959"], False),
        ("IS", "2", ["2"], True),
        ("DS", "2", ["2.0"], True),
        ("US", "16", ["16"], True),
    ],
)
def test_single_key(vr: str, query: Any, stored: list[str], expected: bool) -> None:
    assert _matches(vr, query, stored) is expected


@pytest.mark.parametrize(
    ("query", "stored", "expected"),
    [
        ({"Alphabetic": "DOE^JOHN"}, "DOE^JOHN", True),
        ({"Alphabetic": "doe^john"}, "DOE^JOHN", True),  # PN: case-insensitive
        ({"Alphabetic": "doe*"}, "DOE^JOHN", True),
        ({"Alphabetic": "müller*"}, "MÜLLER^JÜRGEN", True),
        ({"Alphabetic": "MULLER*"}, "MÜLLER^JÜRGEN", False),  # accents count
        ({"Alphabetic": "DOE^JOHN^^"}, "DOE^JOHN", True),  # trailing empty components
        ({"Alphabetic": "DOE"}, "DOE^JOHN", False),
        ({"Ideographic": "山田*"}, "Yamada^Taro=山田^太郎", True),
        ({"Alphabetic": "Yamada*", "Ideographic": "X*"}, "Yamada^Taro=山田^太郎", False),
    ],
)
def test_person_name(query: dict[str, str], stored: str, expected: bool) -> None:
    assert _matches("PN", query, [stored]) is expected


def test_several_values_match_when_any_does() -> None:
    assert _matches("UI", None, ["1"])
    test = compile_key("UI", _key("UI", "1.2", "1.3"))
    assert test is not None and test(["1.3"]) and not test(["1.4"])
    modalities = compile_key("CS", _key("CS", "CT", "MR"))
    assert modalities is not None and modalities(["US", "MR"]) and not modalities(["US"])
    dates = compile_key("DA", _key("DA", "20150101", "20160101-20161231"))
    assert dates is not None and dates(["20160505"]) and not dates(["20150102"])


def test_sequence_matching() -> None:
    stored = [
        {0x00080100: ["24725-4"], 0x00080102: ["LN"]},
        {0x00080100: ["30799-1"], 0x00080102: ["LN"]},
    ]
    item = {"00080100": _key("SH", "30799-1"), "00080102": _key("SH", "LN")}
    test = compile_key("SQ", {"vr": "SQ", "Value": [item]})
    assert test is not None and test(stored)
    # all keys of the item must match within one stored item
    mixed = {"00080100": _key("SH", "30799-1"), "00080102": _key("SH", "SCT")}
    test = compile_key("SQ", {"vr": "SQ", "Value": [mixed]})
    assert test is not None and not test(stored)
    wildcard = {"00080100": _key("SH", "247*")}
    test = compile_key("SQ", {"vr": "SQ", "Value": [wildcard]})
    assert test is not None and test(stored) and not test([])
    # no items, or an item of return keys only: universal
    assert compile_key("SQ", {"vr": "SQ"}) is None
    assert compile_key("SQ", {"vr": "SQ", "Value": [{"00080100": _key("SH")}]}) is None


def _reference_wildcard(pattern: str, text: str) -> bool:
    """Wildcard matching by recursion, independent of the regex translation under test."""
    if not pattern:
        return not text
    if pattern[0] == "*":
        return any(_reference_wildcard(pattern[1:], text[i:]) for i in range(len(text) + 1))
    if not text:
        return False
    return (pattern[0] == "?" or pattern[0] == text[0]) and _reference_wildcard(
        pattern[1:], text[1:]
    )


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.text(alphabet="ab*?.[", min_size=1, max_size=6),
    text=st.text(alphabet="ab.[", max_size=6),
)
def test_wildcards_agree_with_a_reference(pattern: str, text: str) -> None:
    # an empty stored value is no value: only the universal "*" matches it
    expected = pattern == "*" or (bool(text) and _reference_wildcard(pattern, text))
    assert _matches("LO", pattern, [text] if text else []) is expected


# --- ingest ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("transfer_syntax", [IMPLICIT, EXPLICIT, DEFLATED, BIG_ENDIAN])
def test_describe_instance_in_every_syntax(transfer_syntax: str) -> None:
    ds = make_instance(3, 2, 1, 4, charset=LATIN1_CHARSET)
    item = Dataset()
    item.CodeValue = "24725-4"
    item.CodeMeaning = "CT HEAD"
    ds.ProcedureCodeSequence = [item]
    ds.add_new(0x00091010, "LO", "private")  # left out of the index
    record = describe_instance(encode_dataset(ds, transfer_syntax), transfer_syntax)
    assert record.patient_id == "PID0003"
    assert record.study_uid == study_instance_uid(3, 2)
    assert record.series_uid == series_instance_uid(3, 2, 1)
    assert record.sop_instance_uid == sop_instance_uid(3, 2, 1, 4)
    assert record.modality == "CT"
    assert record.charset == LATIN1_CHARSET
    assert 0x00100010 in record.levels[PATIENT]
    assert {0x00080020, 0x00081030, 0x00081032} <= set(record.levels[STUDY])
    assert {0x00080060, 0x0020000E, 0x00200011} <= set(record.levels[SERIES])
    assert {0x00080018, 0x00200013} <= set(record.levels[IMAGE])
    assert 0x00091010 not in record.levels[IMAGE] and 0x7FE00010 not in record.levels[IMAGE]
    name = record.levels[PATIENT][0x00100010][1]
    assert name.decode("latin-1").strip() == patient_name(3, LATIN1_CHARSET)
    sequence = record.levels[STUDY][0x00081032]
    for element, implicit in ((sequence[1], False), (sequence[2], True)):
        parsed = dataset_bytes_to_json(element, implicit_vr=implicit)  # type: ignore[arg-type]
        assert parsed["00081032"]["Value"][0]["00080100"]["Value"] == ["24725-4"]


def test_describe_instance_refuses_what_it_cannot_index() -> None:
    ds = make_instance(1, 1, 1, 1)
    del ds.SeriesInstanceUID
    with pytest.raises(InstanceError, match="Series Instance UID"):
        describe_instance(encode_dataset(ds, EXPLICIT), EXPLICIT)
    data = encode_dataset(make_instance(1, 1, 1, 1), EXPLICIT)
    with pytest.raises(InstanceError):
        describe_instance(data[:300], EXPLICIT)


def test_levels_follow_the_information_model() -> None:
    assert level_of(0x00100010) == PATIENT  # Patient's Name
    assert level_of(0x00101010) == STUDY  # Patient's Age: Patient Study module
    assert level_of(0x00080050) == STUDY  # Accession Number
    assert level_of(0x00080060) == SERIES  # Modality
    assert level_of(0x00200013) == IMAGE  # Instance Number


# --- the index and plans --------------------------------------------------------------------------


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    corpus = [
        make_instance(p, s, r, i) for p in (1, 2) for s in (1, 2) for r in (1, 2) for i in (1, 2)
    ]
    corpus += [
        make_instance(3, 1, 1, 1, charset=LATIN1_CHARSET),
        make_instance(4, 1, 1, 1, charset=UTF8_CHARSET),
        make_instance(5, 1, 1, 1, modality="MR"),
        make_instance(5, 1, 2, 1),
    ]
    source = tmp_path / "source"
    write_corpus(source, corpus)
    archive = Archive(tmp_path / "store")
    report = archive.import_folder(source)
    assert report.imported == len(corpus) and not report.skipped
    return archive


def _find(archive: Archive, query: Dataset, model: str = "STUDY") -> list[dict[str, Any]]:
    planner = QueryPlanner("PACS")
    plan = planner.plan(encode_dataset(query, EXPLICIT), implicit=False, model=model)
    return [
        dataset_bytes_to_json(plan.answer(row, False))
        for row in archive.index.rows(plan.level, plan.filters)
        if plan.matches(row)
    ]


def _query(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_counts_and_computed_attributes(archive: Archive) -> None:
    assert archive.index.counts() == {"patients": 5, "studies": 7, "series": 12, "instances": 20}
    (study,) = _find(
        archive,
        _query(
            "STUDY",
            StudyInstanceUID=study_instance_uid(5, 1),
            ModalitiesInStudy="",
            NumberOfStudyRelatedSeries="",
            NumberOfStudyRelatedInstances="",
            SOPClassesInStudy="",
        ),
    )
    assert study["00080061"]["Value"] == ["CT", "MR"]
    assert study["00201206"]["Value"] == [2] and study["00201208"]["Value"] == [2]
    assert len(study["00080062"]["Value"]) == 2
    (patient,) = _find(
        archive,
        _query("PATIENT", PatientID="PID0001", NumberOfPatientRelatedInstances=""),
        model="PATIENT",
    )
    assert patient["00201204"]["Value"] == [8]


def test_answers_hold_the_asked_keys_and_the_unique_keys(archive: Archive) -> None:
    answers = _find(
        archive, _query("SERIES", StudyInstanceUID=study_instance_uid(1, 1), Modality="")
    )
    assert len(answers) == 2
    for answer in answers:
        assert set(answer) == {"00080052", "00080054", "00080060", "0020000D", "0020000E"}
        assert answer["00080052"]["Value"] == ["SERIES"]
        assert answer["00080054"]["Value"] == ["PACS"]
    # a key the record lacks comes back empty
    (answer,) = _find(
        archive, _query("STUDY", StudyInstanceUID=study_instance_uid(1, 1), PatientComments="")
    )
    assert "00104000" in answer and "Value" not in answer["00104000"]
    # Patient Root answers carry the Patient ID too
    (answer,) = _find(
        archive,
        _query("STUDY", PatientID="PID0002", StudyInstanceUID=study_instance_uid(2, 1)),
        model="PATIENT",
    )
    assert answer["00100020"]["Value"] == ["PID0002"]


def test_answers_keep_each_instance_character_set(archive: Archive) -> None:
    for number, charset in ((3, LATIN1_CHARSET), (4, UTF8_CHARSET)):
        (answer,) = _find(
            archive,
            _query("STUDY", PatientID=f"PID{number:04d}", PatientName="", StudyDescription=""),
        )
        assert answer["00080005"]["Value"] == [charset]
        assert answer["00100010"]["Value"] == [{"Alphabetic": patient_name(number, charset)}]
    # a query in UTF-8 finds a Latin-1 name
    query = _query("STUDY", PatientName="müller*", StudyInstanceUID="")
    query.SpecificCharacterSet = UTF8_CHARSET
    (answer,) = _find(archive, query)
    assert answer["0020000D"]["Value"] == [study_instance_uid(3, 1)]


def test_sql_prefilters_and_python_matchers_agree(archive: Archive) -> None:
    by_glob = _find(archive, _query("STUDY", PatientID="PID000?", StudyInstanceUID=""))
    by_list = _find(
        archive,
        _query(
            "IMAGE",
            SOPInstanceUID=[sop_instance_uid(1, 1, 1, 1), sop_instance_uid(2, 2, 2, 2)],
            InstanceNumber="",
        ),
    )
    assert len(by_glob) == 7
    assert sorted(a["00080018"]["Value"][0] for a in by_list) == sorted(
        [sop_instance_uid(1, 1, 1, 1), sop_instance_uid(2, 2, 2, 2)]
    )
    assert _find(archive, _query("STUDY", PatientID="PID[1]*", StudyInstanceUID="")) == []


@pytest.mark.parametrize(
    ("query", "model", "status", "words"),
    [
        (_query("PATIENT", PatientID=""), "STUDY", 0xA900, "no PATIENT level"),
        (_query("FRAME", PatientID=""), "STUDY", 0xA900, "is not PATIENT"),
        (Dataset(), "STUDY", 0xA900, "no QueryRetrieveLevel"),
    ],
)
def test_bad_identifiers_are_refused(query: Dataset, model: str, status: int, words: str) -> None:
    planner = QueryPlanner("PACS")
    with pytest.raises(QueryError) as err:
        planner.plan(encode_dataset(query, EXPLICIT), implicit=False, model=model)
    assert err.value.status == status and re.search(words, err.value.comment)


def test_retrieve_needs_the_unique_key_of_its_level() -> None:
    planner = QueryPlanner("PACS")
    with pytest.raises(QueryError, match="0020,000E"):
        planner.plan(
            encode_dataset(_query("SERIES", StudyInstanceUID="1.2"), EXPLICIT),
            implicit=False,
            model="STUDY",
            retrieve=True,
        )
    plan = planner.plan(
        encode_dataset(_query("STUDY", StudyInstanceUID="1.2", PatientName="X*"), IMPLICIT),
        implicit=True,
        model="STUDY",
        retrieve=True,
    )
    assert not plan.matchers and len(plan.filters) == 1  # only the unique key selects


def test_index_survives_a_restart_and_replaces_by_uid(tmp_path: Path, archive: Archive) -> None:
    root = archive.root
    archive.close()
    again = Archive(root)
    assert again.index.counts()["instances"] == 20
    ds = make_instance(1, 1, 1, 1)
    ds.InstanceNumber = 99
    _, new = again.ingest(encode_dataset(ds, EXPLICIT), EXPLICIT)
    assert not new
    assert again.index.counts()["instances"] == 20
    (answer,) = _find(
        again, _query("IMAGE", SOPInstanceUID=str(ds.SOPInstanceUID), InstanceNumber="")
    )
    assert answer["00200013"]["Value"] == [99]
    again.close()
    # an index rebuilt from the files alone: delete it, and the folder is scanned at open
    for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (root / name).unlink(missing_ok=True)
    rebuilt = Archive(root)
    assert rebuilt.index.counts()["instances"] == 20


def test_import_reports_and_skips_files_it_cannot_use(tmp_path: Path) -> None:
    source = tmp_path / "mixed"
    write_corpus(source, [make_instance(1, 1, 1, 1)])
    (source / "notes.txt").write_text("not DICOM")
    broken = make_instance(1, 1, 1, 2)
    del broken.StudyInstanceUID
    write_corpus(source / "sub", [broken])
    good = (source / f"{make_instance(1, 1, 1, 1).SOPInstanceUID}.dcm").read_bytes()
    (source / "truncated.dcm").write_bytes(good[:400])
    archive = Archive(tmp_path / "store")
    report = archive.import_folder(source)
    assert report.imported == 1
    reasons = {path.name: reason for path, reason in report.skipped}
    assert set(reasons) == {"notes.txt", "truncated.dcm", f"{broken.SOPInstanceUID}.dcm"}
    assert "Study Instance UID" in reasons[f"{broken.SOPInstanceUID}.dcm"]
    assert str(report) == "1 instance(s) imported, 3 file(s) skipped"
    stored = list((tmp_path / "store").rglob("*.dcm"))
    assert len(stored) == 1 and stored[0].parent.parent.name == study_instance_uid(1, 1)


def test_index_schema_mismatch_says_what_to_do(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    with index.transaction():
        index._db.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
    index.close()
    with pytest.raises(RuntimeError, match="delete the index file"):
        Index(tmp_path / "index.sqlite3")
