"""The PACS services plugged into the SCP: C-STORE into the archive, C-FIND, C-MOVE and C-GET.

Each query handler is an async generator of ``(status, identifier bytes | None, fields)``; the SCP
sends each response as it is yielded and cancels the handler on C-CANCEL. C-FIND answers come
from the index alone. C-MOVE opens an association to the destination (known by AE title) and
sends the instances there; C-GET sends them back over the requesting association, on the storage
contexts where the peer accepted the SCP role.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final

from ..data.files import DataFileError, read_part10
from ..dimse import commands as c
from ..dimse.fragments import ReceivedMessage
from ..dimse.status import describe_status
from ..net.association import Association, ReceivedInstance, associate
from ..net.contexts import (
    IMPLICIT_VR_LE,
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    UNCOMPRESSED,
    ContextSpec,
)
from ..net.errors import (
    AssociationAborted,
    DicomError,
    DicomTimeout,
    DimseFailure,
    NegotiationError,
)
from ..net.server import SCPAssociation, SCPHandlers
from ..ul.pdu import DEFAULT_MAX_PDU_LENGTH
from .attributes import InstanceError, encode_element
from .index import StoredInstance
from .matching import QueryError, QueryPlan, QueryPlanner
from .storage import Archive

__all__ = ["FIND_SOP_CLASSES", "GET_SOP_CLASSES", "MOVE_SOP_CLASSES", "QueryRetrieveService"]

log = logging.getLogger("harmony_dimse.pacs")

FIND_SOP_CLASSES: Final = {PATIENT_ROOT_FIND: "PATIENT", STUDY_ROOT_FIND: "STUDY"}
MOVE_SOP_CLASSES: Final = {PATIENT_ROOT_MOVE: "PATIENT", STUDY_ROOT_MOVE: "STUDY"}
GET_SOP_CLASSES: Final = {PATIENT_ROOT_GET: "PATIENT", STUDY_ROOT_GET: "STUDY"}
_MODELS: Final = {**FIND_SOP_CLASSES, **MOVE_SOP_CLASSES, **GET_SOP_CLASSES}

PENDING: Final = 0xFF00
PENDING_WARNING: Final = 0xFF01
SUCCESS: Final = 0x0000
SUBOPERATIONS_FAILED: Final = 0xB000  # warning: sub-operations complete, one or more failures
UNABLE_TO_PERFORM_SUBOPERATIONS: Final = 0xA702
MOVE_DESTINATION_UNKNOWN: Final = 0xA801
STORE_CANNOT_UNDERSTAND: Final = 0xC000
STORE_OUT_OF_RESOURCES: Final = 0xA700
FAILED_SOP_INSTANCE_UID_LIST: Final = 0x00080058
_ROWS_BETWEEN_YIELDS: Final = 256  # rows examined before the loop gets a turn (for C-CANCEL)
_LARGE_INSTANCE: Final = 1 << 20

Response = tuple[int, bytes | None, dict[str, Any]]


def _comment(text: str) -> dict[str, Any]:
    return {"error_comment": text[:64]}


def _implicit(assoc: SCPAssociation, msg: ReceivedMessage) -> bool:
    ctx = assoc.contexts.get(msg.context_id)
    return ctx is None or ctx.transfer_syntax == IMPLICIT_VR_LE


class _Tally:
    """Sub-operation counts of one C-MOVE/C-GET."""

    def __init__(self, total: int) -> None:
        self.remaining = total
        self.completed = 0
        self.failed = 0
        self.warning = 0
        self.failed_uids: list[str] = []

    def record(self, uid: str, status: int | None) -> None:
        """Count one sub-operation: its C-STORE status, or None when it could not be sent."""
        self.remaining -= 1
        category = describe_status(status, "C-STORE").category if status is not None else "failure"
        if category == "success":
            self.completed += 1
        elif category == "warning":
            self.warning += 1
        else:
            self.failed += 1
            self.failed_uids.append(uid)

    def fail_rest(self, instances: list[StoredInstance]) -> None:
        for instance in instances[len(instances) - self.remaining :]:
            self.failed_uids.append(instance.sop_instance_uid)
        self.failed += self.remaining
        self.remaining = 0

    def pending(self) -> Response:
        return PENDING, None, self.counts(remaining=True)

    def counts(self, *, remaining: bool = False) -> dict[str, Any]:
        fields = {"completed": self.completed, "failed": self.failed, "warning": self.warning}
        if remaining:
            fields["remaining"] = self.remaining
        return fields

    def final(self, implicit: bool, comment: str | None = None) -> Response:
        fields = self.counts()
        if comment:
            fields.update(_comment(comment))
        if not self.failed:
            return (SUBOPERATIONS_FAILED if self.warning else SUCCESS), None, fields
        value = "\\".join(self.failed_uids).encode("ascii", errors="replace")
        if len(value) & 1:
            value += b"\x00"
        dataset = encode_element(FAILED_SOP_INSTANCE_UID_LIST, "UI", value, implicit)
        if self.completed + self.warning == 0:
            return UNABLE_TO_PERFORM_SUBOPERATIONS, dataset, fields
        return SUBOPERATIONS_FAILED, dataset, fields


class QueryRetrieveService:
    """C-STORE, C-FIND, C-MOVE and C-GET over one archive."""

    def __init__(
        self,
        archive: Archive,
        ae_title: str,
        destinations: Mapping[str, tuple[str, int]],
        *,
        connect_timeout: float = 10.0,
        acse_timeout: float = 30.0,
        dimse_timeout: float | None = 60.0,
        max_pdu: int = DEFAULT_MAX_PDU_LENGTH,
    ) -> None:
        self.archive = archive
        self.ae_title = ae_title
        self.destinations = destinations
        self.planner = QueryPlanner(ae_title)
        self.connect_timeout = connect_timeout
        self.acse_timeout = acse_timeout
        self.dimse_timeout = dimse_timeout
        self.max_pdu = max_pdu

    def scp_handlers(self) -> SCPHandlers:
        return SCPHandlers(
            store=self.store,
            find=self.find,
            move=self.move,
            get=self.get,
            find_sop_classes=tuple(FIND_SOP_CLASSES),
            move_sop_classes=tuple(MOVE_SOP_CLASSES),
            get_sop_classes=tuple(GET_SOP_CLASSES),
        )

    # ------------------------------------------------------------------ C-STORE

    async def store(self, instance: ReceivedInstance, assoc: SCPAssociation) -> int:
        archive = self.archive
        try:
            if len(instance.data) < _LARGE_INSTANCE:
                record, header = archive.prepare(
                    instance.data, instance.transfer_syntax, instance.calling_aet
                )
                relative = archive.relative_path(record)
                archive.write(relative, header, instance.data)
            else:  # parse and write off the loop; the index stays on it
                record, header = await asyncio.to_thread(
                    archive.prepare, instance.data, instance.transfer_syntax, instance.calling_aet
                )
                relative = archive.relative_path(record)
                await asyncio.to_thread(archive.write, relative, header, instance.data)
            archive.index.add(record, relative)
        except InstanceError as exc:
            log.warning(
                "C-STORE of %s from %s refused: %s",
                instance.sop_instance_uid,
                instance.calling_aet,
                exc,
            )
            return STORE_CANNOT_UNDERSTAND
        except OSError as exc:
            log.error("C-STORE of %s failed: %s", instance.sop_instance_uid, exc)
            return STORE_OUT_OF_RESOURCES
        return SUCCESS

    # ------------------------------------------------------------------ C-FIND

    def _plan(self, msg: ReceivedMessage, implicit: bool, retrieve: bool) -> QueryPlan:
        cmd = msg.command
        assert isinstance(cmd, c.CFindRQ | c.CMoveRQ | c.CGetRQ)
        model = _MODELS[cmd.affected_sop_class_uid]
        return self.planner.plan(
            msg.dataset or b"", implicit=implicit, model=model, retrieve=retrieve
        )

    async def find(
        self, msg: ReceivedMessage, assoc: SCPAssociation
    ) -> AsyncGenerator[Response, None]:
        implicit = _implicit(assoc, msg)
        try:
            plan = self._plan(msg, implicit, retrieve=False)
        except QueryError as exc:
            yield exc.status, None, _comment(exc.comment)
            return
        status = PENDING_WARNING if plan.unsupported_keys else PENDING
        rows = self.archive.index.rows(plan.level, plan.filters)
        for examined, row in enumerate(rows, start=1):
            if plan.matches(row):
                yield status, plan.answer(row, implicit), {}
            if examined % _ROWS_BETWEEN_YIELDS == 0:
                await asyncio.sleep(0)
                await assoc.link.drain()
        yield SUCCESS, None, {}

    # ------------------------------------------------------------------ C-MOVE and C-GET

    async def _instances(self, plan: QueryPlan) -> list[StoredInstance]:
        pks: list[int] = []
        for examined, row in enumerate(self.archive.index.rows(plan.level, plan.filters), start=1):
            if plan.matches(row):
                pks.append(row[-1].pk)
            if examined % _ROWS_BETWEEN_YIELDS == 0:
                await asyncio.sleep(0)
        return self.archive.index.instances_under(plan.level, pks, self.archive.root)

    async def move(
        self, msg: ReceivedMessage, assoc: SCPAssociation
    ) -> AsyncGenerator[Response, None]:
        cmd = msg.command
        assert isinstance(cmd, c.CMoveRQ)
        implicit = _implicit(assoc, msg)
        try:
            plan = self._plan(msg, implicit, retrieve=True)
        except QueryError as exc:
            yield exc.status, None, _comment(exc.comment)
            return
        destination = cmd.move_destination.strip()
        address = self.destinations.get(destination)
        if address is None:
            log.warning("C-MOVE from %s to unknown AE %r", assoc.calling_aet, destination)
            yield MOVE_DESTINATION_UNKNOWN, None, _comment(f"unknown destination {destination}")
            return
        instances = await self._instances(plan)
        tally = _Tally(len(instances))
        if not instances:
            yield tally.final(implicit)
            return
        try:
            target = await self._connect(address, destination, instances)
        except DicomError as exc:
            log.warning("C-MOVE to %s: %s", destination, exc)
            tally.fail_rest(instances)
            yield tally.final(implicit, str(exc))
            return
        released = False
        try:
            for instance in instances:
                status = await self._move_one(target, instance, assoc.calling_aet, cmd.message_id)
                if status is None and not target.is_open:
                    tally.record(instance.sop_instance_uid, None)
                    tally.fail_rest(instances)
                    break
                tally.record(instance.sop_instance_uid, status)
                if tally.remaining:
                    yield tally.pending()
            await target.release()
            released = True
        finally:
            if not released:
                target.abort()
        yield tally.final(implicit)

    async def _connect(
        self, address: tuple[str, int], destination: str, instances: list[StoredInstance]
    ) -> Association:
        specs: dict[tuple[str, str], ContextSpec] = {}
        for instance in instances:
            key = (instance.sop_class_uid, instance.transfer_syntax)
            if key not in specs and len(specs) < 128:
                others = tuple(ts for ts in UNCOMPRESSED if ts != instance.transfer_syntax)
                specs[key] = ContextSpec(key[0], (key[1], *others))
        return await associate(
            address[0],
            address[1],
            called_aet=destination,
            calling_aet=self.ae_title,
            contexts=list(specs.values()),
            max_pdu=self.max_pdu,
            connect_timeout=self.connect_timeout,
            acse_timeout=self.acse_timeout,
            dimse_timeout=self.dimse_timeout,
        )

    async def _move_one(
        self, target: Association, instance: StoredInstance, originator: str, message_id: int
    ) -> int | None:
        try:
            info = await target.store(instance.path, move_originator=(originator, message_id))
            return info.code
        except DimseFailure as exc:
            return exc.status
        except (DataFileError, OSError, NegotiationError, ValueError) as exc:
            log.warning("C-MOVE of %s: %s", instance.sop_instance_uid, exc)
        except (AssociationAborted, DicomTimeout) as exc:
            log.warning("C-MOVE to %s stopped: %s", target.called_aet, exc)
        return None

    async def get(
        self, msg: ReceivedMessage, assoc: SCPAssociation
    ) -> AsyncGenerator[Response, None]:
        implicit = _implicit(assoc, msg)
        try:
            plan = self._plan(msg, implicit, retrieve=True)
        except QueryError as exc:
            yield exc.status, None, _comment(exc.comment)
            return
        instances = await self._instances(plan)
        tally = _Tally(len(instances))
        for instance in instances:
            try:
                part = read_part10(instance.path)
                status: int | None = await assoc.send_store(
                    part.sop_class_uid, part.sop_instance_uid, part.transfer_syntax, part.dataset
                )
            except (DataFileError, OSError, NegotiationError, ValueError) as exc:
                log.warning("C-GET of %s: %s", instance.sop_instance_uid, exc)
                status = None
            except (AssociationAborted, DicomTimeout) as exc:
                log.info("C-GET for %s stopped: %s", assoc.calling_aet, exc)
                return  # nobody left to answer
            tally.record(instance.sop_instance_uid, status)
            if tally.remaining:
                yield tally.pending()
        yield tally.final(implicit)
