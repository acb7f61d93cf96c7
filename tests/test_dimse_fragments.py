"""P-DATA fragmenting and reassembly: PDU-length bound, packing, round trips, protocol errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmony_dimse.dimse.commands import (
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CStoreRQ,
    DIMSEError,
    DimseMessage,
    encode_command,
)
from harmony_dimse.dimse.fragments import MessageAssembler, ReceivedMessage, fragment
from harmony_dimse.ul.pdu import PDV, PDataTF

STORE = CStoreRQ(
    message_id=3,
    affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    affected_sop_instance_uid="1.2.3.4.5.6.7",
)
STORE_COMMAND = encode_command(STORE)
ECHO = CEchoRQ(message_id=1)
ECHO_COMMAND = encode_command(ECHO)


def pdu_length(pdu: PDataTF) -> int:
    """The PDU-length field of a P-DATA-TF: per PDV a 4-byte length plus its item (2 + data)."""
    return sum(4 + 2 + len(pdv.data) for pdv in pdu.pdvs)


def check_structure(
    pdus: list[PDataTF], command: bytes, dataset: bytes | None, max_pdu_length: int
) -> None:
    pdvs = [pdv for pdu in pdus for pdv in pdu.pdvs]
    assert all(pdu.pdvs for pdu in pdus)
    if max_pdu_length:
        assert all(pdu_length(pdu) <= max_pdu_length for pdu in pdus)
    assert all(pdv.context_id == 5 for pdv in pdvs)
    kinds = [pdv.is_command for pdv in pdvs]
    assert kinds == sorted(kinds, reverse=True)  # all command fragments before any data fragment
    command_pdvs = [pdv for pdv in pdvs if pdv.is_command]
    data_pdvs = [pdv for pdv in pdvs if not pdv.is_command]
    assert [pdv.is_last for pdv in command_pdvs] == [False] * (len(command_pdvs) - 1) + [True]
    assert b"".join(command_pdvs_data(command_pdvs)) == command
    if dataset is None:
        assert not data_pdvs
    else:
        assert [pdv.is_last for pdv in data_pdvs] == [False] * (len(data_pdvs) - 1) + [True]
        assert b"".join(bytes(pdv.data) for pdv in data_pdvs) == dataset
        # every data fragment but the first (which may fill a command PDU) uses a full PDU
        if max_pdu_length and len(data_pdvs) > 2:
            assert all(len(pdv.data) == max_pdu_length - 6 for pdv in data_pdvs[1:-1])


def command_pdvs_data(pdvs: list[PDV]) -> list[bytes]:
    return [bytes(pdv.data) for pdv in pdvs]


MAX_LENGTHS = [0, 7, 8, 9, 16, 31, 50, 64, 101, 256, 4096, 16384]
DATASET_SIZES = [None, 0, 1, 2, 3, 17, 100, 255, 1000, 5001]


@pytest.mark.parametrize("max_pdu_length", MAX_LENGTHS)
@pytest.mark.parametrize("size", DATASET_SIZES)
def test_fragment_and_assemble_round_trip(max_pdu_length: int, size: int | None) -> None:
    dataset = None if size is None else bytes(i % 251 for i in range(size))
    msg: DimseMessage = STORE if dataset is not None else ECHO
    command = STORE_COMMAND if dataset is not None else ECHO_COMMAND
    pdus = fragment(5, command, dataset, max_pdu_length)
    check_structure(pdus, command, dataset, max_pdu_length)

    # fed PDU by PDU: only the last one completes the message
    assembler = MessageAssembler()
    received: list[ReceivedMessage] = []
    for pdu in pdus:
        assert not received
        received.extend(assembler.feed(pdu.pdvs))
    assert received == [ReceivedMessage(5, msg, dataset)]
    assert isinstance(received[0].dataset, bytes | None)
    assert not assembler.in_progress


def test_command_larger_than_max_pdu_is_split_at_the_bound() -> None:
    assert len(STORE_COMMAND) == 108  # 7 * 14 + 10, and 4 * 24 + 12

    def layout(max_pdu_length: int) -> list[list[tuple[bool, int]]]:
        pdus = fragment(1, STORE_COMMAND, b"abcd", max_pdu_length)
        assert all(pdu_length(pdu) <= max_pdu_length for pdu in pdus)
        return [[(pdv.is_command, len(pdv.data)) for pdv in pdu.pdvs] for pdu in pdus]

    # 14 data bytes per PDV; after the last 10 command bytes only 4 bytes are left: data moves on
    assert layout(20) == [[(True, 14)]] * 7 + [[(True, 10)], [(False, 4)]]
    # 24 per PDV; after the last 12 command bytes 12 are left, enough for the 4 data bytes
    assert layout(30) == [[(True, 24)]] * 4 + [[(True, 12), (False, 4)]]


def test_command_and_data_share_one_pdu_when_they_fit() -> None:
    dataset = b"x" * 1000
    pdus = fragment(3, STORE_COMMAND, dataset, 16384)
    assert len(pdus) == 1
    command_pdv, data_pdv = pdus[0].pdvs
    assert command_pdv.is_command and command_pdv.is_last
    assert not data_pdv.is_command and data_pdv.is_last
    assert command_pdv.data is STORE_COMMAND  # whole pieces are passed through untouched
    assert data_pdv.data is dataset


def test_first_data_fragment_fills_the_command_pdu() -> None:
    max_pdu_length = len(STORE_COMMAND) + 6 + 6 + 10  # room for 10 data bytes after the command
    dataset = bytes(range(100))
    pdus = fragment(3, STORE_COMMAND, dataset, max_pdu_length)
    first = pdus[0].pdvs
    assert [pdv.is_command for pdv in first] == [True, False]
    assert bytes(first[1].data) == dataset[:10]
    assert pdu_length(pdus[0]) == max_pdu_length


def test_dataset_fragments_are_views_not_copies() -> None:
    dataset = bytes(50_000)
    pdus = fragment(1, STORE_COMMAND, dataset, 16384)
    data_pdvs = [pdv for pdu in pdus for pdv in pdu.pdvs if not pdv.is_command]
    assert len(data_pdvs) == 4
    assert all(isinstance(pdv.data, memoryview) and pdv.data.obj is dataset for pdv in data_pdvs)


def test_unlimited_max_pdu_length_gives_one_pdu() -> None:
    pdus = fragment(1, STORE_COMMAND, bytes(1_000_000), 0)
    assert len(pdus) == 1 and len(pdus[0].pdvs) == 2


@pytest.mark.parametrize("max_pdu_length", [1, 5, 6, -1])
def test_too_small_max_pdu_length(max_pdu_length: int) -> None:
    with pytest.raises(ValueError, match="max_pdu_length"):
        fragment(1, ECHO_COMMAND, None, max_pdu_length)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(7, 400),
    st.one_of(st.none(), st.binary(max_size=2000)),
    st.integers(1, 255).filter(lambda n: n % 2 == 1),
)
def test_round_trip_property(max_pdu_length: int, dataset: bytes | None, context_id: int) -> None:
    msg: DimseMessage = STORE if dataset is not None else ECHO
    command = encode_command(msg)
    pdus = fragment(context_id, command, dataset, max_pdu_length)
    assert all(pdu_length(pdu) <= max_pdu_length for pdu in pdus)
    all_pdvs = [pdv for pdu in pdus for pdv in pdu.pdvs]
    assert MessageAssembler().feed(all_pdvs) == [ReceivedMessage(context_id, msg, dataset)]


# ----------------------------------------------------------------------------- assembler


def test_several_messages_in_one_feed_and_interleaved_contexts_between_messages() -> None:
    find_rsp = CFindRSP(message_id_being_responded_to=2, status=0xFF00, has_dataset=True)
    final = CFindRSP(message_id_being_responded_to=2, status=0)
    pdvs = [
        *[p for pdu in fragment(1, encode_command(find_rsp), b"id1!", 32) for p in pdu.pdvs],
        *[p for pdu in fragment(3, encode_command(ECHO), None, 0) for p in pdu.pdvs],
        *[p for pdu in fragment(1, encode_command(final), None, 0) for p in pdu.pdvs],
    ]
    assembler = MessageAssembler()
    assert assembler.feed(pdvs) == [
        ReceivedMessage(1, find_rsp, b"id1!"),
        ReceivedMessage(3, ECHO, None),
        ReceivedMessage(1, final, None),
    ]


def test_single_fragment_dataset_is_not_copied_when_bytes() -> None:
    dataset = b"abcdef" * 10
    assembler = MessageAssembler()
    [message] = assembler.feed([PDV(1, True, True, STORE_COMMAND), PDV(1, False, True, dataset)])
    assert message.dataset is dataset


def test_fragments_over_a_reused_buffer_are_copied() -> None:
    buffer = bytearray(b"first-part")
    view = memoryview(buffer)
    assembler = MessageAssembler()
    assert assembler.feed([PDV(1, True, True, STORE_COMMAND), PDV(1, False, False, view)]) == []
    buffer[:] = b"XXXXXXXXXX"  # the receive buffer is reused for the next PDU
    [message] = assembler.feed([PDV(1, False, True, memoryview(b"+last"))])
    assert message.dataset == b"first-part+last"


def test_command_fragmented_over_views() -> None:
    raw = b"junk" + ECHO_COMMAND
    view = memoryview(raw)
    pdvs = [PDV(1, True, False, view[4:10]), PDV(1, True, True, view[10:])]
    assert MessageAssembler().feed(pdvs) == [ReceivedMessage(1, ECHO, None)]


def _error(pdvs: list[PDV], words: str, assembler: MessageAssembler | None = None) -> None:
    assembler = assembler or MessageAssembler()
    with pytest.raises(DIMSEError, match=words):
        assembler.feed(pdvs)
    assert not assembler.in_progress  # state is dropped after an error


def test_data_before_any_command() -> None:
    _error([PDV(1, False, True, b"data")], "before any command")


def test_data_before_last_command_fragment() -> None:
    _error(
        [PDV(1, True, False, STORE_COMMAND[:10]), PDV(1, False, True, b"data")],
        "before the last command fragment",
    )


def test_context_switch_mid_message() -> None:
    _error(
        [PDV(1, True, False, STORE_COMMAND[:10]), PDV(3, True, True, STORE_COMMAND[10:])],
        "context 3 in the middle of a message on context 1",
    )
    _error(
        [PDV(1, True, True, STORE_COMMAND), PDV(3, False, True, b"data")],
        "context 3 in the middle",
    )


def test_dataset_when_command_announces_none() -> None:
    _error(
        [PDV(1, True, True, ECHO_COMMAND), PDV(1, False, True, b"data")],
        "preceding C-ECHO-RQ announced no data set",
    )


def test_command_fragment_after_last_command_fragment() -> None:
    _error(
        [PDV(1, True, True, STORE_COMMAND), PDV(1, True, True, STORE_COMMAND)],
        "command fragment after the last command fragment of C-STORE-RQ",
    )


def test_bad_command_set() -> None:
    _error([PDV(7, True, True, b"\x00\x00\x00\x01\x02")], "bad command set on context 7")


def test_message_length_limit() -> None:
    assembler = MessageAssembler(max_message_length=len(STORE_COMMAND) + 100)
    ok = [PDV(1, True, True, STORE_COMMAND), PDV(1, False, True, bytes(100))]
    assert len(assembler.feed(ok)) == 1
    too_big = [PDV(1, True, True, STORE_COMMAND), PDV(1, False, False, bytes(100))]
    _error([*too_big, PDV(1, False, True, b"x")], "exceeds", assembler)


def test_assembler_recovers_after_error() -> None:
    assembler = MessageAssembler()
    with pytest.raises(DIMSEError):
        assembler.feed([PDV(1, False, True, b"data")])
    rsp = CEchoRSP(message_id_being_responded_to=1)
    assert assembler.feed([PDV(1, True, True, encode_command(rsp))]) == [
        ReceivedMessage(1, rsp, None)
    ]


def test_find_request_round_trip_with_identifier_on_small_pdus() -> None:
    find = CFindRQ(message_id=9, affected_sop_class_uid="1.2.840.10008.5.1.4.1.2.2.1")
    identifier = b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY " * 20
    pdus = fragment(9, encode_command(find), memoryview(identifier), 64)
    assembler = MessageAssembler()
    out = [m for pdu in pdus for m in assembler.feed(pdu.pdvs)]
    assert out == [ReceivedMessage(9, find, identifier)]
