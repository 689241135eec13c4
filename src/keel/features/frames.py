"""A view's rows as of exact source versions: read, transformed, checked against the definition, reduced to
one row per instant, and kept.

Source table versions never change, so the rows of (view version, source versions) never do either: they are
computed once per process and kept in a cache bounded in bytes (least recently used out first). Every
training set, materialisation and skew check reads them from here, which is why a second training set over
the same views costs only its join.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from keel.data.service import DataService
from keel.errors import InvalidInput, NotFound, TransformFailed
from keel.features.definitions import resolve_function
from keel.features.model import DTYPES, FeatureViewInfo
from keel.features.pit import one_row_per_instant
from keel.storage.tables import query_arrow

__all__ = ["FrameCache", "ViewRows", "check_shape", "conform", "is_sql", "read_view_rows", "source_tables",
           "sql_tables"]

UTC_US = pa.timestamp("us", tz="UTC")


class ViewRows:
    """A view version's rows (one per keys and instant) and the source table versions they came from."""

    def __init__(self, info: FeatureViewInfo, rows: pa.Table, source_versions: dict[str, int]) -> None:
        self.info, self.rows, self.source_versions = info, rows, source_versions


class FrameCache:
    """Least recently used ViewRows, up to ``max_bytes`` in all; shared by every view of a workspace."""

    def __init__(self, max_bytes: int) -> None:
        self._max, self._items = max_bytes, OrderedDict[tuple[Any, ...], ViewRows]()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], build: Callable[[], ViewRows]) -> ViewRows:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        built = build()
        with self._lock:
            self._items[key] = built
            while len(self._items) > 1 and sum(v.rows.nbytes for v in self._items.values()) > self._max:
                self._items.popitem(last=False)
        return built


def is_sql(source: str) -> bool:
    return source.lstrip().split(None, 1)[0].lower() in ("select", "with", "from") if source.strip() else False


def source_tables(info: FeatureViewInfo) -> list[str]:
    """The keel tables a view's source reads (a SQL source may read several)."""
    source = info.definition["source"]
    return sql_tables(source, info.name) if is_sql(source) else [source]


def sql_tables(sql: str, view: str) -> list[str]:
    """The tables a query reads, from its parse tree (parsed, not bound: any valid query works), less the
    names its CTEs define."""
    found = _parsed_tables(sql)
    if isinstance(found, str):
        raise InvalidInput(f"feature view {view!r}: its source SQL does not parse: {found}")
    return list(found)


@functools.lru_cache(maxsize=256)
def _parsed_tables(sql: str) -> tuple[str, ...] | str:
    """A query's tables (or the parser's message): parsed once per text, not on every training set."""
    with duckdb.connect() as con:  # its own connection: the module's default one is shared by every thread
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        return str(tree.get("error_message"))
    tables: set[str] = set()
    ctes: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE" and node.get("table_name"):
                tables.add(node["table_name"])
            for entry in (node.get("cte_map") or {}).get("map", []):
                ctes.add(entry.get("key"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree["statements"])
    return tuple(sorted(tables - ctes))


def read_view_rows(info: FeatureViewInfo, data: DataService, functions: dict[str, Callable[..., Any]],
                   cache: FrameCache, pins: dict[str, int] | None = None) -> ViewRows:
    """The view's rows at the source versions ``pins`` names (the latest for tables it does not name)."""
    definition = info.definition
    versions = {}
    for table in source_tables(info):
        ref = table if "@" in table or (pins or {}).get(_name(table)) is None else f"{table}@{pins[_name(table)]}"
        found = data.version(ref)
        versions[found.table] = found.version
    key = (info.name, info.version, tuple(sorted(versions.items())))
    return cache.get(key, lambda: ViewRows(info, _compute(info, definition, data, functions, versions), versions))


def _compute(info: FeatureViewInfo, definition: dict[str, Any], data: DataService,
             functions: dict[str, Callable[..., Any]], versions: dict[str, int]) -> pa.Table:
    source = definition["source"]
    if is_sql(source):
        tables = {name: data.read_arrow(f"{name}@{version}") for name, version in versions.items()}
        rows = _run_sql(info, source, tables, "source")
    else:
        (name, version), = versions.items()
        transform = definition.get("transform")
        columns = None if transform else _needed(definition)
        rows = _read(info, data, f"{name}@{version}", columns)
    transform = definition.get("transform")
    if transform and "sql" in transform:
        rows = _run_sql(info, transform["sql"], {"source": rows}, "transform")
    elif transform and "pandas" in transform:
        function = resolve_function(transform["pandas"], info.name, functions)
        try:
            out = function(rows.to_pandas())
        except Exception as exc:
            raise TransformFailed(f"feature view {info.name!r}: its transform {transform['pandas']['name']} raised "
                                  f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(out, pd.DataFrame):
            raise TransformFailed(f"feature view {info.name!r}: its transform returned {type(out).__name__}, "
                                  "not a DataFrame")
        rows = pa.Table.from_pandas(out, preserve_index=False)
    rows = conform(info, rows)
    return one_row_per_instant(rows, info.join_keys, definition["timestamp"], definition.get("created_timestamp"))


def _times(definition: dict[str, Any]) -> list[str]:
    created = definition.get("created_timestamp")
    return [definition["timestamp"], *([created] if created else [])]


def check_shape(info: FeatureViewInfo, data: DataService) -> None:
    """At apply: run the view's SQL (source and transform) on its tables with no rows, and check the result
    has every declared column with a fitting type — the cheap way to refuse a broken view before it is stored.
    A pandas transform is user code: it runs only when rows are computed."""
    definition = info.definition
    transform = definition.get("transform") or {}
    if "pandas" in transform:
        return
    tables = {}
    for table in source_tables(info):
        try:
            tables[_name(table)] = data.read_arrow(table, where="FALSE")
        except NotFound as exc:
            raise InvalidInput(f"feature view {info.name!r}: its source reads {table!r}, which is not a table: "
                               f"{exc}") from None
    source = definition["source"]
    rows = _run_sql(info, source, tables, "source") if is_sql(source) else next(iter(tables.values()))
    if "sql" in transform:
        rows = _run_sql(info, transform["sql"], {"source": rows}, "transform")
    conform(info, rows)


def _needed(definition: dict[str, Any]) -> list[str]:
    keys = [k for e in definition["entities"] for k in e["join_keys"]]
    times = _times(definition)
    return list(dict.fromkeys([*keys, *times, *(f["name"] for f in definition["features"])]))


def _read(info: FeatureViewInfo, data: DataService, ref: str, columns: list[str] | None) -> pa.Table:
    try:
        return data.read_arrow(ref, columns=columns)
    except InvalidInput as exc:
        raise InvalidInput(f"feature view {info.name!r}: its source {ref} lacks a declared column ({exc})") from None


def _run_sql(info: FeatureViewInfo, sql: str, tables: dict[str, pa.Table], what: str) -> pa.Table:
    try:
        return query_arrow(sql, **tables)
    except (duckdb.Error, InvalidInput) as exc:
        raise TransformFailed(f"feature view {info.name!r}: its {what} SQL failed: {str(exc).splitlines()[0]}") \
            from exc


def conform(info: FeatureViewInfo, rows: pa.Table) -> pa.Table:
    """Exactly the view's columns, with the declared types: a missing column, a type that does not match the
    declared dtype, or a naive timestamp is refused with the view and the column named."""
    definition = info.definition
    wanted = _needed(definition)
    missing = [c for c in wanted if c not in rows.column_names]
    if missing:
        raise InvalidInput(f"feature view {info.name!r}: its source lacks declared column(s) {', '.join(missing)}; "
                           f"it has {', '.join(rows.column_names)}")
    rows = rows.select(wanted)
    for column in _times(definition):
        rows = _set(rows, column, _utc(info, column, rows[column]))
    for feature in definition["features"]:
        rows = _set(rows, feature["name"], _typed(info, feature, rows[feature["name"]]))
    return rows


def _utc(info: FeatureViewInfo, column: str, values: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = values.type
    if not pa.types.is_timestamp(kind):
        raise InvalidInput(f"feature view {info.name!r}: {column!r} must be a timestamp, not {kind}")
    if kind.tz is None:
        raise InvalidInput(f"feature view {info.name!r}: {column!r} holds naive timestamps; keel needs UTC "
                           "(tz-aware) times, e.g. pd.to_datetime(..., utc=True)")
    return values.cast(UTC_US)


def _typed(info: FeatureViewInfo, feature: dict[str, Any], values: pa.ChunkedArray) -> pa.ChunkedArray:
    dtype, kind = feature["dtype"], values.type
    allowed = DTYPES[dtype]
    if str(kind) not in allowed and not (pa.types.is_null(kind)):
        raise InvalidInput(f"feature view {info.name!r}: feature {feature['name']!r} is declared {dtype} but its "
                           f"column is {kind}")
    if dtype == "timestamp":
        return values.cast(UTC_US)
    target = {"int64": pa.int64(), "int32": pa.int32(), "float64": pa.float64(), "float32": pa.float32(),
              "bool": pa.bool_(), "string": pa.string()}[dtype]
    return values.cast(target)


def _set(rows: pa.Table, column: str, values: pa.ChunkedArray) -> pa.Table:
    return rows.set_column(rows.column_names.index(column), column, values)


def _name(table: str) -> str:
    return table.split("@", 1)[0]
