"""Every failure mapped to an HTTP status and a JSON body a user can act on."""

from __future__ import annotations

from typing import Any

from ..data.query import QueryError
from ..net.errors import (
    AssociationAborted,
    AssociationRejected,
    DicomTimeout,
    DimseFailure,
    NegotiationError,
    PeerUnreachable,
)


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
            "message": str(exc),
            "hint": "Invalid Query: use DICOM keywords or gggg,eeee tags with values of their VR",
        }
    if isinstance(exc, PeerUnreachable):
        return 502, {
            "error": "connection refused",
            "message": str(exc),
            **where,
            "hint": "Connection Refused: ensure the DICOM server is running on the configured"
            " host/port",
        }
    if isinstance(exc, AssociationRejected):
        return 502, {
            "error": "association rejected",
            "message": str(exc),
            "result": exc.result,
            "source": exc.source,
            "reason": exc.reason,
            **where,
            "hint": "Association Rejected: verify the AE titles match (the backend's aet must be"
            " the PACS's AE title, and the PACS must know local_aet)",
        }
    if isinstance(exc, AssociationAborted):
        return 502, {
            "error": "association aborted",
            "message": str(exc),
            "source": exc.source,
            "reason": exc.reason,
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
            " PACS load; timeouts are set per backend",
        }
    if isinstance(exc, DimseFailure):
        return 502, {
            "error": "DIMSE failure",
            "message": str(exc),
            "operation": exc.operation,
            "status": {
                "code": exc.status,
                "hex": f"0x{exc.status:04X}",
                "category": exc.category,
                "meaning": exc.meaning,
                "error_comment": exc.error_comment,
            },
            "failed_instances": exc.failed_instances,
            **where,
        }
    if isinstance(exc, NegotiationError):
        return 502, {"error": "presentation context not accepted", "message": str(exc), **where}
    if isinstance(exc, PoolExhausted):
        return 503, {"error": "backend busy", "message": str(exc), **where}
    return 500, {"error": "internal error", "message": f"{type(exc).__name__}: {exc}"}
