"""A configured DICOM backend: how the gateway opens associations to one PACS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ..net.association import Association, connect
from ..net.contexts import COMMON_STORAGE_SOP_CLASSES
from .config import DicomBackend


class Backend:
    """Opens associations to one PACS with the backend's AE titles, PDU size and timeouts."""

    def __init__(self, config: DicomBackend) -> None:
        self.config = config
        self.name = config.name
        self.aet = config.aet
        self.host = config.host
        self.port = config.port
        self.local_aet = config.local_aet

    def _kwargs(self) -> dict[str, Any]:
        c = self.config
        return {
            "called_aet": c.aet,
            "calling_aet": c.local_aet,
            "max_pdu": c.max_pdu,
            "connect_timeout": c.connect_timeout,
            "acse_timeout": c.acse_timeout,
            "dimse_timeout": c.dimse_timeout,
            "network_timeout": c.network_timeout,
        }

    @asynccontextmanager
    async def association(
        self, *, datasets: Sequence[bytes | Path] = (), for_get: bool = False
    ) -> AsyncIterator[Association]:
        """A fresh association, released on exit (aborted on error)."""
        kwargs = self._kwargs()
        if for_get:
            kwargs["get_storage_classes"] = COMMON_STORAGE_SOP_CLASSES
        async with connect(self.host, self.port, datasets=list(datasets), **kwargs) as assoc:
            yield assoc
