"""Point-in-time correct joins: each entity row gets, per feature, the latest value known at its timestamp.

Two steps, each one DuckDB query, never a Python loop:

1. ``one_row_per_instant`` reduces a view's rows to one per (join keys, event timestamp): the greatest
   ``created_timestamp`` wins, then the row read last. It depends only on the view version and its source
   table version, both immutable, so the service computes it once and keeps it (features/frames.py).
2. ``point_in_time_join`` joins the entity rows to each reduced view with ``ASOF LEFT JOIN`` on the join
   keys and ``entity_ts >= event_ts``. A value older than the view's ttl (``event_ts < entity_ts - ttl``)
   is null, as is a key with no value at or before the entity's timestamp. Rows come back in the entity
   table's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from keel.errors import InvalidInput
from keel.storage.tables import query_arrow

__all__ = ["ViewInput", "one_row_per_instant", "point_in_time_join"]

_ROW = "__keel_entity_row"
_ORDER = "__keel_source_row"


@dataclass(frozen=True)
class ViewInput:
    """One view's rows for a join (already ``one_row_per_instant``): ``features`` come out named ``outputs``."""

    name: str
    rows: pa.Table
    join_keys: list[str]
    timestamp: str
    features: list[str]
    outputs: list[str] = field(default_factory=list)
    ttl: timedelta | None = None
    entity_keys: list[str] | None = None  # the entity table's columns for join_keys (default: the same names)

    def output_names(self) -> list[str]:
        return self.outputs or self.features


def one_row_per_instant(rows: pa.Table, join_keys: list[str], timestamp: str,
                        created_timestamp: str | None = None) -> pa.Table:
    """``rows`` less those superseded at the same instant (same keys and event timestamp): the greatest
    ``created_timestamp`` (nulls lose) wins, then the row that comes last in ``rows``. Rows without an event
    timestamp can never be joined and are dropped."""
    order = [f"{_q(created_timestamp)} DESC NULLS LAST"] if created_timestamp else []
    partition = ", ".join(_q(k) for k in [*join_keys, timestamp])
    columns = ", ".join(_q(c) for c in rows.column_names)
    ordered = rows.append_column(_ORDER, pa.array(np.arange(rows.num_rows)))
    try:
        return query_arrow(f"SELECT {columns} FROM src WHERE {_q(timestamp)} IS NOT NULL QUALIFY row_number() OVER "
                           f"(PARTITION BY {partition} ORDER BY {', '.join([*order, f'{_ORDER} DESC'])}) = 1",
                           src=ordered)
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot order the rows by {timestamp!r}: {str(exc).splitlines()[0]}") from None


def point_in_time_join(entities: pa.Table, timestamp: str, views: list[ViewInput]) -> pa.Table:
    """``entities`` (any columns, ``timestamp`` among them) with each view's features added."""
    if timestamp not in entities.column_names:
        raise InvalidInput(f"the entity rows have no timestamp column {timestamp!r}")
    sources: dict[str, Any] = {"e": entities.append_column(_ROW, pa.array(np.arange(entities.num_rows)))}
    selects, joins = [f'e.{_q(c)}' for c in entities.column_names], []
    ctes = []
    for i, view in enumerate(views):
        alias, ts = f"v{i}", f"__keel_ts_{i}"
        keys = view.join_keys
        entity_keys = view.entity_keys or keys
        sources[f"src{i}"] = view.rows
        columns = ", ".join([*(_q(k) for k in keys), f"{_q(view.timestamp)} AS {ts}",
                             *(f"{_q(f)} AS {_q(f'__keel_f{i}_{j}')}" for j, f in enumerate(view.features))])
        ctes.append(f"{alias} AS (SELECT {columns} FROM src{i})")
        on = " AND ".join([*(f"e.{_q(ek)} = {alias}.{_q(k)}" for ek, k in zip(entity_keys, keys, strict=True)),
                           f"e.{_q(timestamp)} >= {alias}.{ts}"])
        joins.append(f"ASOF LEFT JOIN {alias} ON {on}")
        fresh = "TRUE" if view.ttl is None else \
            f"{alias}.{ts} >= e.{_q(timestamp)} - INTERVAL {int(view.ttl / timedelta(microseconds=1))} MICROSECONDS"
        for j, out in enumerate(view.output_names()):
            selects.append(f"CASE WHEN {fresh} THEN {alias}.{_q(f'__keel_f{i}_{j}')} END AS {_q(out)}")
    sql = (f"WITH {', '.join(ctes)} " if ctes else "") + \
        f"SELECT {', '.join(selects)}, e.{_ROW} FROM e {' '.join(joins)}"
    try:
        joined = query_arrow(sql, **sources)
    except duckdb.Error as exc:
        raise InvalidInput(f"the point-in-time join failed: {str(exc).splitlines()[0]} (do the entity rows' key "
                           "and timestamp types match the views'?)") from None
    return _in_entity_order(joined)


def _in_entity_order(joined: pa.Table) -> pa.Table:
    """The rows back in the entity rows' order: the joins scramble it, and an O(n) inverse permutation of the
    carried row numbers costs less than asking DuckDB to sort."""
    rows = joined[_ROW].to_numpy()
    order = np.empty(len(rows), dtype=np.int64)
    order[rows] = np.arange(len(rows), dtype=np.int64)
    return joined.drop_columns([_ROW]).take(pa.array(order))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
