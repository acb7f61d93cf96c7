"""Writes the demo's sample studies: a small CT study with Study Instance UID 1.2.3.4.5.6 (the
one the brief's curl examples ask for) and pydicom's CT_small.dcm and MR_small.dcm."""

from __future__ import annotations

import shutil
import sys
from array import array
from pathlib import Path

from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

ROOT = "1.2.826.0.1.3680043.10.1440.9"


def brief_study(instances: int = 3) -> list[Dataset]:
    out = []
    for i in range(1, instances + 1):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = f"{ROOT}.1.{i}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName = "DEMO^PATIENT"
        ds.PatientID = "DEMO001"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = "1.2.3.4.5.6"
        ds.SeriesInstanceUID = f"{ROOT}.2"
        ds.StudyDate = "20240115"
        ds.StudyTime = "101500"
        ds.AccessionNumber = "ACC001"
        ds.StudyDescription = "Brief example study"
        ds.StudyID = "1"
        ds.Modality = "CT"
        ds.SeriesNumber = 1
        ds.InstanceNumber = i
        ds.Rows = ds.Columns = 64
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = array("H", ((x * i) & 0xFFFF for x in range(64 * 64))).tobytes()
        out.append(ds)
    return out


def main(folder: str) -> int:
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for ds in brief_study():
        ds.save_as(target / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        source = get_testdata_file(name)
        if source is not None:
            shutil.copy(str(source), target / name)
    print(f"demo data: {len(list(target.glob('*.dcm')))} files in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "tmp/demo-data"))
