"""Reference sketches: kinds as Evidently infers them, exact when small, bounded and seeded when large, JSON-safe."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from keel.errors import InvalidInput
from keel.monitoring.sketch import ColumnSketch, ReferenceSketch, build_sketch


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    x[:2] = [np.inf, -np.inf]  # not values: Evidently drops them with the NaNs
    return pd.DataFrame({
        "x": x,
        "many_int": rng.integers(0, 1000, n),
        "few_int": rng.integers(0, 5, n),
        "few_float": rng.choice([0.5, 1.5], n),
        "city": pd.Series(rng.choice(["paris", "lyon", "nice"], n)).where(rng.random(n) > 0.2, None),
        "flag": rng.random(n) < 0.3,
    })


def test_kinds_follow_evidently():
    sketch = build_sketch(_frame(200))
    kinds = {name: col.kind for name, col in sketch.columns.items()}
    assert kinds == {"x": "numeric", "many_int": "numeric", "few_int": "categorical", "few_float": "numeric",
                     "city": "categorical", "flag": "categorical"}
    six = build_sketch(pd.DataFrame({"i": np.arange(60) % 6}))
    assert six.columns["i"].kind == "numeric"  # more than 5 distinct integers
    forced = build_sketch(_frame(50), ["few_int", "x"], kinds={"few_int": "numeric", "x": "categorical"})
    assert forced.columns["few_int"].kind == "numeric" and forced.columns["x"].kind == "categorical"


def test_numeric_sketch_is_exact_when_small():
    df = _frame(500)
    col = build_sketch(df).columns["x"]
    finite = df["x"].to_numpy()[np.isfinite(df["x"].to_numpy())]
    np.testing.assert_array_equal(col.sample, np.sort(finite))
    assert col.count == 500 and col.missing == 500 - finite.size
    assert col.distinct == np.unique(finite).size and col.present == finite.size
    assert col.min == finite.min() and col.max == finite.max()
    assert col.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert col.std == pytest.approx(np.std(finite), rel=1e-12)  # population std, as Evidently norms by


def test_numeric_sample_is_bounded_sorted_and_seeded():
    df = pd.DataFrame({"x": np.random.default_rng(1).normal(size=20_000)})
    a = build_sketch(df, max_sample=1000, seed=7).columns["x"]
    b = build_sketch(df, max_sample=1000, seed=7).columns["x"]
    c = build_sketch(df, max_sample=1000, seed=8).columns["x"]
    assert a.sample.size == 1000 and a.count == 20_000 and a.distinct == 20_000
    assert np.all(np.diff(a.sample) >= 0) and np.isin(a.sample, df["x"].to_numpy()).all()
    np.testing.assert_array_equal(a.sample, b.sample)
    assert not np.array_equal(a.sample, c.sample)
    assert np.unique(a.sample).size == 1000  # without replacement
    assert abs(np.median(a.sample) - df["x"].median()) < 0.15  # uniform, not the first rows
    assert a.std == pytest.approx(np.std(df["x"].to_numpy()), rel=1e-12)  # from every row, not the sample
    alone = build_sketch(df.assign(y=1.5), ["x"], max_sample=1000, seed=7).columns["x"]
    np.testing.assert_array_equal(alone.sample, a.sample)  # a column's sample does not depend on the others


def test_categorical_counts_match_pandas():
    df = _frame(1000, 3)
    sketch = build_sketch(df)
    for name in ("city", "few_int"):
        col = sketch.columns[name]
        want = df[name].dropna().astype(str).value_counts().sort_index()
        assert list(col.values) == list(want.index) and col.counts.tolist() == want.tolist()
        assert col.missing == int(df[name].isna().sum()) and col.distinct == len(want)
    flag = sketch.columns["flag"]
    assert flag.values == ("false", "true")
    assert flag.counts.tolist() == [int((~df["flag"]).sum()), int(df["flag"].sum())]


def test_round_trip_through_json_is_exact():
    sketch = build_sketch(_frame(3000, 4), max_sample=700)
    text = json.dumps(sketch.to_dict(), allow_nan=False)
    back = ReferenceSketch.from_dict(json.loads(text))
    assert back == sketch and back.rows == 3000
    for name, col in sketch.columns.items():
        assert back.columns[name].to_dict() == col.to_dict()
        np.testing.assert_array_equal(back.columns[name].sample, col.sample)
    assert back.columns["x"].sample.tolist() == sketch.columns["x"].sample.tolist()


def test_arrow_input_and_empty_or_missing_columns():
    table = pa.table({
        "f": pa.array([None, None], pa.float64()), "s": pa.array([None, None], pa.string()),
        "d": pa.array([Decimal("1.5"), Decimal("2.5")], pa.decimal128(5, 2)),
        "n": pa.array([None, None]),
    })
    sketch = build_sketch(table)
    assert sketch.columns["f"].kind == "numeric" and sketch.columns["f"].missing == 2
    assert sketch.columns["f"].sample.size == 0 and sketch.columns["f"].std is None
    assert sketch.columns["s"].values == () and sketch.columns["s"].missing == 2
    assert sketch.columns["d"].kind == "numeric" and sketch.columns["d"].sample.tolist() == [1.5, 2.5]
    assert sketch.columns["n"].kind == "categorical"
    assert ReferenceSketch.from_dict(json.loads(json.dumps(sketch.to_dict()))) == sketch


def test_unsupported_types_are_skipped_unless_asked_for():
    df = pd.DataFrame({"t": [datetime(2024, 1, 1, tzinfo=UTC)] * 3, "x": [1.0, 2.0, 3.0]})
    assert list(build_sketch(df).columns) == ["x"]
    with pytest.raises(InvalidInput, match="'t'"):
        build_sketch(df, ["t"])
    assert build_sketch(df, ["t"], kinds={"t": "categorical"}).columns["t"].distinct == 1


def test_bad_arguments_are_rejected():
    df = _frame(20)
    with pytest.raises(InvalidInput, match="not in the reference"):
        build_sketch(df, ["nope"])
    with pytest.raises(InvalidInput, match="kinds"):
        build_sketch(df, kinds={"x": "ordinal"})
    with pytest.raises(InvalidInput, match="numeric in the reference"):
        build_sketch(df, kinds={"city": "numeric"})
    with pytest.raises(InvalidInput, match="max_sample"):
        build_sketch(df, max_sample=0)
    with pytest.raises(InvalidInput):
        build_sketch([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        ReferenceSketch.from_dict({"rows": 3})
    with pytest.raises(InvalidInput):
        ColumnSketch.from_dict({"name": "x", "kind": "numeric", "count": 1})
    with pytest.raises(InvalidInput, match="kind"):
        ColumnSketch.from_dict({"name": "x", "kind": "text", "count": 1, "missing": 0, "distinct": 1})
