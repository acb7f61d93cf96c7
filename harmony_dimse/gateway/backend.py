"""A configured DICOM backend: pooled associations to one PACS, with the backend's settings."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from ..net.association import Association, connect
from ..net.contexts import COMMON_STORAGE_SOP_CLASSES
from ..net.pool import AssociationPool
from .config import DicomBackend


class Backend:
    """Associations to one PACS: echo/find/move share one pool, C-GET has its own (its
    associations also carry SCP-role storage contexts), C-STORE opens one per request with
    contexts for the instances it sends."""

    def __init__(self, config: DicomBackend) -> None:
        self.config = config
        self.name = config.name
        self.aet = config.aet
        self.host = config.host
        self.port = config.port
        self.local_aet = config.local_aet
        # what every answer says about the backend, built once
        self.summary: dict[str, Any] = {
            "backend": self.name,
            "remote_aet": self.aet,
            "host": self.host,
            "port": self.port,
        }
        self.pool = self._pool()
        self._get_pool: AssociationPool | None = None

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

    def _pool(self, **extra: Any) -> AssociationPool:
        c = self.config
        return AssociationPool(
            c.host,
            c.port,
            size=c.pool_size,
            idle_timeout=c.pool_idle_timeout,
            max_operations=c.pool_max_operations,
            wait_timeout=c.pool_wait_timeout,
            **self._kwargs(),
            **extra,
        )

    def association(
        self, *, datasets: Sequence[bytes | Path] = (), for_get: bool = False
    ) -> AbstractAsyncContextManager[Association]:
        """An association for one request: pooled, or for C-STORE a fresh one."""
        if datasets:
            return connect(self.host, self.port, datasets=list(datasets), **self._kwargs())
        if for_get:
            if self._get_pool is None:
                self._get_pool = self._pool(get_storage_classes=COMMON_STORAGE_SOP_CLASSES)
            return self._get_pool.acquire()
        return self.pool.acquire()

    async def close(self) -> None:
        """Release the pooled associations (A-RELEASE)."""
        await self.pool.close()
        if self._get_pool is not None:
            await self._get_pool.close()
