"""Leakage-safe splits, as the talk asks: by time when there is time, by group when rows share an
entity, otherwise stratified random with a recorded seed — and duplicates checked before splitting.

Everything here is a pure function of an Arrow table that carries keel's row ids, so the same table
version, parameters and seed give the same split, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.data.arrow_types import normalize_time_column
from keel.data.model import ROW_ID, SPLIT_PARTS
from keel.errors import InvalidInput, LeakageError
from keel.storage.tables import query_arrow

__all__ = ["SplitPlan", "parse_fractions", "plan_split"]

MAX_CLASSES = 20  # a target with more distinct values is binned into quantiles for stratification
REGRESSION_BINS = 10


@dataclass(frozen=True)
class SplitPlan:
    """Which row ids go to which part, and the facts needed to reproduce and audit it."""

    row_ids: np.ndarray
    parts: np.ndarray  # int8 index into SPLIT_PARTS, per row id
    method: str
    params: dict[str, Any]
    counts: dict[str, Any]

    def to_arrow(self) -> pa.Table:
        return pa.table({ROW_ID: pa.array(self.row_ids, pa.int64()), "part": pa.array(self.parts, pa.int8())})


def parse_fractions(fractions: str | list[float] | tuple[float, ...]) -> tuple[float, ...]:
    """'0.7,0.15,0.15' or a sequence → two or three fractions in (0, 1) that sum to 1."""
    if isinstance(fractions, str):
        try:
            values = tuple(float(x) for x in fractions.split(","))
        except ValueError:
            raise InvalidInput(f"fractions {fractions!r} must be numbers like 0.7,0.15,0.15") from None
    else:
        try:
            values = tuple(float(x) for x in fractions)
        except (TypeError, ValueError):
            raise InvalidInput(f"fractions {fractions!r} must be numbers like (0.7, 0.15, 0.15)") from None
    if len(values) not in (2, 3) or any(not 0 < v < 1 for v in values):
        raise InvalidInput(
            f"fractions {values} must be two or three numbers between 0 and 1 (train, [validation,] test)")
    if abs(sum(values) - 1.0) > 1e-6:
        raise InvalidInput(f"fractions {values} sum to {sum(values):g}, not 1; e.g. 0.7,0.15,0.15")
    return values


def plan_split(
    table: pa.Table,
    *,
    target: str,
    fractions: tuple[float, ...],
    time_column: str | None = None,
    group: str | None = None,
    gap: timedelta | None = None,
    seed: int = 42,
    exclude_from_duplicates: tuple[str, ...] = (),
    dedupe: bool = False,
    allow_duplicates: bool = False,
) -> SplitPlan:
    """Assign every row of ``table`` to a part; raise LeakageError on cross-part duplicates."""
    _check_columns(table, target, time_column, group, gap)
    if time_column:
        table = normalize_time_column(table, time_column)  # any unit, zone or date → µs since epoch, UTC
    if time_column and group:
        raise InvalidInput("choose --time-column or --group, not both: a split is by time or by group")
    features = [c for c in table.column_names if c not in {target, ROW_ID, time_column, *exclude_from_duplicates}]
    dup_group = _duplicate_groups(table, features)
    row_ids = table[ROW_ID].to_numpy()
    dropped_duplicates = 0
    if dedupe:
        keep = dup_group == row_ids
        dropped_duplicates = int((~keep).sum())
        table, row_ids, dup_group = table.filter(pa.array(keep)), row_ids[keep], dup_group[keep]
    names = SPLIT_PARTS if len(fractions) == 3 else ("train", "test")
    if time_column:
        parts, method, extra = _by_time(table[time_column], fractions, gap), "time", {"time_column": time_column}
    elif group:
        parts, method, extra = _by_group(table[group], fractions, seed), "group", {"group": group}
    else:
        parts, method, extra = _stratified(table[target], fractions, seed), "stratified", {}
    if len(fractions) == 2:
        parts = np.where(parts == 1, 2, parts).astype(np.int8)  # two parts are train and test
    duplicates = _cross_part_duplicates(dup_group, parts, len(row_ids))
    if duplicates["rows"] and not (allow_duplicates or dedupe):
        raise LeakageError(
            f"{duplicates['rows']} rows ({duplicates['percent']:.2f}%) are exact duplicates on the feature columns "
            f"and would land in different parts; pass --dedupe to keep one copy or --allow-duplicates to accept it",
            details=duplicates,
        )
    placed = parts >= 0
    counts: dict[str, Any] = {name: int((parts == SPLIT_PARTS.index(name)).sum()) for name in names}
    counts.update(dropped_gap=int((~placed).sum()), dropped_duplicates=dropped_duplicates,
                  cross_part_duplicates=duplicates["rows"])
    params = {"target": target, "fractions": list(fractions), "seed": seed, "gap_seconds":
              gap.total_seconds() if gap else None, "dedupe": dedupe, "allow_duplicates": allow_duplicates,
              "duplicate_columns": features, **extra}
    if method == "time":
        params["boundaries"] = _time_boundaries(table[time_column], parts)
    return SplitPlan(row_ids[placed], parts[placed], method, params, counts)


def _check_columns(table: pa.Table, target: str, time_column: str | None, group: str | None,
                   gap: timedelta | None) -> None:
    for what, name in (("target", target), ("time column", time_column), ("group column", group)):
        if name is not None and name not in table.column_names:
            data_columns = [c for c in table.column_names if c != ROW_ID]
            raise InvalidInput(f"{what} {name!r} is not in the data; columns: {', '.join(data_columns)}")
    if gap is not None and not time_column:
        raise InvalidInput("--gap needs --time-column: a gap is a stretch of time between parts")
    if table[target].null_count:
        raise InvalidInput(f"{table[target].null_count} rows have no target {target!r}; fix or drop them first")
    if time_column and table[time_column].null_count:
        raise InvalidInput(
            f"{table[time_column].null_count} rows have no {time_column!r}; a time split needs every time")


def _duplicate_groups(table: pa.Table, features: list[str]) -> np.ndarray:
    """For each row, the smallest row id among the rows equal to it on ``features``."""
    if not features:
        return table[ROW_ID].to_numpy()
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in features)
    result = query_arrow(
        f"SELECT min({ROW_ID}) OVER (PARTITION BY {cols}) AS g, {ROW_ID} FROM t ORDER BY {ROW_ID}", t=table
    )
    order = np.argsort(table[ROW_ID].to_numpy(), kind="stable")
    groups = np.empty(table.num_rows, dtype=np.int64)
    groups[order] = result["g"].to_numpy()
    return groups


def _cross_part_duplicates(groups: np.ndarray, parts: np.ndarray, total: int) -> dict[str, Any]:
    placed = parts >= 0
    g, p = groups[placed], parts[placed]
    if g.size == 0:
        return {"rows": 0, "percent": 0.0, "groups": 0}
    pairs = np.unique(np.stack([g, p]), axis=1)
    uniq, n_parts = np.unique(pairs[0], return_counts=True)
    leaking = uniq[n_parts > 1]
    rows = int(np.isin(g, leaking).sum())
    return {"rows": rows, "percent": 100.0 * rows / max(total, 1), "groups": int(leaking.size)}


def _by_time(times: pa.ChunkedArray, fractions: tuple[float, ...], gap: timedelta | None) -> np.ndarray:
    """Train strictly before validation strictly before test; ties go to the later part."""
    values = pc.cast(times, pa.int64()).to_numpy()  # microseconds (UTC) since the epoch
    ordered = np.sort(values)
    n = len(values)
    cuts = np.cumsum(fractions)[:-1]
    boundaries = [ordered[min(round(c * n), n - 1)] for c in cuts]
    gap_us = int(gap.total_seconds() * 1_000_000) if gap else 0
    parts = np.full(n, -1, dtype=np.int8)
    parts[values < boundaries[0]] = 0
    if len(fractions) == 3:
        parts[(values >= boundaries[0] + gap_us) & (values < boundaries[1])] = 1
        parts[values >= boundaries[1] + gap_us] = 2
    else:
        parts[values >= boundaries[0] + gap_us] = 1
    return parts


def _time_boundaries(times: pa.ChunkedArray, parts: np.ndarray) -> dict[str, Any]:
    out = {}
    for i, name in enumerate(SPLIT_PARTS):
        mask = pa.array(parts == i)
        chosen = times.filter(mask)
        if len(chosen):
            out[name] = [str(pc.min(chosen).as_py()), str(pc.max(chosen).as_py())]
    return out


def _by_group(groups: pa.ChunkedArray, fractions: tuple[float, ...], seed: int) -> np.ndarray:
    """Whole groups go to one part, in a seeded random order, filling parts by row count."""
    if groups.null_count:
        raise InvalidInput(f"{groups.null_count} rows have no group value; a group split needs every group")
    codes = pc.dictionary_encode(groups).combine_chunks().indices.to_numpy()
    n_groups = int(codes.max()) + 1 if codes.size else 0
    sizes = np.bincount(codes, minlength=n_groups)
    order = np.random.default_rng(seed).permutation(n_groups)
    filled_before = (np.cumsum(sizes[order]) - sizes[order]) / max(codes.size, 1)
    group_part = np.empty(n_groups, dtype=np.int8)
    group_part[order] = np.searchsorted(np.cumsum(fractions)[:-1], filled_before, side="right")
    return group_part[codes]


def _stratified(target: pa.ChunkedArray, fractions: tuple[float, ...], seed: int) -> np.ndarray:
    """Random within each stratum (class, or quantile bin for a continuous target)."""
    strata = _strata(target)
    rng = np.random.default_rng(seed)
    parts = np.empty(len(strata), dtype=np.int8)
    cuts = np.cumsum(fractions)[:-1]
    for stratum in np.unique(strata):
        idx = np.flatnonzero(strata == stratum)
        idx = idx[rng.permutation(idx.size)]
        bounds = np.round(cuts * idx.size).astype(int)
        parts[idx] = np.searchsorted(bounds, np.arange(idx.size), side="right")
    return parts


def _strata(target: pa.ChunkedArray) -> np.ndarray:
    encoded = pc.dictionary_encode(target).combine_chunks()
    numeric = pa.types.is_integer(target.type) or pa.types.is_floating(target.type)
    if len(encoded.dictionary) <= MAX_CLASSES or not numeric:
        return encoded.indices.to_numpy()
    values = target.to_numpy()
    edges = np.unique(np.quantile(values, np.linspace(0, 1, REGRESSION_BINS + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")
