"""DIMSE-C command sets (PS3.7 section 9.3): message types, and their group 0000 encoding.

A command set is always Implicit VR Little Endian: for each element a 2-byte group, 2-byte element
number, 4-byte value length, then the value. This module reads and writes it directly with
precompiled structs; ``encode_command`` and ``decode_command`` are the two entry points.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Self, TypeAlias, cast


class DIMSEError(ValueError):
    """A DIMSE message that cannot be encoded, decoded or reassembled; the text says why."""


class CommandField(IntEnum):
    C_STORE_RQ = 0x0001
    C_STORE_RSP = 0x8001
    C_GET_RQ = 0x0010
    C_GET_RSP = 0x8010
    C_FIND_RQ = 0x0020
    C_FIND_RSP = 0x8020
    C_MOVE_RQ = 0x0021
    C_MOVE_RSP = 0x8021
    C_ECHO_RQ = 0x0030
    C_ECHO_RSP = 0x8030
    N_EVENT_REPORT_RQ = 0x0100
    N_EVENT_REPORT_RSP = 0x8100
    N_GET_RQ = 0x0110
    N_GET_RSP = 0x8110
    N_SET_RQ = 0x0120
    N_SET_RSP = 0x8120
    N_ACTION_RQ = 0x0130
    N_ACTION_RSP = 0x8130
    N_CREATE_RQ = 0x0140
    N_CREATE_RSP = 0x8140
    N_DELETE_RQ = 0x0150
    N_DELETE_RSP = 0x8150
    C_CANCEL_RQ = 0x0FFF


class Priority(IntEnum):
    MEDIUM = 0x0000
    HIGH = 0x0001
    LOW = 0x0002


NO_DATASET = 0x0101  # CommandDataSetType: no data set follows; any other value announces one
DATASET_PRESENT = 0x0001  # the value we write when a data set follows
VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"

# Element numbers of group 0000 used by DIMSE-C, with their keywords (PS3.7 annex E).
KEYWORDS: dict[int, str] = {
    0x0000: "CommandGroupLength",
    0x0002: "AffectedSOPClassUID",
    0x0003: "RequestedSOPClassUID",
    0x0100: "CommandField",
    0x0110: "MessageID",
    0x0120: "MessageIDBeingRespondedTo",
    0x0600: "MoveDestination",
    0x0700: "Priority",
    0x0800: "CommandDataSetType",
    0x0900: "Status",
    0x0901: "OffendingElement",
    0x0902: "ErrorComment",
    0x0903: "ErrorID",
    0x1000: "AffectedSOPInstanceUID",
    0x1001: "RequestedSOPInstanceUID",
    0x1020: "NumberOfRemainingSuboperations",
    0x1021: "NumberOfCompletedSuboperations",
    0x1022: "NumberOfFailedSuboperations",
    0x1023: "NumberOfWarningSuboperations",
    0x1030: "MoveOriginatorApplicationEntityTitle",
    0x1031: "MoveOriginatorMessageID",
}

_HEADER = struct.Struct("<HHI")  # group, element, value length
_US = struct.Struct("<H")
_UL = struct.Struct("<I")
_AT = struct.Struct("<HH")
_HEADER_SIZE = _HEADER.size
_AE_MAX_LENGTH = 16


# ----------------------------------------------------------------------------- value codecs


def _encode_us(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise DIMSEError(f"value {value} does not fit an unsigned 16-bit field")
    return _US.pack(value)


def _encode_ui(value: str) -> bytes:
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise DIMSEError(f"UID {value!r} is not ASCII") from None
    return raw + b"\0" if len(raw) & 1 else raw


def _encode_ae(value: str) -> bytes:
    try:
        raw = value.strip().encode("ascii")
    except UnicodeEncodeError:
        raise DIMSEError(f"AE title {value!r} is not ASCII") from None
    if len(raw) > _AE_MAX_LENGTH:
        raise DIMSEError(f"AE title {value!r} is longer than {_AE_MAX_LENGTH} characters")
    return raw + b" " if len(raw) & 1 else raw


def _encode_lo(value: str) -> bytes:
    raw = value.encode("ascii", errors="replace")
    return raw + b" " if len(raw) & 1 else raw


def _encode_at(value: tuple[int, ...]) -> bytes:
    return b"".join(_AT.pack(tag >> 16 & 0xFFFF, tag & 0xFFFF) for tag in value)


def _encode_dataset_type(has_dataset: bool) -> bytes:
    return _US.pack(DATASET_PRESENT if has_dataset else NO_DATASET)


def _decode_us(raw: memoryview) -> int:
    if len(raw) != 2:
        raise DIMSEError(f"value length is {len(raw)}, an US value needs 2")
    value: int = _US.unpack(raw)[0]
    return value


def _decode_ascii(raw: memoryview, what: str) -> str:
    try:
        return bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        raise DIMSEError(f"{what} value {bytes(raw)!r} is not ASCII") from None


def _decode_ui(raw: memoryview) -> str:
    return _decode_ascii(raw, "UID").rstrip("\0 ")


def _decode_ae(raw: memoryview) -> str:
    return _decode_ascii(raw, "AE title").strip("\0 ")


def _decode_lo(raw: memoryview) -> str:
    return bytes(raw).decode("ascii", errors="replace").strip("\0 ")


def _decode_at(raw: memoryview) -> tuple[int, ...]:
    if len(raw) % 4:
        raise DIMSEError(f"value length is {len(raw)}, an AT value needs a multiple of 4")
    return tuple(group << 16 | element for group, element in _AT.iter_unpack(raw))


def _decode_dataset_type(raw: memoryview) -> bool:
    return _decode_us(raw) != NO_DATASET


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "US": _encode_us,
    "UI": _encode_ui,
    "AE": _encode_ae,
    "LO": _encode_lo,
    "AT": _encode_at,
    "DST": _encode_dataset_type,
}
_DECODERS: dict[str, Callable[[memoryview], Any]] = {
    "US": _decode_us,
    "UI": _decode_ui,
    "AE": _decode_ae,
    "LO": _decode_lo,
    "AT": _decode_at,
    "DST": _decode_dataset_type,
}


@dataclass(frozen=True, slots=True)
class _Field:
    element: int
    attribute: str
    vr: str  # a key of _ENCODERS, or "CMD" for the command field
    required: bool

    @property
    def label(self) -> str:
        return f"{KEYWORDS[self.element]} (0000,{self.element:04X})"


def _fields(*entries: tuple[int, str, str, bool]) -> tuple[_Field, ...]:
    fields = sorted((_Field(*entry) for entry in entries), key=lambda f: f.element)
    return tuple(fields)


_COMMAND = (0x0100, "command_field", "CMD", True)
_DATASET_TYPE = (0x0800, "has_dataset", "DST", True)
_SOP_CLASS_REQUIRED = (0x0002, "affected_sop_class_uid", "UI", True)
_SOP_CLASS_OPTIONAL = (0x0002, "affected_sop_class_uid", "UI", False)
_MESSAGE_ID = (0x0110, "message_id", "US", True)
_RESPONDED_TO = (0x0120, "message_id_being_responded_to", "US", True)
_PRIORITY = (0x0700, "priority", "US", True)
_RESPONSE_COMMON = (
    _COMMAND,
    _DATASET_TYPE,
    _SOP_CLASS_OPTIONAL,
    _RESPONDED_TO,
    (0x0900, "status", "US", True),
    (0x0901, "offending_element", "AT", False),
    (0x0902, "error_comment", "LO", False),
    (0x0903, "error_id", "US", False),
)
_SUBOPERATIONS = (
    (0x1020, "remaining", "US", False),
    (0x1021, "completed", "US", False),
    (0x1022, "failed", "US", False),
    (0x1023, "warning", "US", False),
)


# ----------------------------------------------------------------------------- messages


@dataclass(slots=True, kw_only=True)
class _Request:
    command_field: ClassVar[int]
    name: ClassVar[str]
    fields: ClassVar[tuple[_Field, ...]]

    message_id: int
    affected_sop_class_uid: str
    has_dataset: bool = True


@dataclass(slots=True, kw_only=True)
class _PriorityRequest(_Request):
    priority: int = 0  # Priority.MEDIUM


@dataclass(slots=True, kw_only=True)
class _Response:
    command_field: ClassVar[int]
    name: ClassVar[str]
    fields: ClassVar[tuple[_Field, ...]]

    message_id_being_responded_to: int
    status: int = 0x0000
    affected_sop_class_uid: str | None = None
    error_comment: str | None = None
    offending_element: tuple[int, ...] | None = None  # tags as 0xGGGGEEEE
    error_id: int | None = None
    has_dataset: bool = False
    # (0008,0058) when a peer puts it in the command set (Orthanc does); never encoded
    failed_sop_instances: tuple[str, ...] = ()

    @classmethod
    def for_request(cls, request: _Request, status: int = 0x0000, **fields: Any) -> Self:
        """The response to ``request``: same message ID, SOP class (and C-STORE SOP instance)."""
        if isinstance(request, CStoreRQ) and "affected_sop_instance_uid" not in fields:
            fields["affected_sop_instance_uid"] = request.affected_sop_instance_uid
        fields.setdefault("affected_sop_class_uid", request.affected_sop_class_uid)
        return cls(message_id_being_responded_to=request.message_id, status=status, **fields)


@dataclass(slots=True, kw_only=True)
class CEchoRQ(_Request):
    command_field: ClassVar[int] = CommandField.C_ECHO_RQ
    name: ClassVar[str] = "C-ECHO-RQ"
    fields: ClassVar[tuple[_Field, ...]] = _fields(
        _COMMAND, _DATASET_TYPE, _SOP_CLASS_REQUIRED, _MESSAGE_ID
    )

    affected_sop_class_uid: str = VERIFICATION_SOP_CLASS
    has_dataset: bool = False


@dataclass(slots=True, kw_only=True)
class CEchoRSP(_Response):
    command_field: ClassVar[int] = CommandField.C_ECHO_RSP
    name: ClassVar[str] = "C-ECHO-RSP"
    fields: ClassVar[tuple[_Field, ...]] = _fields(*_RESPONSE_COMMON)


@dataclass(slots=True, kw_only=True)
class CFindRQ(_PriorityRequest):
    command_field: ClassVar[int] = CommandField.C_FIND_RQ
    name: ClassVar[str] = "C-FIND-RQ"
    fields: ClassVar[tuple[_Field, ...]] = _fields(
        _COMMAND, _DATASET_TYPE, _SOP_CLASS_REQUIRED, _MESSAGE_ID, _PRIORITY
    )


@dataclass(slots=True, kw_only=True)
class CFindRSP(_Response):
    """A pending C-FIND-RSP carries an identifier: set ``has_dataset=True``."""

    command_field: ClassVar[int] = CommandField.C_FIND_RSP
    name: ClassVar[str] = "C-FIND-RSP"
    fields: ClassVar[tuple[_Field, ...]] = _fields(*_RESPONSE_COMMON)


@dataclass(slots=True, kw_only=True)
class CGetRQ(_PriorityRequest):
    command_field: ClassVar[int] = CommandField.C_GET_RQ
    name: ClassVar[str] = "C-GET-RQ"
    fields: ClassVar[tuple[_Field, ...]] = _fields(
        _COMMAND, _DATASET_TYPE, _SOP_CLASS_REQUIRED, _MESSAGE_ID, _PRIORITY
    )


@dataclass(slots=True, kw_only=True)
class _RetrieveResponse(_Response):
    remaining: int | None = None  # NumberOfRemainingSuboperations
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None


@dataclass(slots=True, kw_only=True)
class CGetRSP(_RetrieveResponse):
    command_field: ClassVar[int] = CommandField.C_GET_RSP
    name: ClassVar[str] = "C-GET-RSP"
    fields: ClassVar[tuple[_Field, ...]] = _fields(*_RESPONSE_COMMON, *_SUBOPERATIONS)


@dataclass(slots=True, kw_only=True)
class CMoveRQ(_PriorityRequest):
    command_field: ClassVar[int] = CommandField.C_MOVE_RQ
    name: ClassVar[str] = "C-MOVE-RQ"
    fields: ClassVar[tuple[_Field, ...]] = _fields(
        _COMMAND,
        _DATASET_TYPE,
        _SOP_CLASS_REQUIRED,
        _MESSAGE_ID,
        _PRIORITY,
        (0x0600, "move_destination", "AE", True),
    )

    move_destination: str


@dataclass(slots=True, kw_only=True)
class CMoveRSP(_RetrieveResponse):
    command_field: ClassVar[int] = CommandField.C_MOVE_RSP
    name: ClassVar[str] = "C-MOVE-RSP"
    fields: ClassVar[tuple[_Field, ...]] = _fields(*_RESPONSE_COMMON, *_SUBOPERATIONS)


@dataclass(slots=True, kw_only=True)
class CStoreRQ(_PriorityRequest):
    command_field: ClassVar[int] = CommandField.C_STORE_RQ
    name: ClassVar[str] = "C-STORE-RQ"
    fields: ClassVar[tuple[_Field, ...]] = _fields(
        _COMMAND,
        _DATASET_TYPE,
        _SOP_CLASS_REQUIRED,
        _MESSAGE_ID,
        _PRIORITY,
        (0x1000, "affected_sop_instance_uid", "UI", True),
        (0x1030, "move_originator_aet", "AE", False),
        (0x1031, "move_originator_message_id", "US", False),
    )

    affected_sop_instance_uid: str
    move_originator_aet: str | None = None  # MoveOriginatorApplicationEntityTitle
    move_originator_message_id: int | None = None


@dataclass(slots=True, kw_only=True)
class CStoreRSP(_Response):
    command_field: ClassVar[int] = CommandField.C_STORE_RSP
    name: ClassVar[str] = "C-STORE-RSP"
    fields: ClassVar[tuple[_Field, ...]] = _fields(
        *_RESPONSE_COMMON, (0x1000, "affected_sop_instance_uid", "UI", False)
    )

    affected_sop_instance_uid: str | None = None


@dataclass(slots=True, kw_only=True)
class CCancelRQ:
    command_field: ClassVar[int] = CommandField.C_CANCEL_RQ
    name: ClassVar[str] = "C-CANCEL-RQ"
    fields: ClassVar[tuple[_Field, ...]] = _fields(_COMMAND, _DATASET_TYPE, _RESPONDED_TO)

    message_id_being_responded_to: int
    has_dataset: bool = False


DimseRequest: TypeAlias = CEchoRQ | CFindRQ | CGetRQ | CMoveRQ | CStoreRQ | CCancelRQ
DimseResponse: TypeAlias = CEchoRSP | CFindRSP | CGetRSP | CMoveRSP | CStoreRSP
DimseMessage: TypeAlias = DimseRequest | DimseResponse

MESSAGE_TYPES: dict[int, type[DimseMessage]] = {
    cls.command_field: cls
    for cls in (
        CEchoRQ,
        CEchoRSP,
        CFindRQ,
        CFindRSP,
        CGetRQ,
        CGetRSP,
        CMoveRQ,
        CMoveRSP,
        CStoreRQ,
        CStoreRSP,
        CCancelRQ,
    )
}


_TEMPLATED: frozenset[type] = frozenset((CEchoRQ, CFindRQ, CGetRQ, CMoveRQ))

# ----------------------------------------------------------------------------- encode / decode

_FAILED_SOP_INSTANCE_UID_LIST = 0x00080058
_GROUP_LENGTH_HEADER = _HEADER.pack(0x0000, 0x0000, 4)


# Requests that differ from one another only by message ID are encoded once per shape; each
# encoding then splices the message ID into that template.
_TEMPLATES: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
_MAX_TEMPLATES = 256


def encode_command(msg: DimseMessage) -> bytes:
    """The command set of ``msg``: group 0000, Implicit VR Little Endian, ascending tags."""
    kind = type(msg)
    if kind in _TEMPLATED:
        request = cast(_PriorityRequest, msg)
        key = (
            kind,
            request.affected_sop_class_uid,
            request.has_dataset,
            getattr(msg, "priority", None),
            getattr(msg, "move_destination", None),
        )
        template = _TEMPLATES.get(key)
        if template is None:
            template = _message_id_template(msg)
            if len(_TEMPLATES) < _MAX_TEMPLATES:
                _TEMPLATES[key] = template
        message_id = request.message_id
        if type(message_id) is not int or not 0 <= message_id <= 0xFFFF:
            raise DIMSEError(
                f"{msg.name}: MessageID (0000,0110): value {message_id} does not fit an"
                " unsigned 16-bit field"
            )
        return template[0] + _US.pack(message_id) + template[1]
    return _encode_fields(msg)


def _message_id_template(msg: DimseMessage) -> tuple[bytes, bytes]:
    """The command set of ``msg`` cut around its 2-byte MessageID value."""
    encoded = _encode_fields(msg)
    offset = 0
    while True:
        _, element, length = _HEADER.unpack_from(encoded, offset)
        offset += _HEADER_SIZE
        if element == 0x0110:
            return encoded[:offset], encoded[offset + length :]
        offset += length


def _encode_fields(msg: DimseMessage) -> bytes:
    parts: list[bytes] = []
    length = 0
    for field in msg.fields:
        if field.vr == "CMD":
            value: bytes = _US.pack(msg.command_field)
        else:
            attribute = getattr(msg, field.attribute)
            if attribute is None:
                if field.required:
                    raise DIMSEError(f"{msg.name}: {field.label} is required")
                continue
            try:
                value = _ENCODERS[field.vr](attribute)
            except DIMSEError as exc:
                raise DIMSEError(f"{msg.name}: {field.label}: {exc}") from None
        parts.append(_HEADER.pack(0x0000, field.element, len(value)))
        parts.append(value)
        length += _HEADER_SIZE + len(value)
    return b"".join((_GROUP_LENGTH_HEADER, _UL.pack(length), *parts))


def _tag(group: int, element: int) -> str:
    return f"({group:04X},{element:04X})"


def _element_problem(
    group: int, element: int, length: int, left: int, values: dict[int, memoryview]
) -> str:
    tag = _tag(group, element)
    if length > left:
        return f"element {tag} is truncated: value length {length}, {left} bytes left"
    if length & 1:
        return f"element {tag} has odd value length {length}"
    return f"element {tag} appears twice"


def _split_elements(
    view: memoryview,
) -> tuple[dict[int, memoryview], int | None, dict[int, memoryview]]:
    """Element number -> value, the byte count of group 0000 after its group length element (if
    any), and the elements of other groups (tag -> value).

    Elements outside group 0000 do not belong in a command set, but Orthanc 1.10 puts the Failed
    SOP Instance UID List (0008,0058) of C-GET responses there, so they are kept, not refused.
    """
    values: dict[int, memoryview] = {}
    foreign: dict[int, memoryview] = {}
    size = len(view)
    offset = 0
    group_length_end: int | None = None
    group_end = size
    unpack_header = _HEADER.unpack_from
    last_header = size - _HEADER_SIZE
    while offset < size:
        if offset > last_header:
            raise DIMSEError(
                f"truncated element header at offset {offset}: "
                f"{size - offset} bytes left, {_HEADER_SIZE} needed"
            )
        group, element, length = unpack_header(view, offset)
        offset += _HEADER_SIZE
        end = offset + length
        if group:
            if end > size:
                raise DIMSEError(_element_problem(group, element, length, size - offset, values))
            if group_end == size:
                group_end = offset - _HEADER_SIZE
            foreign[group << 16 | element] = view[offset:end]
            offset = end
            continue
        if end > size or length & 1 or element in values:
            raise DIMSEError(_element_problem(group, element, length, size - offset, values))
        values[element] = view[offset:end]
        offset = end
        if not element:
            group_length_end = end
    after_group_length = None if group_length_end is None else group_end - group_length_end
    return values, after_group_length, foreign


# per message class: the fields its constructor takes (the rest are class constants)
_INIT_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls) if f.init) for cls in MESSAGE_TYPES.values()
}

# per command field: (element, attribute, vr, required, field) of every field but CommandField
_DECODE_PLANS: dict[int, tuple[tuple[int, str, str, bool, _Field], ...]] = {
    command_field: tuple(
        (f.element, f.attribute, f.vr, f.required, f) for f in cls.fields if f.vr != "CMD"
    )
    for command_field, cls in MESSAGE_TYPES.items()
}


# Responses from one peer repeat the same command set but for MessageIDBeingRespondedTo: the last
# response decoded of each length is kept with the offset of that value, and a command set equal
# to it everywhere else is decoded by copying its fields and reading the 2 bytes there.
_RESPONDED_TO_TEMPLATES: dict[int, tuple[bytes, int, type, dict[str, Any]]] = {}
_MAX_RESPONDED_TO_TEMPLATES = 64


def decode_command(data: bytes | bytearray | memoryview) -> DimseMessage:
    """Parse a command set; raises DIMSEError naming the problem when it is malformed."""
    raw = bytes(data)
    template = _RESPONDED_TO_TEMPLATES.get(len(raw))
    if template is not None:
        known, at, cls, fields = template
        if raw[:at] == known[:at] and raw[at + 2 :] == known[at + 2 :]:
            kwargs = fields.copy()
            kwargs["message_id_being_responded_to"] = raw[at] | raw[at + 1] << 8
            return cast(DimseMessage, cls(**kwargs))
    message = _decode_command(raw)
    if isinstance(message, _Response) and not message.failed_sop_instances:
        _remember_response(raw, message)
    return message


def _remember_response(raw: bytes, message: _Response) -> None:
    at = _value_offset(raw, 0x0120)
    if at is None or (
        len(raw) not in _RESPONDED_TO_TEMPLATES
        and len(_RESPONDED_TO_TEMPLATES) >= _MAX_RESPONDED_TO_TEMPLATES
    ):
        return
    fields = {name: getattr(message, name) for name in _INIT_FIELDS[type(message)]}
    _RESPONDED_TO_TEMPLATES[len(raw)] = (raw, at, type(message), fields)


def _value_offset(raw: bytes, wanted: int) -> int | None:
    """Where the value of group-0000 element ``wanted`` starts in a well-formed command set."""
    offset = 0
    while offset + _HEADER_SIZE <= len(raw):
        group, element, length = _HEADER.unpack_from(raw, offset)
        offset += _HEADER_SIZE
        if group == 0 and element == wanted:
            return offset if length == 2 else None
        offset += length
    return None


def _decode_command(data: bytes) -> DimseMessage:
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    values, after_group_length, foreign = _split_elements(view)

    if after_group_length is not None:
        raw_length = values[0x0000]
        if len(raw_length) != 4:
            raise DIMSEError(f"CommandGroupLength has value length {len(raw_length)}, expected 4")
        (declared,) = _UL.unpack(raw_length)
        if declared != after_group_length:
            raise DIMSEError(
                f"CommandGroupLength says {declared} bytes, but {after_group_length} follow it"
            )

    raw_command = values.get(0x0100)
    if raw_command is None:
        raise DIMSEError("CommandField (0000,0100) is missing")
    if len(raw_command) != 2:
        raise DIMSEError(
            f"CommandField (0000,0100): value length is {len(raw_command)}, an US value needs 2"
        )
    command_field = raw_command[0] | raw_command[1] << 8
    cls = MESSAGE_TYPES.get(command_field)
    if cls is None:
        try:
            known = f"{CommandField(command_field).name.replace('_', '-')} (0x{command_field:04X})"
        except ValueError:
            raise DIMSEError(f"unknown CommandField 0x{command_field:04X}") from None
        raise DIMSEError(f"unsupported command {known}")

    kwargs: dict[str, Any] = {}
    for element, attribute, vr, required, field in _DECODE_PLANS[command_field]:
        raw = values.get(element)
        if raw is None or (not raw and not required):
            if required:
                raise DIMSEError(f"{cls.name}: required {field.label} is missing")
            continue
        if vr == "US" and len(raw) == 2:  # most fields: no call needed
            kwargs[attribute] = raw[0] | raw[1] << 8
            continue
        try:
            kwargs[attribute] = _DECODERS[vr](raw)
        except DIMSEError as exc:
            raise DIMSEError(f"{cls.name}: {field.label}: {exc}") from None
    message = cls(**kwargs)
    failed = foreign.get(_FAILED_SOP_INSTANCE_UID_LIST)
    if failed is not None and isinstance(message, _Response):
        uids = bytes(failed).decode("ascii", "replace").rstrip("\x00 ")
        message.failed_sop_instances = tuple(u.strip("\x00 ") for u in uids.split("\\") if u)
    return message
