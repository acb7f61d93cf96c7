"""Every failure mapped to an HTTP status and a JSON body a user can act on."""

from __future__ import annotations

from typing import Any

from ..data.query import QueryError
from ..dimse.status import StatusInfo, describe_status
from ..net.errors import (
    AssociationAborted,
    AssociationRejected,
    DicomError,
    DicomTimeout,
    DimseFailure,
    NegotiationError,
    PeerUnreachable,
)
from ..net.pool import PoolTimeout
from ..ul.pdu import (
    ABORT_REASONS,
    ABORT_SOURCES,
    REJECT_REASONS,
    REJECT_RESULTS,
    REJECT_SOURCES,
    AbortSource,
)

RETRIEVE_FAILURE_HINTS = {
    "C-MOVE": "the PACS must know the destination AE title and its address (Orthanc:"
    " DicomModalities), and the query must match instances it holds",
    "C-GET": "the query must match instances the PACS holds, and their SOP classes must be"
    " among those the gateway offers for C-GET",
}


class RequestError(Exception):
    """A malformed HTTP request: ``field`` says where, ``reason`` says what is wrong."""

    def __init__(self, field: str, reason: str, status: int = 400):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status


class PoolExhausted(Exception):
    """No association to the backend became free before the wait deadline."""

    def __init__(self, backend: str, waited: float):
        super().__init__(
            f"no free association to backend '{backend}' within {waited:g} s (pool_wait_timeout);"
            " the PACS is busy or pool_size is too small"
        )


_STATUS_JSON: dict[StatusInfo, dict[str, Any]] = {}


def status_json(info: StatusInfo, error_comment: str | None = None) -> dict[str, Any]:
    """A DIMSE status as JSON: code, hex, category, meaning, and the Error Comment when sent."""
    if not error_comment:
        cached = _STATUS_JSON.get(info)
        if cached is None:
            cached = _status_json(info, None)
            if len(_STATUS_JSON) < 4096:
                _STATUS_JSON[info] = cached
        return cached.copy()
    return _status_json(info, error_comment)


def _status_json(info: StatusInfo, error_comment: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": info.code,
        "hex": f"0x{info.code:04X}",
        "category": info.category,
        "meaning": info.meaning,
    }
    if error_comment:
        out["error_comment"] = error_comment
    return out


def error_response(exc: BaseException, backend: Any = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for an exception raised while serving a request."""
    where: dict[str, Any] = {}
    if backend is not None:
        where = {
            "backend": backend.name,
            "remote_aet": backend.aet,
            "host": backend.host,
            "port": backend.port,
            "local_aet": backend.local_aet,
        }
    if isinstance(exc, RequestError):
        return exc.status, {
            "error": "invalid request",
            "field": exc.field,
            "reason": exc.reason,
            "message": str(exc),
        }
    if isinstance(exc, QueryError):
        return 400, {
            "error": "invalid query",
            "field": exc.field,
            "reason": exc.reason,
            "message": f"{exc}; {exc.hint}" if exc.hint else str(exc),
            "hint": exc.hint
            or "Invalid Query: use DICOM keywords or gggg,eeee tags with values of their VR",
        }
    if isinstance(exc, PeerUnreachable):
        refused = "refused" in exc.reason
        return 502, {
            "error": "connection refused" if refused else "connection failed",
            "message": str(exc),
            **where,
            "hint": "Connection Refused: ensure the DICOM server is running on the configured"
            " host/port"
            if refused
            else "check the backend's host and port and that this machine can reach them",
        }
    if isinstance(exc, AssociationRejected):
        return 502, {
            "error": "association rejected",
            "message": str(exc),
            "result": exc.result,
            "result_text": REJECT_RESULTS.get(exc.result, "unknown result"),
            "source": exc.source,
            "source_text": REJECT_SOURCES.get(exc.source, "unknown source"),
            "reason": exc.reason,
            "reason_text": REJECT_REASONS.get((exc.source, exc.reason), "unknown reason"),
            **where,
            "hint": "Association Rejected: verify the AE titles match (the backend's aet must be"
            " the PACS's AE title, and the PACS must know local_aet)",
        }
    if isinstance(exc, AssociationAborted):
        return 502, {
            "error": "association aborted",
            "message": str(exc),
            "source": exc.source,
            "source_text": ABORT_SOURCES.get(exc.source, "unknown source"),
            "reason": exc.reason,
            **(
                {"reason_text": ABORT_REASONS.get(exc.reason, "unknown reason")}
                if exc.source == AbortSource.SERVICE_PROVIDER
                else {}
            ),
            **where,
        }
    if isinstance(exc, DicomTimeout):
        return 504, {
            "error": "timeout",
            "timer": exc.timer,
            "seconds": exc.seconds,
            "message": str(exc),
            **where,
            "hint": "Timeout Errors: check network connectivity, firewall settings and the"
            f" PACS load; raise {exc.timer}_timeout in the backend options if the PACS is slow",
        }
    if isinstance(exc, DimseFailure):
        body = {
            "error": "DIMSE failure",
            "message": str(exc),
            "operation": exc.operation,
            "status": status_json(describe_status(exc.status, exc.operation), exc.error_comment),
            **where,
        }
        if exc.failed_instances:
            body["failed_instances"] = exc.failed_instances
        if exc.operation in RETRIEVE_FAILURE_HINTS:
            body["hint"] = RETRIEVE_FAILURE_HINTS[exc.operation]
        return 502, body
    if isinstance(exc, NegotiationError):
        return 502, {"error": "presentation context not accepted", "message": str(exc), **where}
    if isinstance(exc, PoolTimeout | PoolExhausted):
        return 503, {"error": "backend busy", "message": str(exc), **where}
    if isinstance(exc, DicomError):  # e.g. the PACS broke the protocol
        return 502, {"error": "DICOM error", "message": str(exc), **where}
    return 500, {"error": "internal error", "message": f"{type(exc).__name__}: {exc}"}
