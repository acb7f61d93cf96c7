"""Transfer syntaxes and how a pydicom Dataset is written in one of them (no file meta)."""

from __future__ import annotations

import zlib
from typing import Final, NamedTuple

from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

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
