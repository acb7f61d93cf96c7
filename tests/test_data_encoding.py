"""The direct encoder for text-only identifiers writes exactly what pydicom writes."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from harmony_dimse.data.encoding import encode_text_dataset
from harmony_dimse.data.query import build_identifier


def pydicom_bytes(ds: Dataset, implicit: bool) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = implicit
    buffer.is_little_endian = True
    write_dataset(buffer, ds)
    return buffer.getvalue()


QUERIES: list[tuple[dict[str, Any], str | None]] = [
    ({"StudyInstanceUID": "1.2.3.4.5.6"}, "STUDY"),
    ({"PatientID": "*", "PatientName": "*", "StudyInstanceUID": ""}, None),
    (
        {"PatientName": "DOE^JOHN^^^", "StudyDate": "20240101-20241231", "ModalitiesInStudy": ""},
        "STUDY",
    ),
    ({"StudyInstanceUID": ["1.2.3", "1.2.34", "1.2.345"], "AccessionNumber": "A1"}, "STUDY"),
    ({"PatientName": "MÜLLER^JÜRGEN", "PatientID": "X"}, "PATIENT"),
    ({"PatientName": "王^小東=WANG^XIAODONG", "StudyDescription": "頭部"}, "STUDY"),
    ({"SeriesInstanceUID": "1.2.3.4.5.6.7", "Modality": "CT", "SeriesNumber": ""}, "SERIES"),
    ({"SOPInstanceUID": "", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3"}, "IMAGE"),
    ({"StudyTime": "101500-", "ReferringPhysicianName": "", "StudyID": "7"}, "STUDY"),
]


@pytest.mark.parametrize("implicit", [True, False])
@pytest.mark.parametrize(("query", "level"), QUERIES)
def test_same_bytes_as_pydicom(query: dict[str, Any], level: str | None, implicit: bool) -> None:
    ds = build_identifier(query, level, model="PATIENT" if level == "PATIENT" else "STUDY")
    fast = encode_text_dataset(ds, implicit)
    assert fast is not None
    assert fast == pydicom_bytes(ds, implicit)


def test_non_text_elements_fall_back() -> None:
    ds = build_identifier({"StudyInstanceUID": "", "NumberOfStudyRelatedInstances": ""}, "STUDY")
    ds.Rows = 16  # US: not text
    assert encode_text_dataset(ds, True) is None
    ds = build_identifier({"ReferencedStudySequence": {"ReferencedSOPInstanceUID": ""}}, "STUDY")
    assert encode_text_dataset(ds, False) is None
