"""Synthetic, deterministic DICOM test data built with pydicom, and pydicom's own sample files."""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterable
from pathlib import Path

from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian

UID_ROOT = "1.2.826.0.1.3680043.10.1234."
IMPLEMENTATION_CLASS_UID = UID_ROOT + "0.1"
IMPLEMENTATION_VERSION_NAME = "HARMONY_TEST"

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"

LATIN1_CHARSET = "ISO_IR 100"
UTF8_CHARSET = "ISO_IR 192"

# Names that only survive a round trip when the character set is honoured.
CHARSET_PATIENT_NAMES = {
    LATIN1_CHARSET: "MÜLLER^JÜRGEN",
    UTF8_CHARSET: "王^小東",
}
CHARSET_STUDY_DESCRIPTIONS = {
    LATIN1_CHARSET: "Thorax ÉTUDE",
    UTF8_CHARSET: "頭部 CT",
}

_FIRST_STUDY_DATE = datetime.date(2015, 1, 1)
_STUDY_DATE_SPAN_DAYS = 3650


def study_instance_uid(patient: int, study: int) -> str:
    """The Study Instance UID that make_instance gives to (patient, study)."""
    return f"{UID_ROOT}1.{patient}.{study}"


def series_instance_uid(patient: int, study: int, series: int) -> str:
    """The Series Instance UID that make_instance gives to (patient, study, series)."""
    return f"{UID_ROOT}2.{patient}.{study}.{series}"


def sop_instance_uid(patient: int, study: int, series: int, instance: int) -> str:
    """The SOP Instance UID that make_instance gives to one instance."""
    return f"{UID_ROOT}3.{patient}.{study}.{series}.{instance}"


def patient_name(patient: int, charset: str | None = None) -> str:
    """The Patient's Name that make_instance gives to a patient number."""
    if charset is not None and charset in CHARSET_PATIENT_NAMES:
        return CHARSET_PATIENT_NAMES[charset]
    return f"DOE^JOHN{patient}"


def patient_id(patient: int) -> str:
    """The Patient ID that make_instance gives to a patient number."""
    return f"PID{patient:04d}"


def study_date(patient: int, study: int) -> datetime.date:
    """The Study Date of (patient, study): spread over ten years, the same on every run."""
    offset = (patient * 97 + study * 31) % _STUDY_DATE_SPAN_DAYS
    return _FIRST_STUDY_DATE + datetime.timedelta(days=offset)


def _pixel_bytes(rows: int, cols: int, seed: int) -> bytes:
    values = [(seed * 131 + index * 7) % 4096 for index in range(rows * cols)]
    return struct.pack(f"<{len(values)}H", *values)


def make_instance(
    patient: int,
    study: int,
    series: int,
    instance: int,
    *,
    rows: int = 16,
    cols: int = 16,
    modality: str = "CT",
    charset: str | None = None,
) -> Dataset:
    """One valid image instance with file meta: CT Image Storage for "CT", else Secondary Capture.

    Every identifying value is derived from the four numbers, so the same call always gives the
    same dataset. With `charset` set, Specific Character Set is written and the patient name and
    study description carry characters that need that character set.
    """
    sop_class_uid = CT_IMAGE_STORAGE if modality == "CT" else SECONDARY_CAPTURE_IMAGE_STORAGE
    sop_uid = sop_instance_uid(patient, study, series, instance)
    date_text = study_date(patient, study).strftime("%Y%m%d")
    time_text = f"{8 + study % 10:02d}{(patient * 7) % 60:02d}{(series * 13) % 60:02d}"

    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.ImageType = (
        ["ORIGINAL", "PRIMARY", "AXIAL"] if modality == "CT" else ["DERIVED", "SECONDARY"]
    )
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = date_text
    ds.SeriesDate = date_text
    ds.ContentDate = date_text
    ds.StudyTime = time_text
    ds.SeriesTime = time_text
    ds.ContentTime = time_text
    ds.AccessionNumber = f"ACC{patient:04d}{study:03d}"
    ds.Modality = modality
    ds.Manufacturer = "HARMONY"
    ds.ReferringPhysicianName = "REFERRER^ANNE"
    ds.StudyDescription = CHARSET_STUDY_DESCRIPTIONS.get(
        charset or "", f"Study {study} of patient {patient}"
    )
    ds.SeriesDescription = f"Series {series}"
    ds.PatientName = patient_name(patient, charset)
    ds.PatientID = patient_id(patient)
    ds.PatientBirthDate = f"{1940 + patient % 60}0{1 + patient % 9}1{patient % 10}"
    ds.PatientSex = "M" if patient % 2 else "F"
    ds.StudyInstanceUID = study_instance_uid(patient, study)
    ds.SeriesInstanceUID = series_instance_uid(patient, study, series)
    ds.StudyID = f"S{study}"
    ds.SeriesNumber = series
    ds.InstanceNumber = instance
    ds.PatientOrientation = ""
    if modality == "CT":
        ds.KVP = 120
        ds.AcquisitionNumber = 1
        ds.SliceThickness = 1.0
        ds.ImagePositionPatient = [0.0, 0.0, float(instance)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.FrameOfReferenceUID = f"{UID_ROOT}4.{patient}.{study}"
        ds.PositionReferenceIndicator = ""
        ds.PixelSpacing = [0.5, 0.5]
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
    else:
        ds.ConversionType = "WSD"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = _pixel_bytes(rows, cols, seed=patient + study + series + instance)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    return ds


def make_corpus(
    patients: int = 2,
    studies: int = 2,
    series: int = 2,
    instances: int = 3,
    rows: int = 16,
    cols: int = 16,
    *,
    include_charsets: bool = True,
) -> list[Dataset]:
    """A tree of patients x studies x series x instances datasets, numbered from 1.

    With `include_charsets`, two more patients (numbers patients+1 and patients+2) follow, each
    with a single instance: one in ISO_IR 100 (Latin-1) and one in ISO_IR 192 (UTF-8).
    """
    corpus = [
        make_instance(p, st, se, i, rows=rows, cols=cols)
        for p in range(1, patients + 1)
        for st in range(1, studies + 1)
        for se in range(1, series + 1)
        for i in range(1, instances + 1)
    ]
    if include_charsets:
        for offset, charset in enumerate((LATIN1_CHARSET, UTF8_CHARSET), start=1):
            corpus.append(
                make_instance(patients + offset, 1, 1, 1, rows=rows, cols=cols, charset=charset)
            )
    return corpus


def write_corpus(directory: Path, datasets: Iterable[Dataset]) -> list[Path]:
    """Write each dataset as a DICOM Part 10 file named after its SOP Instance UID."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = directory / f"{ds.SOPInstanceUID}.dcm"
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def pydicom_test_files() -> list[Path]:
    """Real-world sample files shipped with pydicom: CT_small.dcm and MR_small.dcm."""
    paths = []
    for name in ("CT_small.dcm", "MR_small.dcm"):
        found = get_testdata_file(name)
        if found is None:
            raise FileNotFoundError(f"pydicom test file {name} is not available")
        paths.append(Path(str(found)))
    return paths
