"""The PACS storage folder: instances as Part 10 files, written atomically, plus their index.

Layout: ``<root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` and the index
``<root>/index.sqlite3``. A file is written to a temporary name and renamed, so a reader sees the
whole file or none; the index row is added once the file is in place. Importing a folder walks it
recursively; a file that is not DICOM, or lacks the UIDs the index needs, is reported and skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ..data.files import DataFileError, part10_header, read_part10
from ..net.association import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from .attributes import InstanceError, InstanceRecord, describe_instance
from .index import INDEX_FILENAME, Index

__all__ = ["Archive", "ImportReport"]

log = logging.getLogger("harmony_dimse.pacs")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_COMMIT_EVERY: Final = 200


@dataclass
class ImportReport:
    """What an import did: instances indexed (new or replaced) and files skipped, with why."""

    imported: int = 0
    replaced: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.imported} instance(s) imported"
        if self.replaced:
            text += f" ({self.replaced} replaced an instance with the same UID)"
        if self.skipped:
            text += f", {len(self.skipped)} file(s) skipped"
        return text


def _component(uid: str) -> str:
    name = _UNSAFE.sub("_", uid.strip())
    return name if name.strip(".") else "_"


class Archive:
    """A storage folder and its index."""

    def __init__(self, root: str | Path, *, fsync: bool = False) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        index_path = self.root / INDEX_FILENAME
        new_index = not index_path.exists()
        self.index = Index(index_path)
        self.fsync = fsync
        if new_index and any(self._files(self.root)):
            report = self.import_folder(self.root)
            log.info("indexed the files already in %s: %s", self.root, report)

    def close(self) -> None:
        self.index.close()

    # ------------------------------------------------------------------ ingest

    def relative_path(self, record: InstanceRecord) -> str:
        return "/".join(
            (
                _component(record.study_uid),
                _component(record.series_uid),
                _component(record.sop_instance_uid) + ".dcm",
            )
        )

    def prepare(
        self, dataset: bytes | memoryview, transfer_syntax: str, source_ae: str | None = None
    ) -> tuple[InstanceRecord, bytes]:
        """Describe an instance and build its Part 10 header; ``InstanceError`` when unusable."""
        record = describe_instance(dataset, transfer_syntax)
        try:
            header = part10_header(
                record.sop_instance_uid,
                record.sop_class_uid,
                transfer_syntax,
                implementation_class_uid=IMPLEMENTATION_CLASS_UID,
                implementation_version=IMPLEMENTATION_VERSION_NAME,
                source_ae=source_ae or None,
            )
        except ValueError as exc:
            raise InstanceError(str(exc)) from None
        return record, header

    def write(self, relative: str, header: bytes, dataset: bytes | memoryview) -> Path:
        """Write a file atomically (temporary name, then rename); fsync when configured."""
        final = self.root / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{final.name}.", suffix=".tmp", dir=final.parent
        )
        try:
            with os.fdopen(descriptor, "wb") as file:
                os.fchmod(file.fileno(), 0o644)
                file.write(header)
                file.write(dataset)
                if self.fsync:
                    file.flush()
                    os.fsync(file.fileno())
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return final

    def ingest(
        self, dataset: bytes | memoryview, transfer_syntax: str, source_ae: str | None = None
    ) -> tuple[InstanceRecord, bool]:
        """Store and index one instance; returns its record and whether it is new."""
        record, header = self.prepare(dataset, transfer_syntax, source_ae)
        relative = self.relative_path(record)
        self.write(relative, header, dataset)
        return record, self.index.add(record, relative)

    # ------------------------------------------------------------------ import

    def _files(self, folder: Path) -> Iterator[Path]:
        for directory, subdirectories, names in os.walk(folder):
            subdirectories.sort()
            here = Path(directory)
            for name in sorted(names):
                if name.startswith(INDEX_FILENAME) or (name.startswith(".") and ".tmp" in name):
                    continue
                yield here / name

    def import_file(self, path: str | Path, *, copy: bool = True) -> tuple[InstanceRecord, bool]:
        """Index one file: a copy in the storage layout, or in place when it is already inside
        the storage folder or ``copy`` is False. Raises DataFileError, InstanceError, OSError."""
        source = Path(path).resolve()
        part = read_part10(source)
        inside = source.is_relative_to(self.root)
        if inside or not copy:
            record = describe_instance(part.dataset, part.transfer_syntax)
            relative = str(source.relative_to(self.root)) if inside else str(source)
            return record, self.index.add(record, relative)
        return self.ingest(part.dataset, part.transfer_syntax)

    def import_folder(self, folder: str | Path, *, copy: bool = True) -> ImportReport:
        """Import every file under ``folder`` (recursively); unusable files are skipped.

        Files outside the storage folder are copied into it unless ``copy`` is False (then the
        index points at them where they are).
        """
        report = ImportReport()
        folder = Path(folder)
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder}: not a folder")
        with self.index.transaction():
            for count, path in enumerate(self._files(folder), start=1):
                try:
                    _, new = self.import_file(path, copy=copy)
                except Exception as exc:  # whatever is wrong with one file, the rest go on
                    reason = exc.reason if isinstance(exc, DataFileError) else str(exc)
                    report.skipped.append((path, reason))
                    log.warning("skipped %s: %s", path, reason)
                    continue
                report.imported += 1
                report.replaced += not new
                if count % _COMMIT_EVERY == 0:
                    self.index.commit_batch()
        return report
