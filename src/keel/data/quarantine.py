"""Quarantine: bad rows kept with their reason, committed exactly once and only with their good rows.

The good rows and the bad rows go to two tables, which no single Delta commit can span. So the bad
rows are first staged as an artifact, then the good rows are committed (the decision point), then
the staged rows are committed to ``NAME__quarantine`` under a Delta application transaction named
after the ingest, which makes that commit happen at most once however often it is retried. A crash
before the decision point leaves only a staged file no table shows; a crash after it is settled by
the next ingest or read of the table. Rows written + rows quarantined = rows read, for every ingest.
"""

from __future__ import annotations

import contextlib

import pyarrow as pa
import pyarrow.parquet as pq

from keel.data.catalog import Catalog
from keel.data.model import INGEST_ID, QUARANTINE_SUFFIX, TableVersion
from keel.data.writer import Batch, TableWriter
from keel.logs import get_logger
from keel.storage.artifacts import ArtifactStore
from keel.storage.tables import TableStore, TransactionExists

__all__ = ["Quarantine"]

log = get_logger("keel.data")

REASON = "_keel_reason"


class Quarantine:
    def __init__(self, writer: TableWriter, catalog: Catalog, store: TableStore, artifacts: ArtifactStore,
                 user: str) -> None:
        self._writer, self._catalog, self._store, self._artifacts, self._user = writer, catalog, store, artifacts, user

    def stage(self, table: str, bad: pa.Table, reasons: list[str], ingest_id: str) -> None:
        """Keep the bad rows of an ingest, with their reasons, until its good rows are committed."""
        rows = bad.append_column(REASON, pa.array(reasons, pa.string())) \
            .append_column(INGEST_ID, pa.array([ingest_id] * bad.num_rows, pa.string()))
        sink = pa.BufferOutputStream()
        pq.write_table(rows, sink)
        self._artifacts.put_bytes(_staged_key(table, ingest_id), sink.getvalue().to_pybytes())

    def settle(self, table: str, main: TableVersion, source_name: str, source_hash: str) -> TableVersion | None:
        """Commit the staged rows of ``main``'s ingest (once), then drop the staged file."""
        ingest_id = main.details["ingest_id"]
        key = _staged_key(table, ingest_id)
        if not self._artifacts.exists(key):
            return self._committed(table, ingest_id)
        qname = table + QUARANTINE_SUFFIX
        committed = None
        if not (self._store.exists(qname) and self._store.has_transaction(qname, ingest_id)):
            rows = pq.read_table(pa.BufferReader(self._artifacts.get_bytes(key)))
            self._catalog.ensure_dataset(qname, partition_by=[], time_column=None, key_columns=[], user=self._user)
            latest = self._catalog.latest(qname)
            batch = Batch(rows, source_name, source_hash, ingest_id, details={"quarantine_of": main.version})
            with contextlib.suppress(TransactionExists):  # a concurrent settle committed the same rows first
                committed = self._writer.commit(qname, batch, mode="append", partition_by=[],
                                                schema_mode="merge" if latest else None, operation="append",
                                                latest=latest, app_id=ingest_id)
        self._artifacts.delete(key)
        return committed or self._committed(table, ingest_id)

    def settle_pending(self, table: str) -> None:
        """Finish quarantines whose good rows were committed by a process that then died."""
        staged = self._artifacts.list(f"staging/quarantine/{table}/")
        if not staged:
            return
        by_ingest = {v.details.get("ingest_id"): v for v in self._catalog.versions(table)} \
            if self._catalog.dataset(table) else {}
        for key in staged:
            main = by_ingest.get(key.rsplit("/", 1)[-1].removesuffix(".parquet"))
            if main is not None:  # otherwise in flight, or died before its decision point
                log.warning("quarantine.recovered", table=table, version=main.version,
                            ingest_id=main.details.get("ingest_id"), user=self._user)
                self.settle(table, main, main.source_name or "", main.source_hash or "")

    def _committed(self, table: str, ingest_id: str) -> TableVersion | None:
        qname = table + QUARANTINE_SUFFIX
        if self._catalog.dataset(qname) is None:
            return None
        return next((v for v in self._catalog.versions(qname) if v.details.get("ingest_id") == ingest_id), None)


def _staged_key(table: str, ingest_id: str) -> str:
    return f"staging/quarantine/{table}/{ingest_id}.parquet"
