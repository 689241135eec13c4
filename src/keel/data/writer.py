"""One table commit, end to end: row ids, one Delta commit, and its index (version row and lineage).

Every write of a table version goes through ``TableWriter.commit``, so the ingest, the quarantine and
later capabilities (training sets, prediction logs) share one way of committing data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from keel.audit import AuditLog
from keel.data.catalog import Catalog, commit_metadata
from keel.data.model import ROW_ID, TableVersion
from keel.data.profiles import add_hashes, content_hash
from keel.errors import InvalidInput
from keel.logs import get_logger
from keel.storage.db import Database
from keel.storage.tables import TableStore

__all__ = ["Batch", "Staged", "TableWriter", "stage_batches"]

log = get_logger("keel.data")


@dataclass(frozen=True)
class Batch:
    """What to commit and what to record about it."""

    data: pa.Table
    source_name: str
    source_hash: str  # "" for in-memory data: then the content hash identifies it
    ingest_id: str
    contract_version: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # extra commit metadata, e.g. quarantine_of


@dataclass
class Staged:
    """Rows written to a local Parquet file with their row ids, counted and hashed on the way."""

    path: str
    schema: pa.Schema
    rows: int
    batch_hash: str
    ingest_id: str
    source_name: str

    def reader(self) -> pa.RecordBatchReader:
        file = pq.ParquetFile(self.path)
        return pa.RecordBatchReader.from_batches(file.schema_arrow, file.iter_batches(batch_size=65_536))


def stage_batches(batches: Iterable[pa.Table | pa.RecordBatch], path: str, allocate: Callable[[int], int],
                  source_name: str) -> Staged:
    """Write ``batches`` (all of one schema) to ``path`` with row ids, hashing each: memory holds one batch."""
    writer, rows, digest, schema = None, 0, f"{0:032x}", None
    try:
        for batch in batches:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            if schema is None:
                schema = table.schema
            elif not table.schema.equals(schema):
                raise InvalidInput(f"a streamed batch has the schema {_text(table.schema)}, not the first batch's "
                                   f"{_text(schema)}")
            if not table.num_rows:
                continue
            digest = add_hashes(digest, content_hash(table, table.column_names))
            first = allocate(table.num_rows)
            with_ids = table.append_column(ROW_ID, pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)))
            if writer is None:
                writer = pq.ParquetWriter(path, with_ids.schema)
            writer.write_table(with_ids)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if schema is None or not rows:
        raise InvalidInput("nothing to write: the stream has no rows")
    full = schema.append(pa.field(ROW_ID, pa.int64()))
    return Staged(path, full, rows, digest, uuid.uuid4().hex, source_name)


def _text(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {f.type}" for f in schema)


class TableWriter:
    """Commits batches to tables and indexes each new version in the same breath."""

    def __init__(self, db: Database, store: TableStore, catalog: Catalog, audit: AuditLog, user: str) -> None:
        self._db, self._store, self._catalog, self._audit, self._user = db, store, catalog, audit, user

    def commit(self, table: str, batch: Batch, *, mode: Literal["append", "overwrite"], partition_by: list[str],
               schema_mode: Literal["merge", "overwrite"] | None, operation: str, latest: TableVersion | None,
               app_id: str | None = None, audit_reason: str | None = None) -> TableVersion:
        """Commit one batch as one Delta version; ``app_id`` makes the commit happen at most once."""
        data = batch.data
        columns = [c for c in data.column_names if c != ROW_ID]
        batch_hash = content_hash(data, columns)
        first = self._catalog.allocate_row_ids(table, data.num_rows)
        with_ids = data.append_column(ROW_ID, pa.array(np.arange(first, first + data.num_rows, dtype=np.int64)))
        meta = commit_metadata(operation=operation, created_by=self._user, source_name=batch.source_name,
                               source_hash=batch.source_hash or batch_hash, contract_version=batch.contract_version,
                               rows_added=data.num_rows, batch_hash=batch_hash, ingest_id=batch.ingest_id,
                               **batch.details)
        commit = self._store.write(table, with_ids, mode=mode, partition_by=partition_by,
                                   schema_mode=schema_mode, metadata=meta, app_id=app_id)
        return self._index(table, commit, latest, with_ids.schema, operation, schema_mode, audit_reason,
                           batch.ingest_id, batch.source_name)

    def _index(self, table: str, commit: Any, latest: TableVersion | None, schema: pa.Schema, operation: str,
               schema_mode: str | None, audit_reason: str | None, ingest_id: str, source_name: str) -> TableVersion:
        """Record a commit's version row (and a schema change's audit row) in one transaction."""
        previous = latest if latest is not None and latest.version == commit.version - 1 \
            else self.previous(table, commit.version)
        version = self._catalog.build_version(table, commit.info, previous, schema=schema)
        with self._db.transaction() as conn:
            self._catalog.record(conn, version, previous)  # a no-op row if a concurrent sync indexed it first
            if operation == "append-add-columns" or schema_mode == "overwrite":
                self._audit.record(conn, actor=self._user, action=f"data.schema_change.{operation}",
                                   target=version.ref, reason=audit_reason, details={"schema": version.schema})
        log.info("table.committed", table=table, version=version.version, operation=operation,
                 rows_added=version.rows_added, rows=version.row_count, user=self._user, ingest_id=ingest_id,
                 source=source_name)
        return version

    def commit_staged(self, table: str, staged: Staged, *, mode: Literal["append", "overwrite"],
                      schema_mode: Literal["merge", "overwrite"] | None, operation: str,
                      latest: TableVersion | None, audit_reason: str | None = None) -> TableVersion:
        """Commit rows staged on disk (``stage_batches``) as one Delta version, read back a batch at a time."""
        meta = commit_metadata(operation=operation, created_by=self._user, source_name=staged.source_name,
                               source_hash=staged.batch_hash, contract_version=None, rows_added=staged.rows,
                               batch_hash=staged.batch_hash, ingest_id=staged.ingest_id)
        commit = self._store.write(table, staged.reader, mode=mode, partition_by=[], schema_mode=schema_mode,
                                   metadata=meta)
        return self._index(table, commit, latest, staged.schema, operation, schema_mode, audit_reason,
                           staged.ingest_id, staged.source_name)

    def previous(self, table: str, version: int) -> TableVersion | None:
        """The version before ``version``, indexing it first if a concurrent writer made it."""
        if version == 0:
            return None
        self._catalog.sync(table)
        found = [v for v in self._catalog.versions(table) if v.version == version - 1]
        return found[0] if found else None
