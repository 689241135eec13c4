"""Drift statistics against scipy and against Evidently's rules (mirrored below from its legacy stattests)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from keel.errors import InvalidInput
from keel.monitoring.drift import (
    chi_squared,
    column_drift,
    dataset_drift,
    default_method,
    jensen_shannon,
    ks,
    psi,
    sturges_histogram,
    wasserstein_normed,
    z_proportions,
)
from keel.monitoring.sketch import build_sketch

TOL = {"rel": 1e-9, "abs": 1e-9}

# ---- Evidently, mirrored (evidently/legacy/calculations/stattests: utils.py, psi.py, jensenshannon.py, ...) ----


def ev_binned(ref: pd.Series, cur: pd.Series, numeric: bool, feel_zeroes: bool = True):
    if numeric and ref.nunique() > 20:
        bins = np.histogram_bin_edges(pd.concat([ref, cur], axis=0).values, bins="sturges")
        rp = np.histogram(ref, bins)[0] / len(ref)
        cp = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = list(set(ref.dropna().unique()) | set(cur.dropna().unique()))
        rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
        cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
        rp = np.array([rd[k] / len(ref) for k in keys])
        cp = np.array([cd[k] / len(cur) for k in keys])
    if feel_zeroes:
        for p in (rp, cp):
            m = min(p[p != 0])
            np.place(p, p == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return rp, cp


def ev_stat(method: str, ref: pd.Series, cur: pd.Series, numeric: bool) -> float:
    """Evidently's drift_score: the distance, or the p-value for tests."""
    if method == "psi":
        rp, cp = ev_binned(ref, cur, numeric)
        return float(np.sum((rp - cp) * np.log(rp / cp)))
    if method == "jensenshannon":
        return float(distance.jensenshannon(*ev_binned(ref, cur, numeric, False), None))
    if method == "wasserstein":
        return stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    if method == "ks":
        return float(stats.ks_2samp(ref, cur)[1])
    keys = list(set(ref.dropna().unique()) | set(cur.dropna().unique()))
    if method == "chisquare":
        rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
        cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
        k = cur.shape[0] / ref.shape[0]
        with np.errstate(divide="ignore"):
            return float(stats.chisquare([cd[x] for x in keys], [rd[x] * k for x in keys])[1])
    if ref.nunique() == 1 and cur.nunique() == 1 and ref.unique()[0] == cur.unique()[0]:
        return 1.0
    first = sorted(keys)[0]
    a, b = (ref != first).astype(float), (cur != first).astype(float)
    p1, p2 = a.sum() / len(a), b.sum() / len(b)
    pooled = (p1 * len(a) + p2 * len(b)) / (len(a) + len(b))
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def ev_default(ref: pd.Series, cur: pd.Series, numeric: bool) -> str:
    n_values = pd.concat([ref, cur]).nunique()
    if ref.shape[0] <= 1000:
        if numeric and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    return "wasserstein" if numeric and n_values > 5 else "jensenshannon"


def clean(values) -> pd.Series:
    s = pd.Series(values)
    return s.replace([np.inf, -np.inf], np.nan).dropna()


# ---- pure functions against scipy ---------------------------------------------------------------------------

SIZES = [(5, 7), (200, 300), (1000, 20_000), (15_000, 12_000)]


@pytest.mark.parametrize(("n", "m"), SIZES)
@pytest.mark.parametrize("ties", [False, True])
def test_ks_and_wasserstein_match_scipy(n, m, ties):
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(size=n), rng.normal(0.1, 1.2, size=m)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    d, p = ks(np.sort(a), b)
    want = stats.ks_2samp(a, b)
    assert d == pytest.approx(want.statistic, **TOL) and p == pytest.approx(want.pvalue, **TOL)
    w = stats.wasserstein_distance(a, b) / max(np.std(a), 0.001)
    assert wasserstein_normed(a, b) == pytest.approx(w, **TOL)
    assert wasserstein_normed(np.sort(a), np.sort(b), reference_std=2.0) == pytest.approx(
        stats.wasserstein_distance(a, b) / 2.0, **TOL)


def test_missing_values_are_dropped_and_constant_reference_is_normed_by_0001():
    a = np.array([1.0, np.nan, 2.0, np.inf, 3.0, 2.0])
    b = np.array([np.nan, 2.5, 3.5, -np.inf, 1.0])
    fa, fb = a[np.isfinite(a)], b[np.isfinite(b)]
    assert ks(np.sort(a), b) == pytest.approx(tuple(stats.ks_2samp(fa, fb))[:2], **TOL)
    assert wasserstein_normed(a, b) == pytest.approx(stats.wasserstein_distance(fa, fb) / np.std(fa), **TOL)
    const = np.full(50, 3.0)
    assert wasserstein_normed(const, const + 1) == pytest.approx(1.0 / 0.001, **TOL)
    assert wasserstein_normed(const, const) == 0.0
    with pytest.raises(InvalidInput):
        ks(np.array([np.nan]), b)


@pytest.mark.parametrize("seed", range(4))
def test_psi_js_chi_z_match_direct_formulas(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    r, c = rng.integers(0, 50, k).astype(float), rng.integers(0, 50, k).astype(float)
    r[0], c[-1] = 0, 0  # empty bins on each side
    r[1] += 1
    c[0] += 1
    rp, cp = r / r.sum(), c / c.sum()
    frp, fcp = ev_binned_fill(rp), ev_binned_fill(cp)
    assert psi(rp, cp) == pytest.approx(np.sum((frp - fcp) * np.log(frp / fcp)), **TOL)
    assert jensen_shannon(rp, cp) == pytest.approx(distance.jensenshannon(rp, cp), **TOL)
    assert jensen_shannon(rp, cp, base=2) == pytest.approx(distance.jensenshannon(rp, cp, base=2), **TOL)
    rr, cc = r + 1, c  # every category seen in the reference: a finite chi-square
    want = stats.chisquare(cc, rr * cc.sum() / rr.sum())
    assert chi_squared(rr, cc) == pytest.approx((want.statistic, want.pvalue), **TOL)
    n1, n2 = rr.sum(), cc.sum()
    p1, p2 = 1 - rr[0] / n1, 1 - cc[0] / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert z_proportions(rr, cc) == pytest.approx((z, 2 * (1 - stats.norm.cdf(abs(z)))), **TOL)


def ev_binned_fill(p: np.ndarray) -> np.ndarray:
    p = p.copy()
    m = min(p[p != 0])
    np.place(p, p == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return p


def test_psi_zero_fill_follows_the_smallest_share():
    rare = np.array([1, 0, 99_999], dtype=float) / 100_000  # a share <= 0.0001: zeros become min / 1e6
    common = np.array([0.5, 0.5, 0.0])
    filled = np.array([1e-5, 1e-11, 0.99999])
    want = np.sum((filled - [0.5, 0.5, 0.0001]) * np.log(filled / [0.5, 0.5, 0.0001]))
    assert psi(rare, common) == pytest.approx(want, **TOL)


def test_chi_squared_of_a_new_category_is_certain_drift_and_z_of_one_shared_value_is_none():
    stat, p = chi_squared(np.array([10, 0]), np.array([5, 5]))
    assert math.isinf(stat) and p == 0.0
    assert z_proportions(np.array([7]), np.array([9])) == (0.0, 1.0)
    flipped = z_proportions(np.array([30, 70]), np.array([50, 50]))[1]
    assert z_proportions(np.array([70, 30]), np.array([50, 50]))[1] == pytest.approx(flipped, **TOL)


@pytest.mark.parametrize("n", [10, 333, 5000])
def test_sturges_histogram_is_numpys(n):
    rng = np.random.default_rng(n)
    a, b = np.sort(rng.integers(0, 30, n).astype(float)), np.sort(rng.integers(5, 40, n // 2 + 1).astype(float))
    edges, ra, rb = sturges_histogram(a, b)
    want = np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges")
    np.testing.assert_array_equal(edges, want)
    np.testing.assert_allclose(ra, np.histogram(a, want)[0] / n, rtol=0, atol=1e-15)
    np.testing.assert_allclose(rb, np.histogram(b, want)[0] / b.size, rtol=0, atol=1e-15)


# ---- properties -----------------------------------------------------------------------------------------------

# percents come from counts over common bins (some empty), as every caller builds them
counts = st.integers(1, 30).flatmap(lambda k: st.tuples(*[st.lists(st.integers(0, 10**6), min_size=k, max_size=k)] * 2))


def _pair(drawn: tuple[list[int], list[int]]) -> tuple[np.ndarray, np.ndarray] | None:
    a, b = np.array(drawn[0], dtype=float), np.array(drawn[1], dtype=float)
    return None if a.sum() == 0 or b.sum() == 0 else (a / a.sum(), b / b.sum())


@settings(max_examples=80, deadline=None)
@given(counts)
def test_js_is_symmetric_bounded_and_zero_on_identity(drawn):
    if (pair := _pair(drawn)) is None:
        return
    a, b = pair
    js = jensen_shannon(a, b)
    assert 0 <= js <= math.sqrt(math.log(2)) + 1e-12 <= 1
    assert js == pytest.approx(jensen_shannon(b, a), abs=1e-12)
    assert jensen_shannon(a, a) == 0
    assert 0 <= jensen_shannon(a, b, base=2) <= 1 + 1e-12


@settings(max_examples=80, deadline=None)
@given(counts)
def test_psi_is_non_negative_symmetric_and_zero_on_identity(drawn):
    if (pair := _pair(drawn)) is None:
        return
    a, b = pair
    value = psi(a, b)
    assert value >= 0
    assert value == pytest.approx(psi(b, a), rel=1e-9, abs=1e-12)
    assert psi(a, a) == 0


@pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60), st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60))
def test_ks_statistic_and_p_value_are_in_unit_interval(a, b):
    d, p = ks(np.sort(a), np.array(b))
    assert 0 <= d <= 1 and 0 <= p <= 1
    assert d == pytest.approx(stats.ks_2samp(a, b).statistic, **TOL)


# ---- column_drift against Evidently on the same data -----------------------------------------------------


def _numeric_frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "x": x,
        "ties": np.round(rng.normal(shift, 1, n), 1),
        "few": rng.choice([0.5, 1.5, 2.5], n),  # a float column: numeric for Evidently, with 3 values
        "two": rng.choice([0.0, 1.0], n),
        "fifteen": rng.integers(0, 15, n),  # numeric, but binned by value (<= 20 values) for PSI and JS
        "cat": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "bin": rng.random(n) < 0.3 + shift / 10,
    })


@pytest.mark.parametrize(("n_ref", "n_cur"), [(400, 600), (3000, 2000)])
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_column_drift_matches_evidently(n_ref, n_cur, shift):
    ref, cur = _numeric_frame(n_ref, 1), _numeric_frame(n_cur, 2, shift)
    sketch = build_sketch(ref, max_sample=10**6)
    for name, col in sketch.columns.items():
        numeric = col.kind == "numeric"
        r, c = clean(ref[name]), clean(cur[name])
        methods = ["ks", "wasserstein"] if numeric else ["chisquare", "z"]
        got = column_drift(col, cur[name])
        assert got.method == ev_default(r, c, numeric), name
        for method in [*methods, "psi", "jensenshannon"]:
            result = column_drift(col, cur[name], method=method)
            score = result.p_value if method in ("ks", "chisquare", "z") else result.statistic
            assert score == pytest.approx(ev_stat(method, r, c, numeric), **TOL), (name, method)
        if numeric and got.method in ("chisquare", "z"):  # Evidently's default for a few-valued numeric column
            assert got.p_value == pytest.approx(ev_stat(got.method, r, c, numeric), **TOL)


def test_ks_drifts_at_p_equal_to_threshold_and_wasserstein_uses_the_full_std():
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=5000)})
    cur = rng.normal(0.05, 1, 300)
    exact = build_sketch(ref.iloc[:300]).columns["x"]
    p = column_drift(exact, cur, method="ks").p_value
    assert column_drift(exact, cur, method="ks", threshold=p).drifted  # Evidently: p_value <= threshold
    sampled = build_sketch(ref, max_sample=200).columns["x"]
    w = column_drift(sampled, cur, method="wasserstein").statistic
    assert w == pytest.approx(stats.wasserstein_distance(sampled.sample, cur) / np.std(ref["x"]), **TOL)


def test_default_method_rule():
    assert default_method("numeric", 1000, 6) == "ks"
    assert default_method("numeric", 1000, 5) == "chisquare"
    assert default_method("numeric", 1000, 2) == "z"
    assert default_method("categorical", 10, 9) == "chisquare"
    assert default_method("categorical", 10, 2) == "z"
    assert default_method("numeric", 1001, 6) == "wasserstein"
    assert default_method("numeric", 1001, 5) == "jensenshannon"
    assert default_method("categorical", 5000, 2) == "jensenshannon"


def test_current_may_be_numpy_pandas_or_arrow():
    ref, cur = _numeric_frame(500, 3), _numeric_frame(700, 4, 0.2)
    sketch = build_sketch(ref)
    for name in ("x", "cat", "bin"):
        results = {column_drift(sketch.columns[name], v).to_dict()["statistic"] for v in
                   (cur[name], cur[name].to_numpy(), pa.array(cur[name], from_pandas=True),
                    pa.chunked_array([pa.array(cur[name].iloc[:100], from_pandas=True),
                                      pa.array(cur[name].iloc[100:], from_pandas=True)]))}
        assert len(results) == 1, name


def test_integer_categories_match_a_float_window_with_missing_values():
    ref = pd.DataFrame({"k": np.tile([1, 2, 3], 400)})
    sketch = build_sketch(ref)
    assert sketch.columns["k"].kind == "categorical"
    cur = pd.Series(np.tile([1.0, 2.0, 3.0, np.nan], 300))  # pandas turns ints with gaps into floats
    result = column_drift(sketch.columns["k"], cur)
    assert result.new_categories == [] and not result.drifted and result.current_missing_rate == 0.25


# ---- scenarios with known shifts ------------------------------------------------------------------------------


def _mixed(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.normal(10, 2, n)
    f[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "normal": rng.normal(0, 1, n), "skewed": rng.exponential(3, n), "uniform_int": rng.integers(0, 100, n),
        "few_int": rng.integers(0, 4, n), "with_nan": f, "price": rng.lognormal(4, 0.5, n),
        "city": rng.choice(["paris", "lyon", "nice", "lille", "nantes"], n, p=[0.4, 0.2, 0.2, 0.1, 0.1]),
        "room": rng.choice(["entire", "private", "shared"], n), "flag": rng.random(n) < 0.2,
        "tiny": rng.choice([0.25, 0.75], n),
    })


def test_no_shift_flags_nothing_at_defaults():
    sketch = build_sketch(_mixed(5000, 10))
    result = dataset_drift(sketch, _mixed(5000, 11))
    assert len(result.columns) == 10 and result.number_of_columns == 10
    assert [c.column for c in result.columns.values() if c.drifted] == []
    assert not result.drifted and result.share_of_drifted_columns == 0.0
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize("n", [500, 5000])
def test_mean_shift_and_new_category_are_detected(n):
    sketch = build_sketch(_mixed(n, 20))
    cur = _mixed(n, 21)
    cur["normal"] += 0.5
    cur["city"] = np.where(np.random.default_rng(1).random(n) < 0.3, "bordeaux", cur["city"])
    result = dataset_drift(sketch, cur)
    assert result.columns["normal"].drifted and result.columns["normal"].method in ("ks", "wasserstein")
    city = result.columns["city"]
    assert city.drifted and city.new_categories == ["bordeaux"]
    assert "bordeaux" in city.histogram.categories
    drifted = [c for c, r in result.columns.items() if r.drifted]
    if n > 1000:  # distances; with 500 rows Evidently's chi-square takes the reference shares as exact, and
        assert drifted == ["normal", "city"]  # an unshifted column may fail its test now and then
    assert result.number_of_drifted_columns == len(drifted) and not result.drifted  # < 5 of 10
    assert dataset_drift(sketch, cur, share=0.2).drifted


def test_missing_rate_jump_is_reported_but_not_drift():
    sketch = build_sketch(_mixed(5000, 30))
    cur = _mixed(5000, 31)
    cur.loc[cur.index[::2], "normal"] = np.nan
    cur["city"] = cur["city"].where(np.arange(5000) % 3 != 0, None)
    result = dataset_drift(sketch, cur)
    normal, city = result.columns["normal"], result.columns["city"]
    assert normal.missing_rate_change == pytest.approx(0.5) and not normal.drifted
    assert city.current_missing_rate == pytest.approx(1667 / 5000) and not city.drifted
    assert city.reference_missing_rate == 0.0


def test_share_rule_counts_columns_with_a_statistic():
    sketch = build_sketch(_mixed(2000, 40))
    cur = _mixed(2000, 41)[["normal", "skewed", "city", "room"]]
    cur = cur.assign(normal=cur["normal"] + 1, skewed=cur["skewed"] * 2)
    result = dataset_drift(sketch, cur)
    assert sorted(result.missing_columns) == sorted(set(sketch.columns) - {"normal", "skewed", "city", "room"})
    assert result.number_of_columns == 4 and result.number_of_drifted_columns == 2
    assert result.share_of_drifted_columns == 0.5 and result.drifted
    assert not dataset_drift(sketch, cur, share=0.75).drifted
    assert [c["column"] for c in result.to_dict()["columns"]] == ["normal", "skewed", "city", "room"]


def test_thresholds_and_methods_per_column():
    sketch = build_sketch(_mixed(2000, 50))
    cur = _mixed(2000, 51)
    result = dataset_drift(sketch, cur, methods={"normal": "psi", "city": "chisquare"}, thresholds={"normal": 0.0})
    assert result.columns["normal"].method == "psi" and result.columns["normal"].drifted
    assert result.columns["normal"].threshold == 0.0 and result.columns["city"].method == "chisquare"
    assert result.columns["city"].threshold == 0.05


# ---- bad input and no data ------------------------------------------------------------------------------------


def test_bad_methods_and_thresholds_are_rejected():
    sketch = build_sketch(_mixed(300, 60))
    with pytest.raises(InvalidInput, match="unknown drift method"):
        column_drift(sketch.columns["normal"], np.zeros(3), method="kl")
    with pytest.raises(InvalidInput, match=r"does not fit numeric.*wasserstein"):
        column_drift(sketch.columns["normal"], np.zeros(3), method="chisquare")
    with pytest.raises(InvalidInput, match=r"does not fit categorical.*chisquare"):
        column_drift(sketch.columns["city"], np.array(["a"]), method="ks")
    with pytest.raises(InvalidInput, match="threshold"):
        column_drift(sketch.columns["normal"], np.zeros(3), threshold=-1)
    with pytest.raises(InvalidInput, match="numeric in the reference"):
        column_drift(sketch.columns["normal"], np.array(["a", "b"]))
    with pytest.raises(InvalidInput, match="not_a_column"):
        dataset_drift(sketch, _mixed(10, 1), methods={"not_a_column": "psi"})
    with pytest.raises(InvalidInput, match="share"):
        dataset_drift(sketch, _mixed(10, 1), share=0)


def test_no_column_in_common_is_an_error():
    sketch = build_sketch(_mixed(300, 70))
    with pytest.raises(InvalidInput, match="no column in common"):
        dataset_drift(sketch, pd.DataFrame({"other": [1, 2, 3]}))
    with pytest.raises(InvalidInput, match="no column in common"):
        dataset_drift(sketch, pa.table({"other": pa.array([], pa.int64())}))


def test_empty_window_is_no_data_never_zero_drift():
    sketch = build_sketch(_mixed(300, 80))
    for empty in (_mixed(300, 81).iloc[:0], pa.Table.from_pandas(_mixed(3, 81).iloc[:0]), pd.DataFrame()):
        result = dataset_drift(sketch, empty)
        assert result.no_data and not result.drifted and result.columns == {}
        assert result.share_of_drifted_columns is None and result.to_dict()["no_data"]
    column = column_drift(sketch.columns["normal"], np.array([]))
    assert column.no_data and math.isnan(column.statistic) and column.current_missing_rate is None


def test_all_missing_column_has_no_statistic():
    sketch = build_sketch(_mixed(300, 90))
    cur = _mixed(300, 91).assign(normal=np.nan)
    result = dataset_drift(sketch, cur)
    normal = result.columns["normal"]
    assert normal.no_data and not normal.drifted and normal.missing_rate_change == 1.0
    assert result.number_of_columns == 9 and not result.no_data
    assert normal.to_dict()["statistic"] is None
    everything_missing = dataset_drift(sketch, pd.DataFrame({"normal": [np.nan, np.nan]}))
    assert everything_missing.no_data and not everything_missing.drifted
