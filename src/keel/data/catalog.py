"""The metadata side of tables: datasets, their versions, and ref resolution.

The Delta log is the source of truth for what versions exist; the metadata store indexes it. Each
keel commit carries in its commit info everything its metadata row needs, so a version whose
metadata write was lost (a process killed between the Delta commit and the DB commit) is recovered
from the log the next time anyone looks, and a version written by another Delta writer is indexed
by reading it once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from keel.data.arrow_types import schema_dict
from keel.data.model import QUARANTINE_SUFFIX, ROW_ID, TableInfo, TableVersion
from keel.data.profiles import add_hashes, content_hash
from keel.errors import NotFound
from keel.lineage import Edge, LineageService
from keel.refs import Ref, file_ref
from keel.storage.db import Database, insert_ignoring_duplicates, is_unique_violation
from keel.storage.schema import datasets, table_versions
from keel.storage.tables import TableStore

__all__ = ["Catalog", "commit_metadata"]

_VERSION_FIELDS = ("operation", "created_by", "source_name", "source_hash", "contract_version", "rows_added",
                   "batch_hash", "ingest_id", "quarantine_of")
_ADDS_TO_PREVIOUS = ("append", "append-add-columns", "vacuum", "optimize")  # the last two change no rows
NO_ROWS_HASH = "0" * 32


def commit_metadata(**values: Any) -> dict[str, Any]:
    """What a keel commit records in the Delta log (see ``Catalog.sync``)."""
    unknown = set(values) - set(_VERSION_FIELDS)
    if unknown:
        raise ValueError(f"unknown commit metadata {unknown}")
    return values


class Catalog:
    """Datasets and table versions in the metadata store, kept in step with the Delta log."""

    def __init__(self, db: Database, store: TableStore, lineage: LineageService) -> None:
        self._db = db
        self._store = store
        self._lineage = lineage

    # -- datasets ----------------------------------------------------------------------------------

    def dataset(self, name: str) -> TableInfo | None:
        with self._db.read() as conn:
            row = conn.execute(sa.select(datasets).where(datasets.c.name == name)).first()
            if row is None:
                return None
            latest = conn.execute(
                sa.select(sa.func.max(table_versions.c.version)).where(table_versions.c.table_name == name)
            ).scalar()
        return _table_info(row, latest)

    def datasets(self) -> list[TableInfo]:
        with self._db.read() as conn:
            latest = dict(conn.execute(
                sa.select(table_versions.c.table_name, sa.func.max(table_versions.c.version))
                .group_by(table_versions.c.table_name)
            ).all())
            rows = conn.execute(sa.select(datasets).order_by(datasets.c.name)).all()
        return [_table_info(r, latest.get(r.name)) for r in rows if r.name in latest]

    def ensure_dataset(self, name: str, *, partition_by: list[str], time_column: str | None,
                       key_columns: list[str], user: str) -> None:
        """Register a table on its first write; a concurrent first write is fine."""
        try:
            with self._db.transaction() as conn:
                if conn.execute(sa.select(datasets.c.name).where(datasets.c.name == name)).first():
                    return
                conn.execute(datasets.insert().values(
                    name=name, location=self._store.location(name), created_at=datetime.now(UTC),
                    created_by=user, partition_by=partition_by, time_column=time_column,
                    key_columns=key_columns, next_row_id=0,
                ))
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise

    def update_dataset(self, conn: Connection, name: str, **values: Any) -> None:
        conn.execute(datasets.update().where(datasets.c.name == name).values(**values))

    def allocate_row_ids(self, name: str, count: int) -> int:
        """Reserve ``count`` row ids atomically; returns the first. Gaps are fine, reuse never."""
        with self._db.transaction() as conn:
            start = conn.execute(
                datasets.update().where(datasets.c.name == name)
                .values(next_row_id=datasets.c.next_row_id + count)
                .returning(datasets.c.next_row_id)
            ).scalar_one()
        return int(start) - count

    # -- versions ----------------------------------------------------------------------------------

    def versions(self, name: str) -> list[TableVersion]:
        """Every version of ``name``, oldest first (after indexing any the log has and we do not)."""
        self.sync(name)
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(table_versions).where(table_versions.c.table_name == name)
                .order_by(table_versions.c.version)
            ).all()
        return [_version(r) for r in rows]

    def latest(self, name: str) -> TableVersion | None:
        """The newest version of ``name`` (None for a table with no version yet)."""
        try:
            return self.resolve(Ref(name))
        except NotFound:
            return None

    def resolve(self, ref: Ref) -> TableVersion:
        """The table version a ref names: latest, ``@N`` or ``@TIMESTAMP`` (as of that instant)."""
        if ref.alias is not None:
            raise NotFound(f"tables have no aliases; {ref} names alias {ref.alias!r}. "
                           "Use NAME@VERSION or NAME@TIMESTAMP")
        if self.dataset(ref.name) is None:
            raise NotFound(f"unknown table {ref.name!r}; `keel data tables` lists the tables")
        self.sync(ref.name)
        if ref.timestamp is None:  # latest or @N: one row, not the whole history
            query = sa.select(table_versions).where(table_versions.c.table_name == ref.name)
            query = query.where(table_versions.c.version == ref.version) if ref.version is not None \
                else query.order_by(table_versions.c.version.desc()).limit(1)
            with self._db.read() as conn:
                row = conn.execute(query).first()
            if row is not None:
                return _version(row)
        versions = self.versions(ref.name)
        if not versions:
            raise NotFound(f"unknown table {ref.name!r}; `keel data tables` lists the tables")
        if ref.version is not None:
            raise NotFound(f"table {ref.name!r} has no version {ref.version}; versions are "
                           f"{versions[0].version}..{versions[-1].version}")
        if ref.timestamp is not None:
            before = [v for v in versions if v.committed_at <= ref.timestamp]
            if not before:
                raise NotFound(f"table {ref.name!r} did not exist at {ref.timestamp.isoformat()}; its first "
                               f"version was committed at {versions[0].committed_at.isoformat()}")
            return before[-1]
        return versions[-1]

    def record(self, conn: Connection, version: TableVersion, previous: TableVersion | None) -> bool:
        """Index a version and its lineage; False when another process indexed it first (same content)."""
        inserted = insert_ignoring_duplicates(conn, table_versions, [dict(
            table_name=version.table, version=version.version, committed_at=version.committed_at,
            created_by=version.created_by, operation=version.operation, row_count=version.row_count,
            rows_added=version.rows_added, schema=version.schema, content_hash=version.content_hash,
            source_name=version.source_name, source_hash=version.source_hash,
            contract_version=version.contract_version, details=version.details,
        )])
        self._lineage.add(conn, version_edges(version, previous))
        return bool(inserted)

    def mark_vacuumed(self, conn: Connection, name: str, versions: list[int]) -> None:
        if versions:
            conn.execute(table_versions.update().where(
                table_versions.c.table_name == name, table_versions.c.version.in_(versions),
                table_versions.c.vacuumed_at.is_(None),
            ).values(vacuumed_at=datetime.now(UTC)))

    def build_version(self, name: str, entry: dict[str, Any], previous: TableVersion | None,
                      schema: pa.Schema | None = None) -> TableVersion:
        """The metadata row for one Delta commit, from keel's commit info (or by reading the data)."""
        meta = {k: entry.get(f"keel.{k}") for k in _VERSION_FIELDS}
        if schema is None:
            schema = pa.schema(self._store.open(name, entry["version"]).schema().to_arrow())
        schema_map = schema_dict(schema, exclude=(ROW_ID,))
        append = meta["operation"] in _ADDS_TO_PREVIOUS
        known_base = previous is not None or not append or entry["version"] == 0
        if meta["batch_hash"] is not None and meta["rows_added"] is not None and known_base:
            rows_added = int(meta["rows_added"])
            row_count = rows_added + (previous.row_count if append and previous else 0)
            digest = add_hashes(previous.content_hash, meta["batch_hash"]) if append and previous \
                else meta["batch_hash"]
        else:  # not written by keel, or its predecessor is unknown: read it once
            data = self._store.read(name, entry["version"])
            row_count = data.num_rows
            rows_added = row_count - (previous.row_count if previous else 0)
            digest = content_hash(data, [c for c in data.column_names if c != ROW_ID])
        return TableVersion(
            table=name, version=entry["version"], committed_at=entry["committed_at"],
            created_by=meta["created_by"] or "unknown (external writer)",
            operation=meta["operation"] or str(entry.get("operation", "write")).lower(),
            row_count=row_count, rows_added=rows_added, schema=schema_map, content_hash=digest,
            source_name=meta["source_name"], source_hash=meta["source_hash"],
            contract_version=int(meta["contract_version"]) if meta["contract_version"] else None,
            details={k: (int(meta[k]) if k == "quarantine_of" else meta[k])
                     for k in ("ingest_id", "quarantine_of") if meta[k] is not None},
        )

    def sync(self, name: str) -> list[TableVersion]:
        """Index Delta versions that have no metadata row yet; returns the versions recovered."""
        if not self._store.exists(name):
            return []
        latest = self._store.latest(name).version()
        with self._db.read() as conn:
            count, highest = conn.execute(
                sa.select(sa.func.count(), sa.func.max(table_versions.c.version))
                .where(table_versions.c.table_name == name)).one()
            if count == latest + 1 and highest == latest:
                return []  # the usual case: every version indexed, one cheap query
            known = set(conn.execute(
                sa.select(table_versions.c.version).where(table_versions.c.table_name == name)).scalars())
        missing = [v for v in range(latest + 1) if v not in known]
        recovered: list[TableVersion] = []
        for number in missing:
            previous = self._get(name, number - 1) if number > 0 else None
            version = self.build_version(name, self._store.commit_info(name, number), previous)
            with self._db.transaction() as conn:
                if self.record(conn, version, previous):
                    recovered.append(version)
        return recovered

    def _get(self, name: str, version: int) -> TableVersion | None:
        with self._db.read() as conn:
            row = conn.execute(sa.select(table_versions).where(
                table_versions.c.table_name == name, table_versions.c.version == version)).first()
        return _version(row) if row is not None else None


def version_edges(version: TableVersion, previous: TableVersion | None) -> list[Edge]:
    """The lineage of a table version, all derivable from its own record (so recovery rebuilds it)."""
    edges = []
    if version.source_name and version.source_hash:
        edges.append(Edge(file_ref(version.source_name, version.source_hash), version.ref, "ingested_from"))
    if previous is not None:
        edges.append(Edge(previous.ref, version.ref, "next_version"))
    if version.contract_version is not None:
        edges.append(Edge(f"contract:{version.table}@{version.contract_version}", version.ref, "validated_by"))
    if version.details.get("quarantine_of") is not None:  # a quarantine version names its table version
        main = f"table:{version.table.removesuffix(QUARANTINE_SUFFIX)}@{version.details['quarantine_of']}"
        edges.append(Edge(version.ref, main, "quarantine_of"))
    return edges


def _table_info(row: Any, latest: int | None) -> TableInfo:
    return TableInfo(
        name=row.name, location=row.location, partition_by=list(row.partition_by), time_column=row.time_column,
        key_columns=list(row.key_columns), created_at=row.created_at, created_by=row.created_by,
        latest_version=latest,
    )


def _version(row: Any) -> TableVersion:
    m = row._mapping
    return TableVersion(
        table=m["table_name"], version=m["version"], committed_at=m["committed_at"], created_by=m["created_by"],
        operation=m["operation"], row_count=m["row_count"], rows_added=m["rows_added"], schema=dict(m["schema"]),
        content_hash=m["content_hash"], source_name=m["source_name"], source_hash=m["source_hash"],
        contract_version=m["contract_version"], details=dict(m["details"]), vacuumed_at=m["vacuumed_at"],
    )
