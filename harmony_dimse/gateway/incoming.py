"""The gateway's built-in storage SCP: receives C-MOVE results and files them per HTTP request."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..data.files import DataFileError, read_part10
from ..net.association import (
    ReceivedInstance,
    message_id_owner,
    write_instance,
)
from ..net.server import DicomServer, SCPAssociation, SCPHandlers, serve

log = logging.getLogger("harmony_dimse.gateway")


@dataclass
class MoveTarget:
    """Where the instances of one running C-MOVE go, and what has arrived so far."""

    message_id: int
    folder: Path
    calling_aet: str | None = None  # our AE title on the C-MOVE association
    files: list[Path] = field(default_factory=list)
    instances: list[ReceivedInstance] = field(default_factory=list)


class IncomingStore:
    """Routes each incoming C-STORE to the C-MOVE that caused it.

    The PACS names the C-MOVE in Move Originator Message ID (and AE title); message IDs are
    unique in this process, so concurrent C-MOVEs never mix their files. A C-STORE naming a
    C-MOVE that is not ours (another SCU's, or one that has ended) goes to ``unsolicited/``; one
    without that field goes to the only running C-MOVE, or to ``unsolicited/`` when none or
    several are running.
    """

    def __init__(
        self, ae_title: str, storage: Path, *, worker: int = 0, workers: int = 1, run_id: str = ""
    ) -> None:
        self.ae_title = ae_title
        self.storage = storage
        self.targets: dict[int, MoveTarget] = {}
        self.server: DicomServer | None = None
        # With several worker processes the PACS may deliver a C-MOVE's instances to any of
        # them (they share the port); those go through a folder named after the message ID.
        self.worker = worker
        self.workers = workers
        self.run_id = run_id or str(os.getpid())

    def shared_folder(self, message_id: int) -> Path:
        return self.storage / "move" / "in-flight" / f"{self.run_id}-{message_id}"

    async def start(self, host: str, port: int) -> None:
        self.server = await serve(
            host,
            port,
            ae_title=self.ae_title,
            handlers=SCPHandlers(store=self._on_store),
            reuse_port=self.workers > 1,
        )
        log.info("storage SCP %s listening on %s:%d", self.ae_title, host, self.server.port)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def expect(self, message_id: int, folder: Path, calling_aet: str | None = None) -> MoveTarget:
        target = MoveTarget(message_id, folder, calling_aet)
        self.targets[message_id] = target
        if self.workers > 1:
            self.shared_folder(message_id).mkdir(parents=True, exist_ok=True)
        return target

    def done(self, message_id: int) -> None:
        target = self.targets.pop(message_id, None)
        if target is not None and self.workers > 1:
            self._collect(target)

    def _collect(self, target: MoveTarget) -> None:
        """Take over what other workers stored for this C-MOVE into the request's folder."""
        shared = self.shared_folder(target.message_id)
        for path in sorted(shared.glob("*.dcm")):
            target.folder.mkdir(parents=True, exist_ok=True)
            final = target.folder / path.name
            os.replace(path, final)
            try:
                part = read_part10(final)
            except (DataFileError, OSError) as exc:
                log.warning("C-MOVE %d: unreadable file %s: %s", target.message_id, final, exc)
                continue
            target.files.append(final)
            target.instances.append(
                ReceivedInstance(
                    part.sop_class_uid, part.sop_instance_uid, part.transfer_syntax, b"", final
                )
            )
        with contextlib.suppress(OSError):
            shared.rmdir()

    def _target_for(self, inst: ReceivedInstance) -> MoveTarget | None:
        message_id = inst.move_originator_message_id
        if message_id is None:
            return next(iter(self.targets.values())) if len(self.targets) == 1 else None
        target = self.targets.get(message_id)
        if target is None:
            return None
        originator = inst.move_originator_aet
        if originator and target.calling_aet and originator.strip() != target.calling_aet:
            return None
        return target

    def _other_worker_folder(self, inst: ReceivedInstance) -> Path | None:
        message_id = inst.move_originator_message_id
        if self.workers < 2 or message_id is None or message_id_owner(message_id) == self.worker:
            return None
        folder = self.shared_folder(message_id)
        return folder if folder.is_dir() else None

    async def _on_store(self, inst: ReceivedInstance, assoc: SCPAssociation) -> int:
        target = self._target_for(inst)
        if target is None:
            elsewhere = self._other_worker_folder(inst)
            if elsewhere is not None:
                await write_instance(elsewhere, inst)
                return 0x0000
        folder = target.folder if target is not None else self.storage / "unsolicited"
        folder.mkdir(parents=True, exist_ok=True)
        path = await write_instance(folder, inst)
        if target is not None:
            target.files.append(path)
            inst.data = b""  # the file holds it now
            inst.path = path
            target.instances.append(inst)
        else:
            log.warning(
                "C-STORE of %s from %s matches no running C-MOVE; kept in %s",
                inst.sop_instance_uid,
                assoc.calling_aet,
                folder,
            )
        return 0x0000
