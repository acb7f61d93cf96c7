"""The SCP side: an asyncio server that accepts associations and answers C-ECHO and C-STORE.

Further services (C-FIND, C-MOVE, C-GET) plug in through ``SCPHandlers``; the embedded PACS does.
When C-GET is served, storage contexts the peer proposes with the SCP role (role selection, PS3.7
D.3.3.4) are accepted with that role, and ``SCPAssociation.send_store`` sends the C-STORE
sub-operations back over them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..data.files import encode_dataset
from ..dimse import commands as c
from ..dimse.fragments import ReceivedMessage
from ..ul.connection import (
    Aborted,
    AssociationRequested,
    Connection,
    ReleaseConfirmed,
    ReleaseRequested,
)
from ..ul.pdu import (
    APPLICATION_CONTEXT_NAME,
    DEFAULT_MAX_PDU_LENGTH,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    AsyncOperationsWindow,
    PresentationContextAC,
    PresentationContextResult,
    RoleSelection,
    UserInformation,
)
from .association import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    ReceivedInstance,
    _store_rsp,
    decode_dataset,
    new_message_id,
    write_instance,
)
from .contexts import (
    ACCEPTABLE_TRANSFER_SYNTAXES,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    STORAGE_SOP_CLASSES,
    UNCOMPRESSED,
    VERIFICATION,
    AcceptedContext,
)
from .errors import AssociationAborted, DicomTimeout, NegotiationError
from .link import Channel, DimseLink

log = logging.getLogger("harmony_dimse.scp")

StoreHandler = Callable[[ReceivedInstance, "SCPAssociation"], Awaitable[int]]
# A C-FIND/C-MOVE/C-GET handler receives the request and yields (status, dataset bytes | None)
# responses; the server sends them as they come and honours C-CANCEL by closing the iterator.
QueryHandler = Callable[
    [ReceivedMessage, "SCPAssociation"],
    AsyncGenerator[tuple[int, bytes | None, dict[str, Any]], None],
]


@dataclass
class SCPHandlers:
    """What the SCP does for each service; ``None`` means the service is not offered."""

    store: StoreHandler | None = None
    find: QueryHandler | None = None
    move: QueryHandler | None = None
    get: QueryHandler | None = None
    find_sop_classes: Collection[str] = ()
    move_sop_classes: Collection[str] = ()
    get_sop_classes: Collection[str] = ()


@dataclass
class SCPConfig:
    ae_title: str
    storage_dir: Path | None = None
    allowed_calling_aets: Collection[str] | None = None  # None: anyone
    check_called_aet: bool = True
    max_pdu: int = DEFAULT_MAX_PDU_LENGTH
    acse_timeout: float = 30.0
    network_timeout: float | None = 600.0
    dimse_timeout: float | None = 60.0  # waiting for the peer's C-STORE-RSP during a C-GET
    fsync: bool = False
    handlers: SCPHandlers = field(default_factory=SCPHandlers)


class SCPAssociation:
    """One association accepted by the server: answers its requests."""

    def __init__(self, link: DimseLink, config: SCPConfig, server: DicomServer) -> None:
        self.link = link
        self.config = config
        self.server = server
        self.calling_aet = ""
        self.called_aet = ""
        # roles as negotiated, from the requestor's side: scp_role means we may send C-STOREs
        self.contexts: dict[int, AcceptedContext] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._pending: dict[int, Channel] = {}  # our C-STORE-RQs (C-GET) awaiting their RSP
        link.on_event = self._on_event
        link.on_message = self._on_message

    # ------------------------------------------------------------------ negotiation

    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, AssociationRequested):
            self._negotiate(ev.rq)
        elif isinstance(ev, ReleaseRequested | ReleaseConfirmed):
            if self.link.conn.awaiting_release_response:
                self.link.conn.respond_release()
                self.link.flush()
        elif isinstance(ev, Aborted):
            log.info(
                "association from %s ended: %s",
                self.calling_aet or self.link.peer,
                ev.detail or "aborted",
            )
            for task in self.tasks.values():
                task.cancel()
            self._fail_pending(
                self.link.failure
                or AssociationAborted(ev.source, ev.reason, ev.detail or "aborted", ev.by_peer)
            )

    def _negotiate(self, rq: AssociateRQ) -> None:
        cfg = self.config
        self.calling_aet, self.called_aet = rq.calling_ae, rq.called_ae
        rj = None
        if rq.application_context != APPLICATION_CONTEXT_NAME:
            rj = AssociateRJ(1, 1, 2)
        elif cfg.check_called_aet and rq.called_ae != cfg.ae_title:
            rj = AssociateRJ(1, 1, 7)
        elif cfg.allowed_calling_aets is not None and rq.calling_ae not in cfg.allowed_calling_aets:
            rj = AssociateRJ(1, 1, 3)
        if rj is not None:
            log.info(
                "rejecting association %s -> %s: %s", rq.calling_ae, rq.called_ae, rj.describe()
            )
            self.link.conn.reject(rj)
            self.link.flush()
            return
        roles = {r.sop_class_uid: r for r in rq.user_info.role_selections}
        results = []
        role_answers: dict[str, RoleSelection] = {}
        for pc in rq.presentation_contexts:
            role = roles.get(pc.abstract_syntax)
            # the requestor may act as SCP of a storage class only when we serve C-GET
            peer_scp = (
                role is not None
                and role.scp_role
                and self.config.handlers.get is not None
                and pc.abstract_syntax in STORAGE_SOP_CLASSES
            )
            ts = self._choose_syntax(pc.abstract_syntax, pc.transfer_syntaxes, peer_scp)
            if ts is None:
                reason = (
                    PresentationContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED
                    if self._supports(pc.abstract_syntax, peer_scp)
                    else PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED
                )
                first = pc.transfer_syntaxes[0] if pc.transfer_syntaxes else ""
                results.append(PresentationContextAC(pc.context_id, reason, first))
                continue
            results.append(
                PresentationContextAC(pc.context_id, PresentationContextResult.ACCEPTANCE, ts)
            )
            peer_scu = True
            if role is not None:
                peer_scu = role.scu_role and self._supports(pc.abstract_syntax, False)
                role_answers[pc.abstract_syntax] = RoleSelection(
                    pc.abstract_syntax, peer_scu, peer_scp
                )
            self.contexts[pc.context_id] = AcceptedContext(
                pc.context_id, pc.abstract_syntax, ts, peer_scu, peer_scp
            )
        ac = AssociateAC(
            called_ae=rq.called_ae,
            calling_ae=rq.calling_ae,
            presentation_contexts=results,
            user_info=UserInformation(
                max_length=cfg.max_pdu,
                implementation_class_uid=IMPLEMENTATION_CLASS_UID,
                implementation_version_name=IMPLEMENTATION_VERSION_NAME,
                role_selections=list(role_answers.values()),
                async_ops_window=_granted_window(rq.user_info.async_ops_window),
            ),
        )
        self.link.conn.accept(ac)
        self.link.flush()
        log.debug(
            "accepted association %s -> %s with %d contexts",
            rq.calling_ae,
            rq.called_ae,
            len(self.contexts),
        )

    def _supports(self, sop_class: str, peer_scp: bool = False) -> bool:
        h = self.config.handlers
        return (
            peer_scp
            or sop_class == VERIFICATION
            or (
                sop_class in STORAGE_SOP_CLASSES
                and (h.store is not None or self.config.storage_dir is not None)
            )
            or sop_class in h.find_sop_classes
            or sop_class in h.move_sop_classes
            or sop_class in h.get_sop_classes
        )

    def _choose_syntax(self, sop_class: str, proposed: list[str], peer_scp: bool) -> str | None:
        if not self._supports(sop_class, peer_scp):
            return None
        if sop_class in STORAGE_SOP_CLASSES:
            # instances are kept as sent, so take the sender's first choice we recognise
            for ts in proposed:
                if ts in ACCEPTABLE_TRANSFER_SYNTAXES:
                    return ts
            return None
        for ts in (EXPLICIT_VR_LE, IMPLICIT_VR_LE):
            if ts in proposed:
                return ts
        return None

    # ------------------------------------------------------------------ requests

    def _on_message(self, msg: ReceivedMessage) -> None:
        cmd = msg.command
        if isinstance(cmd, c.CEchoRQ):
            rsp = c.CEchoRSP(
                message_id_being_responded_to=cmd.message_id,
                affected_sop_class_uid=cmd.affected_sop_class_uid,
                status=0x0000,
            )
            self.link.send_message(msg.context_id, rsp, None)
        elif isinstance(cmd, c.CCancelRQ):
            task = self.tasks.get(cmd.message_id_being_responded_to)
            if task is not None:
                task.cancel()
        elif isinstance(cmd, c.CStoreRQ):
            self._spawn(cmd.message_id, self._store(msg))
        elif isinstance(cmd, c.CFindRQ | c.CMoveRQ | c.CGetRQ):
            self._spawn(cmd.message_id, self._query(msg))
        elif isinstance(cmd, c.CStoreRSP):
            channel = self._pending.get(cmd.message_id_being_responded_to)
            if channel is not None:
                channel.put(msg)
            else:  # e.g. the answer to a C-STORE of a C-GET that was cancelled meanwhile
                log.debug("%s answered unknown C-STORE %s", self.calling_aet, cmd)
        else:
            log.warning(
                "%s sent %s, which this SCP does not serve", self.calling_aet, type(cmd).__name__
            )
            self.link.abort()

    def _spawn(self, message_id: int, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks[message_id] = task
        task.add_done_callback(lambda t: self.tasks.pop(message_id, None))

    async def _store(self, msg: ReceivedMessage) -> None:
        cmd = msg.command
        assert isinstance(cmd, c.CStoreRQ)
        ctx = self.contexts.get(msg.context_id)
        inst = ReceivedInstance(
            cmd.affected_sop_class_uid,
            cmd.affected_sop_instance_uid,
            ctx.transfer_syntax if ctx else IMPLICIT_VR_LE,
            msg.dataset or b"",
            calling_aet=self.calling_aet,
            move_originator_aet=cmd.move_originator_aet,
            move_originator_message_id=cmd.move_originator_message_id,
        )
        status = 0x0000
        try:
            if self.config.storage_dir is not None:
                inst.path = await write_instance(self.config.storage_dir, inst)
            if self.config.handlers.store is not None:
                status = await self.config.handlers.store(inst, self)
        except OSError as exc:
            log.error("C-STORE of %s failed: %s", inst.sop_instance_uid, exc)
            status = 0xA700
        except Exception:
            log.exception("C-STORE handler failed for %s", inst.sop_instance_uid)
            status = 0xC000
        try:
            self.link.send_message(msg.context_id, _store_rsp(cmd, status), None)
        except Exception as exc:
            log.info("could not answer C-STORE of %s: %s", inst.sop_instance_uid, exc)

    async def _query(self, msg: ReceivedMessage) -> None:
        cmd = msg.command
        h = self.config.handlers
        handler = {c.CFindRQ: h.find, c.CMoveRQ: h.move, c.CGetRQ: h.get}.get(type(cmd))
        if handler is None:
            self._respond_query(msg, 0x0211, None, {})
            return
        gen = handler(msg, self)
        last_counts: dict[str, Any] = {}
        try:
            async for status, data, counts in gen:
                self._respond_query(msg, status, data, counts)
                last_counts = counts
        except asyncio.CancelledError:
            # a C-MOVE/C-GET cancel response carries the sub-operation counts so far
            final = {
                k: v for k, v in last_counts.items() if k in ("completed", "failed", "warning")
            }
            self._respond_query(msg, 0xFE00, None, final)
        except Exception:
            log.exception("%s handler failed", type(cmd).__name__)
            self._respond_query(msg, 0xC000, None, {})
        finally:
            await gen.aclose()

    def _respond_query(
        self, msg: ReceivedMessage, status: int, data: bytes | None, counts: dict[str, Any]
    ) -> None:
        cmd = cast(c.CFindRQ | c.CMoveRQ | c.CGetRQ, msg.command)
        kind: type[c.CFindRSP | c.CMoveRSP | c.CGetRSP] = {
            c.CFindRQ: c.CFindRSP,
            c.CMoveRQ: c.CMoveRSP,
            c.CGetRQ: c.CGetRSP,
        }[type(cmd)]
        rsp = kind(
            message_id_being_responded_to=cmd.message_id,
            affected_sop_class_uid=cmd.affected_sop_class_uid,
            status=status,
            has_dataset=data is not None,
            **counts,
        )
        try:
            self.link.send_message(msg.context_id, rsp, data)
        except Exception as exc:
            log.info("could not send %s: %s", kind.__name__, exc)

    # ------------------------------------------------------------------ C-STORE to the peer (C-GET)

    def storage_context(self, sop_class: str, transfer_syntax: str) -> AcceptedContext | None:
        """A context on which the peer accepted to act as storage SCP for ``sop_class``.

        One with ``transfer_syntax`` itself if any; else an uncompressed one when the instance
        is uncompressed too (it is then converted); else None.
        """
        fallback = None
        for ctx in self.contexts.values():
            if ctx.abstract_syntax != sop_class or not ctx.scp_role:
                continue
            if ctx.transfer_syntax == transfer_syntax:
                return ctx
            if transfer_syntax in UNCOMPRESSED and ctx.transfer_syntax in UNCOMPRESSED:
                fallback = ctx
        return fallback

    async def send_store(
        self,
        sop_class: str,
        sop_instance: str,
        transfer_syntax: str,
        dataset: bytes | memoryview,
        *,
        priority: int = 0,
    ) -> int:
        """Send a C-STORE-RQ to the peer (a C-GET sub-operation) and return its status.

        Raises ``NegotiationError`` when no context fits the instance, ``DicomTimeout`` when the
        peer does not answer within ``dimse_timeout`` (the association is then aborted) and
        ``AssociationAborted`` when the association ends first.
        """
        ctx = self.storage_context(sop_class, transfer_syntax)
        if ctx is None:
            raise NegotiationError(
                f"{self.calling_aet} accepted no storage context with the SCP role for"
                f" {sop_class} in {transfer_syntax} (or an uncompressed one)"
            )
        if ctx.transfer_syntax != transfer_syntax:
            dataset = encode_dataset(decode_dataset(dataset, transfer_syntax), ctx.transfer_syntax)
        rq = c.CStoreRQ(
            message_id=new_message_id(),
            affected_sop_class_uid=sop_class,
            affected_sop_instance_uid=sop_instance,
            priority=priority,
        )
        channel = Channel(self.link.loop)
        self._pending[rq.message_id] = channel
        try:
            self.link.send_message(ctx.context_id, rq, dataset)
            if len(dataset) > 65536:
                await self.link.drain()
            try:
                msg = await channel.get(
                    self.config.dimse_timeout, f"waiting for the C-STORE response of {sop_instance}"
                )
            except DicomTimeout:
                self.link.abort()
                raise
        finally:
            self._pending.pop(rq.message_id, None)
        return cast(c.CStoreRSP, msg.command).status

    def _fail_pending(self, exc: BaseException) -> None:
        for channel in self._pending.values():
            channel.fail(exc)


MAX_OPERATIONS_PERFORMED = 16


def _granted_window(asked: AsyncOperationsWindow | None) -> AsyncOperationsWindow | None:
    """Requests run as concurrent tasks, so we grant what the peer asks, up to 16 each way."""
    if asked is None:
        return None
    limit = MAX_OPERATIONS_PERFORMED
    invoked = min(asked.max_invoked or limit, limit)
    performed = min(asked.max_performed or limit, limit)
    if invoked == performed == 1:
        return None  # the default; no item needed
    return AsyncOperationsWindow(invoked, performed)


_RESPONSE_TYPES: dict[type, type[c.CFindRSP | c.CMoveRSP | c.CGetRSP]] = {
    c.CFindRQ: c.CFindRSP,
    c.CMoveRQ: c.CMoveRSP,
    c.CGetRQ: c.CGetRSP,
}


class DicomServer:
    """A listening SCP (see ``serve``); ``close()`` stops it and aborts its associations."""

    def __init__(self, config: SCPConfig) -> None:
        self.config = config
        self.associations: set[SCPAssociation] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def _protocol(self) -> DimseLink:
        loop = asyncio.get_running_loop()
        conn = Connection(
            requestor=False,
            max_receive_pdu=self.config.max_pdu,
            artim_timeout=self.config.acse_timeout,
            clock=loop.time,
        )
        link = DimseLink(conn, loop, network_timeout=self.config.network_timeout)
        assoc = SCPAssociation(link, self.config, self)
        self.associations.add(assoc)
        link.closed.add_done_callback(lambda _: self.associations.discard(assoc))
        return link

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        if self.config.storage_dir is not None:
            self.config.storage_dir.mkdir(parents=True, exist_ok=True)
        self._server = await loop.create_server(
            self._protocol, host, port, reuse_address=True, reuse_port=reuse_port or None
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for assoc in list(self.associations):
            assoc.link.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> DicomServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def serve(
    host: str = "0.0.0.0",
    port: int = 11112,
    *,
    ae_title: str = "HARMONY_SCP",
    storage_dir: str | Path | None = None,
    allowed_calling_aets: Collection[str] | None = None,
    check_called_aet: bool = True,
    handlers: SCPHandlers | None = None,
    max_pdu: int = DEFAULT_MAX_PDU_LENGTH,
    acse_timeout: float = 30.0,
    network_timeout: float | None = 600.0,
    dimse_timeout: float | None = 60.0,
    reuse_port: bool = False,
) -> DicomServer:
    """Start an SCP answering C-ECHO, and C-STORE into ``storage_dir`` (Part 10, atomically)."""
    config = SCPConfig(
        ae_title=ae_title,
        storage_dir=Path(storage_dir) if storage_dir is not None else None,
        allowed_calling_aets=set(allowed_calling_aets)
        if allowed_calling_aets is not None
        else None,
        check_called_aet=check_called_aet,
        max_pdu=max_pdu,
        acse_timeout=acse_timeout,
        network_timeout=network_timeout,
        dimse_timeout=dimse_timeout,
        handlers=handlers or SCPHandlers(),
    )
    server = DicomServer(config)
    await server.start(host, port, reuse_port=reuse_port)
    return server
