"""``ws.data``: versioned tables with contracts, quarantine, profiles, time travel and splits.

Order of an ingest, so that bad input never leaves anything behind: read and check everything in
memory (format, schema, contract, keys); only then commit the good rows as one Delta commit and index
the version and its lineage in one metadata transaction, then the quarantined rows (see quarantine.py).
A crash after a Delta commit loses nothing: the catalog recovers the version from the log.

Profiles are computed once per version, on first request, and stored: profiling 1M x 20 rows costs
more than half of writing them, and most versions (every small append) are never profiled at all.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from keel.audit import AuditLog
from keel.data.arrow_types import normalize_time_column, unify_strings
from keel.data.catalog import NO_ROWS_HASH, Catalog, commit_metadata
from keel.data.contracts import Contract, RowCheck, check_rows, conform, load_contract
from keel.data.model import (
    QUARANTINE_SUFFIX,
    ROW_ID,
    SPLIT_PARTS,
    IngestResult,
    SplitInfo,
    TableInfo,
    TableVersion,
    VacuumResult,
    ValidationReport,
)
from keel.data.profiles import compute_profile
from keel.data.quarantine import Quarantine
from keel.data.readers import SourceFile, read_source_file, write_file
from keel.data.schemas import SchemaChange, align_to_table, reserved_columns
from keel.data.splits import parse_fractions, plan_split
from keel.data.writer import Batch, TableWriter, stage_batches
from keel.errors import InvalidInput, NotFound, ValidationFailed
from keel.lineage import Edge, LineageService
from keel.logs import get_logger
from keel.refs import Ref, check_name, parse_ref
from keel.storage.artifacts import ArtifactStore
from keel.storage.db import Database, insert_ignoring_duplicates
from keel.storage.schema import contracts, profiles, splits
from keel.storage.tables import TableStore

__all__ = ["DataService"]

log = get_logger("keel.data")

Source = str | Path | pd.DataFrame | pa.Table


@dataclass(frozen=True)
class _CheckedIngest:
    """An ingest after every check and before any write."""

    src: SourceFile
    data: pa.Table
    spec: Contract | None
    check: RowCheck | None
    latest: TableVersion | None
    partition_by: list[str]
    time_column: str | None
    key: list[str]
    schema_mode: Literal["merge", "overwrite"] | None


class DataService:
    """Every data operation keel offers; the CLI, REST API and UI call exactly these methods."""

    def __init__(self, db: Database, store: TableStore, artifacts: ArtifactStore, lineage: LineageService,
                 audit: AuditLog, user: str) -> None:
        self._db, self._store, self._artifacts = db, store, artifacts
        self._lineage, self._audit, self._user = lineage, audit, user
        self.catalog = Catalog(db, store, lineage)
        self._writer = TableWriter(db, store, self.catalog, audit, user)
        self._quarantine = Quarantine(self._writer, self.catalog, store, artifacts, user)

    # -- writing -----------------------------------------------------------------------------------

    def ingest(
        self, source: Source, table: str, *, mode: Literal["append", "overwrite"] = "append",
        partition_by: list[str] | None = None, time_column: str | None = None, key: list[str] | None = None,
        contract: Contract | dict | str | Path | None = None,
        on_bad_rows: Literal["reject", "quarantine"] = "reject", schema_change: SchemaChange | None = None,
        format: str | None = None, reason: str | None = None,
    ) -> IngestResult:
        """Validate ``source`` and commit it as one new version of ``table``."""
        check_name(table, "table name")
        _choice("mode", mode, ("append", "overwrite"))
        _choice("on_bad_rows", on_bad_rows, ("reject", "quarantine"))
        if schema_change is not None:
            _choice("schema_change", schema_change, ("add-columns", "overwrite"))
        spec = load_contract(contract) if contract is not None else None
        batch = self._prepare(_read_source(source, format), table, mode=mode, partition_by=partition_by,
                              time_column=time_column, key=key, spec=spec, schema_change=schema_change)
        check = batch.check
        if check is not None and check.report.failed_rows:
            every = check.report.failed_rows == batch.data.num_rows
            if on_bad_rows == "reject" or every:
                hint = "every row fails" if every else \
                    "nothing was written; pass --on-bad-rows quarantine to commit the good rows"
                raise ValidationFailed(f"{batch.src.name}: {check.report.summary()}; {hint}",
                                       report=check.report, details=check.report.to_dict())
        return self._write(batch, table, mode=mode, reason=reason)

    def _prepare(self, src: SourceFile, table: str, *, mode: str, partition_by: list[str] | None,
                 time_column: str | None, key: list[str] | None, spec: Contract | None,
                 schema_change: SchemaChange | None) -> _CheckedIngest:
        """Everything an ingest checks, in memory, before anything is written."""
        data = unify_strings(src.table)
        reserved_columns(data)
        info = self.catalog.dataset(table)
        if spec is None and info is not None:
            spec = self.contract(table, missing_ok=True)
        time_column = time_column or (info.time_column if info else None) or (spec.time_column if spec else None)
        key = key or (info.key_columns if info else None) or (spec.key if spec else [])
        partition_by = self._partitioning(table, info, partition_by)
        for what, cols in (("key", key), ("partition", partition_by)):
            absent = [c for c in cols if c not in data.column_names]
            if absent:
                raise InvalidInput(f"{what} column(s) {', '.join(absent)} not in the data; columns: "
                                   f"{', '.join(data.column_names)}")
        data = normalize_time_column(data, time_column)
        if spec is not None:
            data = conform(data, spec)
        latest = self.catalog.latest(table) if info else None
        data, schema_mode = align_to_table(data, latest.schema if latest else None, mode=mode,
                                           schema_change=schema_change, table=table)
        check = None
        if spec is not None:
            existing = self._existing_keys(table, spec, latest) if mode == "append" else None
            check = check_rows(data, spec, existing)
        return _CheckedIngest(src, data, spec, check, latest, partition_by, time_column, key, schema_mode)

    def _write(self, batch: _CheckedIngest, table: str, *, mode: str, reason: str | None) -> IngestResult:
        """Commit a checked batch: its contract, then its good rows, then (once) its quarantined rows."""
        contract_version = self._store_contract(table, batch.spec) if batch.spec is not None else None
        if batch.latest is None:  # first write (or a table registered by a write that failed)
            self.catalog.ensure_dataset(table, partition_by=batch.partition_by, time_column=batch.time_column,
                                        key_columns=batch.key, user=self._user)
        self._quarantine.settle_pending(table)
        ingest_id = uuid.uuid4().hex
        good, quarantined = batch.data, None
        if batch.check is not None and batch.check.report.failed_rows:
            good = batch.data.filter(pa.array(~batch.check.bad))
            self._quarantine.stage(table, batch.data.filter(pa.array(batch.check.bad)),
                                   list(batch.check.reasons), ingest_id)
        operation = "append-add-columns" if batch.schema_mode == "merge" else mode
        version = self._writer.commit(
            table, Batch(good, batch.src.name, batch.src.sha256, ingest_id, contract_version), mode=mode,
            partition_by=batch.partition_by, schema_mode=batch.schema_mode, operation=operation,
            latest=batch.latest, audit_reason=reason)
        if good.num_rows < batch.data.num_rows:
            quarantined = self._quarantine.settle(table, version, batch.src.name, version.source_hash or "")
        rows = batch.data.num_rows
        return IngestResult(version=version, rows_read=rows, rows_written=good.num_rows,
                            rows_quarantined=rows - good.num_rows,
                            quarantine_version=quarantined.version if quarantined else None,
                            report=batch.check.report if batch.check else None)

    def write_batches(self, batches: Iterable[pa.Table | pa.RecordBatch], table: str, *,
                      mode: Literal["append", "overwrite"] = "append", key: list[str] | None = None,
                      schema_change: SchemaChange | None = None, source_name: str = "stream",
                      reason: str | None = None) -> TableVersion:
        """Commit a stream of batches as one new version of ``table``, holding one batch in memory at a time
        (they are staged in a local Parquet file first). For keel's own results (training sets); files
        from outside go through ``ingest``, which checks them against a contract."""
        check_name(table, "table name")
        _choice("mode", mode, ("append", "overwrite"))
        info = self.catalog.dataset(table)
        if info is None:
            self.catalog.ensure_dataset(table, partition_by=[], time_column=None, key_columns=key or [],
                                        user=self._user)
        latest = self.catalog.latest(table) if info else None
        with tempfile.TemporaryDirectory(prefix="keel-stream-") as folder:
            staged = stage_batches(_checked(batches), os.path.join(folder, "rows.parquet"),
                                   lambda n: self.catalog.allocate_row_ids(table, n), source_name)
            data_schema = pa.schema([f for f in staged.schema if f.name != ROW_ID])
            _, schema_mode = align_to_table(data_schema.empty_table(), latest.schema if latest else None, mode=mode,
                                            schema_change=schema_change, table=table)
            operation = "append-add-columns" if schema_mode == "merge" else mode
            return self._writer.commit_staged(table, staged, mode=mode, schema_mode=schema_mode,
                                              operation=operation, latest=latest, audit_reason=reason)

    def set_contract(self, table: str, contract: Contract | dict | str | Path) -> int:
        """Store a new contract version for ``table`` (a no-op when it is unchanged)."""
        check_name(table, "table name")
        return self._store_contract(table, load_contract(contract))

    def contract(self, table: str, version: int | None = None, *, missing_ok: bool = False) -> Contract | None:
        query = sa.select(contracts.c.spec).where(contracts.c.table_name == table)
        query = query.where(contracts.c.version == version) if version is not None else \
            query.order_by(contracts.c.version.desc()).limit(1)
        with self._db.read() as conn:
            spec = conn.execute(query).scalar()
        if spec is None:
            if missing_ok:
                return None
            raise NotFound(f"table {table!r} has no contract" + (f" version {version}" if version else "")
                           + "; set one with `keel data contract set`")
        return Contract.from_dict(spec)

    # -- reading -----------------------------------------------------------------------------------

    def tables(self) -> list[TableInfo]:
        return self.catalog.datasets()

    def history(self, name: str) -> list[TableVersion]:
        """Versions of ``name``, newest first."""
        if self.catalog.dataset(check_name(name, "table name")) is None:
            raise NotFound(f"unknown table {name!r}; `keel data tables` lists the tables")
        self._settle(name)
        return list(reversed(self.catalog.versions(name)))

    def version(self, ref: str | Ref) -> TableVersion:
        """The table version a ref names (``name``, ``name@3``, ``name@2024-05-01T00:00Z``)."""
        parsed = _table_ref(ref)
        self._settle(parsed.name)
        return self.catalog.resolve(parsed)

    def read_arrow(self, ref: str | Ref, *, columns: list[str] | None = None, where: str | None = None,
                   with_row_ids: bool = False) -> pa.Table:
        """Read a version; only ``columns`` and the files that can match ``where`` are touched."""
        version = self._readable(ref)
        if columns is None:  # every column but keel's own row id (unless asked): it is never read
            columns = [c for c in version.schema if c != ROW_ID]
        wanted = [*columns, ROW_ID] if with_row_ids and ROW_ID not in columns else list(columns)
        return self._store.read(version.table, version.version, columns=wanted, where=where)

    def read_batches(self, ref: str | Ref, *, columns: list[str] | None = None, rows: int = 65_536,
                     with_row_ids: bool = False) -> Iterator[pa.Table]:
        """Stream a version as tables of ``rows`` rows (the last one shorter), one chunk in memory at a time:
        for work on tables larger than memory (batch scoring). The version is resolved now, not when read."""
        version = self._readable(ref)
        if columns is None:
            columns = [c for c in version.schema if c != ROW_ID]
        wanted = [*columns, ROW_ID] if with_row_ids and ROW_ID not in columns else list(columns)
        return self._store.batches(version.table, version.version, columns=wanted, rows=rows)

    def read(self, ref: str | Ref, *, columns: list[str] | None = None, where: str | None = None) -> pd.DataFrame:
        return self.read_arrow(ref, columns=columns, where=where).to_pandas()

    def export(self, ref: str | Ref, path: str | Path, *, format: str | None = None) -> Path:
        return write_file(self.read_arrow(ref), path, format)

    def profile(self, ref: str | Ref) -> dict[str, Any]:
        """The stored profile of a version (computed and stored on the first request)."""
        version = self._readable(ref)
        with self._db.read() as conn:
            stored = conn.execute(sa.select(profiles.c.profile).where(
                profiles.c.table_name == version.table, profiles.c.version == version.version)).scalar()
        if stored is not None:
            return stored
        dataset = self._store.dataset(version.table, version.version)
        profile = compute_profile(dataset, [c for c in dataset.schema.names if c != ROW_ID])
        with self._db.transaction() as conn:  # a concurrent first request may have stored the same profile
            insert_ignoring_duplicates(conn, profiles, [dict(
                table_name=version.table, version=version.version, computed_at=datetime.now(UTC), profile=profile)])
        return profile

    def validate(self, ref: str | Ref, contract: Contract | dict | str | Path | None = None) -> ValidationReport:
        """Re-check a stored version against its contract (or the one given)."""
        version = self._readable(ref)
        if contract is not None:
            spec, spec_version = load_contract(contract), None
        else:
            spec_version = version.contract_version
            spec = self.contract(version.table, spec_version)
        data = self.read_arrow(version.ref.removeprefix("table:"))
        try:
            data = conform(data, spec)
        except ValidationFailed as exc:
            return exc.report
        report = check_rows(data, spec).report
        return ValidationReport(report.rows, report.failed_rows, report.failures, spec_version)

    # -- splits ------------------------------------------------------------------------------------

    def split(
        self, ref: str | Ref, *, target: str, time_column: str | None = None, group: str | None = None,
        fractions: str | tuple[float, ...] = (0.7, 0.15, 0.15), gap: timedelta | str | None = None,
        name: str | None = None, seed: int = 42, dedupe: bool = False, allow_duplicates: bool = False,
        reason: str | None = None, ignore_for_duplicates: list[str] | None = None,
    ) -> SplitInfo:
        """Split a table version into train/validation/test without leakage, and store the split.

        Two rows are duplicates when they are equal in every column but the table's key columns and
        ``ignore_for_duplicates`` (e.g. a training set's feature columns, which differ for a re-posted row)."""
        version = self._readable(ref)
        name = check_name(name or f"{version.table}-split", "split name")
        info = self.catalog.dataset(version.table)
        data = self._store.read(version.table, version.version)
        unknown = [c for c in ignore_for_duplicates or [] if c not in data.column_names]
        if unknown:
            raise InvalidInput(f"ignore_for_duplicates names column(s) {', '.join(unknown)} that {version.ref} lacks")
        plan = plan_split(data, target=target, fractions=parse_fractions(fractions), time_column=time_column,
                          group=group, gap=_duration(gap), seed=seed,
                          exclude_from_duplicates=(*(info.key_columns if info else ()), *(ignore_for_duplicates or [])),
                          dedupe=dedupe, allow_duplicates=allow_duplicates)
        sink = pa.BufferOutputStream()
        pq.write_table(plan.to_arrow(), sink)
        key = f"splits/{name}/{uuid.uuid4().hex}.parquet"
        stored = self._artifacts.put_bytes(key, sink.getvalue().to_pybytes())

        def insert(conn: sa.Connection) -> SplitInfo:
            number = (conn.execute(sa.select(sa.func.max(splits.c.version)).where(splits.c.name == name)).scalar()
                      or 0) + 1
            split = SplitInfo(name=name, version=number, table=version.table, table_version=version.version,
                              method=plan.method, params=plan.params, counts=plan.counts, artifact_key=key,
                              artifact_hash=stored.sha256, created_at=datetime.now(UTC), created_by=self._user)
            conn.execute(splits.insert().values(
                name=name, version=number, table_name=version.table, table_version=version.version,
                method=plan.method, params=plan.params, counts=plan.counts, artifact_key=key,
                artifact_hash=stored.sha256, created_at=split.created_at, created_by=self._user))
            self._lineage.add(conn, [Edge(version.ref, split.ref, "split_into")])
            if allow_duplicates and plan.counts["cross_part_duplicates"]:
                self._audit.record(conn, actor=self._user, action="override.allow_duplicates", target=split.ref,
                                   reason=reason, details={"rows": plan.counts["cross_part_duplicates"]})
            return split

        split = self._db.retrying(insert)
        log.info("split.created", split=split.ref, source=split.source_ref, method=split.method,
                 counts=split.counts, seed=seed, user=self._user)
        return split

    def split_info(self, ref: str | Ref) -> SplitInfo:
        parsed = parse_ref(ref, kind="split") if isinstance(ref, str) else ref
        query = sa.select(splits).where(splits.c.name == parsed.name)
        query = query.where(splits.c.version == parsed.version) if parsed.version is not None else \
            query.order_by(splits.c.version.desc()).limit(1)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"unknown split {parsed.name}" + (f"@{parsed.version}" if parsed.version else ""))
        m = dict(row._mapping)
        m.pop("id")
        m["table"] = m.pop("table_name")
        return SplitInfo(**m)

    def read_split(self, ref: str | Ref, part: str = "train", *, columns: list[str] | None = None) -> pd.DataFrame:
        """One part of a stored split, read from exactly the table version it was made from."""
        return self.read_split_arrow(ref, part, columns=columns).to_pandas()

    def read_split_arrow(self, ref: str | Ref, part: str = "train", *, columns: list[str] | None = None) -> pa.Table:
        if part not in SPLIT_PARTS:
            raise InvalidInput(f"unknown split part {part!r}; use one of {', '.join(SPLIT_PARTS)}")
        split = self.split_info(ref)
        assignment = pq.read_table(pa.BufferReader(self._artifacts.get_bytes(split.artifact_key)))
        ids = assignment.filter(pc.equal(assignment["part"], SPLIT_PARTS.index(part)))[ROW_ID]
        data = self.read_arrow(f"{split.table}@{split.table_version}", columns=columns, with_row_ids=True)
        return data.filter(pc.is_in(data[ROW_ID], value_set=ids)).drop_columns([ROW_ID])

    # -- retention ---------------------------------------------------------------------------------

    def vacuum(self, name: str, *, retention_hours: int = 168, dry_run: bool = False,
               reason: str | None = None) -> VacuumResult:
        """Remove old files, never those of a version something was made from, nor the latest."""
        versions = self.history(name)
        latest = versions[0].version
        refs = {v.ref: v.version for v in versions}
        used = self._lineage.sources_among(refs, exclude_relations=("next_version", "quarantine_of"))
        kept = {refs[r]: "referenced by lineage" for r in used}
        kept[latest] = "latest version"
        cutoff = datetime.now(UTC) - timedelta(hours=retention_hours)
        for v in versions:
            if v.committed_at >= cutoff and v.version not in kept:
                kept[v.version] = f"younger than the {retention_hours} h retention"
        candidates = {v.version: set(map(_file_name, self._store.files(name, v.version)))
                      for v in versions if v.version not in kept and v.vacuumed_at is None}
        meta = commit_metadata(operation="vacuum", created_by=self._user, rows_added=0, batch_hash=NO_ROWS_HASH)
        removed = self._store.vacuum(name, retention_hours=retention_hours, keep_versions=sorted(kept),
                                     dry_run=dry_run, metadata=meta)
        removed_names = set(map(_file_name, removed))
        gone = sorted(v for v, files in candidates.items() if files & removed_names)  # lost a file: unreadable
        if not dry_run:
            with self._db.transaction() as conn:
                self.catalog.mark_vacuumed(conn, name, gone)
                self._audit.record(conn, actor=self._user, action="data.vacuum", target=f"table:{name}",
                                   reason=reason, details={"removed_files": len(removed), "kept": kept,
                                                           "unreadable": gone})
            self.catalog.sync(name)  # Delta records the vacuum as commits: index them as such
            log.info("table.vacuumed", table=name, removed_files=len(removed), kept=sorted(kept), unreadable=gone,
                     user=self._user)
        return VacuumResult(name, removed, dict(sorted(kept.items())), gone, dry_run)

    def optimize(self, name: str) -> TableVersion | None:
        """Compact the latest version's small files (many appends make many), as one new version.

        The rows, their ids and the content hash stay the same; reads and appends get faster because
        deltalake's cost per commit grows with the number of files. None when there was nothing to do.
        """
        before = self.history(name)[0]
        meta = commit_metadata(operation="optimize", created_by=self._user, rows_added=0, batch_hash=NO_ROWS_HASH)
        metrics = self._store.optimize(name, metadata=meta)
        if not metrics.get("numFilesRemoved"):
            return None
        after = self.catalog.latest(name)
        with self._db.transaction() as conn:
            self._audit.record(conn, actor=self._user, action="data.optimize", target=after.ref, details={
                "files_removed": metrics["numFilesRemoved"], "files_added": metrics["numFilesAdded"],
                "from_version": before.version})
        return after

    # -- internals ---------------------------------------------------------------------------------

    def _settle(self, name: str) -> None:
        """Finish what a crashed ingest left half-done (its quarantined rows) before anyone looks."""
        self._quarantine.settle_pending(name.removesuffix(QUARANTINE_SUFFIX))

    def _partitioning(self, table: str, info: TableInfo | None, partition_by: list[str] | None) -> list[str]:
        if info is None or info.latest_version is None:
            return list(partition_by or [])
        if partition_by and list(partition_by) != info.partition_by:
            raise InvalidInput(f"table {table!r} is partitioned by {info.partition_by or 'nothing'}; "
                               f"a write cannot change it to {list(partition_by)}")
        return info.partition_by

    def _existing_keys(self, table: str, spec: Contract, latest: TableVersion | None) -> pa.Table | None:
        unique_cols = sorted({*spec.key, *(c for c, s in spec.columns.items() if s.unique)})
        if latest is None or not unique_cols or any(c not in latest.schema for c in unique_cols):
            return None
        return self._store.read(table, latest.version, columns=unique_cols)

    def _readable(self, ref: str | Ref) -> TableVersion:
        version = self.version(ref)
        if version.vacuumed_at is not None:
            raise NotFound(f"the files of {version.ref} were removed by vacuum on {version.vacuumed_at:%Y-%m-%d %H:%M} "
                           "UTC; read a later version")
        return version

    def _store_contract(self, table: str, spec: Contract) -> int:
        digest = spec.spec_hash()

        def insert(conn: sa.Connection) -> int:
            latest = conn.execute(sa.select(contracts.c.version, contracts.c.spec_hash)
                                  .where(contracts.c.table_name == table)
                                  .order_by(contracts.c.version.desc()).limit(1)).first()
            if latest is not None and latest.spec_hash == digest:
                return latest.version
            number = (latest.version if latest else 0) + 1
            conn.execute(contracts.insert().values(table_name=table, version=number, spec=spec.to_dict(),
                                                   spec_hash=digest, created_at=datetime.now(UTC),
                                                   created_by=self._user))
            self._audit.record(conn, actor=self._user, action="data.contract.set", target=f"contract:{table}@{number}")
            return number

        return self._db.retrying(insert)


def _read_source(source: Source, fmt: str | None) -> SourceFile:
    if isinstance(source, pd.DataFrame):
        table = pa.Table.from_pandas(source, preserve_index=False)
    elif isinstance(source, pa.Table):
        table = source
    elif isinstance(source, str | Path):
        return read_source_file(source, fmt)
    else:
        raise InvalidInput(f"cannot ingest a {type(source).__name__}; pass a file path, a DataFrame or an Arrow table")
    if table.num_rows == 0:
        raise InvalidInput("the data has no rows; nothing to ingest")
    return SourceFile(f"{type(source).__name__.lower()}", "", table)  # hashed with the batch, in _commit


def _checked(batches: Iterable[pa.Table | pa.RecordBatch]) -> Iterable[pa.Table]:
    for batch in batches:
        table = unify_strings(batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch]))
        reserved_columns(table)
        yield table


def _table_ref(ref: str | Ref) -> Ref:
    parsed = parse_ref(ref, kind="table") if isinstance(ref, str) else ref
    if parsed.kind not in (None, "table"):
        raise InvalidInput(f"{ref} is a {parsed.kind} ref; a table ref is NAME, NAME@VERSION or NAME@TIMESTAMP")
    return parsed


def _file_name(path: str) -> str:
    """Data file names are unique (a UUID each); compare them without their root or scheme."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidInput(f"invalid {what} {value!r}; use one of {', '.join(allowed)}")


def _duration(value: timedelta | str | None) -> timedelta | None:
    """'7d', '12h', '30m', '45s' or a timedelta."""
    if value is None or isinstance(value, timedelta):
        return value
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds", "w": "weeks"}
    text = value.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise InvalidInput(f"invalid duration {value!r}; use a number and a unit: 7d, 12h, 30m, 45s, 2w")
    return timedelta(**{units[text[-1]]: float(text[:-1])})

