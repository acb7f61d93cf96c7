"""DIMSE (PS3.7), sans-IO: command sets, P-DATA fragmenting and reassembly, status meanings.

``commands`` encodes and decodes the group 0000 command sets of the DIMSE-C messages,
``fragments`` cuts messages into P-DATA-TF PDUs and reassembles received PDVs, and ``status``
names status codes. Nothing here does I/O.
"""

from harmony_dimse.dimse.commands import (
    DATASET_PRESENT,
    NO_DATASET,
    VERIFICATION_SOP_CLASS,
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CGetRQ,
    CGetRSP,
    CMoveRQ,
    CMoveRSP,
    CommandField,
    CStoreRQ,
    CStoreRSP,
    DIMSEError,
    DimseMessage,
    DimseRequest,
    DimseResponse,
    Priority,
    decode_command,
    encode_command,
)
from harmony_dimse.dimse.fragments import MessageAssembler, ReceivedMessage, fragment
from harmony_dimse.dimse.status import (
    StatusInfo,
    describe_status,
    status_category,
    status_meaning,
)

__all__ = [
    "DATASET_PRESENT",
    "NO_DATASET",
    "VERIFICATION_SOP_CLASS",
    "CCancelRQ",
    "CEchoRQ",
    "CEchoRSP",
    "CFindRQ",
    "CFindRSP",
    "CGetRQ",
    "CGetRSP",
    "CMoveRQ",
    "CMoveRSP",
    "CStoreRQ",
    "CStoreRSP",
    "CommandField",
    "DIMSEError",
    "DimseMessage",
    "DimseRequest",
    "DimseResponse",
    "MessageAssembler",
    "Priority",
    "ReceivedMessage",
    "StatusInfo",
    "decode_command",
    "describe_status",
    "encode_command",
    "fragment",
    "status_category",
    "status_meaning",
]
