"""The SCU side: open an association and run C-ECHO, C-FIND, C-MOVE, C-GET and C-STORE on it."""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import socket
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, cast

from pydicom import Dataset
from pydicom.filereader import read_dataset

from ..data.files import encode_dataset, read_part10, write_part10_atomic
from ..data.query import build_identifier
from ..dimse import commands as c
from ..dimse.fragments import ReceivedMessage
from ..dimse.status import StatusInfo, describe_status
from ..ul import connection as ulc
from ..ul.connection import (
    Aborted,
    AssociationAccepted,
    Connection,
    ConnectionClosed,
    ReleaseConfirmed,
    ReleaseRequested,
)
from ..ul.pdu import (
    DEFAULT_MAX_PDU_LENGTH,
    AbortSource,
    AssociateAC,
    AssociateRQ,
    AsyncOperationsWindow,
    PresentationContextResult,
    RoleSelection,
    UserIdentityRQ,
    UserInformation,
)
from ..version import __version__
from .contexts import (
    IMPLICIT_VR_LE,
    QR_MODELS,
    UNCOMPRESSED,
    VERIFICATION,
    AcceptedContext,
    ContextSpec,
    default_scu_contexts,
    to_rq_items,
)
from .errors import (
    AssociationAborted,
    AssociationRejected,
    DicomTimeout,
    DimseFailure,
    NegotiationError,
    PeerUnreachable,
)
from .link import Channel, DeadlineWatch, DimseLink

log = logging.getLogger("harmony_dimse.net")

IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.10.1440.1"
IMPLEMENTATION_VERSION_NAME = f"HARMONY_{__version__}"[:16]

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_message_ids = itertools.count(0)
_id_partition = (0, 1)  # (index, count): this process uses IDs with (id - 1) % count == index


def new_message_id() -> int:
    """A message ID unique across the process (until it wraps at 65535).

    Process-wide rather than per association, so the C-STOREs of a C-MOVE, which name the
    C-MOVE's message ID as their Move Originator Message ID, can be told apart even when
    several associations run C-MOVEs at once. With ``partition_message_ids`` several processes
    draw from disjoint sets, and ``message_id_owner`` says which process an ID belongs to.
    """
    index, count = _id_partition
    span = 0xFFFF - 0xFFFF % count
    return (next(_message_ids) * count + index) % span + 1


def partition_message_ids(index: int, count: int) -> None:
    """Make this process draw only IDs owned by ``index`` of ``count`` (worker processes)."""
    global _id_partition
    if not 0 <= index < count:
        raise ValueError(f"partition index {index} not in 0..{count - 1}")
    _id_partition = (index, count)


def message_id_owner(message_id: int) -> int:
    return (message_id - 1) % _id_partition[1]


@dataclass(slots=True)
class FindResult:
    """One C-FIND match as it came off the wire; ``dataset()`` decodes it with pydicom."""

    data: bytes
    transfer_syntax: str
    status: int

    def dataset(self) -> Dataset:
        return decode_dataset(self.data, self.transfer_syntax)


@dataclass(slots=True)
class RetrieveProgress:
    """A C-MOVE/C-GET response: sub-operation counts, and on the last one the final status."""

    status: StatusInfo
    remaining: int | None
    completed: int
    failed: int
    warning: int
    final: bool
    failed_instances: list[str] = field(default_factory=list)
    received: list[ReceivedInstance] = field(default_factory=list)


@dataclass(slots=True)
class ReceivedInstance:
    """An instance that arrived by C-STORE (during C-GET, or at an SCP)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    data: bytes
    path: Path | None = None
    calling_aet: str = ""
    move_originator_aet: str | None = None
    move_originator_message_id: int | None = None

    def dataset(self) -> Dataset:
        return decode_dataset(self.data, self.transfer_syntax)


InstanceHandler = Callable[[ReceivedInstance], Awaitable[int | None] | int | None]


def decode_dataset(data: bytes | memoryview, transfer_syntax: str) -> Dataset:
    ds = read_dataset(
        BytesIO(bytes(data)), transfer_syntax == IMPLICIT_VR_LE, True
    )  # little endian always: big endian is retired and never negotiated here
    return ds


class Association:
    """An open association, as the requestor (SCU); made by ``connect()`` or ``associate()``."""

    def __init__(
        self,
        link: DimseLink,
        ac: AssociateAC,
        rq: AssociateRQ,
        specs: Sequence[ContextSpec],
        *,
        host: str,
        port: int,
        dimse_timeout: float | None,
        acse_timeout: float | None = None,
    ) -> None:
        self._link = link
        self.acse_timeout = acse_timeout
        self._loop = link.loop
        self._deadlines = DeadlineWatch(link.loop)
        self.host = host
        self.port = port
        self.called_aet = rq.called_ae
        self.calling_aet = rq.calling_ae
        self.dimse_timeout = dimse_timeout
        self.peer_max_pdu = link.conn.max_send_pdu
        self.peer_implementation_class_uid = ac.user_info.implementation_class_uid
        self.peer_implementation_version = ac.user_info.implementation_version_name
        window = ac.user_info.async_ops_window
        self.max_operations_invoked = (window.max_invoked if window else 1) or 1 << 16
        self.contexts: dict[int, AcceptedContext] = {}
        self._context_cache: dict[tuple[str, str | None], AcceptedContext] = {}
        roles = {r.sop_class_uid: r for r in ac.user_info.role_selections}
        proposed = {
            p.context_id: spec for p, spec in zip(rq.presentation_contexts, specs, strict=True)
        }
        for pc in ac.presentation_contexts:
            spec = proposed.get(pc.context_id)
            if spec is None or pc.result != PresentationContextResult.ACCEPTANCE:
                continue
            scu, scp = True, False
            if spec.scp_role:
                role = roles.get(spec.abstract_syntax)
                scu, scp = (role.scu_role, role.scp_role) if role else (True, False)
            self.contexts[pc.context_id] = AcceptedContext(
                pc.context_id, spec.abstract_syntax, pc.transfer_syntax, scu, scp
            )
        self._pending: dict[int, Channel] = {}
        self._incoming: Channel | None = None  # receives C-STORE-RQs while a C-GET runs
        self._released: asyncio.Future[None] | None = None
        self._slots = asyncio.Semaphore(self.max_operations_invoked)
        self._get_lock = asyncio.Lock()
        self.is_open = True
        link.on_message = self._on_message
        link.on_event = self._on_event

    # ------------------------------------------------------------------ state

    def __repr__(self) -> str:
        return f"<Association {self.calling_aet}->{self.called_aet}@{self.host}:{self.port}>"

    @property
    def link(self) -> DimseLink:
        return self._link

    @property
    def busy(self) -> bool:
        """An operation is waiting for responses (the association is mid-exchange)."""
        return bool(self._pending)

    @property
    def messages_sent(self) -> int:
        return self._link.messages_sent

    def _on_message(self, msg: ReceivedMessage) -> None:
        cmd = msg.command
        responded_to = getattr(cmd, "message_id_being_responded_to", None)
        if responded_to is not None:
            channel = self._pending.get(responded_to)
            if channel is not None:
                channel.put(msg)
            else:
                log.warning("%r: response to unknown message id %s dropped", self, responded_to)
        elif isinstance(cmd, c.CStoreRQ) and self._incoming is not None:
            self._incoming.put(msg)
        else:
            log.warning("%r: unexpected %s from the peer, refused", self, type(cmd).__name__)
            if isinstance(cmd, c.CStoreRQ):
                rsp = c.CStoreRSP(
                    message_id_being_responded_to=cmd.message_id,
                    affected_sop_class_uid=cmd.affected_sop_class_uid,
                    affected_sop_instance_uid=cmd.affected_sop_instance_uid,
                    status=0x0211,
                )
                self._link.send_message(msg.context_id, rsp, None)

    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, ReleaseConfirmed | ConnectionClosed):
            self.is_open = False
            self._answer_release()
            if self._released is not None and not self._released.done():
                self._released.set_result(None)
            self._fail_all(
                AssociationAborted(AbortSource.SERVICE_PROVIDER, 0, "association released")
            )
        elif isinstance(ev, ReleaseRequested):
            self.is_open = False
            self._answer_release()
            self._fail_all(
                AssociationAborted(AbortSource.SERVICE_USER, 0, "the peer released the association")
            )
        elif isinstance(ev, Aborted):
            self.is_open = False
            exc = self._link.failure or AssociationAborted(
                ev.source, ev.reason, ev.detail, ev.by_peer
            )
            self._fail_all(exc)
            if self._released is not None and not self._released.done():
                self._released.set_exception(exc)

    def _answer_release(self) -> None:
        # in a release collision the answer is due only in some states (PS3.8 Sta9/Sta12)
        if self._link.conn.awaiting_release_response:
            self._link.conn.respond_release()
            self._link.flush()

    def _fail_all(self, exc: BaseException) -> None:
        self._deadlines.close()
        for channel in self._pending.values():
            channel.fail(exc)
        if self._incoming is not None:
            self._incoming.fail(exc)

    def _new_message_id(self) -> int:
        return new_message_id()

    def _check_open(self) -> None:
        if not self.is_open:
            raise self._link.gone_error()

    def _syntax(self, msg: ReceivedMessage) -> str:
        ctx = self.contexts.get(msg.context_id)
        return ctx.transfer_syntax if ctx is not None else IMPLICIT_VR_LE

    def context_for(self, sop_class: str, transfer_syntax: str | None = None) -> AcceptedContext:
        """The accepted context for a SOP class (and transfer syntax, when it matters)."""
        key = (sop_class, transfer_syntax)
        found = self._context_cache.get(key)
        if found is None:
            found = self._context_cache[key] = self._find_context(sop_class, transfer_syntax)
        return found

    def _find_context(self, sop_class: str, transfer_syntax: str | None) -> AcceptedContext:
        fallback = None
        for ctx in self.contexts.values():
            if ctx.abstract_syntax != sop_class or not ctx.scu_role:
                continue
            if transfer_syntax is None or ctx.transfer_syntax == transfer_syntax:
                return ctx
            if fallback is None:
                fallback = ctx
        if fallback is not None:
            return fallback
        raise NegotiationError(
            f"{self.called_aet} accepted no presentation context for SOP class {sop_class}"
            + (f" with transfer syntax {transfer_syntax}" if transfer_syntax else "")
        )

    # ------------------------------------------------------------------ one request, its responses

    def _send_request(
        self, context_id: int, command: Any, dataset: bytes | memoryview | None
    ) -> Channel:
        """Send a request; the channel its responses will arrive on."""
        self._check_open()
        channel = Channel(self._loop, self.abort, self._deadlines)
        self._pending[command.message_id] = channel
        try:
            self._link.send_message(context_id, command, dataset)
        except BaseException:
            del self._pending[command.message_id]  # nothing went out: no exchange to finish
            raise
        return channel

    async def _request(
        self, context_id: int, command: Any, dataset: bytes | memoryview | None
    ) -> tuple[int, Channel]:
        channel = self._send_request(context_id, command, dataset)
        if dataset is not None and len(dataset) > 65536:
            try:
                async with asyncio.timeout(self.dimse_timeout):
                    await self._link.drain()
            except TimeoutError:
                self.abort()
                raise DicomTimeout(
                    "dimse", self.dimse_timeout or 0, "the peer stopped reading what we send"
                ) from None
        return command.message_id, channel

    def _response(self, channel: Channel, what: str) -> Coroutine[Any, Any, ReceivedMessage]:
        """The next response on ``channel`` (a DicomTimeout aborts the association)."""
        return channel.get(self.dimse_timeout, f"waiting for the {what} response")

    def _done(self, message_id: int) -> None:
        self._pending.pop(message_id, None)

    # ------------------------------------------------------------------ C-ECHO

    async def echo(self) -> StatusInfo:
        """Send C-ECHO-RQ; return the status (raise DimseFailure when it is not success)."""
        ctx = self.context_for(VERIFICATION)
        async with self._slots:
            rq = c.CEchoRQ(message_id=self._new_message_id(), affected_sop_class_uid=VERIFICATION)
            channel = self._send_request(ctx.context_id, rq, None)
            try:
                msg = await channel.get(self.dimse_timeout, "waiting for the C-ECHO response")
            finally:
                self._done(rq.message_id)
        return self._final_status("C-ECHO", msg)

    def _final_status(self, operation: str, msg: ReceivedMessage) -> StatusInfo:
        cmd = _response_of(msg)
        info = describe_status(cmd.status, operation)
        if info.category in ("failure", "cancel"):
            raise DimseFailure(
                operation,
                cmd.status,
                info.category,
                info.meaning,
                getattr(cmd, "error_comment", None),
                _failed_uids(msg, self._syntax(msg)),
            )
        return info

    # ------------------------------------------------------------------ C-FIND

    def _encode_identifier(
        self,
        identifier: Dataset | Mapping[str, Any],
        level: str | None,
        model: str,
        operation: str,
    ) -> tuple[AcceptedContext, bytes]:
        model = model.upper()
        if model not in QR_MODELS:
            raise ValueError(f"model must be STUDY or PATIENT, not {model!r}")
        ds = _as_identifier(identifier, level, model, operation)
        ctx = self.context_for(QR_MODELS[model][operation])
        return ctx, encode_dataset(ds, ctx.transfer_syntax)

    async def find_raw(
        self,
        identifier: Dataset | Mapping[str, Any] | bytes,
        *,
        level: str | None = None,
        model: str = "STUDY",
        priority: int = 0,
        transfer_syntax: str | None = None,
    ) -> AsyncGenerator[FindResult, None]:
        """C-FIND yielding each match's encoded bytes as it arrives.

        ``identifier`` may be pre-encoded bytes (then ``transfer_syntax`` says which they use and
        must match the accepted one). Stopping the iteration early sends C-CANCEL and waits for the
        final response, so the association stays usable.
        """
        if isinstance(identifier, bytes | bytearray | memoryview):
            ctx = self.context_for(QR_MODELS[model.upper()]["C-FIND"])
            if transfer_syntax is not None and transfer_syntax != ctx.transfer_syntax:
                identifier = encode_dataset(
                    decode_dataset(identifier, transfer_syntax), ctx.transfer_syntax
                )
            data: bytes | memoryview = identifier
        else:
            ctx, data = self._encode_identifier(identifier, level, model, "C-FIND")
        async with self._slots:
            rq = c.CFindRQ(
                message_id=self._new_message_id(),
                affected_sop_class_uid=ctx.abstract_syntax,
                priority=priority,
            )
            mid, channel = await self._request(ctx.context_id, rq, data)
            finished = False
            try:
                while True:
                    msg = await self._response(channel, "C-FIND")
                    status = _response_of(msg).status
                    if status in (0xFF00, 0xFF01):
                        if msg.dataset is not None:
                            yield FindResult(msg.dataset, ctx.transfer_syntax, status)
                        continue
                    finished = True
                    self._final_status("C-FIND", msg)
                    return
            finally:
                if not finished and self.is_open:
                    await self._cancel_and_drain(ctx.context_id, mid, channel, "C-FIND")
                self._done(mid)

    async def find(
        self,
        identifier: Dataset | Mapping[str, Any],
        *,
        level: str | None = None,
        model: str = "STUDY",
        priority: int = 0,
    ) -> AsyncGenerator[Dataset, None]:
        """C-FIND yielding each match as a pydicom Dataset as it arrives."""
        results = self.find_raw(identifier, level=level, model=model, priority=priority)
        try:
            async for result in results:
                yield result.dataset()
        finally:
            await results.aclose()

    async def _cancel_and_drain(
        self, context_id: int, message_id: int, channel: Channel, operation: str
    ) -> None:
        """Send C-CANCEL and read responses until the final one (or give up and abort)."""
        try:
            self._link.send_message(
                context_id, c.CCancelRQ(message_id_being_responded_to=message_id), None
            )
            while True:
                msg = await self._response(channel, f"{operation} (after C-CANCEL)")
                if isinstance(msg.command, c.CStoreRQ):
                    # a C-GET instance still in flight: nobody takes it any more, so say so
                    self._link.send_message(msg.context_id, _store_rsp(msg.command, 0xA700), None)
                    continue
                if describe_status(_response_of(msg).status, operation).category != "pending":
                    return
        except (asyncio.CancelledError, Exception):
            self.abort()
            raise

    # ------------------------------------------------------------------ C-MOVE and C-GET

    async def move(
        self,
        identifier: Dataset | Mapping[str, Any],
        destination: str,
        *,
        level: str | None = None,
        model: str = "STUDY",
        priority: int = 0,
        message_id: int | None = None,
    ) -> AsyncIterator[RetrieveProgress]:
        """C-MOVE to ``destination`` (an AE title the peer knows). Yields progress, last one final.

        ``message_id`` (default: a fresh one from ``new_message_id()``) lets a caller that also
        runs the destination SCP match incoming C-STOREs to this request.
        """
        ctx, data = self._encode_identifier(identifier, level, model, "C-MOVE")
        async with self._slots:
            rq = c.CMoveRQ(
                message_id=message_id or self._new_message_id(),
                affected_sop_class_uid=ctx.abstract_syntax,
                priority=priority,
                move_destination=destination,
            )
            mid, channel = await self._request(ctx.context_id, rq, data)
            finished = False
            try:
                while True:
                    msg = await self._response(channel, "C-MOVE")
                    progress = _progress("C-MOVE", msg, self._syntax(msg))
                    if progress.final:
                        finished = True
                        self._raise_retrieve_failure("C-MOVE", msg, progress)
                    yield progress
                    if progress.final:
                        return
            finally:
                if not finished and self.is_open:
                    await self._cancel_and_drain(ctx.context_id, mid, channel, "C-MOVE")
                self._done(mid)

    def _raise_retrieve_failure(
        self, operation: str, msg: ReceivedMessage, progress: RetrieveProgress
    ) -> None:
        info = progress.status
        if info.category == "failure":
            failure = DimseFailure(
                operation,
                info.code,
                info.category,
                info.meaning,
                getattr(msg.command, "error_comment", None),
                progress.failed_instances,
            )
            failure.progress = progress  # the counts and instances that did arrive
            raise failure

    async def get(
        self,
        identifier: Dataset | Mapping[str, Any],
        *,
        level: str | None = None,
        model: str = "STUDY",
        priority: int = 0,
        folder: str | Path | None = None,
        on_instance: InstanceHandler | None = None,
    ) -> AsyncIterator[RetrieveProgress]:
        """C-GET: instances come back on this association.

        Each received instance is written to ``folder`` (atomically, as ``<SOPInstanceUID>.dcm``)
        and/or handed to ``on_instance``, which may return a C-STORE status (default success).
        Progress is yielded after each C-GET response; instances received since the previous
        progress are listed in ``received``.
        """
        ctx, data = self._encode_identifier(identifier, level, model, "C-GET")
        if not any(x.scp_role for x in self.contexts.values()):
            raise NegotiationError(
                f"{self.called_aet} accepted no storage context with the SCP role, so C-GET"
                " cannot receive anything (pass get_storage_classes when connecting, e.g."
                " net.contexts.COMMON_STORAGE_SOP_CLASSES)"
            )
        target = Path(folder) if folder is not None else None
        if target is not None:
            target.mkdir(parents=True, exist_ok=True)
        # C-STOREs of a C-GET do not say which C-GET they serve: one C-GET at a time here
        async with self._get_lock, self._slots:
            rq = c.CGetRQ(
                message_id=self._new_message_id(),
                affected_sop_class_uid=ctx.abstract_syntax,
                priority=priority,
            )
            incoming = self._incoming = Channel(self._loop, self.abort, self._deadlines)
            mid = rq.message_id
            self._pending[mid] = incoming  # C-GET-RSPs and C-STORE-RQs share one queue, in order
            finished = False
            received: list[ReceivedInstance] = []
            try:
                self._link.send_message(ctx.context_id, rq, data)
                while True:
                    msg = await self._response(incoming, "C-GET")
                    if isinstance(msg.command, c.CStoreRQ):
                        received.append(await self._receive_instance(msg, target, on_instance))
                        continue
                    progress = _progress("C-GET", msg, self._syntax(msg))
                    progress.received, received = received, []
                    if progress.final:
                        finished = True
                        self._raise_retrieve_failure("C-GET", msg, progress)
                    yield progress
                    if progress.final:
                        return
            finally:
                if not finished and self.is_open:
                    await self._cancel_and_drain(ctx.context_id, mid, incoming, "C-GET")
                self._incoming = None
                self._done(mid)

    async def _receive_instance(
        self, msg: ReceivedMessage, folder: Path | None, on_instance: InstanceHandler | None
    ) -> ReceivedInstance:
        cmd = msg.command
        assert isinstance(cmd, c.CStoreRQ)
        ctx = self.contexts.get(msg.context_id)
        ts = ctx.transfer_syntax if ctx else IMPLICIT_VR_LE
        inst = ReceivedInstance(
            cmd.affected_sop_class_uid,
            cmd.affected_sop_instance_uid,
            ts,
            msg.dataset or b"",
            calling_aet=self.called_aet,
        )
        status = 0xA700  # unless the instance is taken: cancelled or failed, the peer hears so
        try:
            if folder is not None:
                inst.path = await write_instance(folder, inst)
            status = 0x0000
            if on_instance is not None:
                result = on_instance(inst)
                if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                    result = await result
                if isinstance(result, int):
                    status = result
        except (OSError, ValueError) as exc:  # ValueError: a UID that cannot name a file
            log.error("C-GET: could not store %s: %s", inst.sop_instance_uid, exc)
            status = 0xA700 if isinstance(exc, OSError) else 0xC000
        finally:
            # always answer, even when cancelled, or the peer waits for this C-STORE-RSP
            if self.is_open:
                self._link.send_message(msg.context_id, _store_rsp(cmd, status), None)
        return inst

    # ------------------------------------------------------------------ C-STORE

    async def store(
        self,
        instance: Dataset | str | Path | bytes,
        *,
        priority: int = 0,
        move_originator: tuple[str, int] | None = None,
    ) -> StatusInfo:
        """C-STORE one instance (a pydicom Dataset, a Part 10 file path, or Part 10 bytes).

        Returns the status once the peer answered; raises DimseFailure on a failure status.
        """
        sop_class, sop_instance, ts, data = _instance_payload(instance)
        ctx = self.context_for(sop_class, ts)
        if ctx.transfer_syntax != ts:
            if ts in UNCOMPRESSED and ctx.transfer_syntax in UNCOMPRESSED:
                data = encode_dataset(decode_dataset(data, ts), ctx.transfer_syntax)
            else:
                raise NegotiationError(
                    f"{self.called_aet} did not accept transfer syntax {ts} for {sop_class}"
                    f" (accepted {ctx.transfer_syntax}); transcoding is not supported"
                )
        async with self._slots:
            rq = c.CStoreRQ(
                message_id=self._new_message_id(),
                affected_sop_class_uid=sop_class,
                affected_sop_instance_uid=sop_instance,
                priority=priority,
                move_originator_aet=move_originator[0] if move_originator else None,
                move_originator_message_id=move_originator[1] if move_originator else None,
            )
            mid, channel = await self._request(ctx.context_id, rq, data)
            try:
                msg = await self._response(channel, "C-STORE")
            finally:
                self._done(mid)
        return self._final_status("C-STORE", msg)

    # ------------------------------------------------------------------ ending

    async def release(self, timeout: float | None = None) -> None:
        """A-RELEASE; falls back to abort when the peer does not answer in time."""
        if not self.is_open:
            return
        self.is_open = False
        self._released = self._loop.create_future()
        try:
            self._link.conn.request_release()
        except ValueError:
            self.abort()
            return
        self._link.flush()
        try:
            async with asyncio.timeout(timeout or self.acse_timeout or 30):
                await self._released
                await self._link.closed
        except TimeoutError:
            self.abort()
        except AssociationAborted:
            pass

    def abort(self) -> None:
        self.is_open = False
        self._link.abort()
        self._fail_all(AssociationAborted(AbortSource.SERVICE_USER, 0, "aborted locally", False))


# ---------------------------------------------------------------------- opening an association


async def associate(
    host: str,
    port: int,
    *,
    called_aet: str,
    calling_aet: str = "HARMONY_SCU",
    contexts: Sequence[ContextSpec] | None = None,
    datasets: Iterable[Dataset | str | Path] = (),
    get_storage_classes: Sequence[str] = (),
    max_pdu: int = DEFAULT_MAX_PDU_LENGTH,
    connect_timeout: float = 10.0,
    acse_timeout: float = 30.0,
    dimse_timeout: float | None = 60.0,
    network_timeout: float | None = None,
    async_ops: tuple[int, int] | None = None,
    user_identity: UserIdentityRQ | None = None,
) -> Association:
    """Open TCP (TCP_NODELAY), negotiate the association and return it. See ``connect()``."""
    loop = asyncio.get_running_loop()
    if contexts is None:
        storage = [_storage_key(d) for d in datasets]
        contexts = default_scu_contexts(
            storage=storage,
            get_storage_classes=get_storage_classes,
        )
    items = to_rq_items(contexts)
    roles = [
        RoleSelection(s.abstract_syntax, bool(s.scu_role), bool(s.scp_role))
        for s in contexts
        if s.scu_role is not None or s.scp_role is not None
    ]
    rq = AssociateRQ(
        called_ae=called_aet,
        calling_ae=calling_aet,
        presentation_contexts=items,
        user_info=UserInformation(
            max_length=max_pdu,
            implementation_class_uid=IMPLEMENTATION_CLASS_UID,
            implementation_version_name=IMPLEMENTATION_VERSION_NAME,
            async_ops_window=AsyncOperationsWindow(*async_ops) if async_ops else None,
            role_selections=_unique_roles(roles),
            user_identity_rq=user_identity,
        ),
    )
    conn = Connection(
        requestor=True, max_receive_pdu=max_pdu, artim_timeout=acse_timeout, clock=loop.time
    )
    conn.request_association(rq)
    link = DimseLink(conn, loop, network_timeout=network_timeout)
    outcome: asyncio.Future[AssociateAC] = loop.create_future()

    def on_event(ev: Any) -> None:
        if outcome.done():
            return
        if isinstance(ev, AssociationAccepted):
            outcome.set_result(ev.ac)
        elif isinstance(ev, ulc.AssociationRejected):
            outcome.set_exception(AssociationRejected(ev.rj, called_aet, calling_aet))
        elif isinstance(ev, Aborted):
            detail = ev.detail or "while negotiating the association"
            outcome.set_exception(AssociationAborted(ev.source, ev.reason, detail, ev.by_peer))
        elif isinstance(ev, ConnectionClosed):
            outcome.set_exception(
                AssociationAborted(
                    AbortSource.SERVICE_PROVIDER, 0, "peer closed the connection during negotiation"
                )
            )

    link.on_event = on_event
    try:
        async with asyncio.timeout(connect_timeout):
            await loop.create_connection(lambda: link, host, port)
    except TimeoutError:
        raise DicomTimeout("connect", connect_timeout, f"connecting to {host}:{port}") from None
    except OSError as exc:
        raise PeerUnreachable(host, port, _os_reason(exc)) from None
    try:
        async with asyncio.timeout(acse_timeout):
            ac = await outcome
    except TimeoutError:
        link.abort()
        raise DicomTimeout(
            "acse", acse_timeout, f"no A-ASSOCIATE answer from {host}:{port}"
        ) from None
    except BaseException:
        link.abort()
        raise
    return Association(
        link,
        ac,
        rq,
        contexts,
        host=host,
        port=port,
        dimse_timeout=dimse_timeout,
        acse_timeout=acse_timeout,
    )


@asynccontextmanager
async def connect(host: str, port: int, **kwargs: Any) -> AsyncIterator[Association]:
    """``async with connect(host, port, called_aet=...) as assoc:``; released on exit.

    An exception inside the block aborts the association instead of releasing it.

    Keyword arguments are those of ``associate()``: calling_aet, contexts (ContextSpec list;
    by default verification, both Q/R roots, storage for ``datasets`` and SCP-role storage for
    C-GET), max_pdu, connect_timeout, acse_timeout, dimse_timeout, network_timeout, async_ops,
    user_identity.
    """
    assoc = await associate(host, port, **kwargs)
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        await assoc.release()


# ---------------------------------------------------------------------- helpers


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused (nothing listens there: is the PACS running?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if exc.errno and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    return str(exc.strerror or exc)


def _unique_roles(roles: list[RoleSelection]) -> list[RoleSelection]:
    seen: dict[str, RoleSelection] = {}
    for r in roles:
        seen.setdefault(r.sop_class_uid, r)
    return list(seen.values())


def _as_identifier(
    identifier: Dataset | Mapping[str, Any], level: str | None, model: str, operation: str
) -> Dataset:
    """A Dataset as given (with its level set), or a mapping of keywords/tags to values checked
    and completed by ``data.query.build_identifier`` (QueryError names a bad key or value)."""
    if not isinstance(identifier, Dataset):
        return build_identifier(identifier, level, model=model, operation=operation)
    ds = identifier
    if level is not None:
        level = level.upper()
        if level == "INSTANCE":
            level = "IMAGE"
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        ds.QueryRetrieveLevel = level
    elif "QueryRetrieveLevel" not in ds:
        ds.QueryRetrieveLevel = "STUDY"
    return ds


def _storage_key(item: Dataset | str | Path) -> tuple[str, str]:
    if isinstance(item, Dataset):
        meta = getattr(item, "file_meta", None)
        ts = (
            str(meta.TransferSyntaxUID)
            if meta is not None and "TransferSyntaxUID" in meta
            else IMPLICIT_VR_LE
        )
        return str(item.SOPClassUID), ts
    part = read_part10(item)
    return part.sop_class_uid, part.transfer_syntax


def _instance_payload(
    instance: Dataset | str | Path | bytes,
) -> tuple[str, str, str, bytes | memoryview]:
    if isinstance(instance, Dataset):
        sop_class, ts = _storage_key(instance)
        return sop_class, str(instance.SOPInstanceUID), ts, encode_dataset(instance, ts)
    part = read_part10(instance)
    return part.sop_class_uid, part.sop_instance_uid, part.transfer_syntax, part.dataset


def _failed_uids(msg: ReceivedMessage, transfer_syntax: str) -> list[str]:
    """The Failed SOP Instance UID List of a final response, read in the context's syntax
    (or from the command set, where Orthanc puts it)."""
    from_command = list(getattr(msg.command, "failed_sop_instances", ()))
    if not msg.dataset:
        return from_command
    try:
        value = decode_dataset(msg.dataset, transfer_syntax).get("FailedSOPInstanceUIDList")
    except Exception:  # a malformed list must not hide the status itself
        return []
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [str(value)]  # a pydicom UID: make it a plain str
    return [str(v) for v in value]


def _response_of(msg: ReceivedMessage) -> c.DimseResponse:
    # only responses are routed to an operation's channel (requests go to _incoming)
    return cast(c.DimseResponse, msg.command)


def _progress(operation: str, msg: ReceivedMessage, transfer_syntax: str) -> RetrieveProgress:
    cmd = cast(c.CMoveRSP | c.CGetRSP, msg.command)
    info = describe_status(cmd.status, operation)
    final = info.category != "pending"
    return RetrieveProgress(
        status=info,
        remaining=cmd.remaining,
        completed=cmd.completed or 0,
        failed=cmd.failed or 0,
        warning=cmd.warning or 0,
        final=final,
        failed_instances=_failed_uids(msg, transfer_syntax) if final else [],
    )


def _store_rsp(rq: Any, status: int) -> Any:
    return c.CStoreRSP(
        message_id_being_responded_to=rq.message_id,
        affected_sop_class_uid=rq.affected_sop_class_uid,
        affected_sop_instance_uid=rq.affected_sop_instance_uid,
        status=status,
    )


async def write_instance(folder: Path, inst: ReceivedInstance) -> Path:
    def write() -> Path:
        return write_part10_atomic(
            folder,
            inst.sop_instance_uid,
            inst.sop_class_uid,
            inst.transfer_syntax,
            inst.data,
            implementation_class_uid=IMPLEMENTATION_CLASS_UID,
            implementation_version=IMPLEMENTATION_VERSION_NAME,
            source_ae=inst.calling_aet or None,
        )

    if len(inst.data) < 1 << 20:
        return write()
    return await asyncio.get_running_loop().run_in_executor(None, write)
