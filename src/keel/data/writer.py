"""One table commit, end to end: row ids, one Delta commit, and its index (version row and lineage).

Every write of a table version goes through ``TableWriter.commit``, so the ingest, the quarantine and
later capabilities (training sets, prediction logs) share one way of committing data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from keel.audit import AuditLog
from keel.data.catalog import Catalog, commit_metadata
from keel.data.model import ROW_ID, TableVersion
from keel.data.profiles import content_hash
from keel.logs import get_logger
from keel.storage.db import Database
from keel.storage.tables import TableStore

__all__ = ["Batch", "TableWriter"]

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
        previous = latest if latest is not None and latest.version == commit.version - 1 \
            else self.previous(table, commit.version)
        version = self._catalog.build_version(table, commit.info, previous, schema=with_ids.schema)
        with self._db.transaction() as conn:
            self._catalog.record(conn, version, previous)  # a no-op row if a concurrent sync indexed it first
            if operation == "append-add-columns" or schema_mode == "overwrite":
                self._audit.record(conn, actor=self._user, action=f"data.schema_change.{operation}",
                                   target=version.ref, reason=audit_reason, details={"schema": version.schema})
        log.info("table.committed", table=table, version=version.version, operation=operation,
                 rows_added=version.rows_added, rows=version.row_count, user=self._user, ingest_id=batch.ingest_id,
                 source=batch.source_name)
        return version

    def previous(self, table: str, version: int) -> TableVersion | None:
        """The version before ``version``, indexing it first if a concurrent writer made it."""
        if version == 0:
            return None
        self._catalog.sync(table)
        found = [v for v in self._catalog.versions(table) if v.version == version - 1]
        return found[0] if found else None
