"""``PACS``: the embedded Query/Retrieve SCP over a folder, as a library object.

::

    pacs = PACS("./pacs-data", ae_title="HARMONY_PACS", port=11112,
                destinations={"ORTHANC": ("127.0.0.1", 4242)})
    pacs.import_folder("./samples")        # optional seeding; also done from the CLI
    await pacs.start()                     # C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET
    ...
    await pacs.close()
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from ..net.server import DicomServer, SCPConfig
from ..ul.pdu import DEFAULT_MAX_PDU_LENGTH
from .handlers import QueryRetrieveService
from .index import Index
from .storage import Archive, ImportReport

__all__ = ["PACS"]


class PACS:
    """A PACS serving one storage folder (files plus an SQLite index that survives restarts).

    The folder and its index open at construction, so ``import_folder`` works before ``start``.
    When the index is new and the folder already holds DICOM files, they are indexed in place.
    ``destinations`` maps the AE titles C-MOVE may send to onto (host, port).
    ``check_called_aet`` is off by default, as in Orthanc: any called AE title is answered.
    """

    def __init__(
        self,
        storage: str | Path,
        *,
        ae_title: str = "HARMONY_PACS",
        host: str = "0.0.0.0",
        port: int = 11112,
        destinations: Mapping[str, tuple[str, int]] | None = None,
        allowed_calling_aets: Collection[str] | None = None,
        check_called_aet: bool = False,
        max_pdu: int = DEFAULT_MAX_PDU_LENGTH,
        connect_timeout: float = 10.0,
        acse_timeout: float = 30.0,
        dimse_timeout: float | None = 60.0,
        network_timeout: float | None = 600.0,
        fsync: bool = False,
    ) -> None:
        self.ae_title = ae_title
        self.host = host
        self.requested_port = port
        self.destinations: dict[str, tuple[str, int]] = dict(destinations or {})
        self.archive = Archive(storage, fsync=fsync)
        self.service = QueryRetrieveService(
            self.archive,
            ae_title,
            self.destinations,
            connect_timeout=connect_timeout,
            acse_timeout=acse_timeout,
            dimse_timeout=dimse_timeout,
            max_pdu=max_pdu,
        )
        self.config = SCPConfig(
            ae_title=ae_title,
            allowed_calling_aets=set(allowed_calling_aets)
            if allowed_calling_aets is not None
            else None,
            check_called_aet=check_called_aet,
            max_pdu=max_pdu,
            acse_timeout=acse_timeout,
            network_timeout=network_timeout,
            dimse_timeout=dimse_timeout,
            handlers=self.service.scp_handlers(),
        )
        self._server: DicomServer | None = None

    @property
    def storage(self) -> Path:
        return self.archive.root

    @property
    def index(self) -> Index:
        return self.archive.index

    @property
    def port(self) -> int:
        """The port listened on (the real one when started with port 0)."""
        if self._server is None:
            raise RuntimeError("the PACS is not started")
        return self._server.port

    def add_destination(self, ae_title: str, host: str, port: int) -> None:
        """Let C-MOVE send to ``ae_title`` at host:port (replaces an earlier entry)."""
        self.destinations[ae_title] = (host, port)

    def import_folder(self, path: str | Path, *, copy: bool = True) -> ImportReport:
        """Import every DICOM file under ``path``; other files are reported and skipped."""
        return self.archive.import_folder(path, copy=copy)

    async def start(self) -> PACS:
        if self._server is not None:
            raise RuntimeError("the PACS is already started")
        server = DicomServer(self.config)
        await server.start(self.host, self.requested_port)
        self._server = server
        return self

    async def close(self) -> None:
        """Stop listening, abort open associations and close the index."""
        if self._server is not None:
            await self._server.close()
            self._server = None
        self.archive.close()

    async def __aenter__(self) -> PACS:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
