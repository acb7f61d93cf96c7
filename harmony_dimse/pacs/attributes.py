"""What the PACS keeps of each instance: its attributes, filed by Query/Retrieve level.

An instance's data set is walked once at ingest (top level only, up to the pixel data). Every
public, non-bulk attribute is kept with its raw value bytes under the level of the Q/R information
model it belongs to (PS3.4 C.6): patient, study, series or image. Sequences are kept as whole
elements, encoded in both little endian syntaxes, so that a C-FIND answer is assembled from stored
bytes in whichever syntax the association uses, with no pydicom on the query path.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from pydicom import charset as pydicom_charset
from pydicom.datadict import dictionary_VR
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from ..data.encoding import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    dataset_encoding,
    write_dataset_bytes,
)

__all__ = [
    "COMPUTED_TAGS",
    "IMAGE",
    "LEVELS",
    "LEVEL_NAMES",
    "PATIENT",
    "SERIES",
    "STUDY",
    "Attributes",
    "InstanceError",
    "InstanceRecord",
    "decode_values",
    "describe_instance",
    "encode_element",
    "level_of",
    "text_decoder",
]

PATIENT, STUDY, SERIES, IMAGE = 0, 1, 2, 3
LEVELS: Final = {"PATIENT": PATIENT, "STUDY": STUDY, "SERIES": SERIES, "IMAGE": IMAGE}
LEVEL_NAMES: Final = ("PATIENT", "STUDY", "SERIES", "IMAGE")

# A stored attribute: (VR, value bytes) or, for a sequence, ("SQ", explicit element, implicit
# element) where both elements are complete (header included).
Attributes = dict[int, tuple[str, bytes] | tuple[str, bytes, bytes]]

SPECIFIC_CHARACTER_SET: Final = 0x00080005
SOP_CLASS_UID: Final = 0x00080016
SOP_INSTANCE_UID: Final = 0x00080018
MODALITY: Final = 0x00080060
PATIENT_ID: Final = 0x00100020
STUDY_INSTANCE_UID: Final = 0x0020000D
SERIES_INSTANCE_UID: Final = 0x0020000E
PIXEL_DATA: Final = 0x7FE00010

_ITEM: Final = 0xFFFEE000
_ITEM_DELIMITER: Final = 0xFFFEE00D
_SEQUENCE_DELIMITER: Final = 0xFFFEE0DD
_UNDEFINED: Final = 0xFFFFFFFF
_MAX_VALUE_LENGTH: Final = 0xFFFE  # longer values (huge texts) are not worth indexing
_MAX_SEQUENCE_LENGTH: Final = 64 * 1024  # e.g. per-frame functional groups stay out

_TAG_LENGTH = struct.Struct("<HHI")
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2sHI")
_U32 = struct.Struct("<I")

LONG_HEADER_VRS: Final = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
_LONG_HEADER_VR_BYTES: Final = frozenset(vr.encode() for vr in LONG_HEADER_VRS)
_KNOWN_VR_BYTES: Final = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB",
        b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
        b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
    }
)  # fmt: skip
_BULK_VRS: Final = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# VRs whose text depends on (0008,0005); the others use the default repertoire.
CHARSET_VRS: Final = frozenset({"SH", "LO", "UC", "ST", "LT", "UT", "PN"})
SINGLE_VALUED_VRS: Final = frozenset({"LT", "ST", "UT", "UR"})
_BINARY_NUMBERS: Final = {
    "US": struct.Struct("<H"),
    "SS": struct.Struct("<h"),
    "UL": struct.Struct("<I"),
    "SL": struct.Struct("<i"),
    "UV": struct.Struct("<Q"),
    "SV": struct.Struct("<q"),
    "FL": struct.Struct("<f"),
    "FD": struct.Struct("<d"),
}

# --- levels ---------------------------------------------------------------------------------------

# Group 0010 attributes of the Patient Study module: they describe the patient at one study.
_STUDY_LEVEL_PATIENT_TAGS: Final = frozenset(
    {0x00101010, 0x00101020, 0x00101022, 0x00101030, 0x00102180, 0x001021B0, 0x001021C0}
)
_PATIENT_TAGS: Final = frozenset(
    {
        0x00081120,  # Referenced Patient Sequence
        0x00120062,  # Patient Identity Removed
        0x00120063,  # De-identification Method
        0x00201200,  # Number of Patient Related Studies
        0x00201202,  # Number of Patient Related Series
        0x00201204,  # Number of Patient Related Instances
    }
)
_STUDY_TAGS: Final = frozenset(
    {
        0x00080020,  # Study Date
        0x00080030,  # Study Time
        0x00080050,  # Accession Number
        0x00080051,  # Issuer of Accession Number Sequence
        0x00080061,  # Modalities in Study
        0x00080062,  # SOP Classes in Study
        0x00080063,  # Anatomic Regions in Study Code Sequence
        0x00080090,  # Referring Physician's Name
        0x00080096,  # Referring Physician Identification Sequence
        0x00081030,  # Study Description
        0x00081032,  # Procedure Code Sequence
        0x00081048,  # Physician(s) of Record
        0x00081060,  # Name of Physician(s) Reading Study
        0x00081080,  # Admitting Diagnoses Description
        0x00081110,  # Referenced Study Sequence
        0x0020000D,  # Study Instance UID
        0x00200010,  # Study ID
        0x00201206,  # Number of Study Related Series
        0x00201208,  # Number of Study Related Instances
        0x00321032,  # Requesting Physician
        0x00321033,  # Requesting Service
        0x00321060,  # Requested Procedure Description
        0x00321064,  # Requested Procedure Code Sequence
        0x00324000,  # Study Comments
        0x00380010,  # Admission ID
        *_STUDY_LEVEL_PATIENT_TAGS,
    }
)
_SERIES_TAGS: Final = frozenset(
    {
        0x00080021,  # Series Date
        0x00080031,  # Series Time
        0x00080060,  # Modality
        0x00080064,  # Conversion Type
        0x00080068,  # Presentation Intent Type
        0x00080070,  # Manufacturer
        0x00080080,  # Institution Name
        0x00080081,  # Institution Address
        0x00081010,  # Station Name
        0x0008103E,  # Series Description
        0x0008103F,  # Series Description Code Sequence
        0x00081040,  # Institutional Department Name
        0x00081050,  # Performing Physician's Name
        0x00081070,  # Operators' Name
        0x00081090,  # Manufacturer's Model Name
        0x00081111,  # Referenced Performed Procedure Step Sequence
        0x00081250,  # Related Series Sequence
        0x00180015,  # Body Part Examined
        0x00181000,  # Device Serial Number
        0x00181020,  # Software Versions
        0x00181030,  # Protocol Name
        0x00185100,  # Patient Position
        0x0020000E,  # Series Instance UID
        0x00200011,  # Series Number
        0x00200052,  # Frame of Reference UID
        0x00200060,  # Laterality
        0x00201040,  # Position Reference Indicator
        0x00201209,  # Number of Series Related Instances
        0x00400244,  # Performed Procedure Step Start Date
        0x00400245,  # Performed Procedure Step Start Time
        0x00400253,  # Performed Procedure Step ID
        0x00400254,  # Performed Procedure Step Description
        0x00400260,  # Performed Protocol Code Sequence
        0x00400275,  # Request Attributes Sequence
    }
)

# Attributes the index computes rather than stores, by level.
COMPUTED_TAGS: Final = {
    0x00201200: PATIENT,
    0x00201202: PATIENT,
    0x00201204: PATIENT,
    0x00080061: STUDY,
    0x00080062: STUDY,
    0x00201206: STUDY,
    0x00201208: STUDY,
    0x00201209: SERIES,
}


def level_of(tag: int) -> int:
    """The Q/R level an attribute belongs to; anything not known to be higher is IMAGE."""
    if tag >> 16 == 0x0010:
        return STUDY if tag in _STUDY_LEVEL_PATIENT_TAGS else PATIENT
    if tag in _STUDY_TAGS:
        return STUDY
    if tag in _SERIES_TAGS:
        return SERIES
    if tag in _PATIENT_TAGS:
        return PATIENT
    return IMAGE


# --- records --------------------------------------------------------------------------------------


class InstanceError(ValueError):
    """An instance the PACS cannot index; the text says why."""


@dataclass(slots=True)
class InstanceRecord:
    """What the index needs of one instance."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    patient_id: str
    study_uid: str
    series_uid: str
    modality: str
    charset: str  # the raw (0008,0005) value, "" for the default repertoire
    levels: tuple[Attributes, Attributes, Attributes, Attributes]


@lru_cache(maxsize=4096)
def _implicit_vr(tag: int) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    if vr == "US or SS":
        return "US"
    if " or " in vr:
        return "OW"
    return vr


def _end_of_items(buf: bytes, pos: int, implicit: bool) -> int:
    """Where an undefined-length value (items, then a sequence delimiter) ends."""
    size = len(buf)
    while True:
        if pos + 8 > size:
            raise InstanceError("undefined-length value without its sequence delimiter")
        group, element, length = _TAG_LENGTH.unpack_from(buf, pos)
        tag = group << 16 | element
        pos += 8
        if tag == _SEQUENCE_DELIMITER:
            return pos
        if tag != _ITEM:
            raise InstanceError(
                f"expected an item at offset {pos - 8}, found ({group:04X},{element:04X})"
            )
        if length == _UNDEFINED:
            pos = _end_of_item(buf, pos, implicit)
        else:
            pos += length


def _end_of_item(buf: bytes, pos: int, implicit: bool) -> int:
    """Where an undefined-length item (elements, then an item delimiter) ends."""
    size = len(buf)
    while True:
        if pos + 8 > size:
            raise InstanceError("undefined-length item without its item delimiter")
        tag, vr, value_start, length = _header(buf, pos, implicit)
        if tag == _ITEM_DELIMITER:
            return pos + 8
        if length == _UNDEFINED:
            pos = _end_of_items(buf, value_start, implicit or vr == "UN")
        else:
            pos = value_start + length


def _header(buf: bytes, pos: int, implicit: bool) -> tuple[int, str | None, int, int]:
    """(tag, explicit VR or None, value start, value length) of the element at ``pos``."""
    if implicit or buf[pos : pos + 2] == b"\xfe\xff":  # items and delimiters carry no VR
        group, element, length = _TAG_LENGTH.unpack_from(buf, pos)
        return group << 16 | element, None, pos + 8, length
    group, element, vr_bytes, length = _EXPLICIT_SHORT.unpack_from(buf, pos)
    if vr_bytes in _LONG_HEADER_VR_BYTES:
        if pos + 12 > len(buf):
            raise InstanceError(f"element header truncated at offset {pos}")
        return group << 16 | element, vr_bytes.decode(), pos + 12, _U32.unpack_from(buf, pos + 8)[0]
    if not vr_bytes.isalpha() or not vr_bytes.isupper():
        raise InstanceError(f"invalid VR {vr_bytes!r} at offset {pos}: not explicit VR?")
    return group << 16 | element, vr_bytes.decode(), pos + 8, length


def _top_level(buf: bytes, implicit: bool) -> Iterator[tuple[int, str | None, int, int, int]]:
    """(tag, explicit VR, element start, value start, value end) of each top-level element
    before Pixel Data; the elements from Pixel Data on are only checked for truncation."""
    pos = 0
    size = len(buf)
    while pos + 8 <= size:
        tag, vr, value_start, length = _header(buf, pos, implicit)
        if length == _UNDEFINED:
            value_end = _end_of_items(buf, value_start, implicit or vr == "UN")
        else:
            value_end = value_start + length
            if value_end > size:
                raise InstanceError(
                    f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is truncated: "
                    f"{length} bytes announced, {size - value_start} left"
                )
        if tag < PIXEL_DATA:
            yield tag, vr, pos, value_start, value_end
        pos = value_end
    if pos != size:
        raise InstanceError(f"data set ends inside an element header at offset {pos}")


def _transcode_element(element: bytes, from_implicit: bool) -> bytes:
    """One encoded element (a sequence) in the other little endian VR encoding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(io.BytesIO(element), from_implicit, True)
        out = DicomBytesIO()
        out.is_implicit_VR = not from_implicit
        out.is_little_endian = True
        write_dataset(out, ds)
    return out.getvalue()


def _little_endian_bytes(dataset: bytes, transfer_syntax: str) -> tuple[bytes, bool]:
    """The data set bytes to walk and whether they are implicit VR."""
    if transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN:
        return dataset, True
    if transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN:
        return dataset, False
    try:
        implicit, little_endian, deflated, _ = dataset_encoding(transfer_syntax)
    except ValueError as exc:
        raise InstanceError(str(exc)) from None
    if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN or deflated:
        try:
            return zlib.decompress(dataset, -zlib.MAX_WBITS), False
        except zlib.error as exc:
            raise InstanceError(f"deflated data set does not inflate: {exc}") from None
    if transfer_syntax == EXPLICIT_VR_BIG_ENDIAN or not little_endian:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = read_dataset(
                    io.BytesIO(dataset),
                    False,
                    False,
                    stop_when=lambda tag, vr, length: tag >= PIXEL_DATA,
                )
                return write_dataset_bytes(ds, EXPLICIT_VR_LITTLE_ENDIAN), False
        except Exception as exc:  # pydicom fails in many ways on a broken big endian data set
            raise InstanceError(f"cannot read the big endian data set: {exc}") from None
    return dataset, implicit


def _uid(value: bytes) -> str:
    return value.decode("latin-1").strip("\x00 ")


def describe_instance(dataset: bytes | memoryview, transfer_syntax: str) -> InstanceRecord:
    """Walk an encoded data set once and return what the index keeps of it.

    Raises ``InstanceError`` when the bytes are not a data set or lack Study, Series or SOP
    Instance UID.
    """
    buf, implicit = _little_endian_bytes(bytes(dataset), transfer_syntax)
    if len(buf) >= 8:
        # some writers get the VR encoding wrong; the first element's header tells (as pydicom)
        looks_explicit = buf[4:6] in _KNOWN_VR_BYTES
        if implicit == looks_explicit:
            implicit = not looks_explicit
    levels: tuple[Attributes, Attributes, Attributes, Attributes] = ({}, {}, {}, {})
    charset = ""
    try:
        for tag, vr, start, value_start, value_end in _top_level(buf, implicit):
            group = tag >> 16
            if group < 0x0008 or group & 1 or tag & 0xFFFF == 0:
                continue  # meta/command groups, private attributes, group lengths
            if tag == SPECIFIC_CHARACTER_SET:
                charset = buf[value_start:value_end].decode("latin-1").strip("\x00 ")
                continue
            known_vr = _implicit_vr(tag)
            if vr is None or (vr == "UN" and known_vr != "UN"):
                if vr == "UN" and known_vr == "SQ":
                    continue  # a sequence sent as UN: its items are implicit VR; rare, skipped
                vr = known_vr
            if vr in _BULK_VRS:
                continue
            if vr == "SQ":
                if value_end - start > _MAX_SEQUENCE_LENGTH:
                    continue
                element = buf[start:value_end]
                try:
                    other = _transcode_element(element, implicit)
                except Exception:  # a sequence pydicom cannot re-encode is left out of the index
                    continue
                explicit_element, implicit_element = (
                    (other, element) if implicit else (element, other)
                )
                levels[level_of(tag)][tag] = ("SQ", explicit_element, implicit_element)
                continue
            length = value_end - value_start
            if length > _MAX_VALUE_LENGTH:
                continue
            value = buf[value_start:value_end]
            if length & 1:
                value += b"\x00" if vr == "UI" or vr in _BINARY_NUMBERS else b" "
            levels[level_of(tag)][tag] = (vr, value)
    except struct.error as exc:
        raise InstanceError(f"truncated data set: {exc}") from None
    except RecursionError:
        raise InstanceError("sequences nested too deeply") from None

    def uid(level: int, tag: int, name: str) -> str:
        entry = levels[level].get(tag)
        text = _uid(entry[1]) if entry is not None else ""
        if not text:
            raise InstanceError(f"no {name} in the data set")
        return text

    study_uid = uid(STUDY, STUDY_INSTANCE_UID, "Study Instance UID")
    series_uid = uid(SERIES, SERIES_INSTANCE_UID, "Series Instance UID")
    sop_uid = uid(IMAGE, SOP_INSTANCE_UID, "SOP Instance UID")
    sop_class = uid(IMAGE, SOP_CLASS_UID, "SOP Class UID")
    decode = text_decoder(charset)
    patient_entry = levels[PATIENT].get(PATIENT_ID)
    patient_id = decode(patient_entry[1]).strip() if patient_entry is not None else ""
    modality_entry = levels[SERIES].get(MODALITY)
    modality = modality_entry[1].decode("latin-1").strip() if modality_entry is not None else ""
    return InstanceRecord(
        sop_class,
        sop_uid,
        transfer_syntax,
        patient_id,
        study_uid,
        series_uid,
        modality,
        charset,
        levels,
    )


# --- reading values back --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def text_decoder(charset: str) -> Callable[[bytes], str]:
    """bytes -> str for text in a (0008,0005) value (as stored: terms joined by backslashes)."""
    terms = [term.strip() for term in charset.split("\\")] if charset else []
    if len(terms) <= 1 and not any("2022" in term for term in terms):
        codec = pydicom_charset.convert_encodings(terms or ["ISO_IR 6"])[0]
        if codec == "iso8859":
            codec = "latin-1"

        def decode_single(value: bytes) -> str:
            return value.decode(codec, errors="replace")

        return decode_single
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encodings = pydicom_charset.convert_encodings(terms)

    def decode_multi(value: bytes) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom_charset.decode_bytes(value, encodings, {0x5C, 0x3D, 0x5E})

    return decode_multi


def decode_values(vr: str, value: bytes, decode: Callable[[bytes], str]) -> list[str]:
    """A non-sequence value as a list of strings: text split on backslash, numbers as text."""
    unpacker = _BINARY_NUMBERS.get(vr)
    if unpacker is not None:
        return [
            repr(v[0])
            for v in unpacker.iter_unpack(value[: len(value) - len(value) % unpacker.size])
        ]
    if vr in CHARSET_VRS:
        text = decode(value)
    elif vr == "AT":
        return [f"{g:04X}{e:04X}" for g, e in struct.iter_unpack("<HH", value[: len(value) & ~3])]
    else:
        text = value.decode("latin-1")
    if vr in SINGLE_VALUED_VRS:
        text = text.rstrip(" \x00")
        return [text] if text else []
    text = text.strip(" \x00")
    if not text:
        return []
    if "\\" not in text:
        return [text]
    return [part.strip(" \x00") for part in text.split("\\")]


def encode_element(tag: int, vr: str, value: bytes, implicit: bool) -> bytes:
    """A non-sequence element (header and value) in implicit or explicit VR little endian."""
    if implicit:
        return _TAG_LENGTH.pack(tag >> 16, tag & 0xFFFF, len(value)) + value
    if vr in LONG_HEADER_VRS:
        return _EXPLICIT_LONG.pack(tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(value)) + value
    return _EXPLICIT_SHORT.pack(tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value
