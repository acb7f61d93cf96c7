"""Errors of the network layer, each naming what happened in words a user can act on."""

from __future__ import annotations

from typing import Any

from ..ul.pdu import ABORT_REASONS, ABORT_SOURCES, AbortSource, AssociateRJ


class DicomError(Exception):
    """Base of every error raised by harmony_dimse.net."""


class PeerUnreachable(DicomError):
    """The TCP connection could not be opened (refused, no route, name not resolved)."""

    def __init__(self, host: str, port: int, reason: str):
        super().__init__(f"connection to {host}:{port} failed: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


class AssociationRejected(DicomError):
    """The peer answered A-ASSOCIATE-RJ."""

    def __init__(self, rj: AssociateRJ, called_aet: str = "", calling_aet: str = ""):
        super().__init__(f"association rejected by {called_aet or 'peer'}: {rj.describe()}")
        self.result = rj.result
        self.source = rj.source
        self.reason = rj.reason
        self.rj = rj


class AssociationAborted(DicomError):
    """The association ended by A-ABORT (from the peer or the provider) or a lost connection."""

    def __init__(self, source: int, reason: int, detail: str = "", by_peer: bool = True):
        src = ABORT_SOURCES.get(source, f"source {source}")
        words = f"association aborted by {src}"
        if source == AbortSource.SERVICE_PROVIDER:
            words += f" ({ABORT_REASONS.get(reason, f'reason {reason}')})"
        if detail:
            words += f": {detail}"
        super().__init__(words)
        self.source = source
        self.reason = reason
        self.detail = detail
        self.by_peer = by_peer


class DicomTimeout(DicomError):
    """A timer expired. ``timer`` is one of: connect, acse, dimse, network."""

    WHAT = {
        "connect": "TCP connect timeout",
        "acse": "association (ACSE/ARTIM) timeout",
        "dimse": "DIMSE response timeout",
        "network": "network idle timeout",
    }

    def __init__(self, timer: str, seconds: float, context: str = ""):
        what = self.WHAT.get(timer, timer)
        msg = f"{what} expired after {seconds:g} s"
        if context:
            msg += f" ({context})"
        super().__init__(msg)
        self.timer = timer
        self.seconds = seconds


class NegotiationError(DicomError):
    """No accepted presentation context fits the requested operation."""


class DimseFailure(DicomError):
    """The peer answered with a failure (or cancel) status."""

    def __init__(
        self,
        operation: str,
        status: int,
        category: str,
        meaning: str,
        error_comment: str | None = None,
        failed_instances: list[str] | None = None,
    ):
        msg = f"{operation} failed with status 0x{status:04X} ({category}: {meaning})"
        if error_comment:
            msg += f": {error_comment}"
        super().__init__(msg)
        self.operation = operation
        self.status = status
        self.category = category
        self.meaning = meaning
        self.error_comment = error_comment
        self.failed_instances = failed_instances or []
        self.progress: Any = None  # C-MOVE/C-GET: the final RetrieveProgress, counts included


class ProtocolError(DicomError):
    """The peer sent something DIMSE cannot understand (the association is aborted)."""
