"""The gateway's built-in storage SCP: receives C-MOVE results and files them per HTTP request."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..net.association import ReceivedInstance, write_instance
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

    def __init__(self, ae_title: str, storage: Path) -> None:
        self.ae_title = ae_title
        self.storage = storage
        self.targets: dict[int, MoveTarget] = {}
        self.server: DicomServer | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await serve(
            host,
            port,
            ae_title=self.ae_title,
            handlers=SCPHandlers(store=self._on_store),
        )
        log.info("storage SCP %s listening on %s:%d", self.ae_title, host, self.server.port)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def expect(self, message_id: int, folder: Path, calling_aet: str | None = None) -> MoveTarget:
        target = MoveTarget(message_id, folder, calling_aet)
        self.targets[message_id] = target
        return target

    def done(self, message_id: int) -> None:
        self.targets.pop(message_id, None)

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

    async def _on_store(self, inst: ReceivedInstance, assoc: SCPAssociation) -> int:
        target = self._target_for(inst)
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
