"""ul.connection: two Connection objects, requestor and acceptor, talking through byte strings."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from harmony_dimse.ul.codec import encode_p_data_tf, encode_pdu
from harmony_dimse.ul.connection import (
    Aborted,
    AssociationAccepted,
    AssociationRejected,
    AssociationRequested,
    Connection,
    ConnectionClosed,
    ConnectionEvent,
    DataReceived,
    ReleaseConfirmed,
    ReleaseRequested,
    StateError,
)
from harmony_dimse.ul.fsm import Event, State
from harmony_dimse.ul.pdu import (
    PDU,
    PDV,
    Abort,
    AbortReason,
    AbortSource,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    PDataTF,
    PresentationContextAC,
    PresentationContextRQ,
    RejectResult,
    RejectSource,
    ReleaseRP,
    ReleaseRQ,
    UserInformation,
)

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
REQUESTOR_MAX = 16384
ACCEPTOR_MAX = 32768
ARTIM = 30.0


def abort_bytes(source: int, reason: int) -> bytes:
    return bytes([0x07, 0, 0, 0, 0, 4, 0, 0, source, reason])


UNEXPECTED_PDU_ABORT = abort_bytes(2, 2)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingConnection(Connection):
    """A Connection that remembers every state it entered."""

    seen: set[State]

    @property
    def state(self) -> State:
        return self._state

    @state.setter
    def state(self, value: State) -> None:
        self.__dict__.setdefault("seen", set()).add(value)
        self._state = value


def make_rq(protocol_version: int = 1) -> AssociateRQ:
    return AssociateRQ(
        called_ae="ACCEPTOR",
        calling_ae="REQUESTOR",
        presentation_contexts=[PresentationContextRQ(1, VERIFICATION, [IMPLICIT_LE])],
        user_info=UserInformation(max_length=REQUESTOR_MAX, implementation_class_uid="1.2.3.4"),
        protocol_version=protocol_version,
    )


def make_ac() -> AssociateAC:
    return AssociateAC(
        called_ae="ACCEPTOR",
        calling_ae="REQUESTOR",
        presentation_contexts=[PresentationContextAC(1, 0, IMPLICIT_LE)],
        user_info=UserInformation(max_length=ACCEPTOR_MAX, implementation_class_uid="1.2.3.5"),
    )


def wire(conn: Connection) -> bytes:
    return b"".join(bytes(chunk) for chunk in conn.data_to_send())


def pump(src: Connection, dst: Connection) -> list[ConnectionEvent]:
    """Move everything ``src`` queued into ``dst``; the events ``dst`` returned."""
    data = wire(src)
    return dst.receive_data(data) if data else []


def pdvs(payload: bytes, context_id: int = 1, is_command: bool = True) -> list[PDV]:
    return [PDV(context_id, is_command, True, payload)]


def p_data_bytes(payload: bytes) -> bytes:
    return b"".join(bytes(chunk) for chunk in encode_p_data_tf(pdvs(payload)))


class Pair:
    """A requestor and an acceptor sharing a fake clock."""

    def __init__(self, cls: type[Connection] = Connection) -> None:
        self.clock = FakeClock()
        self.req = cls(requestor=True, max_receive_pdu=REQUESTOR_MAX, clock=self.clock)
        self.acc = cls(requestor=False, max_receive_pdu=ACCEPTOR_MAX, clock=self.clock)

    def to_acceptor(self) -> list[ConnectionEvent]:
        return pump(self.req, self.acc)

    def to_requestor(self) -> list[ConnectionEvent]:
        return pump(self.acc, self.req)

    def connect(self) -> None:
        """Up to Sta5 (requestor) and Sta2 (acceptor), the A-ASSOCIATE-RQ not yet delivered."""
        self.req.request_association(make_rq())
        assert self.req.state is State.Sta4
        assert self.acc.transport_connected() == []
        assert self.acc.state is State.Sta2
        assert self.acc.artim_deadline == self.clock.now + ARTIM
        assert self.req.transport_connected() == []
        assert self.req.state is State.Sta5
        assert self.req.artim_deadline is None

    def request(self) -> None:
        """Up to Sta3 on the acceptor."""
        self.connect()
        events = self.to_acceptor()
        assert events == [AssociationRequested(make_rq())]
        assert self.acc.state is State.Sta3
        assert self.acc.artim_deadline is None

    def establish(self) -> None:
        """Both sides in Sta6."""
        self.request()
        self.acc.accept(make_ac())
        assert self.acc.state is State.Sta6
        assert self.to_requestor() == [AssociationAccepted(make_ac())]
        assert self.req.state is State.Sta6

    def close_both(self) -> None:
        """The side that wants to close does; both see the transport closed."""
        assert self.req.wants_close or self.acc.wants_close
        assert self.req.transport_closed()[-1] == ConnectionClosed()
        assert self.acc.transport_closed()[-1] == ConnectionClosed()
        assert self.req.state is State.Sta1
        assert self.acc.state is State.Sta1
        assert self.req.artim_deadline is None
        assert self.acc.artim_deadline is None


def only_aborted(events: list[ConnectionEvent]) -> Aborted:
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Aborted)
    return event


def received_payloads(events: list[ConnectionEvent]) -> list[bytes]:
    return [bytes(pdv.data) for e in events if isinstance(e, DataReceived) for pdv in e.pdvs]


# ----------------------------------------------------------------------------- establishment


def test_accept_negotiates_pdu_sizes() -> None:
    pair = Pair()
    pair.establish()
    assert pair.req.max_send_pdu == ACCEPTOR_MAX
    assert pair.acc.max_send_pdu == REQUESTOR_MAX
    assert pair.acc.associate_rq == make_rq()
    assert pair.req.associate_ac == make_ac()
    assert pair.req.is_established and pair.acc.is_established
    assert not pair.req.wants_close and not pair.acc.wants_close


def test_absent_max_length_means_unlimited() -> None:
    pair = Pair()
    pair.request()
    ac = make_ac()
    ac.user_info.max_length = None
    pair.acc.accept(ac)
    pair.to_requestor()
    assert pair.req.max_send_pdu == 0


def test_association_bytes_may_arrive_one_at_a_time() -> None:
    pair = Pair()
    pair.connect()
    events: list[ConnectionEvent] = []
    for byte in wire(pair.req):
        events += pair.acc.receive_data(bytes([byte]))
    assert events == [AssociationRequested(make_rq())]


def test_accept_and_data_in_one_chunk() -> None:
    pair = Pair()
    pair.request()
    pair.acc.accept(make_ac())
    pair.acc.send_pdata(pdvs(b"early"))
    events = pair.to_requestor()
    assert events[0] == AssociationAccepted(make_ac())
    assert received_payloads(events) == [b"early"]


def test_user_reject() -> None:
    pair = Pair()
    pair.request()
    rj = AssociateRJ(RejectResult.PERMANENT, RejectSource.SERVICE_USER, 7)
    pair.acc.reject(rj)
    assert pair.acc.state is State.Sta13
    assert pair.acc.artim_deadline == pair.clock.now + ARTIM
    assert pair.to_requestor() == [AssociationRejected(rj)]
    assert pair.req.state is State.Sta1
    assert pair.req.wants_close
    assert pair.req.transport_closed() == [ConnectionClosed()]
    assert pair.acc.transport_closed() == [ConnectionClosed()]  # AR-5
    assert pair.acc.state is State.Sta1


def test_provider_rejects_unknown_protocol_version() -> None:
    pair = Pair()
    pair.req.request_association(make_rq(protocol_version=2))
    pair.acc.transport_connected()
    pair.req.transport_connected()
    assert pair.to_acceptor() == []
    assert pair.acc.state is State.Sta13
    assert pair.acc.artim_deadline is not None
    assert pair.to_requestor() == [AssociationRejected(AssociateRJ(1, 2, 2))]


def test_bad_associate_rq_fails_in_the_caller_and_changes_nothing() -> None:
    conn = Connection(requestor=True)
    rq = make_rq()
    rq.called_ae = "X" * 17
    with pytest.raises(ValueError):
        conn.request_association(rq)
    assert conn.state is State.Sta1
    conn.request_association(make_rq())
    assert conn.state is State.Sta4


# ----------------------------------------------------------------------------- data transfer


def test_data_both_ways() -> None:
    pair = Pair()
    pair.establish()
    pair.req.send_pdata(pdvs(b"command"))
    pair.req.send_pdata(pdvs(b"data set", is_command=False))
    events = pair.to_acceptor()
    assert received_payloads(events) == [b"command", b"data set"]
    assert [pdv.is_command for e in events if isinstance(e, DataReceived) for pdv in e.pdvs] == [
        True,
        False,
    ]
    big = bytes(range(256)) * 60  # 15360 bytes + headers fits in REQUESTOR_MAX
    pair.acc.send_pdata(pdvs(big))
    assert received_payloads(pair.to_requestor()) == [big]
    assert pair.req.state is State.Sta6 and pair.acc.state is State.Sta6


def test_data_to_send_clears_the_queue_and_does_not_copy_payload() -> None:
    pair = Pair()
    pair.establish()
    payload = bytearray(b"x" * 1000)
    pair.req.send_pdata(pdvs(payload))  # type: ignore[arg-type]
    chunks = pair.req.data_to_send()
    assert any(chunk is payload for chunk in chunks)
    assert pair.req.data_to_send() == []


# ----------------------------------------------------------------------------- release


def test_release_by_requestor_with_data_during_release() -> None:
    pair = Pair()
    pair.establish()
    pair.req.request_release()
    assert pair.req.state is State.Sta7
    assert pair.to_acceptor() == [ReleaseRequested()]
    assert pair.acc.state is State.Sta8
    assert pair.acc.awaiting_release_response
    pair.acc.send_pdata(pdvs(b"last words"))  # AR-7
    assert pair.acc.state is State.Sta8
    assert received_payloads(pair.to_requestor()) == [b"last words"]  # AR-6
    assert pair.req.state is State.Sta7
    pair.acc.respond_release()
    assert pair.acc.state is State.Sta13
    assert pair.acc.artim_deadline == pair.clock.now + ARTIM
    assert pair.to_requestor() == [ReleaseConfirmed()]
    assert pair.req.state is State.Sta1
    assert pair.req.wants_close and not pair.acc.wants_close
    pair.close_both()


def test_release_by_acceptor() -> None:
    pair = Pair()
    pair.establish()
    pair.acc.request_release()
    assert pair.to_requestor() == [ReleaseRequested()]
    pair.req.respond_release()
    assert pair.req.state is State.Sta13
    assert pair.to_acceptor() == [ReleaseConfirmed()]
    assert pair.acc.wants_close
    pair.close_both()


def test_release_collision() -> None:
    pair = Pair()
    pair.establish()
    pair.req.request_release()
    pair.acc.request_release()
    to_acc, to_req = wire(pair.req), wire(pair.acc)
    assert to_acc == to_req == bytes([5, 0, 0, 0, 0, 4, 0, 0, 0, 0])
    assert pair.req.receive_data(to_req) == [ReleaseRequested(collision=True)]  # AR-8
    assert pair.acc.receive_data(to_acc) == [ReleaseRequested(collision=True)]
    assert pair.req.state is State.Sta9
    assert pair.acc.state is State.Sta10
    assert pair.req.awaiting_release_response
    assert not pair.acc.awaiting_release_response
    pair.req.respond_release()  # AR-9
    assert pair.req.state is State.Sta11
    assert pair.to_acceptor() == [ReleaseConfirmed()]  # AR-10
    assert pair.acc.state is State.Sta12
    assert pair.acc.awaiting_release_response
    assert not pair.acc.wants_close
    pair.acc.respond_release()  # AR-4
    assert pair.acc.state is State.Sta13
    assert pair.to_requestor() == [ReleaseConfirmed()]  # AR-3
    assert pair.req.state is State.Sta1
    assert pair.req.wants_close
    pair.close_both()


def test_every_state_is_entered() -> None:
    seen: set[State] = set()
    for collision in (False, True):
        pair = Pair(RecordingConnection)
        pair.establish()
        pair.req.request_release()
        if collision:
            pair.acc.request_release()
            to_acc, to_req = wire(pair.req), wire(pair.acc)
            pair.req.receive_data(to_req)
            pair.acc.receive_data(to_acc)
            pair.req.respond_release()
            pair.to_acceptor()
        else:
            pair.to_acceptor()
        pair.acc.respond_release()
        pair.to_requestor()
        pair.close_both()
        for conn in (pair.req, pair.acc):
            seen |= conn.seen  # type: ignore[attr-defined]
    assert seen == set(State)


# ----------------------------------------------------------------------------- aborts


@pytest.mark.parametrize("side", ["requestor", "acceptor"])
def test_abort_in_sta6(side: str) -> None:
    pair = Pair()
    pair.establish()
    aborter, peer = (pair.req, pair.acc) if side == "requestor" else (pair.acc, pair.req)
    aborter.abort()
    assert aborter.state is State.Sta13
    assert aborter.artim_deadline == pair.clock.now + ARTIM
    data = wire(aborter)
    assert data == abort_bytes(0, 0)
    event = only_aborted(peer.receive_data(data))
    assert (event.source, event.reason, event.by_peer) == (0, 0, True)
    assert "Sta6" in event.detail and "service-user" in event.detail
    assert peer.state is State.Sta1 and peer.wants_close
    pair.close_both()


def test_abort_with_provider_source_and_reason() -> None:
    pair = Pair()
    pair.establish()
    pair.acc.abort(AbortSource.SERVICE_PROVIDER, AbortReason.INVALID_PDU_PARAMETER_VALUE)
    event = only_aborted(pair.to_requestor())
    assert (event.source, event.reason, event.by_peer) == (2, 6, True)
    assert "invalid PDU parameter value" in event.detail


def test_abort_while_awaiting_ac_and_while_awaiting_local_response() -> None:
    pair = Pair()
    pair.request()
    pair.req.abort()  # AA-1 in Sta5
    event = only_aborted(pair.to_acceptor())  # AA-3 in Sta3
    assert event.by_peer and "Sta3" in event.detail

    pair = Pair()
    pair.request()
    pair.acc.abort()  # AA-1 in Sta3
    event = only_aborted(pair.to_requestor())  # AA-3 in Sta5
    assert event.by_peer and "Sta5" in event.detail


def test_abort_before_transport_is_up() -> None:
    conn = Connection(requestor=True)
    conn.request_association(make_rq())
    conn.abort()  # AA-2 in Sta4
    assert conn.state is State.Sta1
    assert conn.wants_close
    assert conn.data_to_send() == []
    assert conn.transport_closed() == [ConnectionClosed()]


def test_abort_during_release_and_collision() -> None:
    pair = Pair()
    pair.establish()
    pair.req.request_release()
    pair.acc.request_release()
    to_acc, to_req = wire(pair.req), wire(pair.acc)
    pair.req.receive_data(to_req)
    pair.acc.receive_data(to_acc)
    pair.acc.abort()  # AA-1 in Sta10
    event = only_aborted(pair.to_requestor())  # AA-3 in Sta9
    assert "Sta9" in event.detail


def test_peer_abort_in_sta2_and_sta13() -> None:
    conn = Connection(requestor=False)
    conn.transport_connected()
    event = only_aborted(conn.receive_data(abort_bytes(0, 0)))  # AA-2 in Sta2
    assert event.by_peer
    assert conn.state is State.Sta1 and conn.wants_close

    pair = Pair()
    pair.establish()
    pair.req.abort()
    pair.to_acceptor()
    assert pair.req.state is State.Sta13
    assert pair.req.receive_data(abort_bytes(0, 0)) == []  # AA-2 in Sta13: nobody to tell
    assert pair.req.state is State.Sta1 and pair.req.wants_close


def test_transport_closed_unexpectedly_in_sta6() -> None:
    pair = Pair()
    pair.establish()
    events = pair.req.transport_closed()  # AA-4
    assert len(events) == 2
    event = events[0]
    assert isinstance(event, Aborted)
    assert (event.source, event.by_peer) == (2, False)
    assert "connection closed by peer" in event.detail and "Sta6" in event.detail
    assert events[1] == ConnectionClosed()
    assert pair.req.state is State.Sta1
    assert pair.req.transport_closed() == []
    assert pair.req.receive_data(p_data_bytes(b"late")) == []


def test_transport_closed_in_sta2_and_sta4() -> None:
    conn = Connection(requestor=False)
    conn.transport_connected()
    assert conn.transport_closed() == [ConnectionClosed()]  # AA-5
    assert conn.artim_deadline is None

    conn = Connection(requestor=True)
    conn.request_association(make_rq())
    events = conn.transport_closed()  # AA-4 in Sta4: connect failed
    assert isinstance(events[0], Aborted) and "Sta4" in events[0].detail
    assert events[1:] == [ConnectionClosed()]


# ----------------------------------------------------------------------------- ARTIM


def test_artim_expiry_in_sta2() -> None:
    clock = FakeClock()
    conn = Connection(requestor=False, artim_timeout=5.0, clock=clock)
    conn.transport_connected()
    assert conn.artim_deadline == clock.now + 5.0
    clock.now += 4.9
    assert conn.timer_expired() == []  # too early: a stale timer does nothing
    assert conn.state is State.Sta2
    clock.now += 0.1
    event = only_aborted(conn.timer_expired())  # AA-2
    assert not event.by_peer and "ARTIM" in event.detail
    assert conn.state is State.Sta1 and conn.wants_close
    assert conn.artim_deadline is None
    assert conn.transport_closed() == [ConnectionClosed()]


def test_artim_expiry_in_sta13() -> None:
    pair = Pair()
    pair.establish()
    pair.req.request_release()
    pair.to_acceptor()
    pair.acc.respond_release()
    assert pair.acc.state is State.Sta13
    pair.clock.now += ARTIM
    assert pair.acc.timer_expired() == []  # AA-2: the association is already gone
    assert pair.acc.state is State.Sta1
    assert pair.acc.wants_close
    assert pair.acc.artim_deadline is None
    assert pair.acc.transport_closed() == [ConnectionClosed()]


def test_timer_expired_without_artim_does_nothing() -> None:
    pair = Pair()
    pair.establish()
    pair.clock.now += 1000
    assert pair.req.timer_expired() == []
    assert pair.req.state is State.Sta6


# ----------------------------------------------------------------------------- unexpected PDUs


def drive_to(state: State) -> tuple[Pair, Connection]:
    """A pair with one side in ``state``; returns the pair and that side."""
    pair = Pair()
    if state is State.Sta2:
        pair.connect()
        return pair, pair.acc
    if state is State.Sta3:
        pair.request()
        return pair, pair.acc
    if state is State.Sta5:
        pair.request()
        return pair, pair.req
    pair.establish()
    if state is State.Sta6:
        return pair, pair.acc
    pair.req.request_release()
    if state is State.Sta7:
        return pair, pair.req
    if state is State.Sta8:
        pair.to_acceptor()
        return pair, pair.acc
    pair.acc.request_release()
    to_acc, to_req = wire(pair.req), wire(pair.acc)
    pair.req.receive_data(to_req)
    pair.acc.receive_data(to_acc)
    if state is State.Sta9:
        return pair, pair.req
    if state is State.Sta10:
        return pair, pair.acc
    pair.req.respond_release()
    if state is State.Sta11:
        return pair, pair.req
    pair.to_acceptor()
    assert state is State.Sta12
    return pair, pair.acc


UNEXPECTED_CASES: list[tuple[State, PDU]] = [
    (State.Sta2, PDataTF(pdvs(b"x"))),  # AA-1
    (State.Sta2, ReleaseRQ()),  # AA-1
    (State.Sta2, make_ac()),  # AA-1
    (State.Sta3, make_rq()),  # AA-8
    (State.Sta3, PDataTF(pdvs(b"x"))),
    (State.Sta5, PDataTF(pdvs(b"x"))),
    (State.Sta5, ReleaseRP()),
    (State.Sta6, make_ac()),
    (State.Sta6, ReleaseRP()),
    (State.Sta6, make_rq()),
    (State.Sta6, AssociateRJ(1, 1, 1)),
    (State.Sta7, make_ac()),
    (State.Sta8, PDataTF(pdvs(b"x"))),
    (State.Sta8, ReleaseRQ()),
    (State.Sta9, ReleaseRP()),
    (State.Sta10, PDataTF(pdvs(b"x"))),
    (State.Sta11, ReleaseRQ()),
    (State.Sta12, ReleaseRP()),
]


@pytest.mark.parametrize(("state", "pdu"), UNEXPECTED_CASES)
def test_unexpected_pdu_aborts(state: State, pdu: Any) -> None:
    pair, conn = drive_to(state)
    assert conn.state is state
    conn.data_to_send()
    event = only_aborted(conn.receive_data(encode_pdu(pdu)))
    assert (event.source, event.reason, event.by_peer) == (2, 2, False)
    assert "unexpected" in event.detail and state.name in event.detail
    assert wire(conn) == UNEXPECTED_PDU_ABORT
    assert conn.state is State.Sta13
    assert conn.artim_deadline == pair.clock.now + ARTIM


def test_peer_of_a_provider_abort_sees_it() -> None:
    pair = Pair()
    pair.establish()
    pair.req.receive_data(encode_pdu(ReleaseRP()))
    event = only_aborted(pair.to_acceptor())
    assert (event.source, event.reason, event.by_peer) == (2, 2, True)
    assert "unexpected PDU" in event.detail


def test_sta13_ignores_pdus_and_aborts_on_a_new_request() -> None:
    pair = Pair()
    pair.establish()
    pair.req.receive_data(encode_pdu(ReleaseRP()))  # AA-8
    assert pair.req.state is State.Sta13
    pair.req.data_to_send()
    deadline = pair.req.artim_deadline
    for pdu in (PDataTF(pdvs(b"x")), ReleaseRQ(), ReleaseRP(), make_ac(), AssociateRJ(1, 1, 1)):
        assert pair.req.receive_data(encode_pdu(pdu)) == []  # AA-6
    assert pair.req.data_to_send() == []
    assert pair.req.receive_data(encode_pdu(make_rq())) == []  # AA-7
    assert wire(pair.req) == UNEXPECTED_PDU_ABORT
    assert pair.req.state is State.Sta13
    assert pair.req.artim_deadline == deadline


def test_data_after_a_release_confirmation_is_ignored() -> None:
    pair = Pair()
    pair.establish()
    pair.req.request_release()
    pair.to_acceptor()
    pair.acc.respond_release()
    data = wire(pair.acc) + p_data_bytes(b"too late")
    assert pair.req.receive_data(data) == [ReleaseConfirmed()]
    assert pair.req.state is State.Sta1
    assert pair.req.data_to_send() == []


# ----------------------------------------------------------------------------- malformed bytes

UNRECOGNIZED = bytes([0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0])
BAD_LENGTH_RELEASE = bytes([0x05, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0])


def test_malformed_bytes_in_sta2() -> None:
    pair = Pair()
    pair.connect()
    event = only_aborted(pair.acc.receive_data(UNRECOGNIZED))  # Evt19 -> AA-1
    assert (event.source, event.reason, event.by_peer) == (2, 1, False)
    assert "Sta2" in event.detail
    assert wire(pair.acc) == abort_bytes(2, AbortReason.UNRECOGNIZED_PDU)
    assert pair.acc.state is State.Sta13
    assert pair.acc.artim_deadline is not None
    # after a PDUError the stream is not parsed any further
    assert pair.acc.receive_data(wire(pair.req)) == []
    assert pair.acc.data_to_send() == []


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (UNRECOGNIZED, AbortReason.UNRECOGNIZED_PDU),
        (BAD_LENGTH_RELEASE, AbortReason.INVALID_PDU_PARAMETER_VALUE),
        (bytes([0x04, 0, 0, 0, 0, 0]), AbortReason.INVALID_PDU_PARAMETER_VALUE),
    ],
)
def test_malformed_bytes_in_sta6(garbage: bytes, reason: int) -> None:
    pair = Pair()
    pair.establish()
    pair.req.send_pdata(pdvs(b"fine"))
    data = wire(pair.req) + garbage + p_data_bytes(b"never read")
    events = pair.acc.receive_data(data)
    assert received_payloads(events) == [b"fine"]
    event = events[-1]
    assert isinstance(event, Aborted)
    assert (event.source, event.reason, event.by_peer) == (2, reason, False)
    assert "invalid PDU in Sta6" in event.detail
    assert wire(pair.acc) == abort_bytes(2, reason)
    assert pair.acc.state is State.Sta13
    assert pair.acc.receive_data(p_data_bytes(b"more")) == []


def test_malformed_bytes_in_sta13_abort_again() -> None:
    pair = Pair()
    pair.establish()
    pair.acc.abort()
    pair.acc.data_to_send()
    assert pair.acc.receive_data(UNRECOGNIZED) == []  # AA-7
    assert wire(pair.acc) == abort_bytes(2, AbortReason.UNRECOGNIZED_PDU)
    assert pair.acc.state is State.Sta13


def test_oversize_p_data_aborts_from_its_header() -> None:
    pair = Pair()
    pair.establish()
    header = struct.pack(">BxI", 0x04, ACCEPTOR_MAX + 1)
    event = only_aborted(pair.acc.receive_data(header))
    assert event.reason == AbortReason.INVALID_PDU_PARAMETER_VALUE
    assert "exceeds" in event.detail
    assert wire(pair.acc) == abort_bytes(2, 6)
    assert pair.acc.state is State.Sta13


def test_p_data_of_exactly_the_maximum_passes() -> None:
    pair = Pair()
    pair.establish()
    payload = b"y" * (ACCEPTOR_MAX - 6)  # PDU length = PDV item (4 + 2 + data)
    pair.req.send_pdata(pdvs(payload))
    assert received_payloads(pair.to_acceptor()) == [payload]
    pair.req.send_pdata(pdvs(payload + b"!"))
    event = only_aborted(pair.to_acceptor())
    assert event.reason == AbortReason.INVALID_PDU_PARAMETER_VALUE


def test_requestor_limit_applies_after_accept() -> None:
    pair = Pair()
    pair.establish()
    pair.acc.send_pdata(pdvs(b"z" * REQUESTOR_MAX))
    event = only_aborted(pair.to_requestor())
    assert event.reason == AbortReason.INVALID_PDU_PARAMETER_VALUE
    assert pair.req.state is State.Sta13


# ----------------------------------------------------------------------------- local misuse


def assert_refused(conn: Connection, call: Any, *args: Any) -> None:
    state, deadline = conn.state, conn.artim_deadline
    with pytest.raises(StateError):
        call(*args)
    assert conn.state is state
    assert conn.artim_deadline == deadline
    assert conn.data_to_send() == []


def test_local_primitives_out_of_state_raise_and_change_nothing() -> None:
    pair = Pair()
    req, acc = pair.req, pair.acc
    assert_refused(acc, acc.request_association, make_rq())
    assert_refused(req, req.abort)  # Sta1
    assert_refused(req, req.send_pdata, pdvs(b"x"))
    pair.connect()
    rq_bytes = wire(req)
    assert_refused(acc, acc.accept, make_ac())  # Sta2
    assert_refused(acc, acc.abort)  # Sta2: no user knows of it yet
    assert_refused(req, req.send_pdata, pdvs(b"x"))  # Sta5
    assert_refused(req, req.request_release)
    assert_refused(req, req.request_association, make_rq())
    assert_refused(req, req.transport_connected)
    acc.receive_data(rq_bytes)
    assert_refused(acc, acc.respond_release)  # Sta3
    acc.accept(make_ac())
    pair.to_requestor()
    acc.data_to_send()
    assert_refused(acc, acc.accept, make_ac())  # Sta6
    assert_refused(acc, acc.reject, AssociateRJ(1, 1, 1))
    assert_refused(acc, acc.respond_release)
    assert_refused(acc, acc.transport_connected)
    req.request_release()
    req.data_to_send()
    assert_refused(req, req.request_release)  # Sta7
    assert_refused(req, req.send_pdata, pdvs(b"x"))
    req.abort()
    req.data_to_send()
    assert_refused(req, req.abort)  # Sta13
    assert_refused(req, req.respond_release)


def test_can_tells_what_is_allowed() -> None:
    pair = Pair()
    assert not pair.req.can(Event.Evt15)
    pair.establish()
    assert pair.req.can(Event.Evt15)
    assert pair.req.can(Event.Evt9)
    assert not pair.req.can(Event.Evt14)


def test_acceptor_connection_serves_one_association() -> None:
    conn = Connection(requestor=False)
    conn.transport_connected()
    conn.transport_closed()
    with pytest.raises(StateError):
        conn.transport_connected()


def test_event_types_are_distinct() -> None:
    pair = Pair()
    pair.establish()
    pair.req.abort()
    events = pair.to_acceptor() + pair.acc.transport_closed()
    assert [type(e) for e in events] == [Aborted, ConnectionClosed]
    assert Abort(0, 0).describe() in events[0].detail  # type: ignore[union-attr]


def test_one_pdv_goes_out_as_the_same_pdu_as_send_pdata() -> None:
    for is_command, is_last, payload in ((True, True, b"cmd!"), (False, False, b"data" * 100)):
        pair = Pair()
        pair.establish()
        pair.req.send_pdata([PDV(3, is_command, is_last, payload)])
        expected = wire(pair.req)
        pair.req.send_one_pdv(3, is_command, is_last, payload)
        assert wire(pair.req) == expected
        pair.req.send_one_pdv(3, is_command, is_last, payload)
        events = pair.to_acceptor()
        assert events == [DataReceived([PDV(3, is_command, is_last, payload)])]


def test_one_pdv_is_refused_outside_data_transfer() -> None:
    pair = Pair()
    pair.connect()
    with pytest.raises(StateError):
        pair.req.send_one_pdv(1, True, True, b"too early")
    assert pair.req.data_to_send() != []  # only the A-ASSOCIATE-RQ, nothing added


def test_whole_pdus_and_pieces_in_one_read_all_arrive() -> None:
    pair = Pair()
    pair.establish()
    for payload in (b"one", b"two", b"three"):
        pair.req.send_one_pdv(1, True, True, payload)
    stream = wire(pair.req)
    cut = len(stream) - 4
    events = pair.acc.receive_data(stream[:cut])  # two whole PDUs and part of the third
    events += pair.acc.receive_data(stream[cut:])
    assert received_payloads(events) == [b"one", b"two", b"three"]
    pair.req.send_one_pdv(1, True, True, b"four")  # whole again, after the reader emptied
    assert received_payloads(pair.to_acceptor()) == [b"four"]
