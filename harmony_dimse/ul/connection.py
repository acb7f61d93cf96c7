"""One association's Upper Layer protocol state (PS3.8 section 9), sans-IO.

``Connection`` runs the state machine of ``ul.fsm`` for one association, either side. It never
touches a socket or a clock of its own: the shell (``net/``) feeds it transport events and local
primitives, sends what ``data_to_send()`` returns, closes the transport when ``wants_close`` turns
True, and calls ``timer_expired()`` once ``clock() >= artim_deadline``.

Typical life, requestor side::

    conn = Connection(requestor=True, max_receive_pdu=announced_max)
    conn.request_association(rq)           # Sta1 -> Sta4; the shell opens TCP
    conn.transport_connected()             # Sta4 -> Sta5; A-ASSOCIATE-RQ queued
    conn.receive_data(chunk)               # -> [AssociationAccepted(ac)], Sta6
    conn.send_pdata(pdvs); conn.receive_data(chunk)   # -> [DataReceived(pdvs), ...]
    conn.request_release()                 # Sta6 -> Sta7
    conn.receive_data(chunk)               # -> [ReleaseConfirmed()], Sta1, wants_close
    conn.transport_closed()                # -> [ConnectionClosed()]

Acceptor side: ``transport_connected()`` (Sta1 -> Sta2, ARTIM running), ``receive_data`` ->
``AssociationRequested(rq)``, then ``accept(ac)`` or ``reject(rj)``.

Release, including a release collision (both sides send A-RELEASE-RQ at once): whenever
``awaiting_release_response`` is True after handling events (Sta8, Sta9 or Sta12), the local user
owes an A-RELEASE response: the shell calls ``respond_release()``. In a collision:

- the association-requestor gets ``ReleaseRequested(collision=True)`` in Sta9, calls
  ``respond_release()`` (A-RELEASE-RP sent, Sta11), then receives the peer's A-RELEASE-RP:
  ``ReleaseConfirmed()``, Sta1, ``wants_close``;
- the association-acceptor gets ``ReleaseRequested(collision=True)`` in Sta10 and must wait; the
  requestor's A-RELEASE-RP brings ``ReleaseConfirmed()`` with the state at Sta12, and the shell
  calls ``respond_release()`` (A-RELEASE-RP sent, Sta13); the requestor then closes the transport.

Every connection's last event is ``ConnectionClosed()``, returned by ``transport_closed()``.
Protocol errors from the peer never raise: they abort as table 9-10 says and return ``Aborted``.
A local primitive the current state does not allow raises ``StateError`` and changes nothing;
``can(event)`` tells beforehand whether it is allowed.

One deliberate reading of the standard: for a bad or unexpected PDU in Sta2 (action AA-1, which
names a service-user source) we send the A-ABORT with source service-provider and the actual
reason, since no service-user exists yet and a user-source abort carries no reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .codec import PDUReader, encode_one_pdv, encode_p_data_tf, encode_pdu
from .fsm import OTHER_NEXT_STATE, TRANSITIONS, Action, Event, State
from .pdu import (
    PDV,
    Abort,
    AbortReason,
    AbortSource,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    PDataTF,
    PDUError,
    RejectResult,
    RejectSource,
    ReleaseRP,
    ReleaseRQ,
    UserInformation,
)

__all__ = [
    "Aborted",
    "AssociationAccepted",
    "AssociationRejected",
    "AssociationRequested",
    "Connection",
    "ConnectionClosed",
    "ConnectionEvent",
    "DataReceived",
    "ReleaseConfirmed",
    "ReleaseRequested",
    "StateError",
]

# Before the association is negotiated a P-DATA-TF PDU is a protocol error whatever its size; this
# cap only keeps us from buffering a huge one before saying so.
_PRE_ASSOCIATION_P_DATA_LIMIT = 64 * 1024


class StateError(ValueError):
    """A local primitive called in a state where PS3.8 table 9-10 does not allow it."""


# ----------------------------------------------------------------------------- events


@dataclass(slots=True)
class AssociationRequested:
    """Acceptor: the peer's A-ASSOCIATE-RQ (A-ASSOCIATE indication); answer with accept/reject."""

    rq: AssociateRQ


@dataclass(slots=True)
class AssociationAccepted:
    """Requestor: the peer accepted (A-ASSOCIATE confirmation, accept). Data transfer may start."""

    ac: AssociateAC


@dataclass(slots=True)
class AssociationRejected:
    """Requestor: the peer rejected (A-ASSOCIATE confirmation, reject); the transport is closing."""

    rj: AssociateRJ


@dataclass(slots=True)
class DataReceived:
    """The PDVs of one P-DATA-TF PDU (P-DATA indication)."""

    pdvs: list[PDV]


@dataclass(slots=True)
class ReleaseRequested:
    """The peer asked to release (A-RELEASE indication). ``collision``: we had asked too."""

    collision: bool = False


@dataclass(slots=True)
class ReleaseConfirmed:
    """Our A-RELEASE-RQ was answered (A-RELEASE confirmation).

    In Sta1 ``wants_close`` is set; in a collision on the acceptor side (Sta12) we still owe the
    peer our A-RELEASE-RP: call ``respond_release()``.
    """


@dataclass(slots=True)
class Aborted:
    """The association ended abnormally (A-ABORT or A-P-ABORT indication).

    ``by_peer``: True when the peer sent an A-ABORT PDU (``source``/``reason`` are its fields);
    False when we gave up (protocol error, ARTIM timer, transport closed), in which case
    ``source`` is service-provider and ``reason`` what we sent, if anything. ``detail`` says what.
    """

    source: int
    reason: int
    by_peer: bool
    detail: str


@dataclass(slots=True)
class ConnectionClosed:
    """The transport connection is closed; nothing more will happen on this Connection."""


ConnectionEvent = (
    AssociationRequested
    | AssociationAccepted
    | AssociationRejected
    | DataReceived
    | ReleaseRequested
    | ReleaseConfirmed
    | Aborted
    | ConnectionClosed
)


@dataclass(slots=True)
class _Diagnosis:
    """Why we abort on a PDU from the peer: the A-ABORT reason to send and words for the user."""

    reason: int
    detail: str


_PDU_EVENTS: dict[type, Event] = {
    AssociateAC: Event.Evt3,
    AssociateRJ: Event.Evt4,
    AssociateRQ: Event.Evt6,
    PDataTF: Event.Evt10,
    ReleaseRQ: Event.Evt12,
    ReleaseRP: Event.Evt13,
    Abort: Event.Evt16,
}
_PDU_NAMES: dict[type, str] = {
    AssociateAC: "A-ASSOCIATE-AC",
    AssociateRJ: "A-ASSOCIATE-RJ",
    AssociateRQ: "A-ASSOCIATE-RQ",
    PDataTF: "P-DATA-TF",
    ReleaseRQ: "A-RELEASE-RQ",
    ReleaseRP: "A-RELEASE-RP",
    Abort: "A-ABORT",
}
_RELEASE_RQ_BYTES = encode_pdu(ReleaseRQ())
_RELEASE_RP_BYTES = encode_pdu(ReleaseRP())
_AWAITING_RELEASE_RESPONSE = frozenset({State.Sta8, State.Sta9, State.Sta12})


def _where(state: State) -> str:
    return f"{state.name} ({state.value})"


def _peer_max_length(info: UserInformation) -> int:
    return info.max_length or 0


class Connection:
    """The Upper Layer protocol state of one association, fed by a shell; see the module doc."""

    def __init__(
        self,
        *,
        requestor: bool,
        max_receive_pdu: int = 0,
        artim_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requestor = requestor
        self.max_receive_pdu = max_receive_pdu  # what we announce; 0 = unlimited
        self.artim_timeout = artim_timeout
        self.clock = clock
        self.state = State.Sta1
        self.artim_deadline: float | None = None
        self.wants_close = False
        self.max_send_pdu = 0  # the peer's maximum length; 0 = unlimited
        self.associate_rq: AssociateRQ | None = None  # ours (requestor) or the peer's (acceptor)
        self.associate_ac: AssociateAC | None = None
        self._reader = PDUReader(
            min(max_receive_pdu, _PRE_ASSOCIATION_P_DATA_LIMIT)
            if max_receive_pdu
            else _PRE_ASSOCIATION_P_DATA_LIMIT
        )
        self._outgoing: list[bytes | memoryview] = []
        self._input_lost = False  # after a PDUError the byte stream cannot be trusted
        self._transport_gone = False
        self._used = False
        self._rq_bytes = b""

    # ------------------------------------------------------------------ queries

    def can(self, event: Event) -> bool:
        """Whether table 9-10 allows ``event`` in the current state."""
        return (event, self.state) in TRANSITIONS

    @property
    def awaiting_release_response(self) -> bool:
        """The local user owes an A-RELEASE response: call ``respond_release()``."""
        return self.state in _AWAITING_RELEASE_RESPONSE

    @property
    def is_established(self) -> bool:
        """Sta6: the association is established and ready for data transfer."""
        return self.state is State.Sta6

    def data_to_send(self) -> list[bytes | memoryview]:
        """The chunks queued since the last call, for ``transport.writelines``."""
        chunks = self._outgoing
        self._outgoing = []
        return chunks

    # ------------------------------------------------------------------ transport events

    def transport_connected(self) -> list[ConnectionEvent]:
        """Requestor: the TCP connect completed (Evt2). Acceptor: a new TCP connection (Evt5)."""
        if self.requestor:
            self._fire_local(Event.Evt2, None)
        else:
            if self._used:
                raise StateError("a Connection serves one association; make a new one")
            self._fire_local(Event.Evt5, None)
            self._used = True
        return []

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[ConnectionEvent]:
        """Bytes from the peer (Evt3, 4, 6, 10, 12, 13, 16 or 19); returns what they brought."""
        events: list[ConnectionEvent] = []
        state = self.state
        if self._input_lost or state is State.Sta1 or state is State.Sta4:
            return events  # no transport yet, or closing: nothing more to read
        reader = self._reader
        sta6 = State.Sta6
        try:
            if state is sta6 and type(data) is bytes:
                pdu = reader.take_whole(data)
                if type(pdu) is PDataTF:  # DT-2 for a PDU that came in one piece
                    events.append(DataReceived(pdu.pdvs))
                    return events
                if pdu is not None:
                    self._fire(_PDU_EVENTS[type(pdu)], pdu, events)
                    return events
            reader.feed(data)
            next_pdu = reader.next_pdu
            while (pdu := next_pdu()) is not None:
                if type(pdu) is PDataTF and self.state is sta6:  # DT-2, the hot path
                    events.append(DataReceived(pdu.pdvs))
                    continue
                self._fire(_PDU_EVENTS[type(pdu)], pdu, events)
                if self.state is State.Sta1:
                    break
        except PDUError as exc:
            self._input_lost = True
            diagnosis = _Diagnosis(exc.reason, f"invalid PDU in {_where(self.state)}: {exc}")
            self._fire(Event.Evt19, diagnosis, events)
        return events

    def transport_closed(self) -> list[ConnectionEvent]:
        """The transport closed (Evt17), by us or the peer; the last event is ConnectionClosed."""
        if self._transport_gone:
            return []
        self._transport_gone = True
        events: list[ConnectionEvent] = []
        if self.state is not State.Sta1:
            self._fire(Event.Evt17, None, events)
        self.artim_deadline = None
        events.append(ConnectionClosed())
        return events

    def timer_expired(self) -> list[ConnectionEvent]:
        """The ARTIM timer ran out (Evt18). A call before ``artim_deadline`` does nothing."""
        events: list[ConnectionEvent] = []
        deadline = self.artim_deadline
        if deadline is None or self.clock() < deadline:
            return events
        self._fire(Event.Evt18, None, events)
        return events

    # ------------------------------------------------------------------ local user primitives

    def request_association(self, rq: AssociateRQ) -> None:
        """A-ASSOCIATE request (Evt1): the shell then opens TCP and calls transport_connected()."""
        if not self.requestor:
            raise StateError("only the association-requestor sends an A-ASSOCIATE-RQ")
        if self._used:
            raise StateError("a Connection serves one association; make a new one")
        self._fire_local(Event.Evt1, rq)
        self._used = True

    def accept(self, ac: AssociateAC) -> None:
        """A-ASSOCIATE response, accept (Evt7): sends the A-ASSOCIATE-AC."""
        self._fire_local(Event.Evt7, ac)

    def reject(self, rj: AssociateRJ) -> None:
        """A-ASSOCIATE response, reject (Evt8): sends the A-ASSOCIATE-RJ; the peer then closes."""
        self._fire_local(Event.Evt8, rj)

    def send_pdata(self, pdvs: Sequence[PDV]) -> None:
        """P-DATA request (Evt9): queues one P-DATA-TF PDU (DT-1 in Sta6, AR-7 in Sta8)."""
        state = self.state
        if state is State.Sta6 or state is State.Sta8:
            self._outgoing.extend(encode_p_data_tf(pdvs))
            return
        raise StateError(f"P-DATA not allowed in {_where(state)}")

    def send_one_pdv(self, context_id: int, is_command: bool, is_last: bool, data: bytes) -> None:
        """P-DATA request (Evt9) of a single PDV: ``send_pdata([PDV(...)])`` without the list."""
        state = self.state
        if state is State.Sta6 or state is State.Sta8:
            self._outgoing.append(encode_one_pdv(context_id, is_command, is_last, data))
            return
        raise StateError(f"P-DATA not allowed in {_where(state)}")

    def request_release(self) -> None:
        """A-RELEASE request (Evt11): sends the A-RELEASE-RQ."""
        self._fire_local(Event.Evt11, None)

    def respond_release(self) -> None:
        """A-RELEASE response (Evt14): sends the A-RELEASE-RP (Sta8, Sta9 or Sta12)."""
        self._fire_local(Event.Evt14, None)

    def abort(
        self,
        source: int = AbortSource.SERVICE_USER,
        reason: int = AbortReason.NOT_SPECIFIED,
    ) -> None:
        """A-ABORT request (Evt15): sends an A-ABORT (none in Sta4) and awaits the close."""
        self._fire_local(Event.Evt15, Abort(source, reason))

    # ------------------------------------------------------------------ machinery

    def _fire_local(self, event: Event, payload: Any) -> None:
        events: list[ConnectionEvent] = []
        self._fire(event, payload, events)

    def _fire(self, event: Event, payload: Any, events: list[ConnectionEvent]) -> None:
        """Run the action table 9-10 names for ``event`` in the current state, then move on."""
        entry = TRANSITIONS.get((event, self.state))
        if entry is None:
            raise StateError(f"{event.name} ({event.value}) not allowed in {_where(self.state)}")
        action, next_state = entry
        other = _ACTIONS[action](self, payload, events)
        self.state = other if other is not None else next_state
        if self.state is State.Sta1:
            self.artim_deadline = None

    def _send(self, pdu: AssociateRQ | AssociateAC | AssociateRJ | Abort) -> None:
        self._outgoing.append(encode_pdu(pdu))

    def _start_artim(self) -> None:
        self.artim_deadline = self.clock() + self.artim_timeout

    def _enter_data_transfer(self) -> None:
        self._reader.max_pdu_length = self.max_receive_pdu

    def _provider_abort(self, payload: Any, events: list[ConnectionEvent] | None) -> None:
        """Send an A-ABORT (service-provider source) for a bad or unexpected PDU from the peer."""
        if isinstance(payload, _Diagnosis):
            diagnosis = payload
        else:
            name = _PDU_NAMES[type(payload)]
            diagnosis = _Diagnosis(
                AbortReason.UNEXPECTED_PDU, f"unexpected {name} PDU in {_where(self.state)}"
            )
        self._send(Abort(AbortSource.SERVICE_PROVIDER, diagnosis.reason))
        if events is not None:
            events.append(
                Aborted(AbortSource.SERVICE_PROVIDER, diagnosis.reason, False, diagnosis.detail)
            )

    # Each action below returns None to go to the state table 9-10 names, or the other outcome.

    def _ae_1(self, rq: AssociateRQ, events: list[ConnectionEvent]) -> State | None:
        self._rq_bytes = encode_pdu(rq)  # encoded now so that a bad value fails in the caller
        self.associate_rq = rq
        return None

    def _ae_2(self, _: None, events: list[ConnectionEvent]) -> State | None:
        self._outgoing.append(self._rq_bytes)
        return None

    def _ae_3(self, ac: AssociateAC, events: list[ConnectionEvent]) -> State | None:
        self.associate_ac = ac
        self.max_send_pdu = _peer_max_length(ac.user_info)
        self._enter_data_transfer()
        events.append(AssociationAccepted(ac))
        return None

    def _ae_4(self, rj: AssociateRJ, events: list[ConnectionEvent]) -> State | None:
        events.append(AssociationRejected(rj))
        self.wants_close = True
        return None

    def _ae_5(self, _: None, events: list[ConnectionEvent]) -> State | None:
        self._start_artim()
        return None

    def _ae_6(self, rq: AssociateRQ, events: list[ConnectionEvent]) -> State | None:
        self.artim_deadline = None
        if not rq.protocol_version & 1:  # we speak version 1 only (bit 0)
            self._send(
                AssociateRJ(RejectResult.PERMANENT, RejectSource.SERVICE_PROVIDER_ACSE, reason=2)
            )
            self._start_artim()
            return OTHER_NEXT_STATE[Action.AE_6]
        self.associate_rq = rq
        self.max_send_pdu = _peer_max_length(rq.user_info)
        events.append(AssociationRequested(rq))
        return None

    def _ae_7(self, ac: AssociateAC, events: list[ConnectionEvent]) -> State | None:
        self._send(ac)
        self.associate_ac = ac
        self._enter_data_transfer()
        return None

    def _ae_8(self, rj: AssociateRJ, events: list[ConnectionEvent]) -> State | None:
        self._send(rj)
        self._start_artim()
        return None

    def _dt_1(self, pdvs: Sequence[PDV], events: list[ConnectionEvent]) -> State | None:
        self._outgoing.extend(encode_p_data_tf(pdvs))
        return None

    def _dt_2(self, pdu: PDataTF, events: list[ConnectionEvent]) -> State | None:
        events.append(DataReceived(pdu.pdvs))
        return None

    def _ar_1(self, _: None, events: list[ConnectionEvent]) -> State | None:
        self._outgoing.append(_RELEASE_RQ_BYTES)
        return None

    def _ar_2(self, _: ReleaseRQ, events: list[ConnectionEvent]) -> State | None:
        events.append(ReleaseRequested())
        return None

    def _ar_3(self, _: ReleaseRP, events: list[ConnectionEvent]) -> State | None:
        events.append(ReleaseConfirmed())
        self.wants_close = True
        return None

    def _ar_4(self, _: None, events: list[ConnectionEvent]) -> State | None:
        self._outgoing.append(_RELEASE_RP_BYTES)
        self._start_artim()
        return None

    def _ar_5(self, _: None, events: list[ConnectionEvent]) -> State | None:
        self.artim_deadline = None
        return None

    def _ar_6(self, pdu: PDataTF, events: list[ConnectionEvent]) -> State | None:
        events.append(DataReceived(pdu.pdvs))
        return None

    def _ar_7(self, pdvs: Sequence[PDV], events: list[ConnectionEvent]) -> State | None:
        self._outgoing.extend(encode_p_data_tf(pdvs))
        return None

    def _ar_8(self, _: ReleaseRQ, events: list[ConnectionEvent]) -> State | None:
        events.append(ReleaseRequested(collision=True))
        return None if self.requestor else OTHER_NEXT_STATE[Action.AR_8]

    def _ar_9(self, _: None, events: list[ConnectionEvent]) -> State | None:
        self._outgoing.append(_RELEASE_RP_BYTES)
        return None

    def _ar_10(self, _: ReleaseRP, events: list[ConnectionEvent]) -> State | None:
        events.append(ReleaseConfirmed())
        return None

    def _aa_1(self, payload: Any, events: list[ConnectionEvent]) -> State | None:
        if isinstance(payload, Abort):  # the local user's A-ABORT request
            self._send(payload)
        else:  # a bad or unexpected PDU in Sta2 (see the module doc)
            self._provider_abort(payload, events)
        self._start_artim()
        return None

    def _aa_2(self, payload: Abort | None, events: list[ConnectionEvent]) -> State | None:
        if self.state is State.Sta2:  # nobody was told of this connection: say why it ends
            if payload is None:
                events.append(
                    Aborted(
                        AbortSource.SERVICE_PROVIDER,
                        AbortReason.NOT_SPECIFIED,
                        False,
                        f"ARTIM timer expired in {_where(State.Sta2)}",
                    )
                )
            else:
                events.append(
                    Aborted(
                        payload.source,
                        payload.reason,
                        True,
                        f"aborted by peer before its A-ASSOCIATE-RQ: {payload.describe()}",
                    )
                )
        self.artim_deadline = None
        self.wants_close = True
        return None

    def _aa_3(self, abort: Abort, events: list[ConnectionEvent]) -> State | None:
        detail = f"aborted by peer in {_where(self.state)}: {abort.describe()}"
        events.append(Aborted(abort.source, abort.reason, True, detail))
        self.wants_close = True
        return None

    def _aa_4(self, _: None, events: list[ConnectionEvent]) -> State | None:
        detail = f"connection closed by peer in {_where(self.state)}"
        if self.state is State.Sta4:
            detail = f"transport connection failed in {_where(self.state)}"
        events.append(
            Aborted(AbortSource.SERVICE_PROVIDER, AbortReason.NOT_SPECIFIED, False, detail)
        )
        return None

    def _aa_5(self, _: None, events: list[ConnectionEvent]) -> State | None:
        self.artim_deadline = None
        return None

    def _aa_6(self, _: Any, events: list[ConnectionEvent]) -> State | None:
        return None

    def _aa_7(self, payload: Any, events: list[ConnectionEvent]) -> State | None:
        self._provider_abort(payload, None)  # the association is already gone: nobody to tell
        return None

    def _aa_8(self, payload: Any, events: list[ConnectionEvent]) -> State | None:
        self._provider_abort(payload, events)
        self._start_artim()
        return None


_ACTIONS: dict[Action, Callable[[Connection, Any, list[ConnectionEvent]], State | None]] = {
    Action.AE_1: Connection._ae_1,
    Action.AE_2: Connection._ae_2,
    Action.AE_3: Connection._ae_3,
    Action.AE_4: Connection._ae_4,
    Action.AE_5: Connection._ae_5,
    Action.AE_6: Connection._ae_6,
    Action.AE_7: Connection._ae_7,
    Action.AE_8: Connection._ae_8,
    Action.DT_1: Connection._dt_1,
    Action.DT_2: Connection._dt_2,
    Action.AR_1: Connection._ar_1,
    Action.AR_2: Connection._ar_2,
    Action.AR_3: Connection._ar_3,
    Action.AR_4: Connection._ar_4,
    Action.AR_5: Connection._ar_5,
    Action.AR_6: Connection._ar_6,
    Action.AR_7: Connection._ar_7,
    Action.AR_8: Connection._ar_8,
    Action.AR_9: Connection._ar_9,
    Action.AR_10: Connection._ar_10,
    Action.AA_1: Connection._aa_1,
    Action.AA_2: Connection._aa_2,
    Action.AA_3: Connection._aa_3,
    Action.AA_4: Connection._aa_4,
    Action.AA_5: Connection._aa_5,
    Action.AA_6: Connection._aa_6,
    Action.AA_7: Connection._aa_7,
    Action.AA_8: Connection._aa_8,
}
"""The code of each action of PS3.8 tables 9-6 to 9-9."""
