"""``ws.data``: versioned tables with contracts, quarantine, profiles, time travel and splits.

Order of an ingest, so that bad input never leaves anything behind: read and check everything in
memory (format, schema, contract, keys); only then commit the quarantine rows (if any) and the good
rows, each as one Delta commit; then index the version, its profile and its lineage in one metadata
transaction. A crash after a Delta commit loses nothing: the catalog recovers the version from the log.
"""

from __future__ import annotations

import uuid
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
from keel.data.catalog import Catalog, commit_metadata
from keel.data.contracts import Contract, check_rows, conform, load_contract
from keel.data.ingest import SchemaChange, align_to_table, reserved_columns
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
from keel.data.profiles import compute_profile, content_hash
from keel.data.readers import SourceFile, read_source_file, write_file
from keel.data.splits import parse_fractions, plan_split
from keel.errors import InvalidInput, NotFound, ValidationFailed
from keel.lineage import Edge, LineageService
from keel.logs import get_logger
from keel.refs import Ref, check_name, file_ref, parse_ref
from keel.storage.artifacts import ArtifactStore
from keel.storage.db import Database
from keel.storage.schema import contracts, profiles, splits
from keel.storage.tables import TableStore

__all__ = ["DataService"]

Source = str | Path | pd.DataFrame | pa.Table
log = get_logger("keel.data")


class DataService:
    """Every data operation keel offers; the CLI, REST API and UI call exactly these methods."""

    def __init__(self, db: Database, store: TableStore, artifacts: ArtifactStore, lineage: LineageService,
                 audit: AuditLog, user: str) -> None:
        self._db, self._store, self._artifacts = db, store, artifacts
        self._lineage, self._audit, self._user = lineage, audit, user
        self.catalog = Catalog(db, store, lineage)

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
        src = _read_source(source, format)
        data = unify_strings(src.table)
        reserved_columns(data)
        info = self.catalog.dataset(table)
        if spec is None and info is not None:
            spec = self.contract(table, missing_ok=True)
        time_column = time_column or (info.time_column if info else None) or (spec.time_column if spec else None)
        key = key or (info.key_columns if info else None) or (spec.key if spec else [])
        partition_by = self._partitioning(table, info, partition_by, mode, data)
        for what, cols in (("key", key), ("partition", partition_by)):
            absent = [c for c in cols if c not in data.column_names]
            if absent:
                raise InvalidInput(f"{what} column(s) {', '.join(absent)} not in the data; columns: "
                                   f"{', '.join(data.column_names)}")
        data = normalize_time_column(data, time_column)
        if spec is not None:
            data = conform(data, spec)
        latest = self._latest(table) if info else None
        data, schema_mode = align_to_table(data, latest.schema if latest else None, mode=mode,
                                           schema_change=schema_change, table=table)
        check = None
        if spec is not None:
            existing = self._existing_keys(table, spec, latest) if mode == "append" else None
            check = check_rows(data, spec, existing)
            if check.report.failed_rows and (on_bad_rows == "reject" or check.report.failed_rows == data.num_rows):
                what = "every row fails" if check.report.failed_rows == data.num_rows else "nothing was written"
                raise ValidationFailed(f"{src.name}: {check.report.summary()}; {what}"
                                       + ("" if on_bad_rows == "quarantine" else
                                          "; pass --on-bad-rows quarantine to commit the good rows"),
                                       report=check.report, details=check.report.to_dict())
        contract_version = self._store_contract(table, spec) if spec is not None else None
        self.catalog.ensure_dataset(table, partition_by=partition_by, time_column=time_column,
                                    key_columns=key, user=self._user)
        ingest_id = uuid.uuid4().hex
        good, quarantined = data, None
        if check is not None and check.report.failed_rows:
            good = data.filter(pa.array(~check.bad))
            bad = data.filter(pa.array(check.bad))
            quarantined = self._quarantine(table, bad, check.reasons, src, ingest_id)
        operation = {"overwrite": "overwrite", "append": "append"}[mode] if schema_mode != "merge" \
            else "append-add-columns"
        version = self._commit(table, good, mode=mode, partition_by=partition_by, schema_mode=schema_mode,
                               operation=operation, src=src, ingest_id=ingest_id, contract_version=contract_version,
                               latest=latest, quarantine=quarantined, audit_reason=reason)
        return IngestResult(version=version, rows_read=data.num_rows, rows_written=good.num_rows,
                            rows_quarantined=data.num_rows - good.num_rows,
                            quarantine_version=quarantined.version if quarantined else None,
                            report=check.report if check else None)

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
        return list(reversed(self.catalog.versions(name)))

    def version(self, ref: str | Ref) -> TableVersion:
        """The table version a ref names (``name``, ``name@3``, ``name@2024-05-01T00:00Z``)."""
        return self.catalog.resolve(_table_ref(ref))

    def read_arrow(self, ref: str | Ref, *, columns: list[str] | None = None, where: str | None = None,
                   with_row_ids: bool = False) -> pa.Table:
        """Read a version; only ``columns`` and the files that can match ``where`` are touched."""
        version = self._readable(ref)
        wanted = None if columns is None else [*columns, ROW_ID] if with_row_ids else list(columns)
        result = self._store.read(version.table, version.version, columns=wanted, where=where)
        if not with_row_ids and ROW_ID in result.column_names:
            result = result.drop_columns([ROW_ID])
        return result

    def read(self, ref: str | Ref, *, columns: list[str] | None = None, where: str | None = None) -> pd.DataFrame:
        return self.read_arrow(ref, columns=columns, where=where).to_pandas()

    def export(self, ref: str | Ref, path: str | Path, *, format: str | None = None) -> Path:
        return write_file(self.read_arrow(ref), path, format)

    def profile(self, ref: str | Ref) -> dict[str, Any]:
        """The stored profile of a version, computed once on first request when not stored at write."""
        version = self._readable(ref)
        with self._db.read() as conn:
            stored = conn.execute(sa.select(profiles.c.profile).where(
                profiles.c.table_name == version.table, profiles.c.version == version.version)).scalar()
        if stored is not None:
            return stored
        dataset = self._store.dataset(version.table, version.version)
        profile = compute_profile(dataset, [c for c in dataset.schema.names if c != ROW_ID])
        with self._db.transaction() as conn:
            if conn.execute(sa.select(profiles.c.version).where(profiles.c.table_name == version.table,
                                                                profiles.c.version == version.version)).first() is None:
                self._store_profile(conn, version.table, version.version, profile)
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
        reason: str | None = None,
    ) -> SplitInfo:
        """Split a table version into train/validation/test without leakage, and store the split."""
        version = self._readable(ref)
        name = check_name(name or f"{version.table}-split", "split name")
        info = self.catalog.dataset(version.table)
        data = self._store.read(version.table, version.version)
        plan = plan_split(data, target=target, fractions=parse_fractions(fractions), time_column=time_column,
                          group=group, gap=_duration(gap), seed=seed,
                          exclude_from_duplicates=tuple(info.key_columns if info else ()),
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

        return self._db.retrying(insert)

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
        removed = self._store.vacuum(name, retention_hours=retention_hours, keep_versions=sorted(kept),
                                     dry_run=dry_run)
        gone = sorted(v.version for v in versions if v.version not in kept and v.vacuumed_at is None)
        if not dry_run:
            with self._db.transaction() as conn:
                self.catalog.mark_vacuumed(conn, name, gone if removed else [])
                self._audit.record(conn, actor=self._user, action="data.vacuum", target=f"table:{name}",
                                   reason=reason, details={"removed_files": len(removed), "kept": kept})
        return VacuumResult(name, removed, dict(sorted(kept.items())), gone if removed else [], dry_run)

    # -- internals ---------------------------------------------------------------------------------

    def _commit(self, table: str, data: pa.Table, *, mode: str, partition_by: list[str],
                schema_mode: Literal["merge", "overwrite"] | None, operation: str, src: SourceFile,
                ingest_id: str, contract_version: int | None, latest: TableVersion | None,
                quarantine: TableVersion | None = None, audit_reason: str | None = None) -> TableVersion:
        """Commit one batch as one Delta version and index it (version row, profile, lineage)."""
        columns = [c for c in data.column_names if c != ROW_ID]
        batch_hash = content_hash(data, columns)
        first = self.catalog.allocate_row_ids(table, data.num_rows)
        with_ids = data.append_column(ROW_ID, pa.array(range(first, first + data.num_rows), pa.int64()))
        source_hash = src.sha256 or batch_hash  # in-memory data is identified by its content
        meta = commit_metadata(operation=operation, created_by=self._user, source_name=src.name,
                               source_hash=source_hash, contract_version=contract_version,
                               rows_added=data.num_rows, batch_hash=batch_hash, ingest_id=ingest_id)
        commit = self._store.write(table, with_ids, mode="overwrite" if mode == "overwrite" else "append",
                                   partition_by=partition_by, schema_mode=schema_mode, metadata=meta)
        entry = {**{f"keel.{k}": v for k, v in meta.items()}, "version": commit.version,
                 "committed_at": commit.committed_at}
        previous = latest if latest is not None and latest.version == commit.version - 1 \
            else self._previous(table, commit.version)
        version = self.catalog.build_version(table, entry, previous, schema=with_ids.schema)
        whole_batch = mode == "overwrite" or previous is None
        edges = [Edge(file_ref(src.name, source_hash), version.ref, "ingested_from")]
        if quarantine is not None:
            edges.append(Edge(quarantine.ref, version.ref, "quarantine_of"))
        if previous is not None:
            edges.append(Edge(previous.ref, version.ref, "next_version"))
        if contract_version is not None:
            edges.append(Edge(f"contract:{table}@{contract_version}", version.ref, "validated_by"))
        profile = compute_profile(data, columns) if whole_batch else None
        with self._db.transaction() as conn:
            self.catalog.record(conn, version)
            self._lineage.add(conn, edges)
            if profile is not None:
                self._store_profile(conn, table, version.version, profile)
            if operation == "append-add-columns" or schema_mode == "overwrite":
                self._audit.record(conn, actor=self._user, action=f"data.schema_change.{operation}",
                                   target=version.ref, reason=audit_reason, details={"schema": version.schema})
        log.info("table.committed", table=table, version=version.version, operation=operation,
                 rows_added=version.rows_added, rows=version.row_count, user=self._user, ingest_id=ingest_id,
                 source=src.name)
        return version

    def _quarantine(self, table: str, bad: pa.Table, reasons: Any, src: SourceFile, ingest_id: str) -> TableVersion:
        qname = table + QUARANTINE_SUFFIX
        self.catalog.ensure_dataset(qname, partition_by=[], time_column=None, key_columns=[], user=self._user)
        rows = bad.append_column("_keel_reason", pa.array(list(reasons), pa.string())) \
            .append_column("_keel_ingest_id", pa.array([ingest_id] * bad.num_rows, pa.string()))
        latest = self._latest(qname)
        return self._commit(qname, rows, mode="append", partition_by=[], schema_mode="merge" if latest else None,
                            operation="append", src=src, ingest_id=ingest_id, contract_version=None, latest=latest)

    def _partitioning(self, table: str, info: TableInfo | None, partition_by: list[str] | None, mode: str,
                      data: pa.Table) -> list[str]:
        if info is None or info.latest_version is None:
            return list(partition_by or [])
        if partition_by and list(partition_by) != info.partition_by:
            raise InvalidInput(f"table {table!r} is partitioned by {info.partition_by or 'nothing'}; "
                               f"a write cannot change it to {list(partition_by)}")
        return info.partition_by

    def _latest(self, table: str) -> TableVersion | None:
        versions = self.catalog.versions(table)
        return versions[-1] if versions else None

    def _previous(self, table: str, version: int) -> TableVersion | None:
        if version == 0:
            return None
        self.catalog.sync(table)
        found = [v for v in self.catalog.versions(table) if v.version == version - 1]
        return found[0] if found else None

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

    def _store_profile(self, conn: sa.Connection, table: str, version: int, profile: dict[str, Any]) -> None:
        conn.execute(profiles.insert().values(table_name=table, version=version, computed_at=datetime.now(UTC),
                                              profile=profile))


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


def _table_ref(ref: str | Ref) -> Ref:
    parsed = parse_ref(ref, kind="table") if isinstance(ref, str) else ref
    if parsed.kind not in (None, "table"):
        raise InvalidInput(f"{ref} is a {parsed.kind} ref; a table ref is NAME, NAME@VERSION or NAME@TIMESTAMP")
    return parsed


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

