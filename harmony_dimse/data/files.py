"""DICOM Part 10 files on disk: written atomically, read back as raw data set bytes for sending.

``write_part10_atomic`` stores a received data set exactly as it came off the wire behind a file
meta header it builds itself; ``read_part10`` finds the data set bytes after the file meta without
parsing them, so C-STORE can send a file without decoding it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement
from pydicom.filereader import read_dataset

from harmony_dimse.data.encoding import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    LONG_HEADER_VR_BYTES,
    dataset_encoding,
    write_dataset_bytes,
)

__all__ = [
    "DataFileError",
    "Part10",
    "encode_dataset",
    "part10_bytes",
    "part10_header",
    "read_part10",
    "write_part10_atomic",
]

_PREAMBLE: Final = bytes(128)
_PREFIX: Final = b"DICM"
_FILE_META_VERSION: Final = b"\x00\x01"
_LONG_HEADER_VRS: Final = LONG_HEADER_VR_BYTES
_SHORT_HEADER = struct.Struct("<HH2sH")
_LONG_LENGTH = struct.Struct("<I")
_SHORT_LENGTH = struct.Struct("<H")
_TAG = struct.Struct("<HH")
_UNSAFE_FILENAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")
_ENCAPSULATED_ITEM: Final = b"\xfe\xff\x00\xe0"
_PIXEL_DATA: Final = 0x7FE00010

# File meta elements, by element number in group 0002.
_GROUP_LENGTH: Final = 0x0000
_MEDIA_STORAGE_SOP_CLASS_UID: Final = 0x0002
_MEDIA_STORAGE_SOP_INSTANCE_UID: Final = 0x0003
_TRANSFER_SYNTAX_UID: Final = 0x0010


class DataFileError(ValueError):
    """A file (or buffer) that is not a usable DICOM file: ``path`` says which, ``reason`` why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Part10:
    """What C-STORE needs from a file: its SOP class, instance, transfer syntax and data set."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    dataset: bytes | memoryview


# --- writing --------------------------------------------------------------------------------------


def _check_text(value: str, what: str, limit: int) -> str:
    value = value.strip().rstrip("\x00")
    if not value or len(value) > limit or not value.isascii() or not value.isprintable():
        raise ValueError(f"invalid {what} {value!r}: 1 to {limit} printable ASCII characters")
    if "\\" in value:
        raise ValueError(f"invalid {what} {value!r}: backslash is not allowed")
    return value


def _meta_element(element: int, vr: bytes, value: bytes, padding: bytes) -> bytes:
    if len(value) % 2:
        value += padding
    if vr in _LONG_HEADER_VRS:
        return _SHORT_HEADER.pack(0x0002, element, vr, 0) + _LONG_LENGTH.pack(len(value)) + value
    return _SHORT_HEADER.pack(0x0002, element, vr, len(value)) + value


def _file_meta(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    implementation_class_uid: str,
    implementation_version: str,
    source_ae: str | None,
) -> bytes:
    """Group 0002 in explicit VR little endian (PS3.10 7.1), group length first."""
    elements = [
        _meta_element(0x0001, b"OB", _FILE_META_VERSION, b"\x00"),
        _meta_element(_MEDIA_STORAGE_SOP_CLASS_UID, b"UI", sop_class_uid.encode(), b"\x00"),
        _meta_element(_MEDIA_STORAGE_SOP_INSTANCE_UID, b"UI", sop_instance_uid.encode(), b"\x00"),
        _meta_element(_TRANSFER_SYNTAX_UID, b"UI", transfer_syntax.encode(), b"\x00"),
        _meta_element(0x0012, b"UI", implementation_class_uid.encode(), b"\x00"),
    ]
    if implementation_version:
        elements.append(_meta_element(0x0013, b"SH", implementation_version.encode(), b" "))
    if source_ae:
        elements.append(_meta_element(0x0016, b"AE", source_ae.encode(), b" "))
    body = b"".join(elements)
    return _meta_element(_GROUP_LENGTH, b"UL", _LONG_LENGTH.pack(len(body)), b"") + body


def _safe_filename(name: str) -> str:
    safe = _UNSAFE_FILENAME_CHARACTERS.sub("_", name.strip()).lstrip(".")
    if not safe or len(safe) > 255:
        raise ValueError(f"cannot make a file name from {name!r}")
    return safe


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def part10_header(
    sop_instance_uid: str,
    sop_class_uid: str,
    transfer_syntax: str,
    *,
    implementation_class_uid: str,
    implementation_version: str,
    source_ae: str | None = None,
) -> bytes:
    """Preamble, DICM and file meta group: everything a Part 10 file has before its data set.

    ValueError when a UID, the version name or the AE title is empty, too long or not ASCII.
    """
    meta = _file_meta(
        _check_text(sop_class_uid, "SOP Class UID", 64),
        _check_text(sop_instance_uid, "SOP Instance UID", 64),
        _check_text(transfer_syntax, "Transfer Syntax UID", 64),
        _check_text(implementation_class_uid, "Implementation Class UID", 64),
        _check_text(implementation_version, "Implementation Version Name", 16)
        if implementation_version
        else "",
        _check_text(source_ae, "Source AE Title", 16) if source_ae else None,
    )
    return _PREAMBLE + _PREFIX + meta


def part10_bytes(
    sop_instance_uid: str,
    sop_class_uid: str,
    transfer_syntax: str,
    dataset: bytes | bytearray | memoryview,
    *,
    implementation_class_uid: str,
    implementation_version: str,
    source_ae: str | None = None,
) -> bytes:
    """A whole Part 10 file in memory (e.g. one part of a multipart/related answer)."""
    header = part10_header(
        sop_instance_uid,
        sop_class_uid,
        transfer_syntax,
        implementation_class_uid=implementation_class_uid,
        implementation_version=implementation_version,
        source_ae=source_ae,
    )
    return header + dataset


def write_part10_atomic(
    directory: Path,
    sop_instance_uid: str,
    sop_class_uid: str,
    transfer_syntax: str,
    dataset: bytes | bytearray | memoryview,
    *,
    implementation_class_uid: str,
    implementation_version: str,
    source_ae: str | None = None,
    filename: str | None = None,
) -> Path:
    """Write a Part 10 file: preamble, DICM, file meta, then ``dataset`` exactly as given.

    The bytes go to a temporary file in ``directory`` that is fsynced and renamed over the final
    name (``<SOPInstanceUID>.dcm`` unless ``filename`` is given; both sanitized), so readers see
    either no file or the whole file. On any failure the temporary file is removed.
    """
    header = part10_header(
        sop_instance_uid,
        sop_class_uid,
        transfer_syntax,
        implementation_class_uid=implementation_class_uid,
        implementation_version=implementation_version,
        source_ae=source_ae,
    )
    default_name = f"{_check_text(sop_instance_uid, 'SOP Instance UID', 64)}.dcm"
    name = _safe_filename(filename if filename is not None else default_name)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), 0o644)
            file.write(header)
            file.write(dataset)
            file.flush()
            os.fsync(file.fileno())
        final = directory / name
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)
    return final


# --- reading --------------------------------------------------------------------------------------


def _uid_text(raw: bytes) -> str:
    return raw.decode("latin-1").rstrip("\x00 ").strip()


def _parse_file_meta(view: memoryview, position: int, label: str) -> tuple[dict[int, bytes], int]:
    """Read group 0002 (explicit VR little endian) from ``position``; return elements and end.

    The group length, when it lands on an element boundary, ends the group (a deflated data set
    could start with bytes that look like group 0002); otherwise the group ends where the group
    number changes, as pydicom reads it.
    """
    elements: dict[int, bytes] = {}
    size = len(view)
    meta_end: int | None = None
    while position + 8 <= size and position != meta_end:
        group, element, vr, length = _SHORT_HEADER.unpack_from(view, position)
        if group != 0x0002:
            break
        if not (vr.isalpha() and vr.isupper()):
            raise DataFileError(label, "file meta information is not explicit VR little endian")
        header = 8
        if vr in _LONG_HEADER_VRS:
            if position + 12 > size:
                raise DataFileError(label, "file meta information is truncated")
            (length,) = _LONG_LENGTH.unpack_from(view, position + 8)
            header = 12
        value_start = position + header
        if length == 0xFFFFFFFF or value_start + length > size:
            raise DataFileError(
                label, f"file meta element (0002,{element:04X}) is truncated or malformed"
            )
        elements[element] = bytes(view[value_start : value_start + length])
        position = value_start + length
        if element == _GROUP_LENGTH and length == 4 and meta_end is None:
            (group_length,) = _LONG_LENGTH.unpack_from(elements[element])
            meta_end = position + group_length
    return elements, position


def _read_without_meta(data: bytes, label: str) -> Part10:
    """A bare data set (no preamble, no file meta): let pydicom guess its encoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = dcmread(
                io.BytesIO(data), force=True, specific_tags=["SOPClassUID", "SOPInstanceUID"]
            )
            sop_class_uid = str(parsed.get("SOPClassUID", "") or "")
            sop_instance_uid = str(parsed.get("SOPInstanceUID", "") or "")
            implicit_vr, little_endian = parsed.original_encoding
    except Exception as exc:  # pydicom guessing at arbitrary bytes can fail in many ways
        raise DataFileError(label, f"not a DICOM file ({exc})") from None
    if not sop_class_uid or not sop_instance_uid:
        raise DataFileError(
            label, "not a DICOM file: no DICM prefix, and no SOP Class/Instance UID in it"
        )
    if implicit_vr:
        transfer_syntax = IMPLICIT_VR_LITTLE_ENDIAN
    elif little_endian:
        transfer_syntax = EXPLICIT_VR_LITTLE_ENDIAN
    else:
        transfer_syntax = EXPLICIT_VR_BIG_ENDIAN
    return Part10(sop_class_uid.strip(), sop_instance_uid.strip(), transfer_syntax, data)


def _scan_sop_uids(
    dataset: memoryview, transfer_syntax: str
) -> tuple[str | None, str | None] | None:
    """SOP Class/Instance UID found by walking the data set's group 0008 elements.

    None when the walk cannot tell (not little endian, deflated, or an undefined length before
    the UIDs); the caller then trusts the file meta.
    """
    if transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN:
        implicit = True
    elif transfer_syntax in (EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN):
        return None
    else:
        implicit = False
    size = len(dataset)
    position = 0
    sop_class = sop_instance = None
    while position + 8 <= size:
        group, element = _TAG.unpack_from(dataset, position)
        if group > 0x0008 or (group == 0x0008 and element > 0x0018):
            break
        if implicit:
            length = _LONG_LENGTH.unpack_from(dataset, position + 4)[0]
            header = 8
        elif bytes(dataset[position + 4 : position + 6]) in _LONG_HEADER_VRS:
            if position + 12 > size:
                return None
            length = _LONG_LENGTH.unpack_from(dataset, position + 8)[0]
            header = 12
        else:
            length = _SHORT_LENGTH.unpack_from(dataset, position + 6)[0]
            header = 8
        if length == 0xFFFFFFFF or position + header + length > size:
            return None
        if group == 0x0008 and element in (0x0016, 0x0018):
            value = (
                _uid_text(bytes(dataset[position + header : position + header + length])) or None
            )
            if element == 0x0016:
                sop_class = value
            else:
                sop_instance = value
        position += header + length
    return sop_class, sop_instance


def _sop_uids_from_dataset(
    dataset: memoryview, transfer_syntax: str, label: str
) -> tuple[str | None, str | None]:
    """SOP Class/Instance UID read from the data set, for file meta that lacks them."""
    try:
        implicit_vr, little_endian, deflated, _ = dataset_encoding(transfer_syntax)
    except ValueError:
        return None, None
    if deflated:
        return None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = read_dataset(
                io.BytesIO(bytes(dataset)),
                implicit_vr,
                little_endian,
                stop_when=lambda tag, vr, length: tag > 0x00080018,
            )
            sop_class = parsed.get("SOPClassUID")
            sop_instance = parsed.get("SOPInstanceUID")
    except Exception as exc:  # the data set is about to be sent as is; name the failure here
        raise DataFileError(label, f"cannot read the SOP UIDs from the data set ({exc})") from None
    return (str(sop_class) if sop_class else None, str(sop_instance) if sop_instance else None)


def read_part10(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> Part10:
    """Read a Part 10 file's meta and return its data set bytes unparsed (a zero-copy view).

    Files without preamble or file meta are accepted when pydicom can find their SOP UIDs.
    Raises ``DataFileError`` naming the file and the reason; OSError if it cannot be read.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        label = "<bytes>"
        data = bytes(source) if not isinstance(source, bytes) else source
    else:
        label = os.fspath(source)
        with open(source, "rb") as file:
            data = file.read()
    if not data:
        raise DataFileError(label, "empty file")
    view = memoryview(data)

    if len(data) >= 132 and data[128:132] == _PREFIX:
        meta_start = 132
    elif data[:4] == _PREFIX:
        meta_start = 4
    elif len(data) >= 8 and _TAG.unpack_from(data)[0] == 0x0002 and data[4:6].isalpha():
        meta_start = 0
    else:
        return _read_without_meta(data, label)

    meta, dataset_start = _parse_file_meta(view, meta_start, label)
    transfer_syntax = _uid_text(meta.get(_TRANSFER_SYNTAX_UID, b""))
    if not transfer_syntax:
        raise DataFileError(label, "file meta information has no Transfer Syntax UID")
    dataset = view[dataset_start:]
    if not len(dataset):
        raise DataFileError(label, "no data set after the file meta information")
    sop_class_uid = _uid_text(meta.get(_MEDIA_STORAGE_SOP_CLASS_UID, b"")) or None
    sop_instance_uid = _uid_text(meta.get(_MEDIA_STORAGE_SOP_INSTANCE_UID, b"")) or None
    # The peer checks the UIDs in the data set, so those win over a file meta that disagrees.
    scanned = _scan_sop_uids(dataset, transfer_syntax)
    if scanned is not None:
        sop_class_uid = scanned[0] or sop_class_uid
        sop_instance_uid = scanned[1] or sop_instance_uid
    if sop_class_uid is None or sop_instance_uid is None:
        from_dataset = _sop_uids_from_dataset(dataset, transfer_syntax, label)
        sop_class_uid = sop_class_uid or from_dataset[0]
        sop_instance_uid = sop_instance_uid or from_dataset[1]
    if not sop_class_uid or not sop_instance_uid:
        raise DataFileError(label, "no SOP Class UID or SOP Instance UID in file meta or data set")
    return Part10(sop_class_uid, sop_instance_uid, transfer_syntax, dataset)


# --- pydicom datasets -----------------------------------------------------------------------------


def _shallow_copy(ds: Dataset, *, without_file_meta: bool) -> Dataset:
    """A new Dataset sharing ``ds``'s elements, so one can be replaced without touching ``ds``."""
    copied = Dataset(
        {
            element.tag: element
            for element in ds.elements()
            if not (without_file_meta and element.tag >> 16 == 0x0002)
        }
    )
    implicit_vr, little_endian = ds.original_encoding
    if implicit_vr is not None and little_endian is not None:
        copied.set_original_encoding(implicit_vr, little_endian, ds.original_character_set)
    return copied


def encode_dataset(ds: Dataset, transfer_syntax: str) -> bytes:
    """Encode a pydicom Dataset for C-STORE in ``transfer_syntax`` (no file meta).

    Native syntaxes (implicit/explicit little endian, explicit big endian, deflated) encode the
    pixel data as it is; for encapsulated syntaxes ``ds.PixelData`` must already hold the
    encapsulated fragments (e.g. from ``pydicom.encaps.encapsulate``). ValueError when the
    transfer syntax is unknown or the data set cannot be encoded.
    """
    syntax = dataset_encoding(transfer_syntax)
    to_write = ds
    if any(element.tag >> 16 == 0x0002 for element in ds.elements()):
        to_write = _shallow_copy(ds, without_file_meta=True)
    pixel_data = to_write.get(_PIXEL_DATA)
    if (
        pixel_data is not None
        and syntax.encapsulated
        and not pixel_data.is_undefined_length
        and isinstance(pixel_data.value, bytes)
        and pixel_data.value[:4] == _ENCAPSULATED_ITEM
    ):
        if to_write is ds:
            to_write = _shallow_copy(ds, without_file_meta=False)
        to_write[_PIXEL_DATA] = DataElement(
            _PIXEL_DATA, "OB", pixel_data.value, is_undefined_length=True
        )
    try:
        return write_dataset_bytes(to_write, transfer_syntax)
    except (AttributeError, TypeError, KeyError, OverflowError, struct.error) as exc:
        raise ValueError(f"cannot encode the data set as {transfer_syntax}: {exc}") from exc
