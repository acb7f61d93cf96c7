"""The five DIMSE operations as the gateway runs them for one HTTP request, answered as JSON."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from pydicom import Dataset

from ..data.files import DataFileError, read_part10
from ..data.query import build_identifier
from ..dimse.status import describe_status
from ..net.association import ReceivedInstance, RetrieveProgress, new_message_id
from ..net.errors import DicomError, DimseFailure
from .backend import Backend
from .errors import RequestError, status_json
from .incoming import IncomingStore
from .request import OperationRequest

log = logging.getLogger("harmony_dimse.gateway")


def identifier_for(req: OperationRequest) -> Dataset:
    """The checked identifier: keywords, tags and DICOM JSON attribute objects all go through
    build_identifier, so Harmony's DICOM JSON form gets the same level derivation and checks."""
    return build_identifier(req.query, req.level, model=req.model, operation=req.operation)


def request_folder(storage: Path, operation: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return storage / operation.lower() / f"{stamp}-{uuid.uuid4().hex[:12]}"


def _base(req: OperationRequest, backend: Backend) -> dict[str, Any]:
    return {"operation": req.operation, **backend.summary}


def _ms(seconds: float) -> float:
    """Seconds as milliseconds to the microsecond (cheaper than round(x, 3))."""
    return int(seconds * 1_000_000 + 0.5) / 1000


async def run_echo(backend: Backend, req: OperationRequest) -> dict[str, Any]:
    start = time.perf_counter()
    async with backend.pool.acquire() as assoc:
        associated = time.perf_counter()
        status = await assoc.echo()
        echoed = time.perf_counter()
    body = _base(req, backend)
    body["success"] = True
    body["status"] = status_json(status)
    body["local_aet"] = backend.local_aet
    body["round_trip_ms"] = _ms(echoed - associated)
    body["association_ms"] = _ms(associated - start)
    return body


def _retrieve_json(final: RetrieveProgress) -> dict[str, Any]:
    return {
        "status": status_json(final.status),
        "completed": final.completed,
        "failed": final.failed,
        "warning": final.warning,
        "remaining": final.remaining or 0,
        "failed_instances": final.failed_instances,
    }


def _instance_json(inst: ReceivedInstance, storage: Path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sop_instance_uid": inst.sop_instance_uid,
        "sop_class_uid": inst.sop_class_uid,
        "transfer_syntax": inst.transfer_syntax,
    }
    if inst.path is not None:
        out["path"] = str(inst.path)
    return out


async def run_move(
    backend: Backend, req: OperationRequest, incoming: IncomingStore | None, storage: Path
) -> dict[str, Any]:
    ds = identifier_for(req)
    destination = req.destination or backend.local_aet
    ours = incoming is not None and destination == incoming.ae_title
    message_id = new_message_id()
    target = None
    if ours:
        assert incoming is not None
        target = incoming.expect(
            message_id, request_folder(storage, "move"), calling_aet=backend.local_aet
        )
    final: RetrieveProgress | None = None
    error: str | None = None
    try:
        async with backend.association() as assoc:
            async for progress in assoc.move(
                ds, destination, model=req.model, priority=req.priority, message_id=message_id
            ):
                final = progress
    except DimseFailure as exc:
        # a failure status that still comes with counts: report what did arrive
        arrived = target is not None and target.instances
        if exc.progress is None or not (arrived or exc.progress.completed):
            raise
        final, error = exc.progress, str(exc)
    finally:
        if incoming is not None:
            incoming.done(message_id)
    assert final is not None
    out = {
        **_base(req, backend),
        "success": error is None
        and final.status.category in ("success", "warning")
        and final.failed == 0,
        "destination": destination,
        "level": str(ds.QueryRetrieveLevel),
        **_retrieve_json(final),
    }
    if target is not None:
        if target.instances:
            out["folder"] = str(target.folder)
        out["instances"] = [_instance_json(i, storage) for i in target.instances]
        if final.failed and not target.instances:
            out["hint"] = move_hint(backend, destination)
    if error is not None:
        out["error"] = error
    return out


def move_hint(backend: Backend, destination: str) -> str:
    """What to check when a C-MOVE delivered nothing."""
    if destination == backend.local_aet:
        where = f"at this gateway's address, port {backend.config.incoming_store_port}"
    else:
        where = "with its host and port"
    return (
        f"the PACS could not send to {destination}: it must know {destination} {where}"
        " (Orthanc: DicomModalities), and the query must match instances it holds"
    )


async def run_get(backend: Backend, req: OperationRequest, storage: Path) -> dict[str, Any]:
    ds = identifier_for(req)
    folder = request_folder(storage, "get")
    received: list[ReceivedInstance] = []
    final: RetrieveProgress | None = None
    error: str | None = None
    try:
        async with backend.association(for_get=True) as assoc:
            async for progress in assoc.get(
                ds, model=req.model, priority=req.priority, folder=folder
            ):
                received.extend(progress.received)
                final = progress
    except DimseFailure as exc:
        # a failure status that still comes with counts: report what did arrive
        if exc.progress is None or not (received or exc.progress.completed or exc.progress.failed):
            raise
        final = exc.progress
        received.extend(final.received)
        error = str(exc)
    assert final is not None
    body = {
        **_base(req, backend),
        "success": error is None
        and final.status.category in ("success", "warning")
        and final.failed == 0,
        "level": str(ds.QueryRetrieveLevel),
        **_retrieve_json(final),
        "folder": str(folder),
        "instances": [_instance_json(i, storage) for i in received],
    }
    if error is not None:
        body["error"] = error
    return body


async def stream_get(
    backend: Backend, req: OperationRequest, queue: asyncio.Queue[ReceivedInstance | None]
) -> RetrieveProgress:
    """C-GET handing each instance to ``queue`` (bounded: a slow HTTP client slows the PACS).

    Whatever happens, ``None`` ends the queue, unless the consumer itself is gone (cancelled).
    """
    final: RetrieveProgress | None = None

    async def hand_over(inst: ReceivedInstance) -> int:
        await queue.put(inst)
        return 0x0000

    try:
        ds = identifier_for(req)
        async with backend.association(for_get=True) as assoc:
            async for progress in assoc.get(
                ds, model=req.model, priority=req.priority, on_instance=hand_over
            ):
                final = progress
    except asyncio.CancelledError:
        raise  # the consumer is gone: nobody would take the end marker
    except BaseException:
        await queue.put(None)
        raise
    await queue.put(None)
    assert final is not None
    return final


async def run_store(backend: Backend, parts: list[bytes]) -> tuple[int, dict[str, Any]]:
    """C-STORE each Part 10 body; 'stored' only for instances the PACS confirmed."""
    parsed = []
    for i, data in enumerate(parts):
        try:
            parsed.append(read_part10(data))
        except DataFileError as exc:
            field = "body" if len(parts) == 1 else f"body part {i + 1}"
            raise RequestError(field, f"not a DICOM Part 10 file: {exc}") from None
    results: list[dict[str, Any]] = []
    async with backend.association(datasets=parts) as assoc:
        for data, part in zip(parts, parsed, strict=True):
            entry: dict[str, Any] = {
                "sop_instance_uid": part.sop_instance_uid,
                "sop_class_uid": part.sop_class_uid,
            }
            try:
                status = await assoc.store(data)
                entry["stored"] = True
                entry["status"] = status_json(status)
            except DimseFailure as exc:
                entry["stored"] = False
                entry["status"] = status_json(
                    describe_status(exc.status, "C-STORE"), exc.error_comment
                )
            except DicomError as exc:
                if assoc.is_open:
                    entry["stored"] = False
                    entry["error"] = str(exc)
                else:
                    raise
            results.append(entry)
    stored = sum(1 for r in results if r["stored"])
    body = {
        "operation": "C-STORE",
        "backend": backend.name,
        "remote_aet": backend.aet,
        "host": backend.host,
        "port": backend.port,
        "success": stored == len(results),
        "stored": stored,
        "failed": len(results) - stored,
        "instances": results,
    }
    return (200 if stored == len(results) else 502), body
