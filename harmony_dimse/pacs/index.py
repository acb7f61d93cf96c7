"""The PACS index: patients, studies, series and instances in one SQLite file next to the files.

Each level's row keeps the attributes of that level (see ``attributes``) as one msgpack blob, the
unique key as an indexed column, and the counts the Q/R model computes (Number of Study Related
Instances, Modalities in Study, ...) kept up to date at ingest. C-FIND reads rows, never files.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from .attributes import IMAGE, PATIENT, SERIES, STUDY, Attributes, InstanceRecord

__all__ = ["INDEX_FILENAME", "Index", "LevelRow", "SQLFilter", "StoredInstance"]

log = logging.getLogger("harmony_dimse.pacs")

INDEX_FILENAME: Final = "index.sqlite3"
SCHEMA_VERSION: Final = "1"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patients (
    pk INTEGER PRIMARY KEY,
    patient_id TEXT NOT NULL UNIQUE,
    charset TEXT NOT NULL,
    attrs BLOB NOT NULL,
    n_studies INTEGER NOT NULL DEFAULT 0,
    n_series INTEGER NOT NULL DEFAULT 0,
    n_instances INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS studies (
    pk INTEGER PRIMARY KEY,
    study_uid TEXT NOT NULL UNIQUE,
    patient_pk INTEGER NOT NULL REFERENCES patients(pk),
    charset TEXT NOT NULL,
    attrs BLOB NOT NULL,
    n_series INTEGER NOT NULL DEFAULT 0,
    n_instances INTEGER NOT NULL DEFAULT 0,
    modalities TEXT NOT NULL DEFAULT '',
    sop_classes TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_pk);
CREATE TABLE IF NOT EXISTS series (
    pk INTEGER PRIMARY KEY,
    series_uid TEXT NOT NULL UNIQUE,
    study_pk INTEGER NOT NULL REFERENCES studies(pk),
    charset TEXT NOT NULL,
    attrs BLOB NOT NULL,
    n_instances INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS series_study ON series(study_pk);
CREATE TABLE IF NOT EXISTS instances (
    pk INTEGER PRIMARY KEY,
    sop_uid TEXT NOT NULL UNIQUE,
    series_pk INTEGER NOT NULL REFERENCES series(pk),
    sop_class TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL,
    path TEXT NOT NULL,
    charset TEXT NOT NULL,
    attrs BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_pk);
"""

# The columns each level contributes to a query row, in order.
_COLUMNS: Final = (
    "p.pk, p.charset, p.attrs, p.n_studies, p.n_series, p.n_instances",
    "st.pk, st.charset, st.attrs, st.n_series, st.n_instances, st.modalities, st.sop_classes",
    "se.pk, se.charset, se.attrs, se.n_instances",
    "i.pk, i.charset, i.attrs",
)
_WIDTHS: Final = (6, 7, 4, 3)
_FROM: Final = (
    "patients p",
    "studies st JOIN patients p ON p.pk = st.patient_pk",
    "series se JOIN studies st ON st.pk = se.study_pk JOIN patients p ON p.pk = st.patient_pk",
    "instances i JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = se.study_pk"
    " JOIN patients p ON p.pk = st.patient_pk",
)
_LEAF_PK: Final = ("p.pk", "st.pk", "se.pk", "i.pk")
# Unique keys that are indexed columns, usable as SQL prefilters.
KEY_COLUMNS: Final = {
    0x00100020: (PATIENT, "p.patient_id"),
    0x0020000D: (STUDY, "st.study_uid"),
    0x0020000E: (SERIES, "se.series_uid"),
    0x00080018: (IMAGE, "i.sop_uid"),
}
_SQL_VARIABLES_PER_QUERY: Final = 500

_encode = msgspec.msgpack.Encoder().encode
_decode_attrs = msgspec.msgpack.Decoder().decode


@dataclass(slots=True, frozen=True)
class SQLFilter:
    """A prefilter on an indexed key column: ``=`` one value, ``IN`` a list, ``GLOB`` a pattern."""

    column: str
    operator: str
    values: tuple[str, ...]

    def sql(self) -> str:
        if self.operator == "IN":
            return f"{self.column} IN ({', '.join('?' * len(self.values))})"
        return f"{self.column} {self.operator} ?"


class LevelRow:
    """One level's part of a query row: its charset, attributes (decoded on demand) and counts."""

    __slots__ = ("_attrs", "_blob", "charset", "counts", "pk")

    def __init__(self, pk: int, charset: str, blob: bytes, counts: tuple[Any, ...]) -> None:
        self.pk = pk
        self.charset = charset
        self._blob = blob
        self._attrs: Attributes | None = None
        self.counts = counts

    @property
    def attrs(self) -> Attributes:
        attrs = self._attrs
        if attrs is None:
            attrs = self._attrs = _decode_attrs(self._blob)
        return attrs


@dataclass(slots=True, frozen=True)
class StoredInstance:
    """An instance to send for C-MOVE/C-GET."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    path: Path


class Index:
    """The SQLite index of one storage folder; use it from one thread (the event loop's)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, isolation_level=None, cached_statements=256, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._batch_depth = 0
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: index schema {row[0]}, this version reads {SCHEMA_VERSION};"
                    " delete the index file to rebuild it from the stored files"
                )

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; nested uses join the outer one (so an import commits in batches)."""
        if self._batch_depth:
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._batch_depth = 1
        try:
            yield
        except BaseException:
            self._batch_depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._batch_depth = 0
        self._db.execute("COMMIT")

    def commit_batch(self) -> None:
        """Inside a long transaction: make what is written so far durable and go on."""
        if self._batch_depth:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN IMMEDIATE")

    def add(self, record: InstanceRecord, path: str) -> bool:
        """Index an instance stored at ``path`` (relative to the storage folder).

        Returns True for a new instance, False when it replaced one with the same SOP Instance
        UID (the file, transfer syntax and image attributes are updated; its place in the
        hierarchy stays where it was first filed).
        """
        db = self._db
        levels = record.levels
        with self.transaction():
            row = db.execute(
                "SELECT pk FROM instances WHERE sop_uid = ?", (record.sop_instance_uid,)
            ).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE instances SET sop_class = ?, transfer_syntax = ?, path = ?,"
                    " charset = ?, attrs = ? WHERE pk = ?",
                    (
                        record.sop_class_uid,
                        record.transfer_syntax,
                        path,
                        record.charset,
                        _encode(levels[IMAGE]),
                        row[0],
                    ),
                )
                return False
            patient_pk = self._patient(record)
            study_pk, patient_pk = self._study(record, patient_pk)
            series_pk = self._series(record, study_pk, patient_pk)
            db.execute(
                "INSERT INTO instances (sop_uid, series_pk, sop_class, transfer_syntax, path,"
                " charset, attrs) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.sop_instance_uid,
                    series_pk,
                    record.sop_class_uid,
                    record.transfer_syntax,
                    path,
                    record.charset,
                    _encode(levels[IMAGE]),
                ),
            )
            db.execute("UPDATE series SET n_instances = n_instances + 1 WHERE pk = ?", (series_pk,))
            classes = db.execute(
                "SELECT sop_classes FROM studies WHERE pk = ?", (study_pk,)
            ).fetchone()[0]
            db.execute(
                "UPDATE studies SET n_instances = n_instances + 1, sop_classes = ? WHERE pk = ?",
                (_add_value(classes, record.sop_class_uid), study_pk),
            )
            db.execute(
                "UPDATE patients SET n_instances = n_instances + 1 WHERE pk = ?", (patient_pk,)
            )
        return True

    def _patient(self, record: InstanceRecord) -> int:
        row = self._db.execute(
            "SELECT pk FROM patients WHERE patient_id = ?", (record.patient_id,)
        ).fetchone()
        if row is not None:
            return int(row[0])
        cursor = self._db.execute(
            "INSERT INTO patients (patient_id, charset, attrs) VALUES (?, ?, ?)",
            (record.patient_id, record.charset, _encode(record.levels[PATIENT])),
        )
        return int(cursor.lastrowid or 0)

    def _study(self, record: InstanceRecord, patient_pk: int) -> tuple[int, int]:
        row = self._db.execute(
            "SELECT pk, patient_pk FROM studies WHERE study_uid = ?", (record.study_uid,)
        ).fetchone()
        if row is not None:
            if row[1] != patient_pk:
                log.warning(
                    "instance %s names patient %r, but its study %s was filed under another"
                    " patient; kept there",
                    record.sop_instance_uid,
                    record.patient_id,
                    record.study_uid,
                )
            return int(row[0]), int(row[1])
        cursor = self._db.execute(
            "INSERT INTO studies (study_uid, patient_pk, charset, attrs) VALUES (?, ?, ?, ?)",
            (record.study_uid, patient_pk, record.charset, _encode(record.levels[STUDY])),
        )
        self._db.execute(
            "UPDATE patients SET n_studies = n_studies + 1 WHERE pk = ?", (patient_pk,)
        )
        return int(cursor.lastrowid or 0), patient_pk

    def _series(self, record: InstanceRecord, study_pk: int, patient_pk: int) -> int:
        row = self._db.execute(
            "SELECT pk FROM series WHERE series_uid = ?", (record.series_uid,)
        ).fetchone()
        if row is not None:
            return int(row[0])
        cursor = self._db.execute(
            "INSERT INTO series (series_uid, study_pk, charset, attrs) VALUES (?, ?, ?, ?)",
            (record.series_uid, study_pk, record.charset, _encode(record.levels[SERIES])),
        )
        modalities = self._db.execute(
            "SELECT modalities FROM studies WHERE pk = ?", (study_pk,)
        ).fetchone()[0]
        self._db.execute(
            "UPDATE studies SET n_series = n_series + 1, modalities = ? WHERE pk = ?",
            (_add_value(modalities, record.modality), study_pk),
        )
        self._db.execute("UPDATE patients SET n_series = n_series + 1 WHERE pk = ?", (patient_pk,))
        return int(cursor.lastrowid or 0)

    # ------------------------------------------------------------------ reading

    def counts(self) -> dict[str, int]:
        """How many patients, studies, series and instances the index holds."""
        db = self._db
        return {
            name: int(db.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])
            for name in ("patients", "studies", "series", "instances")
        }

    def paths(self) -> set[str]:
        """The stored paths of every instance (relative to the storage folder)."""
        return {row[0] for row in self._db.execute("SELECT path FROM instances")}

    def rows(self, level: int, filters: Sequence[SQLFilter]) -> Iterator[list[LevelRow]]:
        """Rows of ``level`` with their ancestors (patient first) that pass the SQL prefilters."""
        columns = ", ".join(_COLUMNS[: level + 1])
        sql = f"SELECT {columns} FROM {_FROM[level]}"
        params: list[str] = []
        if filters:
            sql += " WHERE " + " AND ".join(f.sql() for f in filters)
            for f in filters:
                params.extend(f.values)
        sql += f" ORDER BY {_LEAF_PK[level]}"
        cursor = self._db.execute(sql, params)
        widths = _WIDTHS[: level + 1]
        while True:
            batch = cursor.fetchmany(256)
            if not batch:
                return
            for raw in batch:
                levels = []
                offset = 0
                for width in widths:
                    levels.append(
                        LevelRow(
                            raw[offset],
                            raw[offset + 1],
                            raw[offset + 2],
                            raw[offset + 3 : offset + width],
                        )
                    )
                    offset += width
                yield levels

    def instances_under(self, level: int, pks: Sequence[int], root: Path) -> list[StoredInstance]:
        """The instances below (or at) the given rows of ``level``, in the order they came in."""
        where = ("st.patient_pk", "se.study_pk", "i.series_pk", "i.pk")[level]
        found: list[StoredInstance] = []
        for start in range(0, len(pks), _SQL_VARIABLES_PER_QUERY):
            chunk = pks[start : start + _SQL_VARIABLES_PER_QUERY]
            sql = (
                "SELECT i.sop_uid, i.sop_class, i.transfer_syntax, i.path FROM instances i"
                " JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = se.study_pk"
                f" WHERE {where} IN ({', '.join('?' * len(chunk))}) ORDER BY i.pk"
            )
            for uid, sop_class, ts, path in self._db.execute(sql, list(chunk)):
                found.append(StoredInstance(uid, sop_class, ts, root / path))
        return found


def _add_value(joined: str, value: str) -> str:
    """Add ``value`` to a sorted backslash-separated set (Modalities/SOP Classes in Study)."""
    if not value:
        return joined
    values = set(joined.split("\\")) if joined else set()
    values.add(value)
    return "\\".join(sorted(values))
