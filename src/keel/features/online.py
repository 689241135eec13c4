"""The online side: materialise each view's latest value per entity into the online store, read values back
with a status each, and check that what is online equals what the offline join says.

Entity keys and values are encoded by DuckDB, a batch at a time (never a Python loop over rows): a key is
the join key values as text (several joined by U+001F), a value is a JSON array of the features in the
view's order. Each view version has its own namespace, so a changed definition never reads stale rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pydantic_core

from keel.errors import InvalidInput
from keel.features.model import FeatureViewInfo
from keel.storage.tables import query_arrow

__all__ = ["KEY_SEPARATOR", "OnlineResult", "Serving", "SkewReport", "as_utc", "decode_value", "encoded_batches",
           "entity_key", "equal", "latest_per_entity", "namespace", "sample_keys"]

KEY_SEPARATOR = "\x1f"
BATCH_ROWS = 10_000
STATUSES = ("present", "missing", "expired")


def namespace(info: FeatureViewInfo, registry: str) -> str:
    """Where a view version's rows live online: per registry (one online store may serve several workspaces),
    per view version (a changed definition never reads rows of another)."""
    return f"{registry}/{info.name}@{info.version}"


def latest_per_entity(info: FeatureViewInfo, rows: pa.Table, start: datetime | None, end: datetime) -> pa.Table:
    """Per entity, the row with the latest event timestamp in [start, end)."""
    ts, keys = info.definition["timestamp"], info.join_keys
    where = f'"{ts}" < $end' + (f' AND "{ts}" >= $start' if start is not None else "")
    partition = ", ".join(f'"{k}"' for k in keys)
    sql = (f"SELECT * FROM src WHERE {where.replace('$end', _ts_literal(end)).replace('$start', _ts_literal(start))} "
           f'QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY "{ts}" DESC) = 1')
    return query_arrow(sql, src=rows)


def encoded_batches(info: FeatureViewInfo, latest: pa.Table) -> Iterator[tuple[list[str], np.ndarray, list[bytes]]]:
    """(keys, event timestamps in µs, payloads), ``BATCH_ROWS`` at a time, encoded by DuckDB."""
    keys, ts = info.join_keys, info.definition["timestamp"]
    for name in keys:
        kind = latest.schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise InvalidInput(f"feature view {info.name!r}: join key {name!r} is {kind}; online keys must be "
                               "integers or strings")
    key_sql = " || chr(31) || ".join(f'CAST("{k}" AS VARCHAR)' for k in keys)
    values = " || ',' || ".join(_json_value(f) for f in info.features)
    sql = f"SELECT {key_sql} AS k, epoch_us(\"{ts}\") AS t, encode('[' || {values} || ']') AS v FROM src"
    encoded = query_arrow(sql, src=latest)
    for offset in range(0, encoded.num_rows, BATCH_ROWS):
        part = encoded.slice(offset, BATCH_ROWS)
        yield (part["k"].to_pylist(), part["t"].to_numpy(zero_copy_only=False).astype(np.int64),
               part["v"].to_pylist())  # BLOBs: bytes already


def _json_value(feature: dict[str, Any]) -> str:
    column = f'"{feature["name"]}"'
    if feature["dtype"] == "timestamp":
        column = f"epoch_us({column})"
    return f"coalesce(to_json({column})::VARCHAR, 'null')"


def entity_key(info: FeatureViewInfo, row: dict[str, Any]) -> str:
    """The key of one entity row for ``info``'s join keys, as ``encoded_batches`` writes it."""
    parts = []
    for name in info.join_keys:
        if name not in row:
            raise InvalidInput(f"an entity row lacks join key {name!r} (feature view {info.name!r} needs "
                               f"{', '.join(info.join_keys)})")
        value = row[name]
        if isinstance(value, bool) or not isinstance(value, int | str | np.integer):
            raise InvalidInput(f"join key {name!r} must be an integer or a string, not {value!r}")
        parts.append(str(int(value)) if isinstance(value, int | np.integer) else value)
    return KEY_SEPARATOR.join(parts)


class Serving:
    """What a lookup needs of a view version, computed once: namespace, join keys, ttl, feature positions."""

    def __init__(self, info: FeatureViewInfo, registry: str) -> None:
        self.info, self.namespace, self.keys = info, namespace(info, registry), info.join_keys
        ttl = info.ttl
        self.ttl_us = None if ttl is None else int(ttl / timedelta(microseconds=1))
        self.position = {f["name"]: i for i, f in enumerate(info.features)}
        self.timestamps = {f["name"] for f in info.features if f["dtype"] == "timestamp"}

    def key(self, row: dict[str, Any]) -> str:
        if len(self.keys) == 1:  # the common case, without building a list
            value = row.get(self.keys[0], _ABSENT)
            if type(value) is int:
                return str(value)
            if type(value) is str:
                return value
        return entity_key(self.info, row)

    def lookup(self, store: Any, entity_rows: list[dict[str, Any]], wanted: list[tuple[str, str]], now_us: int,
               values: dict[str, list[Any]], statuses: dict[str, list[str]],
               stamps: dict[str, list[datetime | None]]) -> None:
        """Read ``entity_rows`` once and fill each wanted column's values, statuses and event times: one
        store read, one JSON parse for all rows, and a list comprehension per feature."""
        found = store.read(self.namespace, [self.key(row) for row in entity_rows])
        cutoff = None if self.ttl_us is None else now_us - self.ttl_us
        status = ["missing" if h is None else "expired" if cutoff is not None and h[0] < cutoff else "present"
                  for h in found]
        present = [h[1] for h, s in zip(found, status, strict=True) if s == "present"]
        decoded = iter(pydantic_core.from_json(b"[" + b",".join(present) + b"]", allow_inf_nan=True)) \
            if present else iter(())
        rows = [next(decoded) if s == "present" else None for s in status]
        at = [None if h is None else _EPOCH + timedelta(microseconds=h[0]) for h in found]
        for feature, column in wanted:
            i = self.position[feature]
            column_values = [None if row is None else row[i] for row in rows]
            if feature in self.timestamps:
                column_values = [None if v is None else _EPOCH + timedelta(microseconds=v) for v in column_values]
            values[column], statuses[column], stamps[column] = column_values, status, at


_ABSENT = object()
_EPOCH = datetime.fromtimestamp(0, UTC)


def decode_value(payload: bytes, info: FeatureViewInfo) -> list[Any]:
    values = pydantic_core.from_json(payload, allow_inf_nan=True)
    for i, feature in enumerate(info.features):
        if feature["dtype"] == "timestamp" and values[i] is not None:
            values[i] = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=values[i])
    return values


@dataclass
class OnlineResult:
    """Values in the order asked: ``values[feature][i]`` for entity row i, and a status beside each one."""

    entity_rows: list[dict[str, Any]]
    features: list[str]  # output columns, in the order asked
    values: dict[str, list[Any]]
    statuses: dict[str, list[str]]
    event_timestamps: dict[str, list[datetime | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, list[Any]]:
        keys = {k for row in self.entity_rows for k in row}
        out: dict[str, list[Any]] = {k: [row.get(k) for row in self.entity_rows] for k in sorted(keys)}
        out.update(self.values)
        return out

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame(self.to_dict())

    def to_json(self) -> dict[str, Any]:
        """The REST answer: per entity row, per feature, ``{value, status, event_timestamp}``."""
        rows = []
        for i, entity in enumerate(self.entity_rows):
            rows.append({"entity": entity, "features": {f: {
                "value": _jsonable(self.values[f][i]), "status": self.statuses[f][i],
                "event_timestamp": _jsonable((self.event_timestamps.get(f) or [None] * (i + 1))[i])}
                for f in self.features}})
        return {"features": self.features, "rows": rows}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class SkewReport:
    """Online values against the offline point-in-time values at materialisation time, for sampled entities."""

    view: str
    version: int
    materialized_until: datetime | None
    checked: int
    mismatches: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    if a is None or b is None:
        return a is None and b is None
    return bool(a == b)


def _ts_literal(value: datetime | None) -> str:
    if value is None:
        return "NULL"
    return f"TIMESTAMPTZ '{value.astimezone(UTC).isoformat()}'"


def as_utc(value: datetime | str | None, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{what} {value!r} is not an ISO 8601 time, e.g. 2024-05-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise InvalidInput(f"{what} {value} is naive; give a UTC time (with Z or +00:00)")
    return value.astimezone(UTC)


def sample_keys(keys: Sequence[str], n: int, seed: int = 0) -> list[str]:
    if len(keys) <= n:
        return list(keys)
    return [keys[i] for i in np.random.default_rng(seed).choice(len(keys), n, replace=False)]
