"""Delta tables on a local folder or object storage, through ``deltalake`` (no Spark, no JVM).

Every write is one Delta commit, so a reader sees a version whole or not at all. Each commit carries
keel's metadata (who, why, source hash) in the commit info, which makes the Delta log the source of
truth that the metadata store indexes. Reads project columns and prune partitions before any bytes
are read, because users mostly read feature subsets.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from keel.errors import InvalidInput, NotFound, StorageError
from keel.storage.artifacts import safe_join

__all__ = ["Commit", "TableStore", "TransactionExists", "query_arrow", "utc_labels"]

WriteMode = Literal["append", "overwrite"]
COMMIT_ID = "keel.commit_id"
COMMIT_ATTEMPTS = 5
SCAN_BATCH_ROWS = 1 << 20  # a chunk of more rows is put together from batches of this many


class TransactionExists(Exception):
    """A write under an application transaction id that the table has committed already."""


@dataclass(frozen=True, slots=True)
class Commit:
    """What one write produced: the Delta version and its commit time."""

    version: int
    committed_at: datetime
    info: dict[str, Any]


class TableStore:
    """Delta tables under one root URL; names are folder names, joined safely."""

    def __init__(self, root_url: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.root_url = root_url.rstrip("/")
        self.storage_options = dict(storage_options or {}) or None
        self._handles = threading.local()  # per thread: {name: DeltaTable at latest}, refreshed incrementally

    def location(self, name: str) -> str:
        return safe_join(self.root_url, name)

    def exists(self, name: str) -> bool:
        if name in self._cache():
            return True
        return DeltaTable.is_deltatable(self.location(name), storage_options=self.storage_options)

    def latest(self, name: str) -> DeltaTable:
        """A handle at the newest version; re-used and refreshed from the log, not re-opened."""
        cache = self._cache()
        handle = cache.get(name)
        if handle is None:
            handle = cache[name] = self._open(name)
        else:
            handle.update_incremental()
        return handle

    def write(
        self,
        name: str,
        data: pa.Table | Callable[[], pa.RecordBatchReader],
        *,
        mode: WriteMode,
        partition_by: list[str] | None = None,
        schema_mode: Literal["merge", "overwrite"] | None = None,
        metadata: Mapping[str, Any] | None = None,
        app_id: str | None = None,
    ) -> Commit:
        """Commit ``data`` as exactly one new version and return which version that was.

        ``data`` is a table, or a function giving a RecordBatchReader (called again if a commit is retried),
        so a table of any size is written a batch at a time.

        The version comes from the handle the write advanced (never from ``history()``, whose numbering
        is relative to a snapshot and drifts under concurrent writers). Two writers creating the same
        table race for version 0; the loser retries as a write to the table that now exists.
        """
        commit_id = uuid.uuid4().hex
        props = CommitProperties(custom_metadata={COMMIT_ID: commit_id, **_stringify(metadata or {})},
                                 app_transactions=[Transaction(app_id, 1)] if app_id else None)
        if app_id and self.has_transaction(name, app_id):
            raise TransactionExists(app_id)
        options = dict(mode=mode, partition_by=partition_by or None, schema_mode=schema_mode,
                       storage_options=self.storage_options, commit_properties=props)
        version = None
        try:
            if not self.exists(name):
                try:
                    write_deltalake(self.location(name), _readable(data), **options)
                    version = self._locate(name, commit_id)  # 0, unless another writer created it first
                except DeltaError:
                    if not self.exists(name):
                        raise  # a real failure, not a lost creation race
            if version is None:
                version = self._write_existing(name, data, options, app_id)
        except DeltaError as exc:
            self._cache().pop(name, None)
            if app_id and self.has_transaction(name, app_id):
                raise TransactionExists(app_id) from None
            raise StorageError(f"writing table {name!r} failed: {exc}") from exc
        info = self.commit_info(name, version)
        if info.get(COMMIT_ID) != commit_id:
            raise StorageError(f"table {name!r}: version {version} is not the commit just written ({commit_id})")
        return Commit(version, info["committed_at"], info)

    def has_transaction(self, name: str, app_id: str) -> bool:
        """Whether a commit under application transaction ``app_id`` is in the table (idempotent writes)."""
        return self.exists(name) and self.latest(name).transaction_version(app_id) is not None

    def _locate(self, name: str, commit_id: str) -> int:
        """The version holding ``commit_id``, searched from version 0 (used only after creating a table)."""
        for version in range(self.latest(name).version() + 1):
            if self.commit_info(name, version).get(COMMIT_ID) == commit_id:
                return version
        raise StorageError(f"commit {commit_id} is missing from the Delta log of table {name!r}")

    def _write_existing(self, name: str, data: pa.Table | Callable[[], pa.RecordBatchReader], options: dict[str, Any],
                        app_id: str | None) -> int:
        """Write through the kept handle; on a commit conflict (e.g. a concurrent metadata change that
        delta-rs does not retry itself), refresh and try again: a failed commit wrote nothing."""
        handle = self._cache().get(name) or self.latest(name)  # a stale snapshot is fine: delta-rs rebases
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                write_deltalake(handle, _readable(data), **options)
                return handle.version()
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS - 1 or (app_id and self.has_transaction(name, app_id)):
                    raise
                time.sleep(0.01 * (attempt + 1))
                handle = self.latest(name)
        raise AssertionError("unreachable")

    def commit_info(self, name: str, version: int) -> dict[str, Any]:
        """The commit info of one version, read from its log file, with ``version`` and ``committed_at``."""
        path = safe_join(self.location(name), f"_delta_log/{version:020d}.json")
        fs, fs_path = fsspec.core.url_to_fs(path)
        try:
            with fs.open(fs_path, "rb") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:  # cleaned up after a checkpoint: the commit info is gone, the data is not
            return {"version": version, "committed_at": datetime.fromtimestamp(0, UTC)}
        for line in lines:
            action = json.loads(line)
            if "commitInfo" in action:
                info = dict(action["commitInfo"])
                info.update(version=version, committed_at=_from_millis(info.get("timestamp", 0)))
                return info
        return {"version": version, "committed_at": datetime.fromtimestamp(0, UTC)}

    def open(self, name: str, version: int | None = None) -> DeltaTable:
        """The table at ``version`` (latest when None); NotFound when either does not exist."""
        latest = self.latest(name)
        if version is None:
            return latest
        if version < 0 or version > latest.version():
            raise NotFound(f"table {name!r} has no version {version}; versions are 0..{latest.version()}")
        try:
            return DeltaTable(self.location(name), version=version, storage_options=self.storage_options)
        except DeltaError as exc:
            raise NotFound(f"version {version} of table {name!r} cannot be loaded: {exc}") from None

    def dataset(self, name: str, version: int | None = None) -> pads.Dataset:
        return self.open(name, version).to_pyarrow_dataset()

    def read(
        self, name: str, version: int | None = None, *, columns: list[str] | None = None,
        where: str | None = None,
    ) -> pa.Table:
        """Read a version; only the named columns and only files that can match ``where`` are read."""
        dataset = self.dataset(name, version)
        _check_columns(name, dataset, columns)
        if where is None:
            return dataset.to_table(columns=columns)
        select = ", ".join(_quote(c) for c in columns) if columns is not None else "*"
        try:
            return query_arrow(f"SELECT {select} FROM t WHERE {where}", t=dataset)
        except duckdb.Error as exc:  # the filter is the user's SQL: any failure of it is theirs to fix
            raise InvalidInput(f"filter {where!r} failed: {str(exc).splitlines()[0]}") from None

    def batches(self, name: str, version: int | None = None, *, columns: list[str] | None = None,
                rows: int = 65_536) -> Iterator[pa.Table]:
        """Stream a version as tables of exactly ``rows`` rows (the last one may be shorter), in file order.

        Memory holds about one chunk: the scan reads no file or batch ahead, and a chunk is sliced out of the
        batches read so far (zero copy), so the caller's chunks do not depend on how the files were written.
        """
        if rows < 1:
            raise InvalidInput(f"a chunk holds at least one row, not {rows}")
        dataset = self.dataset(name, version)
        _check_columns(name, dataset, columns)
        scan = dataset.to_batches(columns=columns, batch_size=min(rows, SCAN_BATCH_ROWS), batch_readahead=0,
                                  fragment_readahead=0)
        return _rechunk(scan, rows)

    def files(self, name: str, version: int | None = None) -> list[str]:
        return self.open(name, version).file_uris()

    def vacuum(
        self, name: str, *, retention_hours: int, keep_versions: list[int], dry_run: bool,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Remove files no longer needed, except those of ``keep_versions``; returns the files removed.

        Delta records a vacuum as commits of its own; ``metadata`` tags them like any keel commit.
        """
        table = self.latest(name)
        try:
            return table.vacuum(
                retention_hours=retention_hours,
                dry_run=dry_run,
                enforce_retention_duration=False,
                keep_versions=sorted(set(keep_versions)),
                commit_properties=CommitProperties(custom_metadata=_stringify(metadata or {})),
            )
        except DeltaError as exc:
            raise StorageError(f"vacuum of table {name!r} failed: {exc}") from exc

    def optimize(self, name: str, *, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Compact small files into large ones (Delta OPTIMIZE); one commit that changes no rows."""
        try:
            return self.latest(name).optimize.compact(
                commit_properties=CommitProperties(custom_metadata=_stringify(metadata or {})))
        except DeltaError as exc:
            raise StorageError(f"optimize of table {name!r} failed: {exc}") from exc

    def _cache(self) -> dict[str, DeltaTable]:
        if not hasattr(self._handles, "tables"):
            self._handles.tables = {}
        return self._handles.tables

    def _open(self, name: str) -> DeltaTable:
        try:
            return DeltaTable(self.location(name), storage_options=self.storage_options)
        except TableNotFoundError:
            raise NotFound(f"table {name!r} has no data at {self.location(name)}") from None


_duck = threading.local()
_duck_connections: list[Any] = []  # every thread's, closed at exit: a live one destroyed with its thread aborts


@atexit.register
def _close_duck_connections() -> None:
    while _duck_connections:
        with contextlib.suppress(Exception):
            _duck_connections.pop().close()


def query_arrow(sql: str, **sources: Any) -> pa.Table:
    """Run DuckDB SQL over Arrow sources with file-system access off (user SQL cannot read files).

    One connection per thread is kept: opening one costs ~10 ms, more than most queries here.
    """
    con = getattr(_duck, "con", None)
    if con is None:
        con = _duck.con = duckdb.connect(config={"enable_external_access": False, "lock_configuration": True})
        _duck_connections.append(con)
    for key, value in sources.items():
        con.register(key, value)
    try:
        return utc_labels(con.sql(sql).to_arrow_table())
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
        raise InvalidInput(f"invalid filter or query: {str(exc).splitlines()[0]}") from None
    finally:
        for key in sources:
            con.unregister(key)


def _check_columns(name: str, dataset: pads.Dataset, columns: list[str] | None) -> None:
    if columns is not None:
        missing = [c for c in columns if c not in dataset.schema.names]
        if missing:
            raise InvalidInput(
                f"table {name!r} has no column(s) {', '.join(missing)}; it has {', '.join(dataset.schema.names)}"
            )


def _rechunk(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Batches of any sizes as tables of ``rows`` rows (the last one shorter), holding at most one chunk."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def _readable(data: pa.Table | Callable[[], pa.RecordBatchReader]) -> pa.Table | pa.RecordBatchReader:
    return data() if callable(data) else data


def utc_labels(table: pa.Table) -> pa.Table:
    """DuckDB labels zoned timestamps with the process's local time zone (its TimeZone setting, which needs the
    ICU extension to change); keel's are UTC. Relabelling is free: the stored instants are the same, and only
    the zoned timestamp columns are touched."""
    for index, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_timestamp(kind) and kind.tz is not None and kind.tz != "UTC":
            utc = pa.timestamp(kind.unit, tz="UTC")
            table = table.set_column(index, pa.field(field.name, utc, field.nullable, field.metadata),
                                     table.column(index).cast(utc))
    return table


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _from_millis(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _stringify(values: Mapping[str, Any]) -> dict[str, str]:
    return {f"keel.{k}": str(v) for k, v in values.items() if v is not None}
