"""profiles.py: profile numbers agree with pandas/numpy; the content hash is an order-free row-set sum."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data.profiles import QUANTILES, add_hashes, compute_profile, content_hash


@pytest.fixture(scope="module")
def numbers() -> pa.Table:
    rng = np.random.default_rng(0)
    n = 5000
    ints = rng.integers(-1000, 1000, n).astype(float)
    ints[rng.random(n) < 0.1] = np.nan
    floats = rng.normal(50, 12, n)
    floats[rng.random(n) < 0.05] = np.nan
    return pa.table({
        "i": pa.array(pd.array(ints, dtype="Int64")),
        "f": pa.array(floats, from_pandas=True),  # NaN -> null
    })


@pytest.mark.parametrize("column", ["i", "f"])
def test_numeric_stats_match_pandas(numbers: pa.Table, column: str) -> None:
    profile = compute_profile(numbers)
    stats = profile["columns"][column]
    series = numbers[column].to_pandas()
    assert profile["rows"] == numbers.num_rows
    assert stats["count"] == series.count()
    assert stats["nulls"] == series.isna().sum()
    assert stats["count"] + stats["nulls"] == numbers.num_rows
    assert stats["mean"] == pytest.approx(series.mean(), rel=1e-9)
    assert stats["std"] == pytest.approx(series.std(ddof=1), rel=1e-9)
    assert stats["std"] != pytest.approx(series.std(ddof=0), rel=1e-9)  # sample, not population
    assert stats["min"] == series.min()
    assert stats["max"] == series.max()
    assert stats["dtype"] == str(numbers.schema.field(column).type)


@pytest.mark.parametrize("column", ["i", "f"])
def test_quantiles_are_close_to_numpy(numbers: pa.Table, column: str) -> None:
    stats = compute_profile(numbers, [column])["columns"][column]
    values = numbers[column].drop_null().to_numpy()
    assert list(stats["quantiles"]) == [str(q) for q in QUANTILES]
    spread = values.std()
    for q in QUANTILES:
        assert stats["quantiles"][str(q)] == pytest.approx(np.quantile(values, q), abs=0.05 * spread)
    assert list(stats["quantiles"].values()) == sorted(stats["quantiles"].values())


def test_distinct_is_approximately_right() -> None:
    table = pa.table({"k": np.arange(2000) % 500})
    assert compute_profile(table)["columns"]["k"]["distinct"] == pytest.approx(500, rel=0.05)


def test_small_exact_example() -> None:
    table = pa.table({"a": [1, 2, 3, None, 5]})
    stats = compute_profile(table)["columns"]["a"]
    assert (stats["count"], stats["nulls"], stats["min"], stats["max"]) == (4, 1, 1.0, 5.0)
    assert stats["mean"] == pytest.approx(2.75)
    assert stats["std"] == pytest.approx(np.std([1, 2, 3, 5], ddof=1))


def test_float_columns_count_nans() -> None:
    table = pa.table({"f": pa.array([1.0, float("nan"), 2.0, None])})
    stats = compute_profile(table)["columns"]["f"]
    assert stats["nan"] == 1
    assert stats["nulls"] == 1


def test_nan_does_not_poison_mean_std_max() -> None:
    values = [1.5, float("nan"), 2.5, 4.0]
    stats = compute_profile(pa.table({"f": pa.array(values)}))["columns"]["f"]
    assert stats["mean"] == pytest.approx(np.nanmean(values))
    assert stats["std"] == pytest.approx(np.nanstd(values, ddof=1))
    assert stats["max"] == pytest.approx(np.nanmax(values))


def test_string_top_values_are_ordered_by_count() -> None:
    values = ["b"] * 5 + ["a"] * 3 + ["c"] * 7 + [None] * 4 + ["d"]
    stats = compute_profile(pa.table({"s": values}))["columns"]["s"]
    assert stats["top_values"] == [
        {"value": "c", "count": 7}, {"value": "b", "count": 5}, {"value": "a", "count": 3}, {"value": "d", "count": 1},
    ]
    assert (stats["count"], stats["nulls"]) == (16, 4)
    assert "mean" not in stats and "quantiles" not in stats


def test_top_values_are_capped_at_ten() -> None:
    values = [f"v{i:02d}" for i in range(20) for _ in range(i + 1)]
    stats = compute_profile(pa.table({"s": values}))["columns"]["s"]
    assert [v["value"] for v in stats["top_values"]] == [f"v{i:02d}" for i in range(19, 9, -1)]
    assert [v["count"] for v in stats["top_values"]] == list(range(20, 10, -1))


def test_top_values_per_column_stay_with_their_column() -> None:
    table = pa.table({"s": ["x", "x", "y"], "n": [1, 2, 3], "t": ["p", "q", "q"], "b": [True, True, False]})
    columns = compute_profile(table)["columns"]
    assert columns["s"]["top_values"] == [{"value": "x", "count": 2}, {"value": "y", "count": 1}]
    assert columns["t"]["top_values"] == [{"value": "q", "count": 2}, {"value": "p", "count": 1}]
    assert [v["count"] for v in columns["b"]["top_values"]] == [2, 1]
    assert "top_values" not in columns["n"]


def test_timestamps_get_min_and_max() -> None:
    times = [datetime(2024, 3, 1, 12, tzinfo=UTC), None, datetime(2023, 12, 31, tzinfo=UTC),
             datetime(2024, 1, 5, tzinfo=UTC)]
    table = pa.table({"ts": pa.array(times, pa.timestamp("us", tz="UTC"))})
    stats = compute_profile(table)["columns"]["ts"]
    assert (stats["count"], stats["nulls"]) == (3, 1)
    assert datetime.fromisoformat(stats["min"]) == datetime(2023, 12, 31, tzinfo=UTC)
    assert datetime.fromisoformat(stats["max"]) == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert "mean" not in stats


def test_timestamp_min_max_are_printed_in_utc_whatever_the_host_zone() -> None:
    code = (
        "import pyarrow as pa; from datetime import datetime, UTC;"
        "from keel.data.profiles import compute_profile;"
        "t = pa.table({'ts': pa.array([datetime(2024, 1, 1, tzinfo=UTC)], pa.timestamp('us', tz='UTC'))});"
        "print(compute_profile(t)['columns']['ts']['min'])"
    )
    env = {**os.environ, "TZ": "America/New_York"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    printed = datetime.fromisoformat(out.stdout.strip())
    assert printed.utcoffset() is not None and printed.utcoffset().total_seconds() == 0
    assert printed == datetime(2024, 1, 1, tzinfo=UTC)


def test_selected_columns_only() -> None:
    table = pa.table({"a": [1], "b": ["x"], "c": [2.0]})
    assert set(compute_profile(table, ["a", "c"])["columns"]) == {"a", "c"}


def test_empty_table() -> None:
    stats = compute_profile(pa.table({"a": pa.array([], pa.int64())}))
    assert stats["rows"] == 0
    assert stats["columns"]["a"]["count"] == 0 and stats["columns"]["a"]["nulls"] == 0


# ---------------------------------------------------------------- content hash


@pytest.fixture(scope="module")
def rows() -> pa.Table:
    rng = np.random.default_rng(4)
    return pa.table({"a": rng.integers(0, 100, 300), "b": rng.normal(size=300),
                     "c": pa.array([f"s{i % 17}" for i in range(300)])})


def test_content_hash_format(rows: pa.Table) -> None:
    digest = content_hash(rows, rows.column_names)
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert content_hash(rows, rows.column_names) == digest  # deterministic


def test_content_hash_is_order_independent(rows: pa.Table) -> None:
    shuffled = rows.take(np.random.default_rng(1).permutation(rows.num_rows))
    assert content_hash(shuffled, rows.column_names) == content_hash(rows, rows.column_names)
    chunked = pa.concat_tables([shuffled.slice(0, 100), shuffled.slice(100)])
    assert content_hash(chunked, rows.column_names) == content_hash(rows, rows.column_names)


def test_content_hash_ignores_column_order_in_the_table(rows: pa.Table) -> None:
    reordered = rows.select(["c", "a", "b"])
    assert content_hash(reordered, ["a", "b", "c"]) == content_hash(rows, ["a", "b", "c"])


def test_content_hash_changes_when_one_value_changes(rows: pa.Table) -> None:
    base = content_hash(rows, rows.column_names)
    for column, value in (("a", 1000), ("b", 0.123456789), ("c", "other")):
        values = rows[column].to_pylist()
        values[150] = value
        changed = rows.set_column(rows.column_names.index(column), column, pa.array(values, rows[column].type))
        assert content_hash(changed, rows.column_names) != base, column


def test_content_hash_counts_duplicates_and_only_given_columns(rows: pa.Table) -> None:
    base = content_hash(rows, rows.column_names)
    assert content_hash(pa.concat_tables([rows, rows.slice(0, 1)]), rows.column_names) != base
    assert content_hash(rows, ["a", "b"]) != base
    other_c = rows.set_column(2, "c", pa.array(["z"] * rows.num_rows))
    assert content_hash(other_c, ["a", "b"]) == content_hash(rows, ["a", "b"])


def test_empty_hash_is_the_identity(rows: pa.Table) -> None:
    empty = content_hash(rows.slice(0, 0), rows.column_names)
    assert empty == "0" * 32
    assert content_hash(rows, []) == "0" * 32
    digest = content_hash(rows, rows.column_names)
    assert add_hashes(empty, digest) == digest == add_hashes(digest, empty)


def test_add_hashes_wraps_around() -> None:
    top = "f" * 32
    assert add_hashes(top, "0" * 15 + "1" + "0" * 15 + "2") == "0" * 16 + "0" * 15 + "1"


TABLES = st.lists(st.tuples(st.integers(-5, 5), st.integers(-3, 3)), max_size=25).map(
    lambda pairs: pa.table({"x": pa.array([p[0] for p in pairs], pa.int64()),
                            "y": pa.array([p[1] for p in pairs], pa.int64())})
)


@given(a=TABLES, b=TABLES)
@settings(max_examples=60, deadline=None)
def test_hash_of_union_is_sum_of_hashes(a: pa.Table, b: pa.Table) -> None:
    union = pa.concat_tables([a, b])
    cols = ["x", "y"]
    assert add_hashes(content_hash(a, cols), content_hash(b, cols)) == content_hash(union, cols)
    assert add_hashes(content_hash(a, cols), content_hash(b, cols)) == add_hashes(
        content_hash(b, cols), content_hash(a, cols))


@given(table=TABLES, seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_hash_is_invariant_under_permutation(table: pa.Table, seed: int) -> None:
    shuffled = table.take(np.random.default_rng(seed).permutation(table.num_rows))
    assert content_hash(shuffled, ["x", "y"]) == content_hash(table, ["x", "y"])
