"""Transfer syntaxes and how a pydicom Dataset is written in one of them (no file meta)."""

from __future__ import annotations

import struct
import zlib
from typing import Final, NamedTuple

from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID
from pydicom.valuerep import PersonName

__all__ = [
    "DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN",
    "EXPLICIT_VR_BIG_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "LONG_HEADER_VRS",
    "LONG_HEADER_VR_BYTES",
    "DatasetEncoding",
    "dataset_encoding",
    "write_dataset_bytes",
]

IMPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN: Final = "1.2.840.10008.1.2.2"


class DatasetEncoding(NamedTuple):
    implicit_vr: bool
    little_endian: bool
    deflated: bool
    encapsulated: bool


_NATIVE: Final = {
    IMPLICIT_VR_LITTLE_ENDIAN: DatasetEncoding(True, True, False, False),
    EXPLICIT_VR_LITTLE_ENDIAN: DatasetEncoding(False, True, False, False),
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: DatasetEncoding(False, True, True, False),
    EXPLICIT_VR_BIG_ENDIAN: DatasetEncoding(False, False, False, False),
}


def dataset_encoding(transfer_syntax: str) -> DatasetEncoding:
    """How a data set is encoded in ``transfer_syntax``; ValueError for an unknown one.

    Encapsulated (compressed) transfer syntaxes encode the data set in explicit VR little endian.
    """
    uid = transfer_syntax.strip().rstrip("\x00")
    known = _NATIVE.get(uid)
    if known is not None:
        return known
    syntax = UID(uid)
    if not syntax.is_transfer_syntax:
        raise ValueError(f"unknown transfer syntax {transfer_syntax!r}")
    return DatasetEncoding(
        syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated, syntax.is_encapsulated
    )


def write_dataset_bytes(dataset: Dataset, transfer_syntax: str) -> bytes:
    """Encode ``dataset`` (without file meta) as ``transfer_syntax`` prescribes."""
    implicit_vr, little_endian, deflated, _ = dataset_encoding(transfer_syntax)
    if little_endian and not deflated:
        simple = encode_text_dataset(dataset, implicit_vr)
        if simple is not None:
            return simple
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = implicit_vr
    buffer.is_little_endian = little_endian
    write_dataset(buffer, dataset)
    encoded = buffer.getvalue()
    if deflated:
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
        encoded = compressor.compress(encoded) + compressor.flush()
    return encoded


# Explicit VRs whose header has two reserved bytes and a 32-bit length (PS3.5 7.1.2).
LONG_HEADER_VRS: Final = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
LONG_HEADER_VR_BYTES: Final = frozenset(vr.encode("ascii") for vr in LONG_HEADER_VRS)


# ---- the fast path for identifiers: text elements only, little endian, written directly ----

_TEXT_VRS: Final = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
_NUMBER_TEXT_VRS: Final = frozenset({"IS", "DS"})
_CHARSET_VRS: Final = frozenset({"PN", "LO", "LT", "SH", "ST", "UC", "UT"})
_CODECS: Final = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
_IMPLICIT_HEADER: Final = struct.Struct("<HHI")
_EXPLICIT_SHORT: Final = struct.Struct("<HH2sH")
_EXPLICIT_LONG: Final = struct.Struct("<HH2s2xI")
_LONG_TEXT_VRS: Final = frozenset({"UC", "UR", "UT"})


def encode_text_dataset(dataset: Dataset, implicit_vr: bool) -> bytes | None:
    """``dataset`` in little endian when it holds only text elements (a typical C-FIND
    identifier), without pydicom's writer; None when anything else is in it, so the caller
    falls back to pydicom. The bytes are what pydicom writes for the same data set."""
    charset = dataset.get("SpecificCharacterSet", "")
    if not isinstance(charset, str):
        return None  # several character sets: leave it to pydicom
    codec = _CODECS.get(charset.strip())
    if codec is None:
        return None
    parts: list[bytes] = []
    for element in dataset:
        vr = element.VR
        value = element.value
        if element.tag >> 16 == 0x0002:
            return None
        if vr in _NUMBER_TEXT_VRS and (value is None or value == ""):
            raw = b""  # an IS/DS return key; a value goes through pydicom's number formatting
        elif vr not in _TEXT_VRS:
            return None
        elif value is None or value == "":
            raw = b""
        else:
            if isinstance(value, str | PersonName):
                text = str(value)
            elif isinstance(value, MultiValue) and all(
                isinstance(v, str | PersonName) for v in value
            ):
                text = "\\".join(str(v) for v in value)
            else:
                return None
            try:
                raw = text.encode(codec if vr in _CHARSET_VRS else "ascii")
            except UnicodeEncodeError:
                return None
            if len(raw) & 1:
                raw += b"\x00" if vr == "UI" else b" "
        group, number = element.tag >> 16, element.tag & 0xFFFF
        if implicit_vr:
            parts.append(_IMPLICIT_HEADER.pack(group, number, len(raw)))
        elif vr in _LONG_TEXT_VRS:
            parts.append(_EXPLICIT_LONG.pack(group, number, vr.encode(), len(raw)))
        elif len(raw) > 0xFFFF:
            return None
        else:
            parts.append(_EXPLICIT_SHORT.pack(group, number, vr.encode(), len(raw)))
        parts.append(raw)
    return b"".join(parts)
