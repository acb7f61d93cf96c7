"""Tests for harmony_dimse.data.query: gateway queries -> C-FIND/C-MOVE/C-GET identifiers."""

from __future__ import annotations

import io
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.filereader import read_dataset

from harmony_dimse.data.dicomjson import dataset_bytes_to_json
from harmony_dimse.data.query import (
    QueryError,
    build_identifier,
    encode_identifier,
    identifier_from_dicom_json,
)

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


def query_error(query: dict[str, Any], level: str | None = None, **options: str) -> QueryError:
    with pytest.raises(QueryError) as caught:
        build_identifier(query, level, **options)
    return caught.value


def as_json(ds: Dataset) -> dict[str, Any]:
    return dataset_bytes_to_json(encode_identifier(ds, EXPLICIT))


# --- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["PatientName", "0010,0010", "00100010", "(0010,0010)"])
def test_keyword_and_tag_forms_name_the_same_attribute(key: str) -> None:
    ds = build_identifier({key: "Doe^John"}, "STUDY")
    assert ds.PatientName == "Doe^John"


def test_unknown_keyword_names_the_field() -> None:
    error = query_error({"PatientNam": "x"})
    assert str(error) == "query.PatientNam: unknown DICOM keyword"
    assert error.field == "query.PatientNam"
    assert error.reason == "unknown DICOM keyword"
    assert error.hint == "did you mean PatientName?"
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("0010,0003", "unknown DICOM tag"),
        ("0002,0010", "command, file meta and item tags cannot be query keys"),
        ("0008,0000", "group length elements cannot be query keys"),
        ("0009,1001", "the VR of this tag is not known"),
        ("not a key!", "unknown DICOM keyword"),
    ],
)
def test_bad_keys(key: str, reason: str) -> None:
    error = query_error({key: "1"})
    assert error.field == f"query.{key}"
    assert error.reason.startswith(reason)


def test_private_elements_need_their_vr() -> None:
    ds = build_identifier({"0009,0010": "ACME", "0009,1001": {"vr": "SH", "Value": ["x"]}}, "STUDY")
    assert ds[0x00090010].VR == "LO"
    assert ds[0x00091001].value == "x"


# --- values --------------------------------------------------------------------------------------


def test_value_forms() -> None:
    ds = build_identifier(
        {
            "PatientName": "Doe^J*",
            "StudyInstanceUID": ["1.2.3", "1.2.4"],
            "ModalitiesInStudy": "CT\\MR",
            "AccessionNumber": None,
            "StudyDescription": "",
            "NumberOfStudyRelatedInstances": None,
            "StudyID": 42,
            "PatientBirthDate": {"vr": "DA", "Value": ["19700101"]},
            "ReferringPhysicianName": {"vr": "PN", "Value": [{"Alphabetic": "Who^Doctor"}]},
            "StudyTime": {"vr": "TM"},
        },
        "STUDY",
    )
    result = as_json(ds)
    assert result["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^J*"}]}
    assert result["0020000D"] == {"vr": "UI", "Value": ["1.2.3", "1.2.4"]}
    assert result["00080061"] == {"vr": "CS", "Value": ["CT", "MR"]}
    assert result["00080050"] == {"vr": "SH"}
    assert result["00081030"] == {"vr": "LO"}
    assert result["00201208"] == {"vr": "IS"}
    assert result["00200010"] == {"vr": "SH", "Value": ["42"]}
    assert result["00100030"] == {"vr": "DA", "Value": ["19700101"]}
    assert result["00080090"] == {"vr": "PN", "Value": [{"Alphabetic": "Who^Doctor"}]}
    assert result["00080030"] == {"vr": "TM"}
    assert result["00080052"] == {"vr": "CS", "Value": ["STUDY"]}


def test_uid_list_is_joined_with_backslash_on_the_wire() -> None:
    ds = build_identifier({"SeriesInstanceUID": ["1.2.3", "1.2.44"]}, "SERIES")
    assert b"1.2.3\\1.2.44" in encode_identifier(ds, IMPLICIT)


def test_numbers_for_numeric_vrs() -> None:
    ds = build_identifier(
        {
            "SeriesNumber": 7,
            "SliceThickness": 0.1 + 0.2,
            "Rows": "512",
            "PixelSpacing": [0.5, 0.5],
            "TableSpeed": 1.5,
        },
        "SERIES",
    )
    result = as_json(ds)
    assert result["00200011"]["Value"] == [7]
    assert result["00180050"]["Value"] == [pytest.approx(0.3)]
    assert len(ds["SliceThickness"].to_json_dict(None, 0)["Value"]) == 1
    assert result["00280010"] == {"vr": "US", "Value": [512]}
    assert result["00280030"]["Value"] == [0.5, 0.5]
    assert result["00189309"] == {"vr": "FD", "Value": [1.5]}


def test_sequences_from_objects_and_lists() -> None:
    ds = build_identifier(
        {
            "ReferencedStudySequence": {"ReferencedSOPInstanceUID": "1.2.3"},
            "OtherPatientIDsSequence": [{"PatientID": "A"}, {"PatientID": "B"}],
            "ProcedureCodeSequence": None,
            "RequestAttributesSequence": [],
        },
        "STUDY",
    )
    result = as_json(ds)
    assert result["00081110"]["Value"] == [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}]
    assert [item["00100020"]["Value"] for item in result["00101002"]["Value"]] == [["A"], ["B"]]
    assert result["00081032"] == {"vr": "SQ"}
    assert result["00400275"] == {"vr": "SQ"}


def test_errors_inside_sequences_name_the_path() -> None:
    error = query_error({"OtherPatientIDsSequence": [{"PatientID": "A"}, {"PatientId": "B"}]})
    assert error.field == "query.OtherPatientIDsSequence[1].PatientId"
    error = query_error({"OtherPatientIDsSequence": ["A"]})
    assert error.field == "query.OtherPatientIDsSequence[0]"


def test_dicom_json_form_gives_the_same_identifier_as_keywords() -> None:
    keywords = build_identifier(
        {
            "PatientName": "Doe^John=ドウ",
            "StudyDate": "20240101-20240131",
            "ReferencedStudySequence": [{"ReferencedSOPInstanceUID": "1.2.3"}],
        },
        "STUDY",
    )
    dicom_json = build_identifier(
        {
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John", "Ideographic": "ドウ"}]},
            "00080020": {"vr": "DA", "Value": ["20240101-20240131"]},
            "00081110": {
                "vr": "SQ",
                "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}],
            },
        },
        "STUDY",
    )
    assert encode_identifier(keywords, EXPLICIT) == encode_identifier(dicom_json, EXPLICIT)


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ({"StudyDate": "2024abcd"}, "query.StudyDate", "is not a date"),
        ({"StudyDate": "20240230"}, "query.StudyDate", "is not a valid calendar date"),
        ({"StudyDate": "20240131-20240101"}, "query.StudyDate", "starts after it ends"),
        ({"StudyDate": "2024*"}, "query.StudyDate", "DA values match by a single value"),
        ({"StudyDate": "-"}, "query.StudyDate", "is a range without either end"),
        ({"StudyDate": ["20240101", "20240102"]}, "query.StudyDate", "takes a single value"),
        ({"StudyTime": "25"}, "query.StudyTime", "is not a valid time of day"),
        ({"StudyTime": "10:15"}, "query.StudyTime", "is not a time"),
        ({"AcquisitionDateTime": "2024013"}, "query.AcquisitionDateTime", "is not a date-time"),
        ({"StudyInstanceUID": "1.2.*"}, "query.StudyInstanceUID", "UIDs match exactly"),
        ({"StudyInstanceUID": "1.2.abc"}, "query.StudyInstanceUID", "is not a UID"),
        ({"StudyInstanceUID": "1." * 40}, "query.StudyInstanceUID", "longer than 64"),
        ({"RetrieveAETitle": "A" * 17}, "query.RetrieveAETitle", "longer than 16"),
        ({"Modality": "C" * 17}, "query.Modality", "longer than 16"),
        ({"Modality": "ct"}, "query.Modality", "is not a code string"),
        ({"StudyDescription": "x" * 65}, "query.StudyDescription", "longer than 64"),
        ({"AccessionNumber": "x" * 17}, "query.AccessionNumber", "longer than 16"),
        ({"AccessionNumber": "a\tb"}, "query.AccessionNumber", "control characters"),
        ({"PatientName": "x" * 65}, "query.PatientName", "longer than 64"),
        ({"PatientName": "a=b=c=d"}, "query.PatientName", "at most 3 component groups"),
        ({"PatientName": "a^b^c^d^e^f"}, "query.PatientName", "more than 5 parts"),
        ({"PatientName": ["A", "B"]}, "query.PatientName", "takes a single value"),
        ({"PatientName": {"Alfabetic": "A"}}, "query.PatientName", "a person name object"),
        ({"PatientAge": "45 years"}, "query.PatientAge", "is not an age string"),
        ({"SeriesNumber": "1.5"}, "query.SeriesNumber", "is not an integer string"),
        ({"SeriesNumber": 2**31}, "query.SeriesNumber", "is outside the range"),
        ({"SliceThickness": "thin"}, "query.SliceThickness", "is not a decimal string"),
        ({"SliceThickness": float("nan")}, "query.SliceThickness", "NaN"),
        ({"Rows": 70000}, "query.Rows", "is outside the range of US"),
        ({"Rows": True}, "query.Rows", "got a boolean"),
        ({"PatientID": 1.5}, "query.PatientID", "expected a string"),
        ({"PatientID": {"a": 1}}, "query.PatientID", "an object is not a value"),
        ({"PatientID": ["A", ["B"]]}, "query.PatientID[1]", "cannot be nested"),
        ({"PatientComments": ["a", "b"]}, "query.PatientComments", "takes a single value"),
        ({"ReferencedStudySequence": "x"}, "query.ReferencedStudySequence", "a sequence"),
        ({"PatientName": {"vr": "LO", "Value": ["x"]}}, "query.PatientName", "does not match"),
        ({"PatientName": {"vr": "XX"}}, "query.PatientName", "is not a DICOM VR"),
        ({"PatientName": {"vr": "PN", "Value": "x"}}, "query.PatientName", '"Value" must be'),
        ({"PatientName": {"vr": "PN", "BulkDataURI": "x"}}, "query.PatientName", "BulkDataURI"),
        ({"IconImageSequence": {"PixelData": "abc"}}, "query.IconImageSequence.PixelData", ""),
        ({"PixelData": {"vr": "OB", "InlineBinary": "%%"}}, "query.PixelData", "base64"),
    ],
)
def test_invalid_values(query: dict[str, Any], field: str, reason: str) -> None:
    error = query_error(query)
    assert error.field == field
    assert reason in error.reason
    assert str(error) == f"{field}: {error.reason}"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("StudyDate", "20240101-20240131"),
        ("StudyDate", "-20240131"),
        ("StudyDate", "20240101-"),
        ("StudyTime", "0800-123000.5"),
        ("AcquisitionDateTime", "20240101120000.5+0100-20240102"),
        ("PatientName", "Mül*^?ns"),
        ("Modality", "C*"),
        ("RetrieveAETitle", "PACS*"),
        ("PatientAge", "045Y"),
        ("SliceThickness", "-1.5e3"),
        ("PixelData", {"vr": "OB", "InlineBinary": "AAEC"}),
    ],
)
def test_valid_matching_values(key: str, value: object) -> None:
    build_identifier({key: value}, "IMAGE")


def test_python_dates_and_times_are_formatted() -> None:
    import datetime as dt

    ds = build_identifier(
        {"StudyDate": dt.date(2024, 1, 31), "StudyTime": dt.time(10, 15, 30)}, "STUDY"
    )
    assert (ds.StudyDate, ds.StudyTime) == ("20240131", "101530")


def test_wildcards_are_not_allowed_in_cs_for_retrieval() -> None:
    error = query_error({"StudyInstanceUID": "1.2", "Modality": "C*"}, "STUDY", operation="C-MOVE")
    assert error.field == "query.Modality"


def test_lowercase_code_string_hints_the_uppercase_one() -> None:
    assert query_error({"Modality": "ct"}).hint == "did you mean 'CT'?"


# --- levels and models ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "model", "level"),
    [
        ({"SOPInstanceUID": None, "StudyInstanceUID": "1.2"}, "STUDY", "IMAGE"),
        ({"SeriesInstanceUID": None, "StudyInstanceUID": "1.2"}, "STUDY", "SERIES"),
        ({"StudyInstanceUID": "1.2", "PatientName": None}, "STUDY", "STUDY"),
        ({"PatientName": "Doe*"}, "STUDY", "STUDY"),
        ({"PatientName": "Doe*", "PatientID": None}, "PATIENT", "PATIENT"),
        ({"PatientName": "Doe*", "NumberOfPatientRelatedStudies": None}, "PATIENT", "PATIENT"),
        ({"PatientName": "Doe*", "PatientAge": None}, "PATIENT", "STUDY"),
        ({"PatientName": "Doe*", "StudyDate": "20240101"}, "PATIENT", "STUDY"),
        ({}, "STUDY", "STUDY"),
        ({"QueryRetrieveLevel": "series"}, "STUDY", "SERIES"),
        ({"00080052": {"vr": "CS", "Value": ["IMAGE"]}}, "STUDY", "IMAGE"),
    ],
)
def test_level_derived_from_keys(query: dict[str, Any], model: str, level: str) -> None:
    ds = build_identifier(query, None, model=model)
    assert ds.QueryRetrieveLevel == level


@pytest.mark.parametrize(
    ("given", "level"),
    [("study", "STUDY"), ("Series", "SERIES"), ("INSTANCE", "IMAGE"), ("instance", "IMAGE")],
)
def test_level_spellings(given: str, level: str) -> None:
    assert build_identifier({}, given).QueryRetrieveLevel == level


def test_level_and_model_errors() -> None:
    assert query_error({}, "FRAME").field == "level"
    assert query_error({}, None, model="WORKLIST").field == "model"
    assert query_error({}, None, operation="C-STORE").field == "operation"
    error = query_error({"PatientID": "1"}, "PATIENT")
    assert (error.field, error.reason) == ("level", "PATIENT level needs the Patient Root model")
    error = query_error({"QueryRetrieveLevel": "SERIES"}, "STUDY")
    assert error.field == "level"
    assert query_error({"QueryRetrieveLevel": "ROOM"}).field == "query.QueryRetrieveLevel"


def test_model_and_operation_spellings() -> None:
    ds = build_identifier({"PatientID": "1"}, "patient", model="patient_root", operation="move")
    assert ds.QueryRetrieveLevel == "PATIENT"


# --- unique keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "model", "keyword", "vr"),
    [
        ("PATIENT", "PATIENT", "PatientID", "LO"),
        ("STUDY", "STUDY", "StudyInstanceUID", "UI"),
        ("SERIES", "STUDY", "SeriesInstanceUID", "UI"),
        ("IMAGE", "PATIENT", "SOPInstanceUID", "UI"),
    ],
)
def test_c_find_adds_the_unique_key_of_the_level(
    level: str, model: str, keyword: str, vr: str
) -> None:
    ds = build_identifier({"PatientName": "Doe*"}, level, model=model)
    assert vr == ds[keyword].VR
    assert ds[keyword].is_empty


def test_c_find_keeps_a_given_unique_key() -> None:
    ds = build_identifier({"StudyInstanceUID": "1.2.3"}, "STUDY")
    assert ds.StudyInstanceUID == "1.2.3"


@pytest.mark.parametrize("operation", ["C-MOVE", "C-GET"])
@pytest.mark.parametrize(
    ("query", "level", "model", "missing"),
    [
        ({}, "STUDY", "STUDY", "StudyInstanceUID"),
        ({"StudyInstanceUID": ""}, "STUDY", "STUDY", "StudyInstanceUID"),
        ({"StudyInstanceUID": "1.2"}, "STUDY", "PATIENT", "PatientID"),
        ({"StudyInstanceUID": "1.2"}, "SERIES", "STUDY", "SeriesInstanceUID"),
        (
            {"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.3"},
            "IMAGE",
            "STUDY",
            "SOPInstanceUID",
        ),
        (
            {"SeriesInstanceUID": "1.3", "SOPInstanceUID": "1.4"},
            "IMAGE",
            "STUDY",
            "StudyInstanceUID",
        ),
        ({}, "PATIENT", "PATIENT", "PatientID"),
    ],
)
def test_retrieval_requires_unique_keys(
    operation: str, query: dict[str, Any], level: str, model: str, missing: str
) -> None:
    error = query_error(query, level, model=model, operation=operation)
    assert error.field == f"query.{missing}"
    assert operation in error.reason


def test_retrieval_with_complete_keys() -> None:
    ds = build_identifier(
        {"PatientID": "P1", "StudyInstanceUID": "1.2", "SeriesInstanceUID": ["1.3", "1.4"]},
        None,
        model="PATIENT",
        operation="C-GET",
    )
    assert ds.QueryRetrieveLevel == "SERIES"
    assert list(ds.SeriesInstanceUID) == ["1.3", "1.4"]
    assert "SOPInstanceUID" not in ds


def test_retrieval_unique_keys_above_the_level_are_single() -> None:
    error = query_error(
        {"StudyInstanceUID": ["1.2", "1.3"], "SeriesInstanceUID": "1.4"},
        "SERIES",
        operation="C-MOVE",
    )
    assert error.field == "query.StudyInstanceUID"
    assert "single value" in error.reason


def test_retrieval_unique_keys_hold_no_wildcards() -> None:
    error = query_error(
        {"PatientID": "P*", "StudyInstanceUID": "1.2"},
        "STUDY",
        model="PATIENT",
        operation="C-MOVE",
    )
    assert error.field == "query.PatientID"
    assert "wildcards" in error.reason


# --- character sets ------------------------------------------------------------------------------


def test_ascii_query_declares_no_character_set() -> None:
    ds = build_identifier({"PatientName": "Doe^John"}, "STUDY")
    assert "SpecificCharacterSet" not in ds


def test_non_ascii_query_is_utf8() -> None:
    ds = build_identifier({"PatientName": "Müller^Jürgen", "PatientID": None}, "STUDY")
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    encoded = encode_identifier(ds, IMPLICIT)
    assert "Müller^Jürgen".encode() in encoded
    assert dataset_bytes_to_json(encoded, implicit_vr=True)["00100010"]["Value"] == [
        {"Alphabetic": "Müller^Jürgen"}
    ]


def test_non_ascii_inside_a_sequence_also_switches_to_utf8() -> None:
    ds = build_identifier({"OtherPatientIDsSequence": {"PatientID": "Zoë"}}, "STUDY")
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert "Zoë".encode() in encode_identifier(ds, EXPLICIT)


def test_declared_character_set_is_used_and_checked() -> None:
    ds = build_identifier({"SpecificCharacterSet": "ISO_IR 100", "PatientName": "Müller"}, "STUDY")
    assert "Müller".encode("latin-1") in encode_identifier(ds, EXPLICIT)
    error = query_error({"SpecificCharacterSet": "ISO_IR 100", "PatientName": "山田"})
    assert error.field == "query.PatientName"
    assert "ISO_IR 100" in error.reason
    error = query_error({"SpecificCharacterSet": "KLINGON"})
    assert error.field == "query.SpecificCharacterSet"


def test_non_ascii_is_rejected_where_the_vr_forbids_it() -> None:
    assert query_error({"RetrieveAETitle": "PÄCS"}).field == "query.RetrieveAETitle"
    assert query_error({"Modality": "ÇT"}).field == "query.Modality"


# --- encoding ------------------------------------------------------------------------------------


def test_encode_identifier_implicit_and_explicit() -> None:
    ds = build_identifier({"PatientID": "P1"}, "STUDY")
    implicit = encode_identifier(ds, IMPLICIT)
    explicit = encode_identifier(ds, EXPLICIT)
    # First element (0008,0052) QueryRetrieveLevel: implicit has a 4-byte length, explicit a VR.
    assert implicit[:8] == struct.pack("<HHI", 0x0008, 0x0052, 6)
    assert explicit[:8] == struct.pack("<HH2sH", 0x0008, 0x0052, b"CS", 6)
    for data, implicit_vr in ((implicit, True), (explicit, False)):
        read_back = read_dataset(io.BytesIO(data), implicit_vr, True)
        assert read_back.PatientID == "P1"
        assert read_back.QueryRetrieveLevel == "STUDY"
        assert read_back.StudyInstanceUID == ""


def test_encode_identifier_deflated() -> None:
    import zlib

    ds = build_identifier({"PatientID": "P1"}, "STUDY")
    deflated = encode_identifier(ds, "1.2.840.10008.1.2.1.99")
    assert zlib.decompress(deflated, -15) == encode_identifier(ds, EXPLICIT)


def test_encode_identifier_unknown_transfer_syntax() -> None:
    with pytest.raises(QueryError) as caught:
        encode_identifier(Dataset(), "1.2.3.4")
    assert caught.value.field == "transfer_syntax"


# --- Harmony's DICOM JSON form -------------------------------------------------------------------


def test_identifier_from_dicom_json() -> None:
    ds = identifier_from_dicom_json(
        {
            "0020000D": {"vr": "UI", "Value": ["1.2"]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]},
            "00080052": {"vr": "CS", "Value": ["STUDY"]},
        }
    )
    assert ds.StudyInstanceUID == "1.2"
    assert ds.PatientName == "Doe^John"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"PatientName": {"vr": "PN"}}, "query.PatientName"),
        ({"00100010": "Doe"}, "query.00100010"),
        ({"00100010": {"Value": ["x"]}}, "query.00100010"),
        ({"00280010": {"vr": "US", "Value": ["many"]}}, "query"),
    ],
)
def test_identifier_from_dicom_json_errors(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(QueryError) as caught:
        identifier_from_dicom_json(obj)
    assert caught.value.field == field


def test_query_must_be_an_object() -> None:
    with pytest.raises(QueryError) as caught:
        build_identifier(["PatientName"], None)  # type: ignore[arg-type]
    assert caught.value.field == "query"


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(
            min_codepoint=0x20,
            max_codepoint=0x2FF,
            exclude_characters="\\",
            exclude_categories=["Cc"],
        ),
        max_size=80,
    )
)
def test_long_string_values_round_trip_or_fail_on_length(text: str) -> None:
    try:
        ds = build_identifier({"StudyDescription": text}, "STUDY")
    except QueryError as error:
        assert len(text) > 64
        assert error.field == "query.StudyDescription"
        return
    assert len(text) <= 64
    result = dataset_bytes_to_json(encode_identifier(ds, IMPLICIT), implicit_vr=True)
    expected = text.rstrip(" ")
    assert result["00081030"].get("Value") == ([expected] if expected else None)


def test_declared_iso_2022_character_set() -> None:
    ds = build_identifier(
        {"SpecificCharacterSet": ["", "ISO 2022 IR 87"], "PatientName": "Yamada^Tarou=山田^太郎"},
        "STUDY",
    )
    encoded = encode_identifier(ds, EXPLICIT)
    assert b"\x1b$B" in encoded  # JIS X 0208 escape sequence
    assert dataset_bytes_to_json(encoded)["00100010"]["Value"] == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"}
    ]


def test_encode_identifier_that_pydicom_cannot_write() -> None:
    ds = Dataset()
    ds.PixelData = b"\x00\x01"  # 'OB or OW' with nothing to resolve it
    with pytest.raises(QueryError) as caught:
        encode_identifier(ds, EXPLICIT)
    assert caught.value.field == "query"


def test_deeply_nested_sequences_are_refused() -> None:
    query: dict[str, object] = {"StudyInstanceUID": ""}
    inner: dict[str, object] = query
    for _ in range(300):
        nested: dict[str, object] = {}
        inner["ReferencedStudySequence"] = nested
        inner = nested
    with pytest.raises(QueryError) as err:
        build_identifier(query, "STUDY")
    assert "nested deeper than" in str(err.value)
