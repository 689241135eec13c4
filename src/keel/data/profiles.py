"""Statistics of a table version, computed in DuckDB in one pass per kind (never a Python loop).

Two things live here because they are both "summaries of the rows":
- the profile (per column: count, nulls, distinct, min/max/mean/std, quantiles, top values), which
  later issues use as the monitoring baseline;
- the content hash: two independent 64-bit sums of row hashes (order-independent), so an append's
  hash is the previous version's hash plus the batch's, without re-reading the table.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from keel.storage.tables import query_arrow

__all__ = ["QUANTILES", "add_hashes", "compute_profile", "content_hash"]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP_VALUES = 10
QUANTILE_SAMPLE = 100_000  # quantiles are exact up to this many rows, else from evenly spaced rows
_MOD = 1 << 64


def content_hash(table: pa.Table, columns: list[str]) -> str:
    """Order-independent hash of the rows over ``columns`` (32 hex digits)."""
    if table.num_rows == 0 or not columns:
        return f"{0:032x}"
    expr = ", ".join(_q(c) for c in columns)
    sums = query_arrow(  # one hash per row; the second sum re-hashes it, so both are independent
        f"WITH r AS (SELECT hash({expr}) AS h FROM t) SELECT sum(h::HUGEINT) AS a, sum(hash(h)::HUGEINT) AS b FROM r",
        t=table,
    ).to_pylist()[0]
    return f"{int(sums['a']) % _MOD:016x}{int(sums['b']) % _MOD:016x}"


def add_hashes(a: str, b: str) -> str:
    """The hash of the union of two row sets (what an append does to a version's hash)."""
    high = (int(a[:16], 16) + int(b[:16], 16)) % _MOD
    low = (int(a[16:], 16) + int(b[16:], 16)) % _MOD
    return f"{high:016x}{low:016x}"


def compute_profile(table: pa.Table | Any, columns: list[str] | None = None) -> dict[str, Any]:
    """Profile ``columns`` of an Arrow table or dataset: {"rows": n, "columns": {name: stats}}."""
    schema = table.schema
    names = [n for n in (columns or schema.names)]
    if not names:
        return {"rows": 0, "columns": {}}
    selects = ["count(*) AS __rows"]
    for i, name in enumerate(names):
        kind = schema.field(name).type
        raw = _q(name)
        # NaN and ±inf are not values to average: they are counted apart and left out of every statistic
        col = f"(CASE WHEN isnan({raw}) OR isinf({raw}) THEN NULL ELSE {raw} END)" \
            if pa.types.is_floating(kind) else raw
        selects += [f"count({col}) AS c{i}_count", f"approx_count_distinct({col}) AS c{i}_distinct"]
        if _numeric(kind):
            selects += [
                f"min({col})::DOUBLE AS c{i}_min", f"max({col})::DOUBLE AS c{i}_max",
                f"avg({col})::DOUBLE AS c{i}_mean", f"stddev_samp({col})::DOUBLE AS c{i}_std",
            ]
            if pa.types.is_floating(kind):
                selects += [f"count_if(isnan({raw})) AS c{i}_nan", f"count_if(isinf({raw})) AS c{i}_inf"]
        elif pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            selects += [f"min({col}) AS c{i}_min", f"max({col}) AS c{i}_max"]
    row = query_arrow(f"SELECT {', '.join(selects)} FROM t", t=table).to_pylist()[0]
    row.update(_quantiles(table, [(i, n) for i, n in enumerate(names) if _numeric(schema.field(n).type)]))
    rows = int(row["__rows"])
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        kind = schema.field(name).type
        nan, inf = int(row.get(f"c{i}_nan") or 0), int(row.get(f"c{i}_inf") or 0)
        stats: dict[str, Any] = {
            "dtype": str(kind),
            "count": int(row[f"c{i}_count"]),
            "nulls": rows - int(row[f"c{i}_count"]) - nan - inf,
            "distinct": int(row[f"c{i}_distinct"] or 0),
        }
        if f"c{i}_nan" in row:
            stats["nan"], stats["inf"] = nan, inf
        for key in ("min", "max", "mean", "std"):
            if f"c{i}_{key}" in row:
                stats[key] = _plain(row[f"c{i}_{key}"])
        if row.get(f"c{i}_q") is not None:
            stats["quantiles"] = dict(zip((str(q) for q in QUANTILES), row[f"c{i}_q"], strict=True))
        out[name] = stats
    _add_top_values(table, names, out)
    return {"rows": rows, "columns": out}


def _quantiles(table: Any, numeric: list[tuple[int, str]]) -> dict[str, Any]:
    """Exact quantiles of at most QUANTILE_SAMPLE evenly spaced rows (a t-digest over every row costs
    more than writing the table; on sorted data an even spacing still spans the whole range)."""
    if not numeric:
        return {}
    data = table.select([n for _, n in numeric]) if isinstance(table, pa.Table) \
        else table.to_table(columns=[n for _, n in numeric])
    if data.num_rows > QUANTILE_SAMPLE:
        data = data.take(np.linspace(0, data.num_rows - 1, QUANTILE_SAMPLE).astype(np.int64))
    selects = []
    for i, name in numeric:
        raw = _q(name)
        col = f"(CASE WHEN isnan({raw}) OR isinf({raw}) THEN NULL ELSE {raw} END)" \
            if pa.types.is_floating(data.schema.field(name).type) else raw
        selects.append(f"quantile_cont({col}, {list(QUANTILES)})::DOUBLE[] AS c{i}_q")
    return query_arrow(f"SELECT {', '.join(selects)} FROM t", t=data).to_pylist()[0]


def _add_top_values(table: Any, names: list[str], out: dict[str, Any]) -> None:
    """Most frequent values of categorical columns, in one UNION ALL query."""
    categorical = [n for n in names if _categorical(table.schema.field(n).type)]
    if not categorical:
        return
    parts = [
        f"(SELECT {i} AS col, {_q(n)}::VARCHAR AS value, count(*) AS n FROM t WHERE {_q(n)} IS NOT NULL "
        f"GROUP BY 2 ORDER BY 3 DESC, 2 LIMIT {TOP_VALUES})"
        for i, n in enumerate(categorical)
    ]
    result = query_arrow(" UNION ALL ".join(parts), t=table).to_pydict()
    for name in categorical:
        out[name]["top_values"] = []
    for col, value, n in zip(result["col"], result["value"], result["n"], strict=True):
        out[categorical[col]]["top_values"].append({"value": value, "count": int(n)})


def _plain(value: Any) -> Any:
    """JSON-ready: times as ISO 8601 in UTC, whatever DuckDB's session time zone is."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _categorical(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind) \
        or pa.types.is_dictionary(kind)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
