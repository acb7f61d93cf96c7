"""Bytes <-> PDUs for the DICOM Upper Layer (PS3.8 section 9.3, annex D), sans-IO.

``encode_pdu`` and ``encode_p_data_tf`` turn the data types of ``ul.pdu`` into bytes; ``decode_pdu``
reads one whole PDU; ``PDUReader`` cuts a byte stream into PDUs. Decoding raises only ``PDUError``,
whose ``reason`` is the A-ABORT reason the connection should send back.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .pdu import (
    PDU,
    PDV,
    Abort,
    AbortReason,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    AsyncOperationsWindow,
    ItemType,
    PDataTF,
    PDUError,
    PDUType,
    PresentationContextAC,
    PresentationContextRQ,
    ReleaseRP,
    ReleaseRQ,
    RoleSelection,
    SOPClassCommonExtended,
    SOPClassExtended,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
)

__all__ = [
    "MAX_ASSOCIATE_PDU_LENGTH",
    "PDUReader",
    "decode_pdu",
    "encode_p_data_tf",
    "encode_pdu",
]

MAX_ASSOCIATE_PDU_LENGTH = 1 << 20
"""Largest A-ASSOCIATE-RQ/AC variable field we accept; real ones are a few kilobytes."""

_ASSOCIATE_FIXED_LENGTH = 68  # protocol version, reserved, two AE titles, 32 reserved bytes
_SHORT_PDU_LENGTH = 4  # A-ASSOCIATE-RJ, A-RELEASE-RQ/RP, A-ABORT
_AE_TITLE_LENGTH = 16
_MAX_ITEM_LENGTH = 0xFFFF

# Bodies of at least this size that arrive in pieces are gathered straight into their own buffer
# instead of going through the reader's shared buffer (one copy instead of two).
_DIRECT_BODY_THRESHOLD = 64 * 1024
# ...but never allocate more than this ahead of the bytes actually arriving: the length is the
# peer's word and, with no negotiated limit, may claim 4 GiB. Larger bodies use the shared buffer.
_DIRECT_BODY_MAX = 64 * 1024 * 1024
# The reader's shared buffer is compacted once this many consumed bytes sit at its front.
_COMPACT_THRESHOLD = 256 * 1024

_PDU_HEADER = struct.Struct(">BxI")
_PDV_HEADER = struct.Struct(">IBB")
_ONE_PDV_HEADERS = struct.Struct(">BxIIBB")  # a P-DATA-TF PDU header and its only PDV's header
_ITEM_HEADER = struct.Struct(">BxH")
_ASSOCIATE_FIXED = struct.Struct(">H2x16s16s32x")
_PC_RQ_HEADER = struct.Struct(">B3x")
_PC_AC_HEADER = struct.Struct(">BxBx")
_REJECT_BODY = struct.Struct(">xBBB")
_ABORT_BODY = struct.Struct(">2xBB")
_RELEASE_BODY = b"\x00\x00\x00\x00"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TWO_U16 = struct.Struct(">HH")
_TWO_U8 = struct.Struct(">BB")
_ROLE_TRAILER = 2  # SCU role, SCP role

_PDU_TYPES = frozenset(int(t) for t in PDUType)
_ITEM_TYPES = frozenset(int(t) for t in ItemType)

_INVALID = AbortReason.INVALID_PDU_PARAMETER_VALUE


# ============================================================================= encoding


def _ascii(text: str, what: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be ASCII: {text!r}") from None


def _ae_title(title: str, what: str) -> bytes:
    raw = _ascii(title, what)
    if len(raw) > _AE_TITLE_LENGTH:
        raise ValueError(f"{what} longer than 16 characters: {title!r}")
    return raw.ljust(_AE_TITLE_LENGTH, b" ")


def _item(item_type: int, value: bytes) -> bytes:
    if len(value) > _MAX_ITEM_LENGTH:
        raise ValueError(f"item 0x{item_type:02X} too long: {len(value)} bytes")
    return _ITEM_HEADER.pack(item_type, len(value)) + value


def _sized(value: bytes, what: str) -> bytes:
    """A 2-byte length followed by ``value``, as used inside several user-information items."""
    if len(value) > _MAX_ITEM_LENGTH:
        raise ValueError(f"{what} too long: {len(value)} bytes")
    return _U16.pack(len(value)) + value


def _uid_item(item_type: int, uid: str, what: str) -> bytes:
    return _item(item_type, _ascii(uid, what))


def _encode_user_information(info: UserInformation) -> bytes:
    parts: list[bytes] = []
    if info.max_length is not None:
        parts.append(_item(ItemType.MAXIMUM_LENGTH, _U32.pack(info.max_length)))
    if info.implementation_class_uid:
        parts.append(
            _uid_item(
                ItemType.IMPLEMENTATION_CLASS_UID,
                info.implementation_class_uid,
                "implementation class UID",
            )
        )
    if info.async_ops_window is not None:
        window = info.async_ops_window
        parts.append(
            _item(
                ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW,
                _TWO_U16.pack(window.max_invoked, window.max_performed),
            )
        )
    for role in info.role_selections:
        value = _sized(_ascii(role.sop_class_uid, "SOP class UID"), "SOP class UID")
        parts.append(
            _item(ItemType.ROLE_SELECTION, value + _TWO_U8.pack(role.scu_role, role.scp_role))
        )
    if info.implementation_version_name is not None:
        parts.append(
            _item(
                ItemType.IMPLEMENTATION_VERSION_NAME,
                _ascii(info.implementation_version_name, "implementation version name"),
            )
        )
    for extended in info.sop_class_extended:
        value = _sized(_ascii(extended.sop_class_uid, "SOP class UID"), "SOP class UID")
        parts.append(_item(ItemType.SOP_CLASS_EXTENDED_NEGOTIATION, value + extended.info))
    for common in info.sop_class_common_extended:
        related = b"".join(
            _sized(_ascii(uid, "related SOP class UID"), "related SOP class UID")
            for uid in common.related_general_sop_classes
        )
        value = (
            _sized(_ascii(common.sop_class_uid, "SOP class UID"), "SOP class UID")
            + _sized(_ascii(common.service_class_uid, "service class UID"), "service class UID")
            + _sized(related, "related general SOP class list")
        )
        parts.append(_item(ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION, value))
    if info.user_identity_rq is not None:
        identity = info.user_identity_rq
        value = (
            _TWO_U8.pack(identity.identity_type, identity.positive_response_requested)
            + _sized(identity.primary_field, "user identity primary field")
            + _sized(identity.secondary_field, "user identity secondary field")
        )
        parts.append(_item(ItemType.USER_IDENTITY_RQ, value))
    if info.user_identity_ac is not None:
        value = _sized(info.user_identity_ac.server_response, "user identity server response")
        parts.append(_item(ItemType.USER_IDENTITY_AC, value))
    return _item(ItemType.USER_INFORMATION, b"".join(parts))


def _encode_associate(
    pdu_type: int,
    pdu: AssociateRQ | AssociateAC,
    contexts: list[bytes],
) -> bytes:
    body = b"".join(
        [
            _ASSOCIATE_FIXED.pack(
                pdu.protocol_version,
                _ae_title(pdu.called_ae, "called AE title"),
                _ae_title(pdu.calling_ae, "calling AE title"),
            ),
            _uid_item(ItemType.APPLICATION_CONTEXT, pdu.application_context, "application context"),
            *contexts,
            _encode_user_information(pdu.user_info),
        ]
    )
    return _PDU_HEADER.pack(pdu_type, len(body)) + body


def _encode_associate_rq(pdu: AssociateRQ) -> bytes:
    contexts = []
    for context in pdu.presentation_contexts:
        syntaxes = [_uid_item(ItemType.ABSTRACT_SYNTAX, context.abstract_syntax, "abstract syntax")]
        syntaxes.extend(
            _uid_item(ItemType.TRANSFER_SYNTAX, uid, "transfer syntax")
            for uid in context.transfer_syntaxes
        )
        value = _PC_RQ_HEADER.pack(context.context_id) + b"".join(syntaxes)
        contexts.append(_item(ItemType.PRESENTATION_CONTEXT_RQ, value))
    return _encode_associate(PDUType.ASSOCIATE_RQ, pdu, contexts)


def _encode_associate_ac(pdu: AssociateAC) -> bytes:
    contexts = []
    for context in pdu.presentation_contexts:
        value = _PC_AC_HEADER.pack(context.context_id, context.result) + _uid_item(
            ItemType.TRANSFER_SYNTAX, context.transfer_syntax, "transfer syntax"
        )
        contexts.append(_item(ItemType.PRESENTATION_CONTEXT_AC, value))
    return _encode_associate(PDUType.ASSOCIATE_AC, pdu, contexts)


def _encode_associate_rj(pdu: AssociateRJ) -> bytes:
    return _PDU_HEADER.pack(PDUType.ASSOCIATE_RJ, _SHORT_PDU_LENGTH) + _REJECT_BODY.pack(
        pdu.result, pdu.source, pdu.reason
    )


def _encode_p_data_tf_pdu(pdu: PDataTF) -> bytes:
    return b"".join(encode_p_data_tf(pdu.pdvs))


def _encode_release_rq(pdu: ReleaseRQ) -> bytes:
    return _PDU_HEADER.pack(PDUType.RELEASE_RQ, _SHORT_PDU_LENGTH) + _RELEASE_BODY


def _encode_release_rp(pdu: ReleaseRP) -> bytes:
    return _PDU_HEADER.pack(PDUType.RELEASE_RP, _SHORT_PDU_LENGTH) + _RELEASE_BODY


def _encode_abort(pdu: Abort) -> bytes:
    return _PDU_HEADER.pack(PDUType.ABORT, _SHORT_PDU_LENGTH) + _ABORT_BODY.pack(
        pdu.source, pdu.reason
    )


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    AssociateRQ: _encode_associate_rq,
    AssociateAC: _encode_associate_ac,
    AssociateRJ: _encode_associate_rj,
    PDataTF: _encode_p_data_tf_pdu,
    ReleaseRQ: _encode_release_rq,
    ReleaseRP: _encode_release_rp,
    Abort: _encode_abort,
}


def encode_pdu(pdu: PDU) -> bytes:
    """The whole PDU, 6-byte header included. Raises ValueError for values it cannot encode."""
    encoder = _ENCODERS.get(type(pdu))
    if encoder is None:
        raise TypeError(f"not a PDU: {pdu!r}")
    try:
        return encoder(pdu)
    except struct.error as exc:
        raise ValueError(f"cannot encode {type(pdu).__name__}: {exc}") from None


def encode_one_pdv(context_id: int, is_command: bool, is_last: bool, data: bytes) -> bytes:
    """A P-DATA-TF PDU carrying one PDV, as one bytes object (a command set, say)."""
    size = len(data)
    control = (1 if is_command else 0) | (2 if is_last else 0)
    try:
        header = _ONE_PDV_HEADERS.pack(PDUType.P_DATA_TF, size + 6, size + 2, context_id, control)
    except struct.error as exc:
        raise ValueError(f"cannot encode P-DATA-TF: {exc}") from None
    return header + data


def encode_p_data_tf(pdvs: Sequence[PDV]) -> list[bytes | memoryview]:
    """One P-DATA-TF PDU as chunks for ``transport.writelines``.

    The first chunk is the PDU header joined with the first PDV header; then each PDV's data (the
    very object given, not a copy) follows its own 6-byte PDV header. Empty data adds no chunk.
    """
    if not pdvs:
        raise ValueError("a P-DATA-TF PDU needs at least one PDV")
    chunks: list[bytes | memoryview] = []
    pack_pdv_header = _PDV_HEADER.pack
    total = 0
    try:
        for pdv in pdvs:
            data = pdv.data
            size = data.nbytes if isinstance(data, memoryview) else len(data)
            control = (1 if pdv.is_command else 0) | (2 if pdv.is_last else 0)
            chunks.append(pack_pdv_header(size + 2, pdv.context_id, control))
            if size:
                chunks.append(data)
            total += size + 6
        chunks[0] = _PDU_HEADER.pack(PDUType.P_DATA_TF, total) + chunks[0]
    except struct.error as exc:
        raise ValueError(f"cannot encode P-DATA-TF: {exc}") from None
    return chunks


# ============================================================================= decoding


def _fail(message: str, reason: AbortReason = _INVALID) -> PDUError:
    return PDUError(message, reason)


def _items(body: memoryview, start: int, end: int, where: str) -> Iterator[tuple[int, int, int]]:
    """(item type, value start, value end) for each item in ``body[start:end]``."""
    position = start
    while position < end:
        if end - position < _ITEM_HEADER.size:
            raise _fail(f"truncated item header in {where}")
        item_type, length = _ITEM_HEADER.unpack_from(body, position)
        value_start = position + _ITEM_HEADER.size
        position = value_start + length
        if position > end:
            raise _fail(f"item 0x{item_type:02X} overflows {where}")
        yield item_type, value_start, position


def _misplaced(item_type: int, where: str) -> PDUError:
    if item_type in _ITEM_TYPES:
        return _fail(
            f"unexpected item 0x{item_type:02X} in {where}", AbortReason.UNEXPECTED_PDU_PARAMETER
        )
    return _fail(
        f"unrecognized item 0x{item_type:02X} in {where}", AbortReason.UNRECOGNIZED_PDU_PARAMETER
    )


def _text(raw: memoryview) -> str:
    """UIDs and similar: ASCII with any trailing NUL or space padding removed."""
    return str(raw, "ascii").rstrip("\x00 ")


def _sized_field(body: memoryview, position: int, end: int, what: str) -> tuple[memoryview, int]:
    """Read a 2-byte length and that many bytes; returns (the bytes, position after them)."""
    if end - position < 2:
        raise _fail(f"truncated {what} length")
    (length,) = _U16.unpack_from(body, position)
    start = position + 2
    stop = start + length
    if stop > end:
        raise _fail(f"{what} overflows its item")
    return body[start:stop], stop


def _decode_role_selection(body: memoryview, start: int, end: int) -> RoleSelection:
    uid, position = _sized_field(body, start, end, "role selection SOP class UID")
    if end - position != _ROLE_TRAILER:
        raise _fail("role selection item has a wrong length")
    scu_role, scp_role = _TWO_U8.unpack_from(body, position)
    return RoleSelection(_text(uid), bool(scu_role), bool(scp_role))


def _decode_sop_class_extended(body: memoryview, start: int, end: int) -> SOPClassExtended:
    uid, position = _sized_field(body, start, end, "SOP class UID")
    return SOPClassExtended(_text(uid), bytes(body[position:end]))


def _decode_sop_class_common_extended(
    body: memoryview, start: int, end: int
) -> SOPClassCommonExtended:
    sop_class, position = _sized_field(body, start, end, "SOP class UID")
    service_class, position = _sized_field(body, position, end, "service class UID")
    related_uids: list[str] = []
    if position < end:  # the related-classes list may be absent in older encoders
        related, position = _sized_field(body, position, end, "related general SOP class list")
        cursor, stop = 0, len(related)
        while cursor < stop:
            uid, cursor = _sized_field(related, cursor, stop, "related general SOP class UID")
            related_uids.append(_text(uid))
    return SOPClassCommonExtended(_text(sop_class), _text(service_class), related_uids)


def _decode_user_identity_rq(body: memoryview, start: int, end: int) -> UserIdentityRQ:
    if end - start < 2:
        raise _fail("truncated user identity item")
    identity_type, positive = _TWO_U8.unpack_from(body, start)
    primary, position = _sized_field(body, start + 2, end, "user identity primary field")
    secondary = b""
    if position < end:
        secondary_view, position = _sized_field(body, position, end, "user identity secondary")
        secondary = bytes(secondary_view)
    return UserIdentityRQ(identity_type, bool(positive), bytes(primary), secondary)


def _decode_user_information(body: memoryview, start: int, end: int) -> UserInformation:
    info = UserInformation(max_length=None)
    for item_type, value_start, value_end in _items(body, start, end, "user information"):
        length = value_end - value_start
        if item_type == ItemType.MAXIMUM_LENGTH:
            if length != 4:
                raise _fail("maximum length item must hold 4 bytes")
            (info.max_length,) = _U32.unpack_from(body, value_start)
        elif item_type == ItemType.IMPLEMENTATION_CLASS_UID:
            info.implementation_class_uid = _text(body[value_start:value_end])
        elif item_type == ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW:
            if length != 4:
                raise _fail("asynchronous operations window item must hold 4 bytes")
            info.async_ops_window = AsyncOperationsWindow(*_TWO_U16.unpack_from(body, value_start))
        elif item_type == ItemType.ROLE_SELECTION:
            info.role_selections.append(_decode_role_selection(body, value_start, value_end))
        elif item_type == ItemType.IMPLEMENTATION_VERSION_NAME:
            info.implementation_version_name = _text(body[value_start:value_end])
        elif item_type == ItemType.SOP_CLASS_EXTENDED_NEGOTIATION:
            info.sop_class_extended.append(_decode_sop_class_extended(body, value_start, value_end))
        elif item_type == ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION:
            info.sop_class_common_extended.append(
                _decode_sop_class_common_extended(body, value_start, value_end)
            )
        elif item_type == ItemType.USER_IDENTITY_RQ:
            info.user_identity_rq = _decode_user_identity_rq(body, value_start, value_end)
        elif item_type == ItemType.USER_IDENTITY_AC:
            response, _ = _sized_field(body, value_start, value_end, "user identity response")
            info.user_identity_ac = UserIdentityAC(bytes(response))
        # Any other sub-item is skipped: PS3.7 D.3.3 lets new ones appear.
    return info


def _decode_presentation_context_rq(
    body: memoryview, start: int, end: int
) -> PresentationContextRQ:
    if end - start < _PC_RQ_HEADER.size:
        raise _fail("truncated presentation context item")
    (context_id,) = _PC_RQ_HEADER.unpack_from(body, start)
    abstract_syntax: str | None = None
    transfer_syntaxes: list[str] = []
    where = "presentation context"
    for item_type, value_start, value_end in _items(body, start + 4, end, where):
        if item_type == ItemType.ABSTRACT_SYNTAX:
            if abstract_syntax is not None:
                raise _fail(f"presentation context {context_id} has two abstract syntaxes")
            abstract_syntax = _text(body[value_start:value_end])
        elif item_type == ItemType.TRANSFER_SYNTAX:
            transfer_syntaxes.append(_text(body[value_start:value_end]))
        else:
            raise _misplaced(item_type, where)
    if abstract_syntax is None:
        raise _fail(f"presentation context {context_id} has no abstract syntax")
    if not transfer_syntaxes:
        raise _fail(f"presentation context {context_id} has no transfer syntax")
    return PresentationContextRQ(context_id, abstract_syntax, transfer_syntaxes)


def _decode_presentation_context_ac(
    body: memoryview, start: int, end: int
) -> PresentationContextAC:
    if end - start < _PC_AC_HEADER.size:
        raise _fail("truncated presentation context item")
    context_id, result = _PC_AC_HEADER.unpack_from(body, start)
    transfer_syntax: str | None = None
    where = "presentation context"
    for item_type, value_start, value_end in _items(body, start + 4, end, where):
        if item_type != ItemType.TRANSFER_SYNTAX:
            raise _misplaced(item_type, where)
        if transfer_syntax is not None:
            raise _fail(f"presentation context {context_id} has two transfer syntaxes")
        transfer_syntax = _text(body[value_start:value_end])
    # A rejected context's transfer syntax is not significant (PS3.8 9.3.3.2); some omit it.
    return PresentationContextAC(context_id, result, transfer_syntax or "")


def _decode_associate(body: memoryview, is_request: bool) -> AssociateRQ | AssociateAC:
    end = len(body)
    if end < _ASSOCIATE_FIXED_LENGTH:
        raise _fail("A-ASSOCIATE PDU shorter than its fixed fields")
    protocol_version, called_raw, calling_raw = _ASSOCIATE_FIXED.unpack_from(body, 0)
    if is_request:
        called_ae = called_raw.decode("ascii").strip(" \x00")
        calling_ae = calling_raw.decode("ascii").strip(" \x00")
        where = "A-ASSOCIATE-RQ"
        context_type = ItemType.PRESENTATION_CONTEXT_RQ
    else:
        # In the AC these fields are echoed and "not tested" (PS3.8 9.3.3), so never fail on them.
        called_ae = called_raw.decode("ascii", "replace").strip(" \x00")
        calling_ae = calling_raw.decode("ascii", "replace").strip(" \x00")
        where = "A-ASSOCIATE-AC"
        context_type = ItemType.PRESENTATION_CONTEXT_AC
    application_context = ""
    user_info: UserInformation | None = None
    rq_contexts: list[PresentationContextRQ] = []
    ac_contexts: list[PresentationContextAC] = []
    for item_type, value_start, value_end in _items(body, _ASSOCIATE_FIXED_LENGTH, end, where):
        if item_type == ItemType.APPLICATION_CONTEXT:
            application_context = _text(body[value_start:value_end])
        elif item_type == context_type and is_request:
            rq_contexts.append(_decode_presentation_context_rq(body, value_start, value_end))
        elif item_type == context_type:
            ac_contexts.append(_decode_presentation_context_ac(body, value_start, value_end))
        elif item_type == ItemType.USER_INFORMATION:
            user_info = _decode_user_information(body, value_start, value_end)
        else:
            raise _misplaced(item_type, where)
    if user_info is None:
        user_info = UserInformation(max_length=None)
    if is_request:
        return AssociateRQ(
            called_ae, calling_ae, rq_contexts, user_info, application_context, protocol_version
        )
    return AssociateAC(
        called_ae, calling_ae, ac_contexts, user_info, application_context, protocol_version
    )


def _decode_p_data_tf(body: memoryview) -> PDataTF:
    end = len(body)
    pdvs: list[PDV] = []
    append = pdvs.append
    unpack_pdv_header = _PDV_HEADER.unpack_from
    position = 0
    while position < end:
        if end - position < 6:
            raise _fail("truncated PDV item header")
        length, context_id, control = unpack_pdv_header(body, position)
        if length < 2:
            raise _fail(f"PDV item length {length} is less than 2")
        data_start = position + 6
        position += 4 + length
        if position > end:
            raise _fail("PDV item overflows its P-DATA-TF PDU")
        append(PDV(context_id, bool(control & 1), bool(control & 2), body[data_start:position]))
    return PDataTF(pdvs)


def _decode_body(pdu_type: int, body: memoryview) -> PDU:
    """The PDU whose variable field is ``body``; ``_check_header`` already passed its header."""
    try:
        if pdu_type == PDUType.P_DATA_TF:
            return _decode_p_data_tf(body)
        if pdu_type == PDUType.ASSOCIATE_RQ:
            return _decode_associate(body, is_request=True)
        if pdu_type == PDUType.ASSOCIATE_AC:
            return _decode_associate(body, is_request=False)
        if pdu_type == PDUType.ASSOCIATE_RJ:
            return AssociateRJ(*_REJECT_BODY.unpack_from(body, 0))
        if pdu_type == PDUType.ABORT:
            return Abort(*_ABORT_BODY.unpack_from(body, 0))
        if pdu_type == PDUType.RELEASE_RQ:
            return ReleaseRQ()
        return ReleaseRP()
    except PDUError:
        raise
    except (struct.error, UnicodeDecodeError, IndexError, ValueError, TypeError) as exc:
        raise _fail(f"malformed PDU 0x{pdu_type:02X}: {exc}") from None


def _check_header(pdu_type: int, length: int, max_p_data_length: int) -> None:
    """Reject a PDU from its 6-byte header alone, before any of its body is buffered."""
    if pdu_type == PDUType.P_DATA_TF:
        if length == 0:
            raise _fail("empty P-DATA-TF PDU")
        if max_p_data_length and length > max_p_data_length:
            raise _fail(
                f"P-DATA-TF PDU length {length} exceeds the negotiated maximum {max_p_data_length}"
            )
    elif pdu_type == PDUType.ASSOCIATE_RQ or pdu_type == PDUType.ASSOCIATE_AC:
        if length < _ASSOCIATE_FIXED_LENGTH:
            raise _fail(f"A-ASSOCIATE PDU length {length} is shorter than its fixed fields")
        if length > MAX_ASSOCIATE_PDU_LENGTH:
            raise _fail(f"A-ASSOCIATE PDU length {length} exceeds {MAX_ASSOCIATE_PDU_LENGTH}")
    elif pdu_type in _PDU_TYPES:
        if length != _SHORT_PDU_LENGTH:
            raise _fail(f"PDU 0x{pdu_type:02X} must have length 4, not {length}")
    else:
        raise _fail(f"unrecognized PDU type 0x{pdu_type:02X}", AbortReason.UNRECOGNIZED_PDU)


def decode_pdu(data: bytes | bytearray | memoryview) -> PDU:
    """Decode exactly one whole PDU. PDV data are memoryview slices of ``data`` (no copy)."""
    try:
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
    except (TypeError, ValueError) as exc:
        raise _fail(f"not a byte buffer: {exc}") from None
    if len(view) < _PDU_HEADER.size:
        raise _fail("truncated PDU header")
    pdu_type, length = _PDU_HEADER.unpack_from(view, 0)
    _check_header(pdu_type, length, 0)
    if len(view) != _PDU_HEADER.size + length:
        raise _fail(f"PDU length field says {length} bytes, {len(view) - 6} given")
    return _decode_body(pdu_type, view[_PDU_HEADER.size :])


class PDUReader:
    """Cuts an incoming byte stream into PDUs: ``feed`` bytes, then call ``next_pdu`` until None.

    ``max_pdu_length`` (0 = unlimited) caps the length field of incoming P-DATA-TF PDUs; set it to
    what we announced once the association is negotiated. After a PDUError the stream is lost.
    """

    __slots__ = ("_body", "_body_filled", "_body_type", "_buffer", "_start", "max_pdu_length")

    def __init__(self, max_pdu_length: int = 0) -> None:
        self.max_pdu_length = max_pdu_length
        self._buffer = bytearray()
        self._start = 0  # bytes before this offset were already consumed
        # A large PDU whose header was consumed and whose body is being gathered in its own buffer:
        self._body: bytearray | None = None
        self._body_type = 0
        self._body_filled = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as part of a PDU."""
        waiting = len(self._buffer) - self._start
        if self._body is not None:
            waiting += _PDU_HEADER.size + self._body_filled
        return waiting

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        body = self._body
        if body is not None:
            missing = len(body) - self._body_filled
            if missing:
                taken = min(missing, len(view))
                body[self._body_filled : self._body_filled + taken] = view[:taken]
                self._body_filled += taken
                view = view[taken:]
        if view:
            self._buffer += view

    def take_whole(self, data: bytes) -> PDU | None:
        """The PDU that ``data`` is, when nothing is buffered and ``data`` is exactly one whole
        PDU (the usual case for small messages): decoded in place, without buffering. Otherwise
        None, and the caller feeds ``data`` as usual."""
        if self._body is not None or len(self._buffer) != self._start or len(data) < 6:
            return None
        pdu_type, length = _PDU_HEADER.unpack_from(data, 0)
        if length + 6 != len(data):
            return None
        _check_header(pdu_type, length, self.max_pdu_length)
        return _decode_body(pdu_type, memoryview(data)[6:])

    def next_pdu(self) -> PDU | None:
        """The next whole PDU, or None when more bytes are needed. Raises PDUError."""
        body = self._body
        if body is not None:
            if self._body_filled < len(body):
                return None
            self._body = None
            return _decode_body(self._body_type, memoryview(body))

        buffer = self._buffer
        start = self._start
        available = len(buffer) - start
        if available < _PDU_HEADER.size:
            return None
        pdu_type, length = _PDU_HEADER.unpack_from(buffer, start)
        _check_header(pdu_type, length, self.max_pdu_length)
        body_start = start + _PDU_HEADER.size
        body_end = body_start + length
        if body_end > len(buffer):
            if _DIRECT_BODY_THRESHOLD <= length <= _DIRECT_BODY_MAX:
                self._gather_body_directly(pdu_type, length, body_start)
            return None
        # A copy that the PDU owns: views into it stay valid while our buffer keeps changing.
        owned = buffer[body_start:body_end]
        self._consume_to(body_end)
        return _decode_body(pdu_type, memoryview(owned))

    def _gather_body_directly(self, pdu_type: int, length: int, body_start: int) -> None:
        body = bytearray(length)
        received = len(self._buffer) - body_start
        with memoryview(self._buffer) as buffer_view:
            body[:received] = buffer_view[body_start:]
        self._body = body
        self._body_type = pdu_type
        self._body_filled = received
        self._buffer.clear()
        self._start = 0

    def _consume_to(self, offset: int) -> None:
        buffer = self._buffer
        if offset >= len(buffer):
            buffer.clear()
            self._start = 0
        elif offset >= _COMPACT_THRESHOLD and offset * 2 >= len(buffer):
            del buffer[:offset]
            self._start = 0
        else:
            self._start = offset
