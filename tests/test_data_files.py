"""Tests for harmony_dimse.data.files: atomic Part 10 writes, raw reads, dataset encoding."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filereader import read_dataset

from harmony_dimse.data import files
from harmony_dimse.data.files import (
    DataFileError,
    Part10,
    encode_dataset,
    read_part10,
    write_part10_atomic,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom.*")

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.9.7433.1"


def sample_dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.PatientName = "Doe^John"
    ds.PatientID = "P1"
    ds.StudyInstanceUID = "1.2.3"
    ds.Modality = "CT"
    return ds


def write(directory: Path, data: bytes, **options: object) -> Path:
    arguments: dict[str, object] = {
        "implementation_class_uid": IMPLEMENTATION_UID,
        "implementation_version": "HARMONY_01",
    }
    arguments.update(options)
    return write_part10_atomic(
        directory,
        "1.2.3.4.5.6",
        CT_IMAGE_STORAGE,
        IMPLICIT,
        data,
        **arguments,  # type: ignore[arg-type]
    )


# --- writing --------------------------------------------------------------------------------------


def test_written_file_is_part10_and_pydicom_reads_it(tmp_path: Path) -> None:
    data = encode_dataset(sample_dataset(), IMPLICIT)
    path = write(tmp_path, data, source_ae="STORESCU")
    assert path == tmp_path / "1.2.3.4.5.6.dcm"
    raw = path.read_bytes()
    assert raw[:128] == bytes(128)
    assert raw[128:132] == b"DICM"
    assert raw.endswith(data)

    ds = dcmread(path)
    meta = ds.file_meta
    assert meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE
    assert meta.MediaStorageSOPInstanceUID == "1.2.3.4.5.6"
    assert meta.TransferSyntaxUID == IMPLICIT
    assert meta.ImplementationClassUID == IMPLEMENTATION_UID
    assert meta.ImplementationVersionName == "HARMONY_01"
    assert meta.SourceApplicationEntityTitle == "STORESCU"
    assert meta.FileMetaInformationVersion == b"\x00\x01"
    assert 132 + 12 + meta.FileMetaInformationGroupLength == len(raw) - len(data)
    assert ds.PatientName == "Doe^John"
    assert ds.SOPInstanceUID == "1.2.3.4.5.6"


def test_round_trip_through_read_part10(tmp_path: Path) -> None:
    data = encode_dataset(sample_dataset(), EXPLICIT)
    path = write_part10_atomic(
        tmp_path,
        "1.2.3.4.5.6",
        CT_IMAGE_STORAGE,
        EXPLICIT,
        memoryview(data),
        implementation_class_uid=IMPLEMENTATION_UID,
        implementation_version="",
    )
    part10 = read_part10(path)
    assert part10 == Part10(CT_IMAGE_STORAGE, "1.2.3.4.5.6", EXPLICIT, part10.dataset)
    assert bytes(part10.dataset) == data
    assert "ImplementationVersionName" not in dcmread(path).file_meta


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    write(tmp_path, b"\x08\x00\x60\x00\x02\x00\x00\x00CT")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["1.2.3.4.5.6.dcm"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_leaves_no_file_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, failing, fail)
    with pytest.raises(OSError, match="No space left"):
        write(tmp_path, b"\x08\x00\x60\x00\x02\x00\x00\x00CT")
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(tmp_path, b"first!")

    def fail(*args: object) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(files.os, "fsync", fail)
    with pytest.raises(OSError):
        write(tmp_path, b"second")
    assert first.read_bytes().endswith(b"first!")
    assert [path.name for path in tmp_path.iterdir()] == [first.name]


def test_rewrite_replaces_the_file(tmp_path: Path) -> None:
    write(tmp_path, b"first!")
    path = write(tmp_path, b"second")
    assert path.read_bytes().endswith(b"second")
    assert len(list(tmp_path.iterdir())) == 1


def test_file_names_are_sanitized(tmp_path: Path) -> None:
    path = write(tmp_path, b"data", filename="../../etc/passwd")
    assert path.parent == tmp_path
    assert path.name == "_.._etc_passwd"
    path = write(tmp_path, b"data", filename="a b:c.dcm")
    assert path.name == "a_b_c.dcm"


def test_directory_is_created(tmp_path: Path) -> None:
    path = write(tmp_path / "incoming" / "today", b"data")
    assert path.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"implementation_class_uid": ""}, "Implementation Class UID"),
        ({"implementation_version": "X" * 17}, "Implementation Version Name"),
        ({"source_ae": "A\\B"}, "Source AE Title"),
        ({"filename": "..."}, "file name"),
    ],
)
def test_invalid_arguments(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write(tmp_path, b"data", **options)
    assert list(tmp_path.iterdir()) == []


def test_invalid_sop_instance_uid(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SOP Instance UID"):
        write_part10_atomic(
            tmp_path,
            "",
            CT_IMAGE_STORAGE,
            IMPLICIT,
            b"data",
            implementation_class_uid=IMPLEMENTATION_UID,
            implementation_version="X",
        )


# --- reading --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm"])
def test_read_pydicom_files(name: str) -> None:
    path = get_testdata_file(name)
    assert path is not None
    part10 = read_part10(path)
    ds = dcmread(path)
    assert part10.sop_class_uid == ds.SOPClassUID
    assert part10.sop_instance_uid == ds.SOPInstanceUID
    assert part10.transfer_syntax == ds.file_meta.TransferSyntaxUID
    assert isinstance(part10.dataset, memoryview)
    raw = Path(path).read_bytes()
    assert bytes(part10.dataset) == raw[132 + 12 + ds.file_meta.FileMetaInformationGroupLength :]


def test_read_from_bytes() -> None:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    raw = Path(path).read_bytes()
    assert read_part10(raw) == read_part10(path)
    assert read_part10(bytearray(raw)).sop_instance_uid == read_part10(path).sop_instance_uid


def test_read_file_without_preamble_and_meta() -> None:
    path = get_testdata_file("ExplVR_LitEndNoMeta.dcm")
    assert path is not None
    part10 = read_part10(path)
    assert part10.transfer_syntax == EXPLICIT
    assert part10.sop_instance_uid == "1.2.333.4444.5.6.7.8"
    assert bytes(part10.dataset) == Path(path).read_bytes()


def test_read_bare_implicit_dataset() -> None:
    data = encode_dataset(sample_dataset(), IMPLICIT)
    part10 = read_part10(data)
    assert (part10.transfer_syntax, part10.sop_instance_uid) == (IMPLICIT, "1.2.3.4.5.6")


def test_meta_without_sop_uids_falls_back_to_the_dataset(tmp_path: Path) -> None:
    data = encode_dataset(sample_dataset(), EXPLICIT)
    meta_body = struct.pack("<HH2sH", 2, 0x10, b"UI", 20) + EXPLICIT.encode() + b"\x00"
    raw = bytes(128) + b"DICM" + meta_body + data
    part10 = read_part10(raw)
    assert (part10.sop_class_uid, part10.sop_instance_uid) == (CT_IMAGE_STORAGE, "1.2.3.4.5.6")
    assert bytes(part10.dataset) == data


def write_bytes(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "input.dcm"
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty file"),
        (b"hello, this is not DICOM at all" * 10, "not a DICOM file"),
        (bytes(128) + b"DICM" + struct.pack("<HH2sH", 2, 0x10, b"UI", 40) + b"1.2", "truncated"),
        (bytes(128) + b"DICM" + struct.pack("<HH2sH", 2, 0x02, b"UI", 2) + b"1\x00", "Transfer"),
        (bytes(128) + b"DICM" + struct.pack("<HHI", 2, 0x10, 2) + b"1\x00", "explicit VR"),
        (
            bytes(128)
            + b"DICM"
            + struct.pack("<HH2sH", 2, 0x10, b"UI", 18)
            + b"1.2.840.10008.1.2\x00",
            "no data set",
        ),
    ],
    ids=["empty", "text", "truncated", "no-ts", "implicit-meta", "no-dataset"],
)
def test_unusable_files_name_the_file_and_the_reason(
    tmp_path: Path, raw: bytes, reason: str
) -> None:
    path = write_bytes(tmp_path, raw)
    with pytest.raises(DataFileError) as caught:
        read_part10(path)
    assert caught.value.path == str(path)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(str(path))


def test_file_meta_and_dataset_without_sop_uids(tmp_path: Path) -> None:
    path = get_testdata_file("empty_charset_LEI.dcm")
    assert path is not None
    with pytest.raises(DataFileError, match="no SOP Class UID"):
        read_part10(path)


def test_big_endian_bare_dataset_is_refused() -> None:
    path = get_testdata_file("no_meta.dcm")
    assert path is not None
    with pytest.raises(DataFileError, match=r"no_meta\.dcm"):
        read_part10(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_part10(tmp_path / "nope.dcm")


# --- encoding pydicom datasets --------------------------------------------------------------------


@pytest.mark.parametrize(("syntax", "implicit_vr"), [(IMPLICIT, True), (EXPLICIT, False)])
def test_encode_dataset_little_endian(syntax: str, implicit_vr: bool) -> None:
    data = encode_dataset(sample_dataset(), syntax)
    read_back = read_dataset(io.BytesIO(data), implicit_vr, True)
    assert read_back == sample_dataset()


def test_encode_dataset_big_endian_and_deflated() -> None:
    big = encode_dataset(sample_dataset(), BIG_ENDIAN)
    assert read_dataset(io.BytesIO(big), False, False) == sample_dataset()
    deflated = encode_dataset(sample_dataset(), DEFLATED)
    assert zlib.decompress(deflated, -15) == encode_dataset(sample_dataset(), EXPLICIT)


def test_encode_dataset_drops_file_meta_elements() -> None:
    ds = sample_dataset()
    ds.add_new(0x00020010, "UI", EXPLICIT)
    data = encode_dataset(ds, EXPLICIT)
    assert data == encode_dataset(sample_dataset(), EXPLICIT)
    assert 0x00020010 in ds  # the caller's dataset is untouched


def test_encode_dataset_with_encapsulated_pixel_data(tmp_path: Path) -> None:
    ds = sample_dataset()
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = 8
    ds.SamplesPerPixel = 1
    frames = [b"\xff\xd8frame 01\xff\xd9", b"\xff\xd8frame 02\xff\xd9"]
    ds.PixelData = encapsulate(frames)
    ds.NumberOfFrames = 2
    data = encode_dataset(ds, JPEG_BASELINE)
    assert data.endswith(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    assert not ds["PixelData"].is_undefined_length  # caller's element untouched
    path = write_part10_atomic(
        tmp_path,
        ds.SOPInstanceUID,
        ds.SOPClassUID,
        JPEG_BASELINE,
        data,
        implementation_class_uid=IMPLEMENTATION_UID,
        implementation_version="X",
    )
    read_back = dcmread(path)
    assert read_back["PixelData"].is_undefined_length
    assert list(generate_frames(read_back.PixelData, number_of_frames=2)) == frames


def test_encode_pydicom_file_dataset_round_trip() -> None:
    path = get_testdata_file("MR_small_implicit.dcm")
    assert path is not None
    ds = dcmread(path)
    explicit = encode_dataset(ds, EXPLICIT)
    assert read_dataset(io.BytesIO(explicit), False, True) == dcmread(path)


def test_encode_dataset_unknown_transfer_syntax() -> None:
    with pytest.raises(ValueError, match="unknown transfer syntax"):
        encode_dataset(sample_dataset(), "1.2.3.4")


def test_encode_dataset_that_pydicom_cannot_write() -> None:
    ds = sample_dataset()
    ds.PixelData = b"\x00\x01"  # ambiguous 'OB or OW' with no BitsAllocated to resolve it
    with pytest.raises(ValueError, match="cannot encode"):
        encode_dataset(ds, EXPLICIT)


def test_write_is_readable_by_pydicom_for_every_native_syntax(tmp_path: Path) -> None:
    for syntax in (IMPLICIT, EXPLICIT, BIG_ENDIAN, DEFLATED):
        path = write_part10_atomic(
            tmp_path,
            "1.2.3.4.5.6",
            CT_IMAGE_STORAGE,
            syntax,
            encode_dataset(sample_dataset(), syntax),
            implementation_class_uid=IMPLEMENTATION_UID,
            implementation_version="X",
            filename=f"{syntax}.dcm",
        )
        ds = pydicom.dcmread(path)
        assert ds.PatientName == "Doe^John", syntax
        assert os.stat(path).st_mode & 0o777 == 0o644


def test_part10_bytes_is_the_file_content(tmp_path: Path) -> None:
    data = encode_dataset(sample_dataset(), EXPLICIT)
    path = write(tmp_path, data, source_ae="SCU")
    in_memory = files.part10_bytes(
        "1.2.3.4.5.6",
        CT_IMAGE_STORAGE,
        IMPLICIT,
        memoryview(data),
        implementation_class_uid=IMPLEMENTATION_UID,
        implementation_version="HARMONY_01",
        source_ae="SCU",
    )
    assert in_memory == path.read_bytes()
    assert read_part10(in_memory).sop_instance_uid == "1.2.3.4.5.6"


def test_part10_header_rejects_non_ascii_uids() -> None:
    with pytest.raises(ValueError, match="SOP Class UID"):
        files.part10_header(
            "1.2",
            "1.2.ä",
            IMPLICIT,
            implementation_class_uid=IMPLEMENTATION_UID,
            implementation_version="X",
        )


def test_sop_uids_come_from_the_data_set_when_the_meta_disagrees() -> None:
    # pydicom's rtplan.dcm has a file meta SOP Instance UID that differs from the data set's;
    # a PACS checks the data set, so that is the one to send in C-STORE-RQ.
    path = get_testdata_file("rtplan.dcm")
    assert path is not None
    part = read_part10(path)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID
    assert part.sop_instance_uid == ds.SOPInstanceUID
    assert part.sop_class_uid == ds.SOPClassUID
