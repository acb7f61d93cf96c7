"""Command sets: encode/decode round trips, exact bytes, pydicom as an oracle, malformed input."""

from __future__ import annotations

import contextlib
import struct
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from harmony_dimse.dimse.commands import (
    DATASET_PRESENT,
    MESSAGE_TYPES,
    NO_DATASET,
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
    Priority,
    decode_command,
    encode_command,
)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
INSTANCE = "1.2.826.0.1.3680043.8.498.123456789012345678901"  # odd length: 47 characters

FULL_MESSAGES: list[DimseMessage] = [
    CEchoRQ(message_id=1),
    CEchoRSP(
        message_id_being_responded_to=1,
        status=0x0000,
        affected_sop_class_uid="1.2.840.10008.1.1",
        error_comment="all good",
    ),
    CFindRQ(message_id=2, affected_sop_class_uid=STUDY_FIND, priority=Priority.HIGH),
    CFindRSP(
        message_id_being_responded_to=2,
        status=0xFF01,
        affected_sop_class_uid=STUDY_FIND,
        has_dataset=True,
    ),
    CFindRSP(
        message_id_being_responded_to=2,
        status=0xA900,
        offending_element=(0x00100010, 0x0020000D),
        error_comment="bad key",
        error_id=7,
    ),
    CGetRQ(message_id=3, affected_sop_class_uid=STUDY_GET, priority=Priority.LOW),
    CGetRSP(
        message_id_being_responded_to=3,
        status=0xFF00,
        affected_sop_class_uid=STUDY_GET,
        remaining=5,
        completed=2,
        failed=1,
        warning=0,
    ),
    CMoveRQ(message_id=4, affected_sop_class_uid=STUDY_MOVE, move_destination="STORESCP"),
    CMoveRSP(
        message_id_being_responded_to=4,
        status=0xB000,
        affected_sop_class_uid=STUDY_MOVE,
        remaining=0,
        completed=9,
        failed=1,
        warning=2,
        has_dataset=True,
    ),
    CStoreRQ(
        message_id=65535,
        affected_sop_class_uid=CT_IMAGE,
        affected_sop_instance_uid=INSTANCE,
        priority=Priority.MEDIUM,
        move_originator_aet="MOVESCU",
        move_originator_message_id=4,
    ),
    CStoreRSP(
        message_id_being_responded_to=65535,
        status=0xC001,
        affected_sop_class_uid=CT_IMAGE,
        affected_sop_instance_uid=INSTANCE,
        error_comment="cannot parse",
        offending_element=(0x7FE00010,),
    ),
    CCancelRQ(message_id_being_responded_to=2),
]

MINIMAL_MESSAGES: list[DimseMessage] = [
    CEchoRSP(message_id_being_responded_to=9),
    CFindRSP(message_id_being_responded_to=9),
    CGetRSP(message_id_being_responded_to=9),
    CMoveRSP(message_id_being_responded_to=9),
    CStoreRQ(message_id=0, affected_sop_class_uid=CT_IMAGE, affected_sop_instance_uid="1.2"),
    CStoreRSP(message_id_being_responded_to=0),
]


@pytest.mark.parametrize("msg", FULL_MESSAGES + MINIMAL_MESSAGES, ids=lambda m: m.name)
def test_round_trip(msg: DimseMessage) -> None:
    encoded = encode_command(msg)
    assert decode_command(encoded) == msg
    assert decode_command(memoryview(encoded)) == msg
    assert decode_command(bytearray(encoded)) == msg


def test_every_message_type_is_covered() -> None:
    assert {type(m) for m in FULL_MESSAGES} == set(MESSAGE_TYPES.values())


def test_c_echo_rq_exact_bytes() -> None:
    uid = b"1.2.840.10008.1.1\x00"  # 17 characters, padded with NUL to 18
    body = (
        b"\x00\x00\x02\x00" + struct.pack("<I", len(uid)) + uid
        # CommandField 0x0030
        + b"\x00\x00\x00\x01" + b"\x02\x00\x00\x00" + b"\x30\x00"
        # MessageID 0x1234
        + b"\x00\x00\x10\x01" + b"\x02\x00\x00\x00" + b"\x34\x12"
        # CommandDataSetType 0x0101: no data set
        + b"\x00\x00\x00\x08" + b"\x02\x00\x00\x00" + b"\x01\x01"
    )  # fmt: skip
    expected = b"\x00\x00\x00\x00\x04\x00\x00\x00" + struct.pack("<I", len(body)) + body
    assert len(body) == 56
    assert encode_command(CEchoRQ(message_id=0x1234)) == expected


def _elements(encoded: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    offset = 0
    while offset < len(encoded):
        group, element, length = struct.unpack_from("<HHI", encoded, offset)
        out.append((group, element, encoded[offset + 8 : offset + 8 + length]))
        offset += 8 + length
    return out


@pytest.mark.parametrize("msg", FULL_MESSAGES, ids=lambda m: m.name)
def test_encoding_rules(msg: DimseMessage) -> None:
    elements = _elements(encode_command(msg))
    assert all(group == 0 for group, _, _ in elements)
    numbers = [element for _, element, _ in elements]
    assert numbers[0] == 0x0000 and numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert all(len(value) % 2 == 0 for _, _, value in elements)
    (group_length,) = struct.unpack("<I", elements[0][2])
    assert group_length == sum(8 + len(value) for _, _, value in elements[1:])
    values = {element: value for _, element, value in elements}
    dataset_type = struct.unpack("<H", values[0x0800])[0]
    assert dataset_type == (DATASET_PRESENT if msg.has_dataset else NO_DATASET)
    if 0x1000 in values:  # odd-length UID padded with NUL
        assert values[0x1000] == INSTANCE.encode() + b"\x00"
    if 0x0600 in values:
        assert values[0x0600] == b"STORESCP"
    if 0x1030 in values:  # odd-length AE padded with space
        assert values[0x1030] == b"MOVESCU "
    if 0x0902 in values:
        assert values[0x0902].rstrip(b" ") == msg.error_comment.encode()  # type: ignore[union-attr]


# pydicom keyword -> our attribute name
ORACLE_FIELDS = {
    "AffectedSOPClassUID": "affected_sop_class_uid",
    "MessageID": "message_id",
    "MessageIDBeingRespondedTo": "message_id_being_responded_to",
    "MoveDestination": "move_destination",
    "Priority": "priority",
    "Status": "status",
    "ErrorComment": "error_comment",
    "ErrorID": "error_id",
    "AffectedSOPInstanceUID": "affected_sop_instance_uid",
    "NumberOfRemainingSuboperations": "remaining",
    "NumberOfCompletedSuboperations": "completed",
    "NumberOfFailedSuboperations": "failed",
    "NumberOfWarningSuboperations": "warning",
    "MoveOriginatorApplicationEntityTitle": "move_originator_aet",
    "MoveOriginatorMessageID": "move_originator_message_id",
}


@pytest.mark.parametrize("msg", FULL_MESSAGES, ids=lambda m: m.name)
def test_pydicom_reads_what_we_write(msg: DimseMessage) -> None:
    encoded = encode_command(msg)
    ds = read_dataset(BytesIO(encoded), is_implicit_VR=True, is_little_endian=True)
    assert ds.CommandGroupLength == len(encoded) - 12
    assert ds.CommandField == msg.command_field
    assert (ds.CommandDataSetType != NO_DATASET) == msg.has_dataset
    checked = 0
    for keyword, attribute in ORACLE_FIELDS.items():
        ours = getattr(msg, attribute, None)
        if ours is None:
            assert keyword not in ds
            continue
        assert ds[keyword].value == ours, keyword
        checked += 1
    assert checked >= 1
    if getattr(msg, "offending_element", None) is not None:
        offending = ds.OffendingElement
        tags = list(offending) if ds["OffendingElement"].VM > 1 else [offending]
        assert tuple(int(tag) for tag in tags) == msg.offending_element  # type: ignore[union-attr]


def _pydicom_command(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = True
    write_dataset(fp, ds)
    body = fp.getvalue()
    header = struct.pack("<HHII", 0, 0, 4, len(body))
    return header + body


def test_we_read_what_pydicom_writes() -> None:
    ds = Dataset()
    ds.AffectedSOPClassUID = CT_IMAGE
    ds.CommandField = CommandField.C_STORE_RQ
    ds.MessageID = 17
    ds.Priority = 2
    ds.CommandDataSetType = 0x0000
    ds.AffectedSOPInstanceUID = INSTANCE
    ds.MoveOriginatorApplicationEntityTitle = "ORIGIN"
    ds.MoveOriginatorMessageID = 3
    assert decode_command(_pydicom_command(ds)) == CStoreRQ(
        message_id=17,
        affected_sop_class_uid=CT_IMAGE,
        affected_sop_instance_uid=INSTANCE,
        priority=2,
        move_originator_aet="ORIGIN",
        move_originator_message_id=3,
    )

    rsp = Dataset()
    rsp.CommandField = CommandField.C_FIND_RSP
    rsp.MessageIDBeingRespondedTo = 17
    rsp.CommandDataSetType = NO_DATASET
    rsp.Status = 0xA900
    rsp.OffendingElement = [0x00100020, 0x00080052]
    rsp.ErrorComment = "odd"
    assert decode_command(_pydicom_command(rsp)) == CFindRSP(
        message_id_being_responded_to=17,
        status=0xA900,
        offending_element=(0x00100020, 0x00080052),
        error_comment="odd",
    )


def test_dataset_type_values_other_than_0101_announce_a_dataset() -> None:
    for value, expected in ((0x0000, True), (0x0001, True), (0x0102, True), (0x0101, False)):
        raw = bytearray(encode_command(CFindRQ(message_id=1, affected_sop_class_uid="1.2")))
        index = raw.index(b"\x00\x00\x00\x08\x02\x00\x00\x00") + 8
        raw[index : index + 2] = struct.pack("<H", value)
        assert decode_command(raw).has_dataset is expected


def test_for_request_helpers() -> None:
    store = FULL_MESSAGES[9]
    assert isinstance(store, CStoreRQ)
    rsp = CStoreRSP.for_request(store, 0xB000, error_comment="coerced")
    assert rsp == CStoreRSP(
        message_id_being_responded_to=65535,
        status=0xB000,
        affected_sop_class_uid=CT_IMAGE,
        affected_sop_instance_uid=INSTANCE,
        error_comment="coerced",
    )
    echo = CEchoRSP.for_request(CEchoRQ(message_id=5))
    assert echo.message_id_being_responded_to == 5 and echo.status == 0
    assert echo.affected_sop_class_uid == "1.2.840.10008.1.1"
    move = CMoveRSP.for_request(FULL_MESSAGES[7], 0xFF00, remaining=3, completed=0)  # type: ignore[arg-type]
    assert decode_command(encode_command(move)) == move
    assert move.affected_sop_class_uid == STUDY_MOVE and move.remaining == 3


# ----------------------------------------------------------------------------- malformed input


def element(number: int, value: bytes, group: int = 0) -> bytes:
    return struct.pack("<HHI", group, number, len(value)) + value


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def command(*elements: bytes, group_length: int | None = None) -> bytes:
    body = b"".join(elements)
    length = len(body) if group_length is None else group_length
    return element(0x0000, struct.pack("<I", length)) + body


ECHO_BODY = (
    element(0x0002, b"1.2.840.10008.1.1\x00"),
    element(0x0100, us(0x0030)),
    element(0x0110, us(1)),
    element(0x0800, us(NO_DATASET)),
)


def test_hand_built_helpers_make_a_valid_echo() -> None:
    assert decode_command(command(*ECHO_BODY)) == CEchoRQ(message_id=1)
    assert decode_command(b"".join(ECHO_BODY)) == CEchoRQ(message_id=1)  # group length optional


def test_unknown_elements_are_tolerated() -> None:
    extra = element(0x0003, b"1.2.3\x00"), element(0x5678, b"abcd")
    data = command(ECHO_BODY[0], extra[0], *ECHO_BODY[1:], extra[1])
    assert decode_command(data) == CEchoRQ(message_id=1)


def test_empty_optional_element_counts_as_absent() -> None:
    data = command(
        element(0x0100, us(0x8030)),
        element(0x0120, us(1)),
        element(0x0800, us(NO_DATASET)),
        element(0x0900, us(0)),
        element(0x0902, b""),
    )
    assert decode_command(data) == CEchoRSP(message_id_being_responded_to=1)


MALFORMED = [
    (b"", "CommandField (0000,0100) is missing"),
    (command(*ECHO_BODY)[:-1], "truncated"),
    (command(*ECHO_BODY)[:5], "truncated element header"),
    (command(*ECHO_BODY, group_length=10), "CommandGroupLength says 10"),
    (element(0x0000, b"\x00\x00") + b"".join(ECHO_BODY), "CommandGroupLength has value length 2"),
    (command(*ECHO_BODY) + struct.pack("<HHI", 0x0008, 0x0058, 10) + b"1.", "truncated"),
    (command(element(0x0002, b"1.2.3"), *ECHO_BODY[1:]), "odd value length 5"),
    (command(*ECHO_BODY, element(0x0110, us(2))), "appears twice"),
    (command(ECHO_BODY[0], element(0x0100, us(0x1234)), *ECHO_BODY[2:]), "unknown CommandField"),
    (command(ECHO_BODY[0], element(0x0100, us(0x0110)), *ECHO_BODY[2:]), "N-GET-RQ"),
    (command(ECHO_BODY[0], element(0x0100, b"\x30\x00\x00\x00"), *ECHO_BODY[2:]), "CommandField"),
    (command(ECHO_BODY[0], ECHO_BODY[1], ECHO_BODY[3]), "MessageID (0000,0110) is missing"),
    (command(*ECHO_BODY[1:]), "AffectedSOPClassUID (0000,0002) is missing"),
    (command(*ECHO_BODY[:3]), "CommandDataSetType (0000,0800) is missing"),
    (command(ECHO_BODY[0], ECHO_BODY[1], element(0x0110, b""), ECHO_BODY[3]), "needs 2"),
    (command(element(0x0002, b"1.2.\xe9\x00"), *ECHO_BODY[1:]), "not ASCII"),
    (
        command(
            element(0x0100, us(0x8020)),
            element(0x0120, us(1)),
            element(0x0800, us(NO_DATASET)),
            element(0x0900, us(0)),
            element(0x0901, b"\x10\x00\x10\x00\x20\x00"),
        ),
        "multiple of 4",
    ),
    (
        command(
            element(0x0002, b"1.2\x00"),
            element(0x0100, us(0x0021)),
            element(0x0110, us(1)),
            element(0x0700, us(0)),
            element(0x0800, us(0)),
        ),
        "MoveDestination (0000,0600) is missing",
    ),
    (
        command(element(0x0100, us(0x8001)), element(0x0800, us(NO_DATASET))),
        "MessageIDBeingRespondedTo",
    ),
    (command(element(0x0100, us(0x0FFF)), element(0x0800, us(NO_DATASET))), "C-CANCEL-RQ"),
    (struct.pack("<HHI", 0, 0x0100, 0xFFFFFFFF), "value length 4294967295"),
]


@pytest.mark.parametrize(("data", "words"), MALFORMED)
def test_malformed_raises_dimse_error(data: bytes, words: str) -> None:
    with pytest.raises(DIMSEError, match=words.replace("(", r"\(").replace(")", r"\)")):
        decode_command(data)


def test_encode_rejects_bad_values() -> None:
    with pytest.raises(DIMSEError, match="MessageID"):
        encode_command(CEchoRQ(message_id=70000))
    with pytest.raises(DIMSEError, match="longer than 16"):
        encode_command(
            CMoveRQ(message_id=1, affected_sop_class_uid="1.2", move_destination="A" * 17)
        )
    with pytest.raises(DIMSEError, match="is required"):
        encode_command(
            CStoreRQ(message_id=1, affected_sop_class_uid="1.2", affected_sop_instance_uid=None)  # type: ignore[arg-type]
        )
    with pytest.raises(DIMSEError, match="not ASCII"):
        encode_command(CFindRQ(message_id=1, affected_sop_class_uid="1.2.é"))
    # DIMSEError is a ValueError, so callers may catch either
    assert issubclass(DIMSEError, ValueError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_dimse_error(data: bytes) -> None:
    with contextlib.suppress(DIMSEError):
        decode_command(data)


VALID_ENCODINGS = [encode_command(m) for m in FULL_MESSAGES]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(VALID_ENCODINGS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    st.integers(0, 400),
)
def test_mutated_commands_raise_only_dimse_error(
    encoded: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(encoded)
    for index, value in flips:
        if index < len(data):
            data[index] = value
    if cut % 3 == 0:  # one time in three, also cut off the tail
        del data[len(data) - cut % (len(data) + 1) :]
    try:
        msg = decode_command(bytes(data))
    except DIMSEError:
        return
    # whatever decodes must encode again
    decode_command(encode_command(msg))


def test_failed_sop_list_in_the_command_set_is_read_not_refused() -> None:
    # Orthanc 1.10 puts (0008,0058) into the command set of C-GET responses
    body = (
        element(0x0002, b"1.2.840.10008.5.1.4.1.2.2.3\x00"),
        element(0x0100, us(0x8010)),
        element(0x0120, us(7)),
        element(0x0800, us(NO_DATASET)),
        element(0x0900, us(0xB000)),
    )
    raw = command(*body) + element(0x0058, b"1.2.3\\1.2.4\x00", group=0x0008)
    msg = decode_command(raw)
    assert msg.status == 0xB000  # type: ignore[union-attr]
    assert msg.failed_sop_instances == ("1.2.3", "1.2.4")  # type: ignore[union-attr]


def test_requests_from_one_template_differ_only_by_message_id() -> None:
    first = encode_command(CFindRQ(message_id=1, affected_sop_class_uid=STUDY_FIND, priority=2))
    second = encode_command(CFindRQ(message_id=513, affected_sop_class_uid=STUDY_FIND, priority=2))
    assert len(first) == len(second)
    assert [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b] != []
    assert decode_command(second) == CFindRQ(
        message_id=513, affected_sop_class_uid=STUDY_FIND, priority=2
    )
    other_priority = CFindRQ(message_id=513, affected_sop_class_uid=STUDY_FIND, priority=1)
    assert decode_command(encode_command(other_priority)) == other_priority
    moved = CMoveRQ(message_id=9, affected_sop_class_uid=STUDY_MOVE, move_destination="DEST")
    elsewhere = CMoveRQ(message_id=9, affected_sop_class_uid=STUDY_MOVE, move_destination="OTHER")
    assert decode_command(encode_command(moved)) == moved
    assert decode_command(encode_command(elsewhere)) == elsewhere
    for bad in (-1, 0x10000):
        with pytest.raises(DIMSEError, match="MessageID"):
            encode_command(CEchoRQ(message_id=bad))


def test_responses_decoded_from_the_last_of_their_length_are_exact() -> None:
    def rsp(message_id: int, status: int) -> CFindRSP:
        return CFindRSP(
            message_id_being_responded_to=message_id,
            affected_sop_class_uid=STUDY_FIND,
            status=status,
            has_dataset=status == 0xFF00,
        )

    for message in (rsp(1, 0xFF00), rsp(2, 0xFF00), rsp(300, 0xFF00), rsp(300, 0x0000)):
        assert decode_command(encode_command(message)) == message
    # same length, same message id, another status: not taken for the template
    assert decode_command(encode_command(rsp(7, 0xC000))) == rsp(7, 0xC000)
    assert decode_command(encode_command(rsp(8, 0xFF00))) == rsp(8, 0xFF00)
