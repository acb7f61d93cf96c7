"""One TCP connection carrying one association: asyncio transport, ul.Connection, DIMSE messages.

``DimseLink`` is the asyncio Protocol. It feeds received bytes to the sans-IO connection, writes
what the connection wants sent, runs the ARTIM and network-idle timers, reassembles DIMSE messages
and hands them, and every association event, to its owner (the SCU ``Association`` or an SCP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from ..dimse.commands import DIMSEError, encode_command
from ..dimse.fragments import PDV_OVERHEAD, MessageAssembler, ReceivedMessage, fragment
from ..ul.connection import Aborted, Connection, DataReceived, StateError
from ..ul.pdu import AbortReason, AbortSource
from .errors import AssociationAborted, DicomTimeout

log = logging.getLogger("harmony_dimse.net")

_JOIN_LIMIT = 16384
MessageHandler = Callable[[ReceivedMessage], None]
EventHandler = Callable[[Any], None]


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DeadlineWatch:
    """Deadlines for many waits on one timer, re-armed only when it fires early or a wait ends
    sooner than all others (a timer per wait costs more than the wait itself on the hot path).
    A wait past its deadline gets DicomTimeout("dimse", timeout, context)."""

    __slots__ = ("_at", "_handle", "_loop", "_waits")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waits: dict[asyncio.Future[None], tuple[float, float, str]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf

    def add(self, waiter: asyncio.Future[None], timeout: float, context: str) -> None:
        deadline = self._loop.time() + timeout
        self._waits[waiter] = (deadline, timeout, context)
        if deadline < self._at:
            self._arm(deadline)

    def discard(self, waiter: asyncio.Future[None]) -> None:
        self._waits.pop(waiter, None)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._at = math.inf

    def _arm(self, deadline: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._at = deadline
        self._handle = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._at = math.inf
        now = self._loop.time()
        for waiter, (deadline, timeout, context) in list(self._waits.items()):
            if deadline <= now + 0.001:  # uvloop's clock and timers have millisecond steps
                del self._waits[waiter]
                if not waiter.done():
                    waiter.set_exception(DicomTimeout("dimse", timeout, context))
        if self._waits:
            self._arm(min(deadline for deadline, _, _ in self._waits.values()))


class Channel:
    """A queue of received messages for one operation, with a deadline on each wait."""

    __slots__ = ("_exc", "_items", "_loop", "_on_timeout", "_waiter", "_watch")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_timeout: Callable[[], None] | None = None,
        watch: DeadlineWatch | None = None,
    ) -> None:
        self._loop = loop
        self._on_timeout = on_timeout  # called when a wait times out, before DicomTimeout rises
        self._watch = watch  # None: a timer of its own for each wait
        self._items: deque[ReceivedMessage] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._exc: BaseException | None = None

    def put(self, item: ReceivedMessage) -> None:
        self._items.append(item)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if self._exc is None:
            self._exc = exc
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def get(self, timeout: float | None, context: str = "") -> ReceivedMessage:
        while not self._items:
            if self._exc is not None:
                raise self._exc
            waiter = self._waiter = self._loop.create_future()
            watch, handle = self._watch, None
            if timeout:
                if watch is not None:
                    watch.add(waiter, timeout, context)
                else:
                    handle = self._loop.call_later(timeout, _expire, waiter, timeout, context)
            try:
                await waiter
            except DicomTimeout:
                if self._on_timeout is not None:
                    self._on_timeout()
                raise
            finally:
                self._waiter = None
                if handle is not None:
                    handle.cancel()
                elif timeout and watch is not None:
                    watch.discard(waiter)
        return self._items.popleft()


def _expire(waiter: asyncio.Future[None], timeout: float, context: str) -> None:
    if not waiter.done():
        waiter.set_exception(DicomTimeout("dimse", timeout, context))


class DimseLink(asyncio.Protocol):
    """The asyncio Protocol of one association (either role)."""

    def __init__(
        self,
        conn: Connection,
        loop: asyncio.AbstractEventLoop,
        *,
        network_timeout: float | None = None,
    ) -> None:
        self.conn = conn
        self.loop = loop
        self.assembler = MessageAssembler()
        self.transport: asyncio.Transport | None = None
        self.on_message: MessageHandler = _drop
        self.on_event: EventHandler = _drop
        self.peer: tuple[str, int] | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self.failure: BaseException | None = None
        self.messages_sent = 0
        self._artim_handle: asyncio.TimerHandle | None = None
        self._artim_at: float | None = None
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._network_timeout = network_timeout
        self._last_activity = loop.time()
        self._idle_handle: asyncio.TimerHandle | None = None

    # -------------------------------------------------------------- asyncio Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        set_nodelay(transport)
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = (str(peer[0]), int(peer[1]))
        if self._network_timeout:
            self._idle_handle = self.loop.call_later(self._network_timeout, self._check_idle)
        self._process(self.conn.transport_connected())

    def data_received(self, data: bytes) -> None:
        self._last_activity = self.loop.time()
        self._process(self.conn.receive_data(data))

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self._process(self.conn.transport_closed())
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()
        if not self.closed.done():
            self.closed.set_result(None)
        self.transport = None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()

    # -------------------------------------------------------------- driving the connection

    def _process(self, events: list[Any]) -> None:
        if not events:
            self.flush()
            return
        for ev in events:
            if type(ev) is DataReceived:
                try:
                    messages = self.assembler.feed(ev.pdvs)
                except DIMSEError as exc:
                    log.warning("aborting: malformed DIMSE message from %s: %s", self.peer, exc)
                    self.abort(
                        AbortSource.SERVICE_PROVIDER, AbortReason.INVALID_PDU_PARAMETER_VALUE
                    )
                    self.on_event(
                        Aborted(
                            AbortSource.SERVICE_PROVIDER,
                            AbortReason.INVALID_PDU_PARAMETER_VALUE,
                            by_peer=False,
                            detail=f"malformed DIMSE message: {exc}",
                        )
                    )
                    return
                for msg in messages:
                    self.on_message(msg)
            else:
                self.on_event(ev)
        self.flush()

    def flush(self) -> None:
        chunks = self.conn.data_to_send()
        transport = self.transport
        if transport is not None:
            if chunks:
                if len(chunks) == 1:
                    transport.write(chunks[0])
                elif sum(map(len, chunks)) <= _JOIN_LIMIT:
                    transport.write(b"".join(chunks))  # one small write beats writelines
                else:
                    transport.writelines(chunks)
            if self.conn.wants_close and not transport.is_closing():
                transport.close()
        if self.conn.artim_deadline != self._artim_at:
            self._arm_artim()

    def _arm_artim(self) -> None:
        if self._artim_handle is not None:
            self._artim_handle.cancel()
            self._artim_handle = None
        self._artim_at = deadline = self.conn.artim_deadline
        if deadline is not None:
            self._artim_handle = self.loop.call_at(deadline, self._artim_fired)

    def _artim_fired(self) -> None:
        self._artim_handle = None
        self._artim_at = None
        self._process(self.conn.timer_expired())

    def _check_idle(self) -> None:
        timeout = self._network_timeout
        assert timeout
        idle = self.loop.time() - self._last_activity
        if idle >= timeout:
            self._idle_handle = None
            self.failure = DicomTimeout("network", timeout, "no data received")
            log.info("aborting association with %s: network idle for %.1f s", self.peer, idle)
            self.abort()
            self.on_event(
                Aborted(
                    AbortSource.SERVICE_USER,
                    AbortReason.NOT_SPECIFIED,
                    by_peer=False,
                    detail=f"network idle timeout ({timeout:g} s)",
                )
            )
        else:
            self._idle_handle = self.loop.call_later(timeout - idle, self._check_idle)

    def _cancel_timers(self) -> None:
        for handle in (self._artim_handle, self._idle_handle):
            if handle is not None:
                handle.cancel()
        self._artim_handle = self._idle_handle = None
        self._artim_at = None

    # -------------------------------------------------------------- used by the owner

    def send_message(
        self, context_id: int, command: Any, dataset: bytes | memoryview | None
    ) -> None:
        """Encode, fragment to the peer's maximum PDU and write a whole DIMSE message at once."""
        try:
            cmd = encode_command(command)
            limit = self.conn.max_send_pdu
            if dataset is None and (not limit or len(cmd) + PDV_OVERHEAD <= limit):
                self.conn.send_one_pdv(context_id, True, True, cmd)
            else:
                for pdata in fragment(context_id, cmd, dataset, limit):
                    self.conn.send_pdata(pdata.pdvs)
        except StateError as exc:  # the association is gone
            raise self.gone_error() from exc
        self.messages_sent += 1
        self.flush()

    async def drain(self) -> None:
        if self._paused and self.transport is not None:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def gone_error(self) -> BaseException:
        if self.failure is not None:
            return self.failure
        return AssociationAborted(AbortSource.SERVICE_PROVIDER, 0, "association is no longer open")

    def abort(
        self, source: int = AbortSource.SERVICE_USER, reason: int = AbortReason.NOT_SPECIFIED
    ) -> None:
        with contextlib.suppress(ValueError):  # already closed or closing
            self.conn.abort(source, reason)
        self.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _drop(_: Any) -> None:
    return None
