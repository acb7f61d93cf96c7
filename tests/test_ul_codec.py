"""Tests of the Upper Layer PDU codec: exact bytes, round trips, malformed input, stream reading."""

from __future__ import annotations

import contextlib
import random
import struct
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmony_dimse.ul.codec import (
    MAX_ASSOCIATE_PDU_LENGTH,
    PDUReader,
    decode_pdu,
    encode_p_data_tf,
    encode_pdu,
)
from harmony_dimse.ul.pdu import (
    PDU,
    PDV,
    Abort,
    AbortReason,
    AbortSource,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    AsyncOperationsWindow,
    PDataTF,
    PDUError,
    PresentationContextAC,
    PresentationContextResult,
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

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
INVALID = AbortReason.INVALID_PDU_PARAMETER_VALUE


def item(item_type: int, value: bytes, reserved: int = 0) -> bytes:
    """An item as PS3.8 lays it out: type, reserved, 2-byte length, value."""
    return bytes([item_type, reserved]) + struct.pack(">H", len(value)) + value


def pdu_bytes(pdu_type: int, body: bytes) -> bytes:
    return bytes([pdu_type, 0]) + struct.pack(">I", len(body)) + body


def associate_fixed(called: bytes, calling: bytes) -> bytes:
    return b"\x00\x01" + b"\x00\x00" + called.ljust(16) + calling.ljust(16) + bytes(32)


def full_user_info() -> UserInformation:
    return UserInformation(
        max_length=16384,
        implementation_class_uid="1.2.826.0.1.3680043.10.1",
        implementation_version_name="HARMONY_010",
        async_ops_window=AsyncOperationsWindow(5, 0),
        role_selections=[
            RoleSelection(CT_IMAGE_STORAGE, scu_role=False, scp_role=True),
            RoleSelection(VERIFICATION, scu_role=True, scp_role=True),
        ],
        sop_class_extended=[SOPClassExtended(CT_IMAGE_STORAGE, b"\x01\x00\x01")],
        sop_class_common_extended=[
            SOPClassCommonExtended(CT_IMAGE_STORAGE, "1.2.840.10008.4.2", ["1.2.3", "1.2.4.5"]),
            SOPClassCommonExtended("1.2.9", "1.2.10"),
        ],
        user_identity_rq=UserIdentityRQ(2, True, b"alice", b"s3cret"),
        user_identity_ac=UserIdentityAC(b"token"),
    )


def full_rq() -> AssociateRQ:
    return AssociateRQ(
        called_ae="ANY-SCP",
        calling_ae="HARMONY",
        presentation_contexts=[
            PresentationContextRQ(1, VERIFICATION, [IMPLICIT_LE]),
            PresentationContextRQ(3, CT_IMAGE_STORAGE, [EXPLICIT_LE, IMPLICIT_LE]),
        ],
        user_info=full_user_info(),
    )


def full_ac() -> AssociateAC:
    return AssociateAC(
        called_ae="ANY-SCP",
        calling_ae="HARMONY",
        presentation_contexts=[
            PresentationContextAC(1, PresentationContextResult.ACCEPTANCE, IMPLICIT_LE),
            PresentationContextAC(3, PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED, ""),
            PresentationContextAC(5, PresentationContextResult.USER_REJECTION, EXPLICIT_LE),
        ],
        user_info=UserInformation(
            max_length=0,
            implementation_class_uid="1.2.3.4",
            role_selections=[RoleSelection(CT_IMAGE_STORAGE, True, False)],
            user_identity_ac=UserIdentityAC(b""),
        ),
    )


def sample_pdus() -> list[PDU]:
    return [
        full_rq(),
        full_ac(),
        AssociateRQ("A", "B", [PresentationContextRQ(255, VERIFICATION, [IMPLICIT_LE])]),
        AssociateRJ(1, 1, 7),
        AssociateRJ(2, 3, 1),
        PDataTF([PDV(1, True, True, b"\x01" * 70), PDV(3, False, False, b"data")]),
        PDataTF([PDV(7, False, True, b"")]),
        ReleaseRQ(),
        ReleaseRP(),
        Abort(),
        Abort(AbortSource.SERVICE_PROVIDER, AbortReason.UNEXPECTED_PDU),
    ]


def expect_error(data: bytes, reason: AbortReason = INVALID) -> PDUError:
    with pytest.raises(PDUError) as caught:
        decode_pdu(data)
    assert caught.value.reason == reason, caught.value
    return caught.value


# ============================================================================= exact bytes


def test_associate_rj_exact_bytes() -> None:
    wire = b"\x03\x00\x00\x00\x00\x04\x00\x01\x02\x02"
    rejection = AssociateRJ(result=1, source=2, reason=2)
    assert encode_pdu(rejection) == wire
    assert decode_pdu(wire) == rejection
    assert "protocol version not supported" in decode_pdu(wire).describe()  # type: ignore[union-attr]


def test_associate_rj_reserved_byte_is_not_tested() -> None:
    assert decode_pdu(b"\x03\xff\x00\x00\x00\x04\xee\x02\x01\x01") == AssociateRJ(2, 1, 1)


def test_abort_exact_bytes() -> None:
    wire = b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x06"
    abort = Abort(AbortSource.SERVICE_PROVIDER, AbortReason.INVALID_PDU_PARAMETER_VALUE)
    assert encode_pdu(abort) == wire
    assert decode_pdu(wire) == abort


def test_release_exact_bytes() -> None:
    assert encode_pdu(ReleaseRQ()) == b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
    assert encode_pdu(ReleaseRP()) == b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"
    assert decode_pdu(b"\x05\x00\x00\x00\x00\x04\x01\x02\x03\x04") == ReleaseRQ()
    assert decode_pdu(b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00") == ReleaseRP()


MINIMAL_RQ_WIRE = (
    b"\x01\x00\x00\x00\x00\xa6"  # A-ASSOCIATE-RQ, length 166
    b"\x00\x01\x00\x00"  # protocol version 1, reserved
    b"ANY-SCP         "  # called AE title
    b"ECHOSCU         "  # calling AE title
    + bytes(32)
    + b"\x10\x00\x00\x15"
    + b"1.2.840.10008.3.1.1.1"
    + b"\x20\x00\x00\x2e\x01\x00\x00\x00"  # presentation context 1, 46 bytes
    + b"\x30\x00\x00\x11"
    + b"1.2.840.10008.1.1"
    + b"\x40\x00\x00\x11"
    + b"1.2.840.10008.1.2"
    + b"\x50\x00\x00\x13"  # user information, 19 bytes
    + b"\x51\x00\x00\x04\x00\x00\x40\x00"
    + b"\x52\x00\x00\x07"
    + b"1.2.3.4"
)
MINIMAL_RQ = AssociateRQ(
    called_ae="ANY-SCP",
    calling_ae="ECHOSCU",
    presentation_contexts=[PresentationContextRQ(1, VERIFICATION, [IMPLICIT_LE])],
    user_info=UserInformation(max_length=16384, implementation_class_uid="1.2.3.4"),
)


def test_minimal_associate_rq_exact_bytes() -> None:
    assert len(MINIMAL_RQ_WIRE) == 6 + 166
    assert encode_pdu(MINIMAL_RQ) == MINIMAL_RQ_WIRE
    assert decode_pdu(MINIMAL_RQ_WIRE) == MINIMAL_RQ


def test_associate_ac_exact_bytes_with_a_rejected_context_lacking_its_transfer_syntax() -> None:
    body = (
        associate_fixed(b"ANY-SCP", b"ECHOSCU")
        + item(0x10, b"1.2.840.10008.3.1.1.1")
        + item(0x21, b"\x01\x00\x00\x00" + item(0x40, b"1.2.840.10008.1.2"))
        + item(0x21, b"\x03\x00\x03\x00")
        + item(0x50, item(0x51, b"\x00\x00\x00\x00"))
    )
    decoded = decode_pdu(pdu_bytes(0x02, body))
    assert decoded == AssociateAC(
        "ANY-SCP",
        "ECHOSCU",
        [
            PresentationContextAC(1, 0, IMPLICIT_LE),
            PresentationContextAC(3, PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED, ""),
        ],
        UserInformation(max_length=0),
    )
    # We always send the transfer syntax sub-item, empty when the context is rejected.
    resent = body.replace(
        item(0x21, b"\x03\x00\x03\x00"), item(0x21, b"\x03\x00\x03\x00" + item(0x40, b""))
    )
    assert encode_pdu(decoded) == pdu_bytes(0x02, resent)


P_DATA_WIRE = (
    b"\x04\x00\x00\x00\x00\x13"  # P-DATA-TF, length 19
    b"\x00\x00\x00\x06\x01\x03CMD!"  # PDV: context 1, command, last
    b"\x00\x00\x00\x05\x03\x00xyz"  # PDV: context 3, data set, not last
)


def test_p_data_tf_with_two_pdvs_exact_bytes() -> None:
    pdu = PDataTF([PDV(1, True, True, b"CMD!"), PDV(3, False, False, b"xyz")])
    assert encode_pdu(pdu) == P_DATA_WIRE
    assert b"".join(encode_p_data_tf(pdu.pdvs)) == P_DATA_WIRE
    decoded = decode_pdu(P_DATA_WIRE)
    assert decoded == pdu
    assert isinstance(decoded, PDataTF)
    assert all(isinstance(pdv.data, memoryview) for pdv in decoded.pdvs)


def test_p_data_tf_message_control_header_bits() -> None:
    for control, is_command, is_last in [(0, False, False), (1, True, False), (2, False, True)]:
        wire = pdu_bytes(0x04, b"\x00\x00\x00\x03\x01" + bytes([control]) + b"z")
        (pdv,) = decode_pdu(wire).pdvs  # type: ignore[union-attr]
        assert (pdv.is_command, pdv.is_last) == (is_command, is_last)
        assert encode_pdu(PDataTF([pdv])) == wire
    # reserved upper bits are not tested
    (pdv,) = decode_pdu(pdu_bytes(0x04, b"\x00\x00\x00\x02\x01\xfc")).pdvs  # type: ignore[union-attr]
    assert (pdv.is_command, pdv.is_last, bytes(pdv.data)) == (False, False, b"")


def test_decoded_pdv_data_are_views_of_the_input() -> None:
    wire = bytearray(P_DATA_WIRE)
    decoded = decode_pdu(wire)
    assert isinstance(decoded, PDataTF)
    wire[12:16] = b"EDIT"
    assert bytes(decoded.pdvs[0].data) == b"EDIT"


def test_encode_p_data_tf_passes_payloads_through_uncopied() -> None:
    command = b"C" * 10
    data_set = memoryview(bytearray(b"D" * 300))[100:]
    chunks = encode_p_data_tf([PDV(1, True, True, command), PDV(1, False, True, data_set)])
    assert len(chunks) == 4
    assert chunks[1] is command
    assert chunks[3] is data_set
    assert chunks[0] == b"\x04\x00\x00\x00\x00\xde" + b"\x00\x00\x00\x0c\x01\x03"
    assert chunks[2] == b"\x00\x00\x00\xca\x01\x02"


def test_encode_p_data_tf_counts_memoryview_bytes_not_items() -> None:
    wide = memoryview(bytearray(8)).cast("I")  # 2 items, 8 bytes
    chunks = encode_p_data_tf([PDV(1, False, True, wide)])
    assert chunks[0] == b"\x04\x00\x00\x00\x00\x0e" + b"\x00\x00\x00\x0a\x01\x02"
    assert decode_pdu(b"".join(chunks)).pdvs[0].data == bytes(8)  # type: ignore[union-attr]


def test_encode_p_data_tf_needs_a_pdv_and_skips_empty_payloads() -> None:
    with pytest.raises(ValueError):
        encode_p_data_tf([])
    assert encode_p_data_tf([PDV(1, False, True, b"")]) == [
        b"\x04\x00\x00\x00\x00\x06\x00\x00\x00\x02\x01\x02"
    ]


def test_ae_titles_are_padded_on_encode_and_stripped_on_decode() -> None:
    wire = encode_pdu(MINIMAL_RQ)
    assert wire[10:26] == b"ANY-SCP         "
    padded = wire[:10] + b"  ANY-SCP       " + wire[26:]
    assert decode_pdu(padded).called_ae == "ANY-SCP"  # type: ignore[union-attr]


def test_uids_are_not_padded_on_encode_and_padding_is_stripped_on_decode() -> None:
    assert b"1.2.3.4\x00" not in encode_pdu(MINIMAL_RQ)
    body = (
        associate_fixed(b"A", b"B")
        + item(0x10, b"1.2.840.10008.3.1.1.1\x00")
        + item(
            0x20,
            b"\x01\x00\x00\x00"
            + item(0x30, b"1.2.840.10008.1.1\x00")
            + item(0x40, b"1.2.840.10008.1.2 "),
        )
        + item(0x50, item(0x52, b"1.2.3.4\x00"))
    )
    decoded = decode_pdu(pdu_bytes(0x01, body))
    assert decoded == AssociateRQ(
        "A",
        "B",
        [PresentationContextRQ(1, VERIFICATION, [IMPLICIT_LE])],
        UserInformation(max_length=None, implementation_class_uid="1.2.3.4"),
    )


def test_user_information_sub_item_layouts() -> None:
    """Each annex D sub-item, hand built, decodes to its fields and encodes back to the same."""
    sub_items = (
        item(0x51, b"\x00\x01\x00\x00")
        + item(0x52, b"1.2.3")
        + item(0x53, b"\x00\x02\x00\x03")
        + item(0x54, b"\x00\x05" + b"1.2.4" + b"\x01\x00")
        + item(0x55, b"MYIMPL")
        + item(0x56, b"\x00\x05" + b"1.2.5" + b"\xaa\xbb")
        + item(
            0x57,
            b"\x00\x03"
            + b"1.6"
            + b"\x00\x03"
            + b"1.7"
            + b"\x00\x0a\x00\x03"
            + b"1.8"
            + b"\x00\x03"
            + b"1.9",
        )
        + item(0x58, b"\x02\x01" + b"\x00\x02" + b"me" + b"\x00\x03" + b"pwd")
        + item(0x59, b"\x00\x02" + b"ok")
    )
    body = (
        associate_fixed(b"A", b"B") + item(0x10, b"1.2.840.10008.3.1.1.1") + item(0x50, sub_items)
    )
    decoded = decode_pdu(pdu_bytes(0x01, body))
    assert isinstance(decoded, AssociateRQ)
    assert decoded.user_info == UserInformation(
        max_length=65536,
        implementation_class_uid="1.2.3",
        implementation_version_name="MYIMPL",
        async_ops_window=AsyncOperationsWindow(2, 3),
        role_selections=[RoleSelection("1.2.4", True, False)],
        sop_class_extended=[SOPClassExtended("1.2.5", b"\xaa\xbb")],
        sop_class_common_extended=[SOPClassCommonExtended("1.6", "1.7", ["1.8", "1.9"])],
        user_identity_rq=UserIdentityRQ(2, True, b"me", b"pwd"),
        user_identity_ac=UserIdentityAC(b"ok"),
    )
    assert encode_pdu(decoded) == pdu_bytes(0x01, body)


def test_sop_class_common_extended_version_byte_and_trailing_reserved_bytes_are_not_tested() -> (
    None
):
    value = b"\x00\x03" + b"1.6" + b"\x00\x03" + b"1.7" + b"\x00\x00" + b"\x00\x00"
    body = associate_fixed(b"A", b"B") + item(0x50, item(0x57, value, reserved=9))
    decoded = decode_pdu(pdu_bytes(0x01, body))
    assert decoded.user_info.sop_class_common_extended == [  # type: ignore[union-attr]
        SOPClassCommonExtended("1.6", "1.7", [])
    ]


def test_unknown_user_information_sub_items_are_skipped() -> None:
    known = item(0x51, b"\x00\x00\x40\x00")
    unknown = item(0x5F, b"\x01\x02\x03") + item(0x99, b"")
    head = associate_fixed(b"A", b"B") + item(0x10, b"1.2.840.10008.3.1.1.1")
    with_unknown = decode_pdu(pdu_bytes(0x01, head + item(0x50, unknown + known + unknown)))
    assert with_unknown == decode_pdu(pdu_bytes(0x01, head + item(0x50, known)))
    assert with_unknown.user_info.max_length == 16384  # type: ignore[union-attr]


def test_missing_user_information_and_application_context_decode_as_absent() -> None:
    decoded = decode_pdu(pdu_bytes(0x01, associate_fixed(b"A", b"B")))
    assert decoded == AssociateRQ("A", "B", [], UserInformation(max_length=None), "")


# ============================================================================= round trips


@pytest.mark.parametrize("pdu", sample_pdus(), ids=lambda pdu: type(pdu).__name__)
def test_round_trip(pdu: PDU) -> None:
    wire = encode_pdu(pdu)
    assert decode_pdu(wire) == pdu
    assert decode_pdu(memoryview(wire)) == pdu
    assert encode_pdu(decode_pdu(wire)) == wire


def test_round_trip_of_every_user_information_item_alone() -> None:
    info = full_user_info()
    singles = [
        UserInformation(max_length=None),
        UserInformation(max_length=0xFFFFFFFF),
        UserInformation(max_length=None, implementation_class_uid=info.implementation_class_uid),
        UserInformation(max_length=None, implementation_version_name="V"),
        UserInformation(max_length=None, implementation_version_name=""),
        UserInformation(max_length=None, async_ops_window=AsyncOperationsWindow(0xFFFF, 1)),
        UserInformation(max_length=None, role_selections=info.role_selections),
        UserInformation(max_length=None, sop_class_extended=[SOPClassExtended("1.2", b"")]),
        UserInformation(max_length=None, sop_class_common_extended=info.sop_class_common_extended),
        UserInformation(max_length=None, user_identity_rq=UserIdentityRQ(1, False, b"bob")),
        UserInformation(max_length=None, user_identity_rq=UserIdentityRQ(5, True, b"x" * 4000)),
        UserInformation(max_length=None, user_identity_ac=UserIdentityAC(b"\x00\xff")),
    ]
    for user_info in singles:
        for pdu in (
            AssociateRQ("A", "B", [], user_info),
            AssociateAC("A", "B", [], user_info),
        ):
            assert decode_pdu(encode_pdu(pdu)) == pdu, user_info


def test_round_trip_of_sixteen_character_ae_titles_and_other_protocol_version() -> None:
    pdu = AssociateRQ("ABCDEFGHIJKLMNOP", "0123456789 12345", [], protocol_version=3)
    assert decode_pdu(encode_pdu(pdu)) == pdu


def test_associate_ac_ae_fields_are_not_tested() -> None:
    wire = bytearray(encode_pdu(full_ac()))
    wire[10:26] = b"\xff" * 16
    decoded = decode_pdu(bytes(wire))
    assert isinstance(decoded, AssociateAC)
    assert decoded.presentation_contexts == full_ac().presentation_contexts


# ============================================================================= encode errors


@pytest.mark.parametrize(
    "pdu",
    [
        AssociateRQ("SEVENTEEN-LETTERS", "B", []),
        AssociateRQ("A", "CALLÉ", []),
        AssociateRQ("A", "B", [PresentationContextRQ(1, "1.2.é", [IMPLICIT_LE])]),
        AssociateRQ("A", "B", [PresentationContextRQ(256, VERIFICATION, [IMPLICIT_LE])]),
        AssociateRQ("A", "B", [], UserInformation(max_length=-1)),
        AssociateRQ(
            "A", "B", [], UserInformation(user_identity_rq=UserIdentityRQ(1, True, b"x" * 70000))
        ),
        AssociateRJ(1, 1, 300),
        PDataTF([]),
    ],
)
def test_unencodable_values_raise_value_error(pdu: PDU) -> None:
    with pytest.raises(ValueError):
        encode_pdu(pdu)


def test_encode_pdu_rejects_non_pdus() -> None:
    with pytest.raises(TypeError):
        encode_pdu(PDV(1, False, False, b""))  # type: ignore[arg-type]


# ============================================================================= malformed input


def rq_with(*items: bytes) -> bytes:
    return pdu_bytes(0x01, associate_fixed(b"A", b"B") + b"".join(items))


def ac_with(*items: bytes) -> bytes:
    return pdu_bytes(0x02, associate_fixed(b"A", b"B") + b"".join(items))


GOOD_PC = item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2") + item(0x40, b"1.2.3"))


@pytest.mark.parametrize("pdu_type", [0x00, 0x08, 0x10, 0x50, 0xFF])
def test_unknown_pdu_type(pdu_type: int) -> None:
    expect_error(pdu_bytes(pdu_type, b"\x00\x00\x00\x00"), AbortReason.UNRECOGNIZED_PDU)


@pytest.mark.parametrize(
    "wire",
    [
        rq_with(item(0x99, b"abc")),
        rq_with(GOOD_PC, item(0x60, b"")),
        ac_with(item(0x22, b"\x01\x00\x00\x00")),
        rq_with(item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2") + item(0x41, b"1.2.3"))),
        ac_with(item(0x21, b"\x01\x00\x00\x00" + item(0x7F, b"1.2"))),
    ],
)
def test_unknown_items_outside_user_information(wire: bytes) -> None:
    expect_error(wire, AbortReason.UNRECOGNIZED_PDU_PARAMETER)


@pytest.mark.parametrize(
    "wire",
    [
        rq_with(item(0x21, b"\x01\x00\x00\x00" + item(0x40, b"1.2"))),  # AC context in an RQ
        ac_with(GOOD_PC),  # RQ context in an AC
        rq_with(item(0x51, b"\x00\x00\x00\x00")),  # user-info sub-item at top level
        rq_with(
            item(
                0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2") + item(0x40, b"1") + item(0x10, b"1")
            )
        ),
    ],
)
def test_known_items_in_the_wrong_place(wire: bytes) -> None:
    expect_error(wire, AbortReason.UNEXPECTED_PDU_PARAMETER)


MALFORMED = {
    "empty": b"",
    "short header": b"\x04\x00\x00\x00\x00",
    "length field larger than data": pdu_bytes(0x05, bytes(4))[:-1],
    "length field smaller than data": pdu_bytes(0x05, bytes(4)) + b"\x00",
    "empty P-DATA-TF": pdu_bytes(0x04, b""),
    "PDV item length 0": pdu_bytes(0x04, b"\x00\x00\x00\x00\x01\x02"),
    "PDV item length 1": pdu_bytes(0x04, b"\x00\x00\x00\x01\x01\x02"),
    "PDV overflows PDU": pdu_bytes(0x04, b"\x00\x00\x00\x05\x01\x02ab"),
    "truncated PDV header": pdu_bytes(0x04, b"\x00\x00\x00\x02\x01\x02\x00\x00\x00"),
    "release RQ length 0": pdu_bytes(0x05, b""),
    "release RP length 5": pdu_bytes(0x06, bytes(5)),
    "abort length 3": pdu_bytes(0x07, bytes(3)),
    "reject length 6": pdu_bytes(0x03, bytes(6)),
    "associate RQ shorter than fixed fields": pdu_bytes(0x01, bytes(67)),
    "associate AC length 0": pdu_bytes(0x02, b""),
    "truncated item header": rq_with(b"\x10\x00\x00"),
    "item overflows PDU": rq_with(b"\x10\x00\x00\x09" + b"1.2"),
    "sub-item overflows presentation context": rq_with(
        item(0x20, b"\x01\x00\x00\x00" + b"\x30\x00\x00\x05" + b"1.2")
    ),
    "presentation context too short": rq_with(item(0x20, b"\x01\x00")),
    "AC presentation context too short": ac_with(item(0x21, b"\x01")),
    "no abstract syntax": rq_with(item(0x20, b"\x01\x00\x00\x00" + item(0x40, b"1.2"))),
    "no transfer syntax": rq_with(item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2"))),
    "two abstract syntaxes": rq_with(
        item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2") + item(0x30, b"1.3") + item(0x40, b"1"))
    ),
    "two transfer syntaxes in AC": ac_with(
        item(0x21, b"\x01\x00\x00\x00" + item(0x40, b"1.2") + item(0x40, b"1.3"))
    ),
    "non-ASCII UID": rq_with(item(0x10, b"1.2.\xe9")),
    "non-ASCII calling AE in RQ": pdu_bytes(0x01, associate_fixed(b"A", b"\xc9CHO")),
    "user-info sub-item overflows": rq_with(item(0x50, b"\x51\x00\x00\x08\x00\x00")),
    "max length item of 3 bytes": rq_with(item(0x50, item(0x51, b"\x00\x00\x01"))),
    "async window of 5 bytes": rq_with(item(0x50, item(0x53, bytes(5)))),
    "role selection UID overflows": rq_with(item(0x50, item(0x54, b"\x00\x09" + b"1.2\x01\x00"))),
    "role selection missing roles": rq_with(item(0x50, item(0x54, b"\x00\x03" + b"1.2\x01"))),
    "role selection extra bytes": rq_with(item(0x50, item(0x54, b"\x00\x03" + b"1.2\x01\x00\x00"))),
    "SOP extended without UID length": rq_with(item(0x50, item(0x56, b"\x00"))),
    "common extended related list overflows": rq_with(
        item(
            0x50,
            item(0x57, b"\x00\x01" + b"1" + b"\x00\x01" + b"2" + b"\x00\x09" + b"\x00\x01" + b"3"),
        )
    ),
    "common extended related UID overflows": rq_with(
        item(
            0x50,
            item(0x57, b"\x00\x01" + b"1" + b"\x00\x01" + b"2" + b"\x00\x03" + b"\x00\x05" + b"3"),
        )
    ),
    "user identity without primary length": rq_with(item(0x50, item(0x58, b"\x01\x00"))),
    "user identity primary overflows": rq_with(item(0x50, item(0x58, b"\x01\x00\x00\x09ab"))),
    "user identity secondary overflows": rq_with(
        item(0x50, item(0x58, b"\x02\x00\x00\x01a\x00\x04ab"))
    ),
    "user identity AC truncated": ac_with(item(0x50, item(0x59, b"\x00"))),
}


@pytest.mark.parametrize("wire", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_is_an_invalid_parameter_value(wire: bytes) -> None:
    expect_error(wire, INVALID)


def test_associate_longer_than_the_cap_is_refused() -> None:
    header = b"\x01\x00" + struct.pack(">I", MAX_ASSOCIATE_PDU_LENGTH + 1)
    expect_error(header + bytes(MAX_ASSOCIATE_PDU_LENGTH + 1), INVALID)
    reader = PDUReader()
    reader.feed(header)
    with pytest.raises(PDUError) as caught:
        reader.next_pdu()
    assert caught.value.reason == INVALID


def test_every_truncation_of_a_valid_pdu_is_an_error() -> None:
    for pdu in sample_pdus():
        wire = encode_pdu(pdu)
        for cut in range(len(wire)):
            expect_error(wire[:cut], INVALID)


def test_decode_pdu_accepts_views_of_other_formats() -> None:
    wire = bytearray(encode_pdu(ReleaseRQ()))
    wire += b"\x00\x00"  # make the size a multiple of 4
    wide = memoryview(wire).cast("H")[:5]  # 10 bytes as 5 uint16 items
    assert decode_pdu(wide) == ReleaseRQ()


# ============================================================================= PDUReader


def stream_of_pdus() -> tuple[list[PDU], bytes]:
    pdus: list[PDU] = [
        full_rq(),
        full_ac(),
        PDataTF([PDV(1, True, True, bytes(range(256)) * 2)]),
        PDataTF([PDV(3, False, False, bytes(100_000)), PDV(3, False, True, b"tail")]),  # > 64 KiB
        PDataTF([PDV(1, False, True, b"z")]),
        AssociateRJ(1, 1, 1),
        ReleaseRQ(),
        ReleaseRP(),
        Abort(),
    ]
    return pdus, b"".join(encode_pdu(pdu) for pdu in pdus)


def drain(reader: PDUReader) -> list[PDU]:
    out: list[PDU] = []
    while (pdu := reader.next_pdu()) is not None:
        out.append(pdu)
    return out


def test_reader_fed_byte_by_byte() -> None:
    pdus, wire = stream_of_pdus()
    reader = PDUReader()
    got: list[PDU] = []
    small_part = len(wire) - 100_000 - 100  # byte-by-byte everywhere but the large payload
    for index in range(small_part):
        reader.feed(wire[index : index + 1])
        got.extend(drain(reader))
    reader.feed(wire[small_part:])
    got.extend(drain(reader))
    assert got == pdus
    assert reader.buffered == 0


@pytest.mark.parametrize("seed", range(8))
def test_reader_fed_random_chunks(seed: int) -> None:
    pdus, wire = stream_of_pdus()
    chooser = random.Random(seed)
    reader = PDUReader()
    got: list[PDU] = []
    position = 0
    while position < len(wire):
        size = chooser.choice([1, 3, 7, 100, 5000, 70_000, 300_000])
        chunk = wire[position : position + size]
        reader.feed(chooser.choice([bytes, bytearray, memoryview])(chunk))
        position += len(chunk)
        got.extend(drain(reader))
    assert got == pdus
    assert reader.buffered == 0


def test_reader_buffered_counts_waiting_bytes() -> None:
    reader = PDUReader()
    assert reader.buffered == 0
    assert reader.next_pdu() is None
    big = encode_pdu(PDataTF([PDV(1, False, True, bytes(200_000))]))
    reader.feed(big[:4])
    assert reader.buffered == 4
    assert reader.next_pdu() is None
    reader.feed(big[4:100])
    assert reader.next_pdu() is None
    assert reader.buffered == 100
    reader.feed(big[100:] + encode_pdu(ReleaseRQ())[:3])
    assert reader.buffered == len(big) + 3
    pdu = reader.next_pdu()
    assert isinstance(pdu, PDataTF)
    assert pdu.pdvs[0].data == bytes(200_000)
    assert reader.buffered == 3
    assert reader.next_pdu() is None


def test_reader_pdv_views_survive_later_feeds_and_compaction() -> None:
    reader = PDUReader()
    many = [PDataTF([PDV(1, False, True, bytes([index % 256]) * 1000)]) for index in range(600)]
    wire = b"".join(encode_pdu(pdu) for pdu in many)
    reader.feed(wire[: len(wire) // 2])
    first = reader.next_pdu()
    got = [first]
    for _ in range(400):
        reader.feed(b"")
        got.extend(drain(reader))
    reader.feed(wire[len(wire) // 2 :])
    got.extend(drain(reader))
    assert got == many
    assert isinstance(first, PDataTF)
    assert first.pdvs[0].data == bytes(1000)


def test_reader_refuses_an_oversized_p_data_tf_from_its_header_alone() -> None:
    reader = PDUReader(max_pdu_length=16384)
    reader.feed(encode_pdu(PDataTF([PDV(1, False, True, bytes(16378))])))  # length exactly 16384
    assert isinstance(reader.next_pdu(), PDataTF)
    reader.feed(b"\x04\x00" + struct.pack(">I", 16385))
    with pytest.raises(PDUError) as caught:
        reader.next_pdu()
    assert caught.value.reason == INVALID


def test_reader_limit_can_be_set_after_negotiation() -> None:
    reader = PDUReader()
    wire = encode_pdu(PDataTF([PDV(1, False, True, bytes(1000))]))
    reader.feed(wire)
    assert isinstance(reader.next_pdu(), PDataTF)
    reader.max_pdu_length = 999
    reader.feed(wire[:6])
    with pytest.raises(PDUError):
        reader.next_pdu()


def test_reader_unlimited_by_default_and_limit_ignores_other_pdus() -> None:
    reader = PDUReader(max_pdu_length=100)
    reader.feed(encode_pdu(full_rq()))  # longer than 100 bytes, not a P-DATA-TF
    assert reader.next_pdu() == full_rq()


def test_reader_does_not_allocate_what_a_header_merely_claims() -> None:
    tracemalloc.start()
    try:
        unlimited = PDUReader()
        unlimited.feed(b"\x04\x00\xff\xff\xff\xff" + bytes(10))
        assert unlimited.next_pdu() is None
        assert unlimited.buffered == 16
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"\x09\x00\x00\x00\x00\x04", AbortReason.UNRECOGNIZED_PDU),
        (b"\x05\x00\xff\xff\xff\xff", INVALID),
        (b"\x04\x00\x00\x00\x00\x00", INVALID),
        (b"\x01\x00\x00\x00\x00\x10", INVALID),
    ],
)
def test_reader_fails_on_a_bad_header_without_waiting_for_the_body(
    header: bytes, reason: AbortReason
) -> None:
    reader = PDUReader()
    reader.feed(header)
    with pytest.raises(PDUError) as caught:
        reader.next_pdu()
    assert caught.value.reason == reason


def test_reader_reports_a_malformed_body() -> None:
    reader = PDUReader()
    reader.feed(MALFORMED["PDV overflows PDU"])
    with pytest.raises(PDUError) as caught:
        reader.next_pdu()
    assert caught.value.reason == INVALID


# ============================================================================= pynetdicom as oracle


def test_pynetdicom_reads_and_rewrites_our_associate_pdus_identically() -> None:
    from pynetdicom import pdu as pynetdicom_pdu

    # pynetdicom reads an empty transfer syntax sub-item but cannot write it back.
    ac_with_transfer_syntaxes_everywhere = full_ac()
    ac_with_transfer_syntaxes_everywhere.presentation_contexts[1].transfer_syntax = EXPLICIT_LE

    cases: list[tuple[PDU, Any]] = [
        (full_rq(), pynetdicom_pdu.A_ASSOCIATE_RQ()),
        (ac_with_transfer_syntaxes_everywhere, pynetdicom_pdu.A_ASSOCIATE_AC()),
        (
            PDataTF([PDV(1, True, True, b"CMD!"), PDV(3, False, False, b"xyz")]),
            pynetdicom_pdu.P_DATA_TF(),
        ),
    ]
    for ours, theirs in cases:
        wire = encode_pdu(ours)
        theirs.decode(wire)
        assert theirs.encode() == wire
        assert decode_pdu(theirs.encode()) == ours


# ============================================================================= properties


UID = st.lists(st.integers(0, 10**8), min_size=2, max_size=7).map(
    lambda parts: ".".join(map(str, parts))
)
AE_TITLE = (
    st.text("ABCXYZabz019_- ", min_size=1, max_size=16)
    .map(lambda title: title.strip(" "))
    .filter(bool)
)
SHORT_BYTES = st.binary(max_size=40)

USER_INFO = st.builds(
    UserInformation,
    max_length=st.none() | st.integers(0, 0xFFFFFFFF),
    implementation_class_uid=st.just("") | UID,
    implementation_version_name=st.none() | st.text("ABCZ019_", min_size=1, max_size=16),
    async_ops_window=st.none()
    | st.builds(AsyncOperationsWindow, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    role_selections=st.lists(
        st.builds(RoleSelection, UID, st.booleans(), st.booleans()), max_size=3
    ),
    sop_class_extended=st.lists(st.builds(SOPClassExtended, UID, SHORT_BYTES), max_size=2),
    sop_class_common_extended=st.lists(
        st.builds(SOPClassCommonExtended, UID, UID, st.lists(UID, max_size=3)), max_size=2
    ),
    user_identity_rq=st.none()
    | st.builds(UserIdentityRQ, st.integers(1, 5), st.booleans(), SHORT_BYTES, SHORT_BYTES),
    user_identity_ac=st.none() | st.builds(UserIdentityAC, SHORT_BYTES),
)

ASSOCIATE_RQ = st.builds(
    AssociateRQ,
    called_ae=AE_TITLE,
    calling_ae=AE_TITLE,
    presentation_contexts=st.lists(
        st.builds(
            PresentationContextRQ,
            st.integers(0, 127).map(lambda n: 2 * n + 1),
            UID,
            st.lists(UID, min_size=1, max_size=4),
        ),
        max_size=6,
    ),
    user_info=USER_INFO,
    application_context=UID,
    protocol_version=st.integers(0, 0xFFFF),
)

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(ASSOCIATE_RQ)
def test_generated_associate_rq_round_trips(pdu: AssociateRQ) -> None:
    wire = encode_pdu(pdu)
    assert decode_pdu(wire) == pdu
    reader = PDUReader()
    reader.feed(wire)
    assert reader.next_pdu() == pdu


@PROPERTY_SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_into_decode_pdu_raise_only_pdu_error(data: bytes) -> None:
    with contextlib.suppress(PDUError):
        decode_pdu(data)


@PROPERTY_SETTINGS
@given(st.integers(1, 7), st.binary(max_size=300))
def test_random_bodies_behind_a_valid_header_raise_only_pdu_error(
    pdu_type: int, body: bytes
) -> None:
    if pdu_type in (1, 2):
        body = associate_fixed(b"A", b"B") + body
    with contextlib.suppress(PDUError):
        decode_pdu(pdu_bytes(pdu_type, body))


SEED_WIRES = [encode_pdu(pdu) for pdu in sample_pdus()]


@PROPERTY_SETTINGS
@given(
    st.sampled_from(SEED_WIRES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_mutated_valid_pdus_raise_only_pdu_error(wire: bytes, edits: list[tuple[int, int]]) -> None:
    mutated = bytearray(wire)
    for position, value in edits:
        mutated[6 + position % (len(mutated) - 6)] = value  # keep the header so the body is parsed
    with contextlib.suppress(PDUError):
        decode_pdu(bytes(mutated))


@PROPERTY_SETTINGS
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=20), st.integers(0, 200))
def test_random_bytes_into_the_reader_raise_only_pdu_error(
    data: bytes, cuts: list[int], limit: int
) -> None:
    reader = PDUReader(max_pdu_length=limit)
    position = 0
    try:
        for size in [*cuts, len(data)]:
            reader.feed(data[position : position + size])
            position += size
            while reader.next_pdu() is not None:
                pass
    except PDUError:
        pass


def test_take_whole_decodes_exactly_one_pdu_and_nothing_else() -> None:
    pdu = b"".join(bytes(c) for c in encode_p_data_tf([PDV(1, True, True, b"abcd")]))
    reader = PDUReader(16384)
    taken = reader.take_whole(pdu)
    assert taken == PDataTF([PDV(1, True, True, b"abcd")])
    assert reader.buffered == 0
    assert reader.take_whole(pdu + pdu) is None  # two PDUs: left to feed/next_pdu
    assert reader.take_whole(pdu[:-1]) is None  # not all of it
    assert reader.take_whole(pdu[:3]) is None  # not even a header
    reader.feed(pdu[:2])
    assert reader.take_whole(pdu) is None  # something is buffered: order must be kept
    reader.feed(pdu[2:])
    assert reader.next_pdu() == PDataTF([PDV(1, True, True, b"abcd")])


def test_take_whole_checks_the_header_like_next_pdu() -> None:
    big = b"".join(bytes(c) for c in encode_p_data_tf([PDV(1, True, True, b"x" * 200)]))
    with pytest.raises(PDUError) as caught:
        PDUReader(100).take_whole(big)
    assert "exceeds the negotiated maximum" in str(caught.value)
    with pytest.raises(PDUError):
        PDUReader().take_whole(b"\x09\x00\x00\x00\x00\x04abcd")  # no PDU type 9
