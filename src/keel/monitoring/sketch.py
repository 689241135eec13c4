"""Reference statistics computed once from the training data, so drift never re-reads the reference.

A sketch holds, per column, what Evidently's drift tests need from the reference and nothing more:
numeric columns keep a sorted sample of their finite values (all of them up to ``max_sample``, so the
statistics are exact for small references and bounded in memory for large ones); categorical columns keep
their value counts. Everything round-trips through plain JSON types.

Column kinds follow Evidently's ``_get_column_type`` (evidently/legacy/utils/data_preprocessing.py):
strings, booleans and dictionaries are categorical; integers with at most 5 distinct values are
categorical (``NUMBER_UNIQUE_AS_CATEGORICAL``); other integers and all floats are numeric. Missing means
null, and for numeric columns also NaN and ±inf, which Evidently drops before any test.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import InvalidInput

__all__ = [
    "CATEGORICAL",
    "KINDS",
    "NUMBER_UNIQUE_AS_CATEGORICAL",
    "NUMERIC",
    "ColumnSketch",
    "ReferenceSketch",
    "as_table",
    "build_sketch",
    "category_strings",
    "finite_values",
]

NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)
NUMBER_UNIQUE_AS_CATEGORICAL = 5  # Evidently: integer columns with this many distinct values or fewer
SKETCH_VERSION = 1

_EMPTY_F = np.empty(0, dtype=np.float64)
_EMPTY_I = np.empty(0, dtype=np.int64)
_EMPTY_F.setflags(write=False)
_EMPTY_I.setflags(write=False)


@dataclass(frozen=True, eq=False)
class ColumnSketch:
    """One reference column. ``sample`` is sorted; ``values`` are sorted category strings with ``counts``."""

    name: str
    kind: str
    count: int  # rows, missing included
    missing: int
    distinct: int  # distinct non-missing values in the whole column (not just the sample)
    sample: np.ndarray = field(default_factory=lambda: _EMPTY_F, repr=False)
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None  # population std (ddof=0): what Evidently divides the Wasserstein distance by
    values: tuple[str, ...] = field(default=(), repr=False)
    counts: np.ndarray = field(default_factory=lambda: _EMPTY_I, repr=False)

    @property
    def present(self) -> int:
        """Non-missing reference rows: the size Evidently's default-test rule looks at."""
        return self.count - self.missing

    @cached_property
    def values_arrow(self) -> pa.Array:
        """The categories as an Arrow array, built once, for vectorised lookups of a window's values."""
        return pa.array(self.values, type=pa.string())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ColumnSketch):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "count": self.count,
                               "missing": self.missing, "distinct": self.distinct}
        if self.kind == NUMERIC:
            out.update(min=self.min, max=self.max, mean=self.mean, std=self.std, sample=self.sample.tolist())
        else:
            out.update(values=list(self.values), counts=self.counts.tolist())
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSketch:
        try:
            kind = data["kind"]
            if kind not in KINDS:
                raise InvalidInput(f"column sketch {data.get('name')!r} has unknown kind {kind!r}; use one of {KINDS}")
            common = {k: data[k] for k in ("name", "count", "missing", "distinct")}
            if kind == NUMERIC:
                sample = np.asarray(data["sample"], dtype=np.float64)
                sample.setflags(write=False)
                return cls(kind=kind, sample=sample, **common,
                           **{k: _opt_float(data.get(k)) for k in ("min", "max", "mean", "std")})
            counts = np.asarray(data["counts"], dtype=np.int64)
            counts.setflags(write=False)
            values = tuple(str(v) for v in data["values"])
            if len(values) != counts.size:
                raise InvalidInput(f"column sketch {data['name']!r}: {len(values)} values but {counts.size} counts")
            return cls(kind=kind, values=values, counts=counts, **common)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a column sketch ({exc!r}); build one with keel.monitoring.sketch.build_sketch") \
                from exc


@dataclass(frozen=True)
class ReferenceSketch:
    """All sketched columns of one reference table, and its row count."""

    columns: dict[str, ColumnSketch]
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"version": SKETCH_VERSION, "rows": self.rows,
                "columns": {name: col.to_dict() for name, col in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceSketch:
        try:
            if data.get("version", SKETCH_VERSION) != SKETCH_VERSION:
                raise InvalidInput(f"sketch version {data['version']!r} is not supported (expected {SKETCH_VERSION})")
            cols = {name: ColumnSketch.from_dict(col) for name, col in data["columns"].items()}
            return cls(columns=cols, rows=int(data["rows"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"not a reference sketch ({exc!r})") from exc


def build_sketch(
    table: pa.Table | pd.DataFrame,
    columns: list[str] | None = None,
    *,
    kinds: dict[str, str] | None = None,
    max_sample: int = 100_000,
    seed: int = 0,
) -> ReferenceSketch:
    """Sketch ``columns`` (default: every column of a supported type) of the reference ``table``."""
    table = as_table(table)
    if isinstance(max_sample, bool) or not isinstance(max_sample, int) or max_sample < 1:
        raise InvalidInput(f"max_sample must be a positive integer, got {max_sample!r}")
    names = list(table.column_names if columns is None else columns)
    unknown = [c for c in names if c not in table.column_names]
    if unknown:
        raise InvalidInput(f"columns {unknown} are not in the reference table; it has {table.column_names}")
    kinds = dict(kinds or {})
    bad = {c: k for c, k in kinds.items() if k not in KINDS or c not in names}
    if bad:
        raise InvalidInput(f"kinds {bad} must name sketched columns and be one of {KINDS}")
    out: dict[str, ColumnSketch] = {}
    for name in names:
        col = table.column(name)
        kind = kinds.get(name) or _infer_kind(col)
        if kind is None:
            if columns is not None:
                raise InvalidInput(f"column {name!r} has type {col.type}, which has no drift statistics; "
                                   f"pass kinds={{{name!r}: 'categorical'}} to treat it as categories")
            continue
        if kind == NUMERIC:
            out[name] = _numeric_sketch(name, col, max_sample, _column_rng(seed, name))
        else:
            out[name] = _categorical_sketch(name, col)
    return ReferenceSketch(columns=out, rows=table.num_rows)


def as_table(table: pa.Table | pd.DataFrame) -> pa.Table:
    """An Arrow table from an Arrow table or a pandas frame (index dropped)."""
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pd.DataFrame):
        try:
            return pa.Table.from_pandas(table, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise InvalidInput(f"cannot read the frame as Arrow: {exc}") from exc
    raise InvalidInput(f"expected a pyarrow.Table or pandas.DataFrame, got {type(table).__name__}")


def finite_values(col: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """The finite float64 values of a numeric column (nulls, NaN and ±inf are missing, as in Evidently)."""
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
            or pa.types.is_boolean(t) or pa.types.is_null(t)):
        raise InvalidInput(f"column {name!r} is numeric in the reference but holds {t} values here")
    values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def category_strings(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A categorical column as strings, null where missing (NaN counts as missing; booleans become true/false)."""
    if pa.types.is_floating(col.type):
        col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
    try:
        return pc.cast(col, pa.string())
    except pa.ArrowException as exc:
        raise InvalidInput(f"cannot read {col.type} values as categories: {exc}") from exc


def _infer_kind(col: pa.ChunkedArray) -> str | None:
    t = col.type
    if (pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_string_view(t) or pa.types.is_dictionary(t) or pa.types.is_null(t)):
        return CATEGORICAL
    if pa.types.is_integer(t):
        distinct = pc.count_distinct(col, mode="only_valid").as_py()
        return CATEGORICAL if distinct <= NUMBER_UNIQUE_AS_CATEGORICAL else NUMERIC
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return NUMERIC
    return None


def _column_rng(seed: int, name: str) -> np.random.Generator:
    """One generator per (seed, column): a column's sample does not depend on which other columns are sketched."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])


def _numeric_sketch(name: str, col: pa.ChunkedArray, max_sample: int, rng: np.random.Generator) -> ColumnSketch:
    values = np.sort(finite_values(col, name))
    n = values.size
    count = len(col)
    if n == 0:
        return ColumnSketch(name=name, kind=NUMERIC, count=count, missing=count, distinct=0)
    distinct = int(np.count_nonzero(np.diff(values))) + 1
    # positions drawn uniformly without replacement; sorting them keeps the sample sorted
    sample = values if n <= max_sample else values[np.sort(rng.choice(n, size=max_sample, replace=False))]
    sample.setflags(write=False)
    return ColumnSketch(
        name=name, kind=NUMERIC, count=count, missing=count - n, distinct=distinct, sample=sample,
        min=float(values[0]), max=float(values[-1]), mean=float(np.mean(values)), std=float(np.std(values)),
    )


def _categorical_sketch(name: str, col: pa.ChunkedArray) -> ColumnSketch:
    strings = category_strings(col)
    missing = strings.null_count
    counts = pc.value_counts(pc.drop_null(strings))
    values = counts.field("values")
    order = pc.sort_indices(values)
    values, freq = values.take(order), counts.field("counts").take(order)
    freq_np = np.asarray(freq.to_numpy(zero_copy_only=False), dtype=np.int64)
    freq_np.setflags(write=False)
    return ColumnSketch(name=name, kind=CATEGORICAL, count=len(col), missing=missing, distinct=len(values),
                        values=tuple(values.to_pylist()), counts=freq_np)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
