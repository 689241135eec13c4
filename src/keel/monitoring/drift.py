"""Data drift between a reference sketch and a window of current rows, per column, as Evidently computes it.

The statistics, thresholds and default test per column mirror Evidently's legacy stattests
(evidently/legacy/calculations/stattests/*.py, ``_get_default_stattest`` in registry.py, ``get_binned_data``
in utils.py), so the numbers agree with Evidently's on the same data. The reference side comes from a
:mod:`keel.monitoring.sketch` (its sample, for numeric columns), so a window never re-reads the reference.
Missing values (null, NaN, ±inf) are dropped before testing, as Evidently does, and reported as missing
rates; a missing-rate change alone never flags drift (nor does it in Evidently): alerting on it is the
monitor's decision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import InvalidInput
from keel.monitoring.sketch import (
    CATEGORICAL,
    NUMERIC,
    ColumnSketch,
    ReferenceSketch,
    as_table,
    category_strings,
    finite_values,
)

__all__ = ["ALLOWED_METHODS", "DEFAULT_THRESHOLDS", "METHODS", "ColumnDrift", "DatasetDrift", "Histogram",
           "chi_squared", "column_drift", "dataset_drift", "default_method", "jensen_shannon", "ks", "psi",
           "sturges_histogram", "wasserstein_normed", "z_proportions"]

METHODS = ("psi", "ks", "wasserstein", "jensenshannon", "chisquare", "z")
# Evidently's allowed_feature_types; its default rule may still pick chisquare/z for a numeric column with
# at most 5 distinct values, and so does default_method
ALLOWED_METHODS = {NUMERIC: ("ks", "wasserstein", "psi", "jensenshannon"),
                   CATEGORICAL: ("chisquare", "z", "psi", "jensenshannon")}
DEFAULT_THRESHOLDS = {"psi": 0.1, "jensenshannon": 0.1, "wasserstein": 0.1, "ks": 0.05, "chisquare": 0.05, "z": 0.05}
DISTANCES = frozenset({"psi", "jensenshannon", "wasserstein"})  # drift when statistic >= threshold
SMALL_REFERENCE = 1000  # Evidently: up to this many reference rows, statistical tests; above, distances
FEW_VALUES = 5  # Evidently: at most this many distinct values (reference and current) -> categorical tests
BIN_BY_VALUE = 20  # Evidently's get_binned_data: numeric columns with <= 20 reference values bin by value
_EXACT_KS_N = 10_000  # scipy's ks_2samp "auto": exact p-value up to this sample size, asymptotic above


# ---- statistics: pure, vectorised functions on numpy arrays ----------------------------------------------


def _fill_zeros(pct: np.ndarray) -> np.ndarray:
    """Evidently's zero fill: 0 -> 0.0001, or min(non-zero) / 1e6 when some percent is already <= 0.0001."""
    pct = np.array(pct, dtype=np.float64)
    nonzero = pct[pct != 0]
    if nonzero.size:
        smallest = nonzero.min()
        pct[pct == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return pct


def psi(reference_pct: np.ndarray, current_pct: np.ndarray) -> float:
    """Population stability index: sum((r - c) * ln(r / c)) over bins, after Evidently's zero fill."""
    r, c = _fill_zeros(reference_pct), _fill_zeros(current_pct)
    return float(np.sum((r - c) * np.log(r / c)))


def jensen_shannon(reference_pct: np.ndarray, current_pct: np.ndarray, base: float | None = None) -> float:
    """Jensen-Shannon distance sqrt((KL(r||m) + KL(c||m)) / 2), m = (r + c) / 2; natural log, as Evidently.

    No zero fill (Evidently bins with ``feel_zeroes=False``); in [0, sqrt(ln 2)] with the natural log.
    """
    from scipy.spatial import distance  # on first use: importing scipy costs a second at every CLI start

    return float(distance.jensenshannon(np.asarray(reference_pct, float), np.asarray(current_pct, float), base))


def _sorted_finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return values if values.size < 2 or bool(np.all(values[1:] >= values[:-1])) else np.sort(values)


def _merged_counts(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge two sorted samples: the merged values and, at each position, how many of u and of v came so far.

    At the last position of a run of equal values the counts equal ``searchsorted(.., side="right")``,
    which is what scipy evaluates; inside a run they are partial, which is why callers only use run ends
    (or multiply by the zero gap to the next value).
    """
    both = np.concatenate((u, v))
    order = np.argsort(both, kind="stable")  # linear: a merge of two sorted runs
    in_u = np.cumsum(order < u.size)
    in_v = np.arange(1, both.size + 1) - in_u
    return both[order], in_u, in_v


def ks(reference_sorted: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: D = max |F_ref - F_cur| and its two-sided p-value (scipy ``ks_2samp``).

    Up to 10,000 values per side this is ``scipy.stats.ks_2samp`` itself (exact p-value); above, D comes
    from one merge of the sorted samples and p from ``kstwo.sf(D, round(n*m/(n+m)))``, which is exactly
    what ks_2samp's "auto" mode computes there, without its two extra sorts and searches.
    """
    u, v = _sorted_finite(reference_sorted), _sorted_finite(current)
    if u.size == 0 or v.size == 0:
        raise InvalidInput("ks needs at least one finite value on each side")
    return _ks_sorted(u, v)


def _ks_sorted(u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    from scipy import stats  # on first use: importing scipy.stats costs a second at every CLI start

    if max(u.size, v.size) <= _EXACT_KS_N:
        res = stats.ks_2samp(u, v)
        return float(res.statistic), float(res.pvalue)
    merged, in_u, in_v = _merged_counts(u, v)
    run_end = np.append(merged[1:] != merged[:-1], True)
    d = float(np.max(np.abs(in_u[run_end] / u.size - in_v[run_end] / v.size)))
    m, n = sorted([float(u.size), float(v.size)], reverse=True)
    return d, float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


def wasserstein_normed(reference: np.ndarray, current: np.ndarray, reference_std: float | None = None) -> float:
    """Evidently's "wasserstein": W1(ref, cur) / max(std(ref), 0.001), W1 = integral of |F_ref - F_cur|.

    W1 is computed as ``scipy.stats.wasserstein_distance`` does (sum of |CDF gap| x gap between merged
    values), on one merge of the sorted samples instead of two argsorts. ``reference_std`` (population std)
    lets a sketch normalise by the full reference's std rather than its sample's; the 0.001 floor is
    Evidently's answer to a constant reference.
    """
    u, v = _sorted_finite(reference), _sorted_finite(current)
    if u.size == 0 or v.size == 0:
        raise InvalidInput("wasserstein needs at least one finite value on each side")
    std = float(np.std(u)) if reference_std is None else float(reference_std)
    return _w1_sorted(u, v) / max(std, 0.001)


def _w1_sorted(u: np.ndarray, v: np.ndarray) -> float:
    merged, in_u, in_v = _merged_counts(u, v)
    return float(np.dot(np.abs(in_u[:-1] / u.size - in_v[:-1] / v.size), np.diff(merged)))


def chi_squared(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Evidently's chisquare: ``scipy.stats.chisquare(cur, ref * n_cur / n_ref)`` over aligned categories.

    A category the reference never had gets expected 0, so statistic inf and p-value 0: drift.
    """
    from scipy import stats  # on first use

    r, c = np.asarray(reference_counts, dtype=np.float64), np.asarray(current_counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = stats.chisquare(c, r * (c.sum() / r.sum()))
    return float(res.statistic), float(res.pvalue)


def z_proportions(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Evidently's "z": two-proportion z-test of "not the first category", counts aligned on sorted categories.

    z = (p1 - p2) / sqrt(P(1 - P)(1/n1 + 1/n2)), P pooled; p = 2(1 - Phi(|z|)). One category on both
    sides (the same one) is no evidence at all: z = 0, p = 1. The p-value does not depend on which of two
    categories comes first.
    """
    r, c = np.asarray(reference_counts, dtype=np.float64), np.asarray(current_counts, dtype=np.float64)
    if r.size <= 1:
        return 0.0, 1.0
    n1, n2 = r.sum(), c.sum()
    p1, p2 = (n1 - r[0]) / n1, (n2 - c[0]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    from scipy import stats

    return float(z), float(2 * (1 - stats.norm.cdf(np.abs(z))))


def sturges_histogram(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> tuple[np.ndarray, ...]:
    """Evidently's numeric bins (Sturges edges over reference + current) and each side's share per bin.

    Binary searches on the sorted samples count exactly as ``np.histogram``: [a, b), the last bin [a, b].
    """
    edges = np.histogram_bin_edges(np.concatenate((reference_sorted, current_sorted)), bins="sturges")

    def share(x: np.ndarray) -> np.ndarray:
        cuts = np.searchsorted(x, edges, side="left")
        cuts[-1] = np.searchsorted(x, edges[-1], side="right")
        return np.diff(cuts) / x.size

    return edges, share(reference_sorted), share(current_sorted)


def _value_counts_sorted(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size == 0:
        return x, np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.append(True, x[1:] != x[:-1]))
    return x[starts], np.diff(np.append(starts, x.size))


def _align(keys: np.ndarray, ref_keys: np.ndarray, ref_counts: np.ndarray) -> np.ndarray:
    """``ref_counts`` looked up at ``keys`` (0 where a key is not in the sorted ``ref_keys``)."""
    if ref_keys.size == 0:
        return np.zeros(keys.size, dtype=np.int64)
    pos = np.minimum(np.searchsorted(ref_keys, keys), ref_keys.size - 1)
    return np.where(ref_keys[pos] == keys, ref_counts[pos], 0)


# ---- results ------------------------------------------------------------------------------------------


def _num(x: float | None) -> float | None:
    """JSON-safe float: NaN and ±inf become None."""
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class Histogram:
    """Reference and current shares on common bins (numeric: ``edges``) or categories, for the report."""

    reference: list[float]
    current: list[float]
    edges: list[float] | None = None
    categories: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift. ``statistic`` is the distance or the test statistic; tests also give ``p_value``."""

    column: str
    kind: str
    method: str | None
    statistic: float
    p_value: float | None
    threshold: float | None
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_missing_rate: float
    current_missing_rate: float | None
    missing_rate_change: float | None  # current - reference; reported, never a drift flag by itself
    new_categories: list[str] = field(default_factory=list)
    histogram: Histogram | None = None
    no_data: bool = False  # no non-missing value on one side: no statistic, not drifted
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "statistic": _num(self.statistic), "p_value": _num(self.p_value)}


@dataclass(frozen=True)
class DatasetDrift:
    """Every sketched column's drift; the dataset drifts when the share of drifted columns >= ``share``."""

    rows: int
    reference_rows: int
    columns: dict[str, ColumnDrift]
    missing_columns: list[str]  # sketched but absent from the window
    number_of_columns: int  # columns with a statistic: the denominator of the share
    number_of_drifted_columns: int
    share_of_drifted_columns: float | None
    share: float
    drifted: bool
    no_data: bool = False  # empty window (or no value in any column): no verdict, never "no drift"
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "columns"}
        return {**out, "missing_columns": list(self.missing_columns),
                "columns": [col.to_dict() for col in self.columns.values()]}  # a list: each names its column


# ---- orchestration ---------------------------------------------------------------------------------------


def default_method(kind: str, reference_rows: int, n_values: int) -> str:
    """Evidently's ``_get_default_stattest``: tests for <= 1000 reference rows, distances above.

    ``n_values`` counts distinct non-missing values of reference and current together.
    """
    if reference_rows <= SMALL_REFERENCE:
        if kind == CATEGORICAL or n_values <= FEW_VALUES:
            return "chisquare" if n_values > 2 else "z"
        return "ks"
    if kind == NUMERIC and n_values > FEW_VALUES:
        return "wasserstein"
    return "jensenshannon"


def _check_method(sketch: ColumnSketch, method: str | None, threshold: float | None) -> None:
    if method is not None and method not in METHODS:
        raise InvalidInput(f"unknown drift method {method!r} for column {sketch.name!r}; use one of {METHODS}")
    if method not in (None, *ALLOWED_METHODS[sketch.kind]):
        raise InvalidInput(f"method {method!r} does not fit {sketch.kind} column {sketch.name!r}; "
                           f"use one of {ALLOWED_METHODS[sketch.kind]}")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                                  or not math.isfinite(threshold) or threshold < 0):
        raise InvalidInput(f"threshold for column {sketch.name!r} must be a finite number >= 0, got {threshold!r}")


def _to_arrow(values: Any, name: str) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise InvalidInput(f"column {name!r}: expected one-dimensional values, got shape {values.shape}")
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInput(f"column {name!r}: cannot read the current values ({exc})") from exc


def column_drift(
    sketch: ColumnSketch,
    current: np.ndarray | pa.Array | pa.ChunkedArray | pd.Series,
    *,
    method: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Drift of one column: ``method`` (default: Evidently's rule) at ``threshold`` (default: the method's)."""
    _check_method(sketch, method, threshold)
    arr = _to_arrow(current, sketch.name)
    rows = len(arr)
    ref_missing = sketch.missing / sketch.count if sketch.count else 0.0
    base = {"column": sketch.name, "kind": sketch.kind, "reference_rows": sketch.count, "current_rows": rows,
            "reference_missing_rate": ref_missing}
    if sketch.kind == NUMERIC:
        cur = np.sort(finite_values(arr, sketch.name))
        present = cur.size
    else:
        strings = category_strings(arr)
        present = rows - strings.null_count
    cur_missing = (rows - present) / rows if rows else None
    base.update(current_missing_rate=cur_missing,
                missing_rate_change=None if cur_missing is None else cur_missing - ref_missing)
    reason = ("the current window is empty" if rows == 0 else "the current window has no non-missing value"
              if present == 0 else "the reference has no non-missing value" if sketch.present == 0 else None)
    if reason:
        return ColumnDrift(method=method, statistic=math.nan, p_value=None, threshold=threshold, drifted=False,
                           no_data=True, reason=reason, **base)
    calc = _numeric(sketch, cur, method) if sketch.kind == NUMERIC else _categorical(sketch, strings, method)
    method, statistic, p_value, histogram, new = calc
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    if method in DISTANCES:
        drifted = statistic >= limit
    elif method == "ks":
        drifted = p_value <= limit  # Evidently's ks: p_value <= threshold; chisquare and z: p_value < threshold
    else:
        drifted = p_value < limit
    return ColumnDrift(method=method, statistic=statistic, p_value=p_value, threshold=limit, drifted=bool(drifted),
                       new_categories=new, histogram=histogram, **base)


def _numeric(sketch: ColumnSketch, cur: np.ndarray, method: str | None) -> tuple:
    ref = sketch.sample
    edges, ref_pct, cur_pct = sturges_histogram(ref, cur)
    histogram = Histogram(reference=ref_pct.tolist(), current=cur_pct.tolist(), edges=edges.tolist())
    by_value = sketch.distinct <= BIN_BY_VALUE
    if method is None:
        n_values = FEW_VALUES + 1
        if sketch.distinct <= FEW_VALUES:  # only then can the union be that small; count it exactly
            n_values = np.union1d(_value_counts_sorted(ref)[0], _value_counts_sorted(cur)[0]).size
        method = default_method(NUMERIC, sketch.present, n_values)
    if method in ("psi", "jensenshannon", "chisquare", "z") and by_value:  # get_binned_data's by-value branch
        ref_keys, ref_counts = _value_counts_sorted(ref)
        cur_keys, cur_counts = _value_counts_sorted(cur)
        keys = np.union1d(ref_keys, cur_keys)
        r, c = _align(keys, ref_keys, ref_counts), _align(keys, cur_keys, cur_counts)
        ref_pct, cur_pct = r / ref.size, c / cur.size
    if method == "ks":
        return (method, *_ks_sorted(ref, cur), histogram, [])
    if method == "wasserstein":  # normed by the whole reference's std, as Evidently's np.std(reference)
        return method, _w1_sorted(ref, cur) / max(float(sketch.std), 0.001), None, histogram, []
    if method in ("psi", "jensenshannon"):
        return method, (psi if method == "psi" else jensen_shannon)(ref_pct, cur_pct), None, histogram, []
    return (method, *(chi_squared(r, c) if method == "chisquare" else z_proportions(r, c)), histogram, [])


def _categorical(sketch: ColumnSketch, strings: pa.Array | pa.ChunkedArray, method: str | None) -> tuple:
    counted = pc.value_counts(pc.drop_null(strings))
    cur_values, cur_counts = counted.field("values"), counted.field("counts").to_numpy(zero_copy_only=False)
    ref_values = sketch.values_arrow
    keys = pc.unique(pa.concat_arrays([ref_values, cur_values]))
    keys = keys.take(pc.sort_indices(keys))
    ref_at = pc.fill_null(pc.index_in(keys, value_set=ref_values), -1).to_numpy(zero_copy_only=False)
    cur_at = pc.fill_null(pc.index_in(keys, value_set=cur_values), -1).to_numpy(zero_copy_only=False)
    r = np.where(ref_at >= 0, sketch.counts[np.maximum(ref_at, 0)], 0)
    c = np.where(cur_at >= 0, cur_counts[np.maximum(cur_at, 0)], 0)
    ref_pct, cur_pct = r / r.sum(), c / c.sum()
    categories = keys.to_pylist()
    new = [categories[i] for i in np.flatnonzero(r == 0)]
    histogram = Histogram(reference=ref_pct.tolist(), current=cur_pct.tolist(), categories=categories)
    method = method or default_method(CATEGORICAL, sketch.present, len(categories))
    if method in ("psi", "jensenshannon"):
        return method, (psi if method == "psi" else jensen_shannon)(ref_pct, cur_pct), None, histogram, new
    return (method, *(chi_squared(r, c) if method == "chisquare" else z_proportions(r, c)), histogram, new)


def dataset_drift(
    sketch: ReferenceSketch,
    current: pa.Table | pd.DataFrame,
    *,
    methods: dict[str, str] | None = None,
    thresholds: dict[str, float] | None = None,
    share: float = 0.5,
) -> DatasetDrift:
    """Drift of every sketched column in ``current``; the dataset drifts when >= ``share`` of them do."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise InvalidInput(f"share must be in (0, 1], got {share!r}")
    methods, thresholds = dict(methods or {}), dict(thresholds or {})
    unknown = sorted((set(methods) | set(thresholds)) - set(sketch.columns))
    if unknown:
        raise InvalidInput(f"methods/thresholds name columns {unknown} that the reference sketch does not have")
    names = list(current.columns) if isinstance(current, pd.DataFrame) else as_table(current).column_names
    rows = len(current) if isinstance(current, pd.DataFrame) else current.num_rows
    present = [c for c in sketch.columns if c in names]
    missing = [c for c in sketch.columns if c not in names]
    empty = {"rows": rows, "reference_rows": sketch.rows, "share": float(share), "drifted": False,
             "number_of_drifted_columns": 0, "share_of_drifted_columns": None}
    if names and not present:  # a schema problem whatever the size; a window with no columns at all is just empty
        raise InvalidInput(f"no column in common between the reference sketch {sorted(sketch.columns)} "
                           f"and the current window {sorted(map(str, names))}")
    if rows == 0:
        return DatasetDrift(columns={}, missing_columns=missing, number_of_columns=0, no_data=True,
                            reason="the current window is empty", **empty)
    results = {}
    for name in present:
        values = current[name] if isinstance(current, pd.DataFrame) else current.column(name)
        results[name] = column_drift(sketch.columns[name], values, method=methods.get(name),
                                     threshold=thresholds.get(name))
    scored = [r for r in results.values() if not r.no_data]
    if not scored:
        return DatasetDrift(columns=results, missing_columns=missing, number_of_columns=0, no_data=True,
                            reason="no column has a non-missing value on both sides", **empty)
    drifted = sum(r.drifted for r in scored)
    ratio = drifted / len(scored)
    return DatasetDrift(rows=rows, reference_rows=sketch.rows, columns=results, missing_columns=missing,
                        number_of_columns=len(scored), number_of_drifted_columns=drifted,
                        share_of_drifted_columns=ratio, share=float(share), drifted=ratio >= share)
