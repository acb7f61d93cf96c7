"""Tests for harmony_dimse.data.dicomjson: encoded data set bytes -> DICOM JSON, against pydicom."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
import logging
import struct
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_file_meta_info
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from harmony_dimse.data.dicomjson import (
    DicomJSONError,
    dataset_bytes_to_json,
    dataset_bytes_to_json_bytes,
    encode_json,
)
from harmony_dimse.data.files import read_part10

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom.*")

# --- helpers -------------------------------------------------------------------------------------


def encode(ds: Dataset, *, implicit_vr: bool) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit_vr
    write_dataset(buffer, ds)
    return buffer.getvalue()


def pydicom_json(data: bytes, *, implicit_vr: bool) -> dict[str, Any]:
    """What pydicom makes of the same bytes, with the documented differences normalized away."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(io.BytesIO(data), implicit_vr, True)
        return normalize_pydicom(ds.to_json_dict())


def normalize_pydicom(obj: dict[str, Any]) -> dict[str, Any]:
    """Apply KNOWN_DIFFERENCES_FROM_PYDICOM to pydicom's to_json_dict output."""
    normalized: dict[str, Any] = {}
    for key, attribute in obj.items():
        if key.endswith("0000"):
            continue  # group length
        attribute = dict(attribute)
        vr = attribute["vr"]
        if vr == "SQ":
            items = [normalize_pydicom(item) for item in attribute.get("Value", [])]
            attribute.pop("Value", None)
            if items:
                attribute["Value"] = items
        elif vr == "PN" and "Value" in attribute:
            attribute["Value"] = [
                ({group: text for group, text in name.items() if text} or None)
                if isinstance(name, dict)
                else None
                for name in attribute["Value"]
            ]
        elif "Value" in attribute:
            attribute["Value"] = [
                (value.rstrip(" ") or None) if isinstance(value, str) else value
                for value in attribute["Value"]
            ]
        normalized[key] = attribute
    return normalized


def both_encodings(ds: Dataset) -> None:
    for implicit_vr in (False, True):
        data = encode(ds, implicit_vr=implicit_vr)
        ours = dataset_bytes_to_json(data, implicit_vr=implicit_vr)
        assert ours == pydicom_json(data, implicit_vr=implicit_vr), implicit_vr


def element(tag: int, vr: str, length: int, *, implicit_vr: bool = False) -> bytes:
    group, number = tag >> 16, tag & 0xFFFF
    if implicit_vr or group == 0xFFFE:
        return struct.pack("<HHI", group, number, length)
    if vr in {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}:
        return struct.pack("<HH2sHI", group, number, vr.encode(), 0, length)
    return struct.pack("<HH2sH", group, number, vr.encode(), length)


UNDEFINED = 0xFFFFFFFF


# --- agreement with pydicom on built data sets ---------------------------------------------------


def every_vr_dataset() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.StudyDate = "20240131"
    ds.StudyTime = "101530.5"
    ds.AcquisitionDateTime = "20240131101530.123456+0100"
    ds.PatientAge = "045Y"
    ds.RetrieveAETitle = "PACS_ONE"
    ds.PatientName = "Müller^Hans^^Dr.=Mueller^Hans"
    ds.ReferringPhysicianName = ["Doe^John", "Roe^Jane"]
    ds.PatientID = "ID 42"
    ds.AccessionNumber = "A1"
    ds.StudyDescription = "Thorax mit KM"
    ds.PatientComments = "first line\r\nsecond\\line"
    ds.AdditionalPatientHistory = "short text"
    ds.add_new(0x00081190, "UR", "http://example.com/studies/1")
    ds.add_new(0x00400441, "SQ", [])  # ContentItemModifierSequence, empty
    ds.StudyInstanceUID = "1.2.840.10008.1.2.3.4"
    ds.add_new(0x00081155, "UI", ["1.2.3", "1.2.4"])
    ds.SeriesNumber = 7
    ds.add_new(0x00200037, "DS", ["1", "0.5", "-2.25", "1e-5", "0", "3"])
    ds.Rows = 512
    ds.add_new(0x00189219, "SS", [-5, 7])
    ds.add_new(0x00081161, "UL", [1, 4294967295])
    ds.add_new(0x00186020, "SL", [-2147483648, 5])
    ds.add_new(0x00189309, "FD", [1.5, -0.25])
    ds.add_new(0x00189318, "FD", [2.0])
    ds.add_new(0x0018605A, "FL", [0.5, 2.0])
    ds.add_new(0x00209165, "AT", [0x00100010, 0x7FE00010])
    ds.add_new(0x00080307, "CS", "DE")  # a short CS
    ds.add_new(0x00660023, "OW", b"\x01\x02\x03\x04")
    ds.add_new(0x00420011, "OB", b"\x00\x01\x02")
    ds.add_new(0x00640009, "OF", struct.pack("<2f", 1.0, 2.0))
    ds.add_new(0x00660040, "OL", struct.pack("<2I", 1, 2))
    ds.add_new(0x7FE00009, "OD", struct.pack("<d", 1.0))
    ds.add_new(0x00720081, "OV", struct.pack("<Q", 5))
    ds.add_new(0x00720082, "SV", [-(2**63), 2**63 - 1])
    ds.add_new(0x00720083, "UV", [0, 2**64 - 1])
    ds.add_new(0x00100212, "UC", ["long value", "another"])
    ds.add_new(0x00080081, "ST", "Institution Address")
    ds.add_new(0x00400280, "ST", "")
    ds.add_new(0x00200013, "IS", "")
    ds.add_new(0x00100030, "DA", "")
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4.5"
    inner = Dataset()
    inner.CodeValue = "T-D3000"
    inner.CodeMeaning = "Chest"
    item.add_new(0x00082218, "SQ", [inner])  # AnatomicRegionSequence
    ds.ReferencedStudySequence = [item, Dataset()]
    ds.add_new(0x00290010, "LO", "ACME 1.0")  # private creator
    ds.add_new(0x00291001, "UN", b"private bytes")
    return ds


def test_every_vr_agrees_with_pydicom() -> None:
    both_encodings(every_vr_dataset())


def test_undefined_length_sequences_and_items_agree_with_pydicom() -> None:
    ds = every_vr_dataset()
    sequence = ds["ReferencedStudySequence"]
    sequence.is_undefined_length = True
    for item in sequence.value:
        item.is_undefined_length_sequence_item = True
    ds.ReferencedStudySequence[0]["AnatomicRegionSequence"].is_undefined_length = True
    data = encode(ds, implicit_vr=False)
    assert struct.pack("<HH", 0xFFFE, 0xE0DD) in data  # really undefined length
    both_encodings(ds)


def test_values_follow_ps3_18() -> None:
    ds = every_vr_dataset()
    result = dataset_bytes_to_json(encode(ds, implicit_vr=False))
    assert result["00100010"] == {
        "vr": "PN",
        "Value": [{"Alphabetic": "Müller^Hans^^Dr.", "Ideographic": "Mueller^Hans"}],
    }
    assert result["00200037"]["Value"] == [1, 0.5, -2.25, 1e-5, 0, 3]
    assert [type(value) for value in result["00200037"]["Value"]][:2] == [int, float]
    assert result["00200011"] == {"vr": "IS", "Value": [7]}
    assert result["00209165"] == {"vr": "AT", "Value": ["00100010", "7FE00010"]}
    assert result["00081155"] == {"vr": "UI", "Value": ["1.2.3", "1.2.4"]}
    assert result["00200013"] == {"vr": "IS"}
    assert result["00400441"] == {"vr": "SQ"}
    assert result["00660023"] == {
        "vr": "OW",
        "InlineBinary": base64.b64encode(b"\x01\x02\x03\x04").decode(),
    }
    assert result["00104000"] == {"vr": "LT", "Value": ["first line\r\nsecond\\line"]}
    assert result["00081110"]["Value"][1] == {}


def test_group_length_elements_are_left_out() -> None:
    data = element(0x00080000, "UL", 4) + struct.pack("<I", 10) + element(0x00080060, "CS", 2)
    data += b"CT"
    assert dataset_bytes_to_json(data) == {"00080060": {"vr": "CS", "Value": ["CT"]}}


def test_padding_and_empty_values() -> None:
    ds = Dataset()
    ds.add_new(0x00080060, "CS", "MR ")
    ds.add_new(0x00080061, "CS", ["CT", "", "MR"])
    ds.add_new(0x0020000D, "UI", "1.2.3\x00")
    ds.add_new(0x00100020, "LO", "  lead kept  ")
    ds.add_new(0x00100010, "PN", ["A^B", "", "==C"])
    result = dataset_bytes_to_json(encode(ds, implicit_vr=True), implicit_vr=True)
    assert result["00080060"]["Value"] == ["MR"]
    assert result["00080061"]["Value"] == ["CT", None, "MR"]
    assert result["0020000D"]["Value"] == ["1.2.3"]
    assert result["00100020"]["Value"] == ["  lead kept"]
    assert result["00100010"]["Value"] == [{"Alphabetic": "A^B"}, None, {"Phonetic": "C"}]


# --- character sets ------------------------------------------------------------------------------


def text_element(tag: int, vr: str, raw: bytes) -> bytes:
    if len(raw) % 2:
        raw += b" "
    return element(tag, vr, len(raw)) + raw


def test_character_set_from_the_data_set() -> None:
    latin = text_element(0x00080005, "CS", b"ISO_IR 100") + text_element(
        0x00100010, "PN", "Müller".encode("latin-1")
    )
    assert dataset_bytes_to_json(latin)["00100010"]["Value"] == [{"Alphabetic": "Müller"}]
    utf8 = text_element(0x00080005, "CS", b"ISO_IR 192") + text_element(
        0x00100010, "PN", "山田^太郎".encode()
    )
    assert dataset_bytes_to_json(utf8)["00100010"]["Value"] == [{"Alphabetic": "山田^太郎"}]


def test_default_charset_applies_only_without_specific_character_set() -> None:
    undeclared = text_element(0x00100010, "PN", "Jürgen".encode())
    assert dataset_bytes_to_json(undeclared, default_charset="ISO_IR 192")["00100010"]["Value"] == [
        {"Alphabetic": "Jürgen"}
    ]
    # The default repertoire is read as latin-1 like pydicom does: no failure, just mojibake.
    assert dataset_bytes_to_json(undeclared)["00100010"]["Value"] == [
        {"Alphabetic": "Jürgen".encode().decode("latin-1")}
    ]
    declared = text_element(0x00080005, "CS", b"ISO_IR 100") + text_element(
        0x00100010, "PN", "Jürgen".encode("latin-1")
    )
    assert dataset_bytes_to_json(declared, default_charset="ISO_IR 192")["00100010"]["Value"] == [
        {"Alphabetic": "Jürgen"}
    ]


def test_unknown_default_charset_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError, match="default character set") as caught:
        dataset_bytes_to_json(b"", default_charset="NOT A CHARSET")
    assert not isinstance(caught.value, DicomJSONError)


def test_invalid_utf8_is_replaced_not_raised() -> None:
    data = text_element(0x00080005, "CS", b"ISO_IR 192") + text_element(
        0x00100020, "LO", b"\xff\xfeab"
    )
    assert dataset_bytes_to_json(data)["00100020"]["Value"] == ["\ufffd\ufffdab"]


def test_sequence_item_may_declare_its_own_character_set() -> None:
    path = get_charset_files("chrSQEncoding.dcm")[0]
    part10 = read_part10(path)
    result = dataset_bytes_to_json(part10.dataset)
    item = result["00321064"]["Value"][0]
    assert item["00100010"]["Value"] == [
        {"Alphabetic": "ﾔﾏﾀﾞ^ﾀﾛｳ", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    ]


# --- agreement with pydicom on the files pydicom ships -------------------------------------------

PYDICOM_TEST_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "JPEG2000.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "UN_sequence.dcm",
    "priv_SQ.dcm",
    "nested_priv_SQ.dcm",
    "reportsi.dcm",
    "test-SR.dcm",
    "waveform_ecg.dcm",
    "empty_charset_LEI.dcm",
    "examples_overlay.dcm",
    "SC_rgb_rle.dcm",
]
CHARSET_FILES = sorted(Path(pydicom.__file__).parent.glob("data/charset_files/*.dcm"))


def file_paths() -> list[str]:
    paths = [get_testdata_file(name) for name in PYDICOM_TEST_FILES]
    assert all(paths), "pydicom's bundled test files are missing"
    return [str(path) for path in paths] + [str(path) for path in CHARSET_FILES]


@pytest.mark.parametrize("path", file_paths(), ids=lambda path: Path(path).name)
def test_pydicom_files_agree_with_to_json_dict(path: str) -> None:
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    meta = read_file_meta_info(path)
    dataset_start = 132 + 12 + meta.FileMetaInformationGroupLength
    implicit_vr = meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = normalize_pydicom(pydicom.dcmread(path).to_json_dict())
    ours = dataset_bytes_to_json(Path(path).read_bytes()[dataset_start:], implicit_vr=implicit_vr)
    assert ours == reference


def test_charset_files_are_present() -> None:
    names = {path.name for path in CHARSET_FILES}
    assert {"chrH31.dcm", "chrX1.dcm", "chrJapMulti.dcm", "chrRuss.dcm"} <= names


# --- VR resolution -------------------------------------------------------------------------------


def test_implicit_private_tags_use_the_private_dictionary() -> None:
    creator = b"SIEMENS MR HEADER"
    data = element(0x00290010, "", len(creator) + 1, implicit_vr=True) + creator + b" "
    data += element(0x0029100C, "", 4, implicit_vr=True) + b"12\\3"  # SIEMENS MR HEADER: IS?
    data += element(0x00291077, "", 2, implicit_vr=True) + b"ab"
    result = dataset_bytes_to_json(data, implicit_vr=True)
    assert result["00290010"] == {"vr": "LO", "Value": ["SIEMENS MR HEADER"]}
    assert result == pydicom_json(data, implicit_vr=True)
    assert result["00291077"]["vr"] == "UN"


def test_implicit_us_or_ss_follows_pixel_representation() -> None:
    signed = Dataset()
    signed.PixelRepresentation = 1
    signed.add_new(0x00280106, "SS", -5)  # SmallestImagePixelValue, 'US or SS'
    data = encode(signed, implicit_vr=True)
    assert dataset_bytes_to_json(data, implicit_vr=True)["00280106"] == {
        "vr": "SS",
        "Value": [-5],
    }
    unsigned = Dataset()
    unsigned.PixelRepresentation = 0
    unsigned.add_new(0x00280106, "US", 65535)
    data = encode(unsigned, implicit_vr=True)
    assert dataset_bytes_to_json(data, implicit_vr=True)["00280106"] == {
        "vr": "US",
        "Value": [65535],
    }


def test_explicit_un_of_a_known_tag_is_read_with_its_dictionary_vr() -> None:
    data = element(0x00100010, "UN", 8) + b"Doe^John"
    assert dataset_bytes_to_json(data) == {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]}
    }


def test_undefined_length_un_is_an_implicit_vr_sequence() -> None:
    item = element(0x00080100, "", 4, implicit_vr=True) + b"T123"
    data = (
        element(0x00291010, "UN", UNDEFINED)
        + element(0xFFFEE000, "", UNDEFINED)
        + item
        + element(0xFFFEE00D, "", 0)
        + element(0xFFFEE0DD, "", 0)
        + element(0x00291011, "UN", 2)
        + b"xy"
    )
    assert dataset_bytes_to_json(data) == {
        "00291010": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["T123"]}}]},
        "00291011": {"vr": "UN", "InlineBinary": base64.b64encode(b"xy").decode()},
    }


def test_encapsulated_pixel_data_is_inline_binary_up_to_the_delimiter() -> None:
    fragments = element(0xFFFEE000, "", 0) + element(0xFFFEE000, "", 4) + b"\x01\x02\x03\x04"
    data = element(0x7FE00010, "OB", UNDEFINED) + fragments + element(0xFFFEE0DD, "", 0)
    assert dataset_bytes_to_json(data) == {
        "7FE00010": {"vr": "OB", "InlineBinary": base64.b64encode(fragments).decode()}
    }


# --- malformed input -----------------------------------------------------------------------------

MALFORMED = {
    "truncated header": b"\x08\x00\x60\x00CS",
    "value overruns": element(0x00080060, "CS", 20) + b"CT",
    "invalid VR": b"\x08\x00\x60\x00zz\x02\x00CT",
    "long header truncated": b"\x08\x00\x60\x00UT\x00\x00\x01",
    "odd US length": element(0x00280010, "US", 3) + b"\x01\x02\x03",
    "IS not a number": element(0x00200013, "IS", 2) + b"AB",
    "DS not a number": element(0x00280030, "DS", 4) + b"1\\x ",
    "stray item": element(0xFFFEE000, "", 0),
    "stray delimiter": element(0xFFFEE00D, "", 0),
    "item without delimiter": element(0x00081110, "SQ", UNDEFINED)
    + element(0xFFFEE000, "", UNDEFINED)
    + element(0x00080060, "CS", 2)
    + b"CT",
    "sequence without delimiter": element(0x00081110, "SQ", UNDEFINED) + element(0xFFFEE000, "", 0),
    "item overruns sequence": element(0x00081110, "SQ", 8) + element(0xFFFEE000, "", 10),
    "non-item in sequence": element(0x00081110, "SQ", 8) + element(0x00080060, "CS", 0),
    "undefined length text": element(0x00080060, "UT", UNDEFINED),
    "fragments without delimiter": element(0x7FE00010, "OB", UNDEFINED)
    + element(0xFFFEE000, "", 2)
    + b"ab",
    "fragment overruns": element(0x7FE00010, "OB", UNDEFINED) + element(0xFFFEE000, "", 100),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bytes_raise_dicom_json_error(data: bytes) -> None:
    with pytest.raises(DicomJSONError):
        dataset_bytes_to_json(data)


def test_error_names_the_tag() -> None:
    with pytest.raises(DicomJSONError, match=r"\(0020,0013\) IS"):
        dataset_bytes_to_json(MALFORMED["IS not a number"])


def test_nesting_is_bounded() -> None:
    depth = 200
    opening = element(0x00081110, "SQ", UNDEFINED) + element(0xFFFEE000, "", UNDEFINED)
    closing = element(0xFFFEE00D, "", 0) + element(0xFFFEE0DD, "", 0)
    with pytest.raises(DicomJSONError, match="nested deeper"):
        dataset_bytes_to_json(opening * depth + closing * depth)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), implicit_vr=st.booleans())
def test_random_bytes_raise_only_dicom_json_error(data: bytes, implicit_vr: bool) -> None:
    try:
        result = dataset_bytes_to_json(data, implicit_vr=implicit_vr)
    except DicomJSONError:
        return
    encode_json(result)  # whatever was decoded can be serialized


VALID_EXPLICIT = encode(every_vr_dataset(), implicit_vr=False)


@settings(max_examples=300, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=len(VALID_EXPLICIT)),
    flips=st.lists(
        st.tuples(st.integers(0, len(VALID_EXPLICIT) - 1), st.integers(0, 255)), max_size=4
    ),
    implicit_vr=st.booleans(),
)
def test_damaged_data_sets_raise_only_dicom_json_error(
    cut: int, flips: list[tuple[int, int]], implicit_vr: bool
) -> None:
    data = bytearray(VALID_EXPLICIT)
    for position, value in flips:
        data[position] = value
    with contextlib.suppress(DicomJSONError):
        dataset_bytes_to_json(memoryview(data)[:cut], implicit_vr=implicit_vr)


# --- random valid data sets agree with pydicom ---------------------------------------------------

_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x17F, exclude_characters="\\="),
    max_size=20,
).map(str.strip)
_code = st.text(alphabet="ABCDEFXYZ0123456789_", min_size=1, max_size=16)
_uid = st.lists(st.integers(0, 99999), min_size=2, max_size=8).map(
    lambda parts: ".".join(map(str, parts))
)
_ATTRIBUTES = {
    "PatientName": st.tuples(_text, _text).map(lambda groups: "=".join(groups).rstrip("=")),
    "PatientID": _text,
    "StudyDescription": _text,
    "Modality": _code,
    "ModalitiesInStudy": st.lists(_code, min_size=1, max_size=3),
    "StudyInstanceUID": _uid,
    "StudyDate": st.dates(min_value=dt.date(1900, 1, 1)).map(lambda day: day.strftime("%Y%m%d")),
    "NumberOfStudyRelatedInstances": st.integers(-(2**31), 2**31 - 1),
    "SliceThickness": st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 3)),
    "Rows": st.integers(0, 65535),
    "PatientComments": _text,
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.fixed_dictionaries({}, optional=_ATTRIBUTES),
    implicit_vr=st.booleans(),
    utf8=st.booleans(),
)
def test_random_identifiers_agree_with_pydicom(
    values: dict[str, Any], implicit_vr: bool, utf8: bool
) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192" if utf8 else "ISO_IR 100"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    item = Dataset()
    item.PatientID = values.get("PatientID", "")
    ds.OtherPatientIDsSequence = [item]
    data = encode(ds, implicit_vr=implicit_vr)
    assert dataset_bytes_to_json(data, implicit_vr=implicit_vr) == pydicom_json(
        data, implicit_vr=implicit_vr
    )


# --- output --------------------------------------------------------------------------------------


def test_encode_json_writes_utf8_json() -> None:
    data = encode(every_vr_dataset(), implicit_vr=False)
    result = dataset_bytes_to_json(data)
    encoded = encode_json(result)
    assert isinstance(encoded, bytes)
    assert "Müller".encode() in encoded
    assert json.loads(encoded) == result
    assert dataset_bytes_to_json_bytes(bytearray(data)) == encoded


def test_accepts_memoryview_and_bytearray() -> None:
    data = encode(every_vr_dataset(), implicit_vr=True)
    expected = dataset_bytes_to_json(data, implicit_vr=True)
    assert dataset_bytes_to_json(memoryview(data), implicit_vr=True) == expected
    assert dataset_bytes_to_json(bytearray(data), implicit_vr=True) == expected


def test_sequence_of_datasets_can_be_built_with_pydicom_sequence_type() -> None:
    ds = Dataset()
    ds.ReferencedSeriesSequence = Sequence([Dataset()])
    assert dataset_bytes_to_json(encode(ds, implicit_vr=False)) == {
        "00081115": {"vr": "SQ", "Value": [{}]}
    }
