"""splits.py: time, group and stratified splits never leak, are reproducible, and count every row."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.data.model import ROW_ID, SPLIT_PARTS
from keel.data.splits import SplitPlan, parse_fractions, plan_split
from keel.errors import InvalidInput, LeakageError

T0 = datetime(2024, 1, 1, tzinfo=UTC)
THREE = (0.7, 0.15, 0.15)


def make_table(n: int = 200, *, seed: int = 0, **columns: object) -> pa.Table:
    """n rows with unique features (no duplicates) plus any extra columns."""
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {
        ROW_ID: pa.array(np.arange(n) * 3 + 7, pa.int64()),  # ids are not positions
        "x": rng.normal(size=n),
        "y": rng.integers(0, 2, n),
    }
    data.update(columns)
    return pa.table(data)


def hours(values) -> pa.Array:
    return pa.array([T0 + timedelta(hours=int(h)) for h in values], pa.timestamp("us", tz="UTC"))


def part_of(plan: SplitPlan) -> dict[int, str]:
    return {int(r): SPLIT_PARTS[p] for r, p in zip(plan.row_ids, plan.parts, strict=True)}


def rows_in(table: pa.Table, plan: SplitPlan, part: str) -> pa.Table:
    ids = plan.row_ids[plan.parts == SPLIT_PARTS.index(part)]
    return table.filter(pa.compute.is_in(table[ROW_ID], pa.array(ids, pa.int64())))


def check_accounting(table: pa.Table, plan: SplitPlan) -> None:
    ids = plan.row_ids.tolist()
    assert len(ids) == len(set(ids)), "a row id is in two parts"
    assert set(ids) <= set(table[ROW_ID].to_pylist())
    parts = [k for k in ("train", "validation", "test") if k in plan.counts]
    assert sum(plan.counts[k] for k in parts) == len(ids)
    assert sum(plan.counts[k] for k in parts) + plan.counts["dropped_gap"] + plan.counts["dropped_duplicates"] \
        == table.num_rows
    for k in parts:
        assert plan.counts[k] == int((plan.parts == SPLIT_PARTS.index(k)).sum())


# ---------------------------------------------------------------- parse_fractions


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.7,0.15,0.15", (0.7, 0.15, 0.15)), ("0.8,0.2", (0.8, 0.2)), (" 0.5, 0.5 ", (0.5, 0.5)),
     ([0.6, 0.2, 0.2], (0.6, 0.2, 0.2)), ((0.9, 0.1), (0.9, 0.1)), ("0.1,0.2,0.7", (0.1, 0.2, 0.7))],
)
def test_parse_fractions_accepts(text, expected) -> None:
    assert parse_fractions(text) == pytest.approx(expected)
    assert isinstance(parse_fractions(text), tuple)


@pytest.mark.parametrize(
    ("fractions", "hint"),
    [
        ("0.5,0.6", "sum to 1.1, not 1"),
        ("0.3,0.3", "not 1"),
        ("0.7,0.15,0.1", "not 1"),
        ("1", "two or three"),
        ("1.0", "two or three"),
        ("0.25,0.25,0.25,0.25", "two or three"),
        ([0.2] * 5, "two or three"),
        ("-0.5,1.5", "between 0 and 1"),
        ("0.7,0.3,0", "between 0 and 1"),
        ("1,0", "between 0 and 1"),
        ("nan,0.5", "between 0 and 1"),
        ("a,b", "must be numbers"),
        ("0.7;0.3", "must be numbers"),
        ("", "must be numbers"),
        ("0.7,,0.3", "must be numbers"),
    ],
)
def test_parse_fractions_rejects(fractions, hint: str) -> None:
    with pytest.raises(InvalidInput, match=hint):
        parse_fractions(fractions)


def test_parse_fractions_rejects_non_numeric_sequence() -> None:
    with pytest.raises(InvalidInput):
        parse_fractions(["a", "b"])


# ---------------------------------------------------------------- time split


def test_time_split_orders_parts_strictly() -> None:
    rng = np.random.default_rng(1)
    table = make_table(300, ts=hours(rng.integers(0, 2000, 300)))
    plan = plan_split(table, target="y", fractions=THREE, time_column="ts")
    assert plan.method == "time"
    times = {p: rows_in(table, plan, p)["ts"].to_pylist() for p in SPLIT_PARTS}
    assert all(times.values())
    assert max(times["train"]) < min(times["validation"])
    assert max(times["validation"]) < min(times["test"])
    assert plan.counts["train"] == pytest.approx(210, abs=6)
    check_accounting(table, plan)
    assert plan.params["time_column"] == "ts"
    assert set(plan.params["boundaries"]) == set(SPLIT_PARTS)


def test_time_split_ties_at_a_boundary_go_to_one_part() -> None:
    table = make_table(30, ts=hours([1] * 10 + [2] * 10 + [3] * 10))
    plan = plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts")
    by_time: dict = {}
    for row, part in zip(table.to_pylist(), [part_of(plan)[r] for r in table[ROW_ID].to_pylist()], strict=True):
        by_time.setdefault(row["ts"], set()).add(part)
    assert all(len(parts) == 1 for parts in by_time.values()), by_time
    assert plan.counts["train"] + plan.counts["test"] == 30


def test_time_split_two_parts_are_train_and_test() -> None:
    table = make_table(100, ts=hours(range(100)))
    plan = plan_split(table, target="y", fractions=(0.8, 0.2), time_column="ts")
    assert set(plan.counts) >= {"train", "test"} and "validation" not in plan.counts
    assert (plan.counts["train"], plan.counts["test"]) == (80, 20)
    assert set(np.unique(plan.parts)) == {SPLIT_PARTS.index("train"), SPLIT_PARTS.index("test")}
    assert max(rows_in(table, plan, "train")["ts"].to_pylist()) < min(rows_in(table, plan, "test")["ts"].to_pylist())


def test_time_split_gap_separates_parts_and_counts_dropped_rows() -> None:
    table = make_table(1000, ts=hours(range(1000)))
    gap = timedelta(hours=24)
    plan = plan_split(table, target="y", fractions=THREE, time_column="ts", gap=gap)
    times = {p: rows_in(table, plan, p)["ts"].to_pylist() for p in SPLIT_PARTS}
    assert min(times["validation"]) - max(times["train"]) >= gap
    assert min(times["test"]) - max(times["validation"]) >= gap
    assert plan.counts["dropped_gap"] == 48  # 24 hourly rows after each of the two boundaries
    check_accounting(table, plan)
    assert plan.params["gap_seconds"] == 86400


def test_time_split_without_gap_drops_nothing() -> None:
    table = make_table(100, ts=hours(range(100)))
    plan = plan_split(table, target="y", fractions=THREE, time_column="ts")
    assert plan.counts["dropped_gap"] == 0
    assert plan.params["gap_seconds"] is None


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
def test_time_split_gap_is_independent_of_the_time_unit(unit: str) -> None:
    ts = pa.array([datetime(2024, 1, 1) + timedelta(hours=i) for i in range(100)], pa.timestamp(unit))
    table = make_table(100, ts=ts)
    plan = plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts", gap=timedelta(hours=10))
    assert plan.counts == {"train": 50, "test": 40, "dropped_gap": 10, "dropped_duplicates": 0,
                           "cross_part_duplicates": 0}


def test_time_split_on_a_date_column() -> None:
    table = make_table(50, d=pa.array([date(2024, 1, 1) + timedelta(days=i) for i in range(50)]))
    plan = plan_split(table, target="y", fractions=(0.5, 0.5), time_column="d")
    assert max(rows_in(table, plan, "train")["d"].to_pylist()) < min(rows_in(table, plan, "test")["d"].to_pylist())


@given(
    times=st.lists(st.integers(0, 12), min_size=1, max_size=60),
    weights=st.lists(st.integers(1, 10), min_size=2, max_size=3),
    gap_hours=st.sampled_from([None, 0, 1, 3]),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_time_split_property(times: list[int], weights: list[int], gap_hours: int | None) -> None:
    fractions = parse_fractions([w / sum(weights) for w in weights])
    table = make_table(len(times), ts=hours(times))
    gap = timedelta(hours=gap_hours) if gap_hours is not None else None
    plan = plan_split(table, target="y", fractions=fractions, time_column="ts", gap=gap)
    check_accounting(table, plan)
    present = [p for p in SPLIT_PARTS if plan.counts.get(p)]
    spans = {p: rows_in(table, plan, p)["ts"].to_pylist() for p in present}
    for earlier, later in pairwise(present):
        assert min(spans[later]) - max(spans[earlier]) >= (gap or timedelta(0)) + timedelta(microseconds=1)


# ---------------------------------------------------------------- group split


def test_group_split_keeps_groups_whole_and_sizes_near_fractions() -> None:
    rng = np.random.default_rng(3)
    hosts = rng.integers(0, 400, 4000)
    table = make_table(4000, host=pa.array([f"h{h}" for h in hosts]))
    plan = plan_split(table, target="y", fractions=THREE, group="host")
    assert plan.method == "group"
    parts_per_host: dict[str, set[str]] = {}
    ids = part_of(plan)
    for rid, host in zip(table[ROW_ID].to_pylist(), table["host"].to_pylist(), strict=True):
        parts_per_host.setdefault(host, set()).add(ids[rid])
    assert all(len(p) == 1 for p in parts_per_host.values())
    for name, fraction in zip(SPLIT_PARTS, THREE, strict=True):
        assert plan.counts[name] / 4000 == pytest.approx(fraction, abs=0.02)
    check_accounting(table, plan)
    assert plan.params["group"] == "host"


def test_group_split_is_seeded() -> None:
    table = make_table(500, host=pa.array(np.arange(500) % 50))
    a = plan_split(table, target="y", fractions=THREE, group="host", seed=1)
    b = plan_split(table, target="y", fractions=THREE, group="host", seed=1)
    c = plan_split(table, target="y", fractions=THREE, group="host", seed=2)
    assert np.array_equal(a.parts, b.parts) and np.array_equal(a.row_ids, b.row_ids)
    assert not np.array_equal(a.parts, c.parts)


def test_group_split_rejects_null_groups() -> None:
    table = make_table(4, host=pa.array(["a", None, "b", "b"]))
    with pytest.raises(InvalidInput, match="1 rows have no group"):
        plan_split(table, target="y", fractions=(0.5, 0.5), group="host")


@given(
    groups=st.lists(st.integers(0, 15), min_size=1, max_size=80),
    weights=st.lists(st.integers(1, 10), min_size=2, max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_group_split_property(groups: list[int], weights: list[int], seed: int) -> None:
    fractions = parse_fractions([w / sum(weights) for w in weights])
    table = make_table(len(groups), g=pa.array(groups, pa.int64()))
    plan = plan_split(table, target="y", fractions=fractions, group="g", seed=seed)
    ids = part_of(plan)
    seen: dict[int, str] = {}
    for rid, g in zip(table[ROW_ID].to_pylist(), groups, strict=True):
        assert seen.setdefault(g, ids[rid]) == ids[rid], f"group {g} is in two parts"
    check_accounting(table, plan)


# ---------------------------------------------------------------- stratified split


def test_stratified_preserves_class_proportions() -> None:
    y = np.array([0] * 700 + [1] * 250 + [2] * 50)
    table = make_table(1000, y=y)
    plan = plan_split(table, target="y", fractions=THREE)
    assert plan.method == "stratified"
    for name, fraction in zip(SPLIT_PARTS, THREE, strict=True):
        counts = Counter(rows_in(table, plan, name)["y"].to_pylist())
        for cls, total in ((0, 700), (1, 250), (2, 50)):
            assert counts[cls] == pytest.approx(total * fraction, abs=1)
    check_accounting(table, plan)


def test_stratified_string_classes() -> None:
    y = pa.array(["cat"] * 90 + ["dog"] * 10)
    table = make_table(100, y=y)
    plan = plan_split(table, target="y", fractions=(0.8, 0.2))
    test_counts = Counter(rows_in(table, plan, "test")["y"].to_pylist())
    assert test_counts == {"cat": 18, "dog": 2}


def test_stratified_same_seed_same_plan_other_seed_other_plan() -> None:
    table = make_table(300)
    a = plan_split(table, target="y", fractions=THREE, seed=7)
    b = plan_split(table, target="y", fractions=THREE, seed=7)
    c = plan_split(table, target="y", fractions=THREE, seed=8)
    assert np.array_equal(a.row_ids, b.row_ids) and np.array_equal(a.parts, b.parts)
    assert a.to_arrow().equals(b.to_arrow())
    assert a.params["seed"] == 7
    assert not np.array_equal(a.parts, c.parts)
    assert a.counts == c.counts  # only which rows, not how many


def test_regression_target_is_stratified_by_quantile_bins() -> None:
    rng = np.random.default_rng(5)
    price = rng.lognormal(4, 1, 1000)
    table = make_table(1000, y=price)
    plan = plan_split(table, target="y", fractions=THREE, seed=11)
    edges = np.quantile(price, np.linspace(0, 1, 11)[1:-1])
    bins = np.searchsorted(edges, price, side="right")
    part = np.array([part_of(plan)[r] for r in table[ROW_ID].to_pylist()])
    for b in range(10):
        size = int((bins == b).sum())
        for name, fraction in zip(SPLIT_PARTS, THREE, strict=True):
            assert int(((bins == b) & (part == name)).sum()) == pytest.approx(size * fraction, abs=1)


def test_split_plan_to_arrow() -> None:
    table = make_table(20)
    plan = plan_split(table, target="y", fractions=(0.5, 0.5))
    arrow = plan.to_arrow()
    assert arrow.schema == pa.schema([(ROW_ID, pa.int64()), ("part", pa.int8())])
    assert sorted(arrow[ROW_ID].to_pylist()) == sorted(table[ROW_ID].to_pylist())


# ---------------------------------------------------------------- duplicates


def duplicated_table(n: int = 100, copies: int = 10) -> pa.Table:
    """n rows over time, the last ``copies`` repeating the first ``copies`` rows' features at later times."""
    x = np.arange(n, dtype=float)
    x[n - copies:] = x[:copies]
    return make_table(n, x=x, y=np.zeros(n, dtype=np.int64), ts=hours(range(n)))


def test_cross_part_duplicates_raise_leakage_error_with_count_and_percent() -> None:
    table = duplicated_table(100, 10)
    with pytest.raises(LeakageError) as info:
        plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts")
    assert "20 rows (20.00%)" in str(info.value)
    assert "--dedupe" in str(info.value) and "--allow-duplicates" in str(info.value)
    assert info.value.details == {"rows": 20, "percent": 20.0, "groups": 10}


def test_duplicates_within_one_part_are_not_leakage() -> None:
    x = np.arange(100, dtype=float)
    x[1] = x[0]  # both early: both in train
    table = make_table(100, x=x, y=np.zeros(100, dtype=np.int64), ts=hours(range(100)))
    plan = plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts")
    assert plan.counts["cross_part_duplicates"] == 0


def test_dedupe_keeps_exactly_one_copy_per_duplicate_group() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 30, 200).astype(float)  # many duplicate groups, of varying size
    table = make_table(200, x=x, y=np.zeros(200, dtype=np.int64))
    plan = plan_split(table, target="y", fractions=THREE, dedupe=True)
    kept = rows_in(table, plan, "train")["x"].to_pylist() + rows_in(table, plan, "validation")["x"].to_pylist() \
        + rows_in(table, plan, "test")["x"].to_pylist()
    assert sorted(kept) == sorted(set(x.tolist()))
    assert plan.counts["dropped_duplicates"] == 200 - len(set(x.tolist()))
    assert plan.counts["cross_part_duplicates"] == 0
    check_accounting(table, plan)
    # the kept copy is the first one (smallest row id) of each group
    first = {}
    for rid, value in zip(table[ROW_ID].to_pylist(), x.tolist(), strict=True):
        first.setdefault(value, rid)
    assert sorted(plan.row_ids.tolist()) == sorted(first.values())


def test_dedupe_on_time_split_removes_leakage() -> None:
    table = duplicated_table(100, 10)
    plan = plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts", dedupe=True)
    assert plan.counts["dropped_duplicates"] == 10
    assert plan.counts["cross_part_duplicates"] == 0
    train = set(rows_in(table, plan, "train")["x"].to_pylist())
    test = set(rows_in(table, plan, "test")["x"].to_pylist())
    assert not train & test
    check_accounting(table, plan)


def test_allow_duplicates_passes_and_reports_the_count() -> None:
    table = duplicated_table(100, 10)
    plan = plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts", allow_duplicates=True)
    assert plan.counts["cross_part_duplicates"] == 20
    assert plan.counts["dropped_duplicates"] == 0
    assert plan.params["allow_duplicates"] is True
    check_accounting(table, plan)


def test_target_differences_do_not_hide_duplicates() -> None:
    table = duplicated_table(100, 10)
    table = table.set_column(table.column_names.index("y"), "y", pa.array(np.arange(100)))
    with pytest.raises(LeakageError):
        plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts")


def test_excluded_columns_are_ignored_when_finding_duplicates() -> None:
    table = duplicated_table(100, 10)
    table = table.append_column("listing_id", pa.array(np.arange(1000, 1100)))  # unique id on every row
    plan = plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts")  # the id makes rows distinct
    assert plan.counts["cross_part_duplicates"] == 0
    assert "listing_id" in plan.params["duplicate_columns"]
    with pytest.raises(LeakageError):
        plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts", exclude_from_duplicates=("listing_id",))
    plan = plan_split(table, target="y", fractions=(0.5, 0.5), time_column="ts",
                      exclude_from_duplicates=("listing_id",), dedupe=True)
    assert plan.counts["dropped_duplicates"] == 10
    assert "listing_id" not in plan.params["duplicate_columns"]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"target": "nope"}, "target 'nope' is not in the data"),
        ({"target": "y", "time_column": "when"}, "time column 'when' is not in the data"),
        ({"target": "y", "group": "who"}, "group column 'who' is not in the data"),
        ({"target": "y", "time_column": "ts", "group": "host"}, "not both"),
        ({"target": "y", "gap": timedelta(days=1)}, "--gap needs --time-column"),
    ],
)
def test_bad_arguments_are_invalid_input(kwargs: dict, hint: str) -> None:
    table = make_table(10, ts=hours(range(10)), host=pa.array(["a", "b"] * 5))
    with pytest.raises(InvalidInput, match=hint):
        plan_split(table, fractions=(0.5, 0.5), **kwargs)


def test_missing_column_message_lists_data_columns_without_row_id() -> None:
    with pytest.raises(InvalidInput) as info:
        plan_split(make_table(4), target="price", fractions=(0.5, 0.5))
    assert "columns: x, y" in str(info.value)
    assert ROW_ID not in str(info.value)


def test_null_target_is_invalid_input() -> None:
    table = make_table(4, y=pa.array([1, None, 0, None]))
    with pytest.raises(InvalidInput, match="2 rows have no target 'y'"):
        plan_split(table, target="y", fractions=(0.5, 0.5))


def test_null_time_is_invalid_input() -> None:
    ts = pa.array([T0, None, T0], pa.timestamp("us", tz="UTC"))
    with pytest.raises(InvalidInput, match="1 rows have no 'ts'"):
        plan_split(make_table(3, ts=ts), target="y", fractions=(0.5, 0.5), time_column="ts")


# ---------------------------------------------------------------- the accounting property


@given(
    data=st.data(),
    n=st.integers(1, 60),
    method=st.sampled_from(["time", "group", "stratified"]),
    weights=st.lists(st.integers(1, 10), min_size=2, max_size=3),
    dedupe=st.booleans(),
    seed=st.integers(0, 1000),
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_row_in_at_most_one_part_and_counts_add_up(data, n, method, weights, dedupe, seed) -> None:
    fractions = parse_fractions([w / sum(weights) for w in weights])
    x = data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))  # small alphabet: many duplicates
    y = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    times = data.draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    groups = data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    table = make_table(n, x=pa.array(x, pa.int64()), y=pa.array(y, pa.int64()), ts=hours(times),
                       g=pa.array(groups, pa.int64()))
    kwargs: dict = {"target": "y", "fractions": fractions, "seed": seed, "dedupe": dedupe}
    if method == "time":
        kwargs.update(time_column="ts", gap=data.draw(st.sampled_from([None, timedelta(hours=2)])))
    elif method == "group":
        kwargs["group"] = "g"
    try:
        plan = plan_split(table, **kwargs)
    except LeakageError as exc:
        assert not dedupe
        assert exc.details["rows"] >= 2 and exc.details["groups"] >= 1
        plan = plan_split(table, **kwargs, allow_duplicates=True)
        assert plan.counts["cross_part_duplicates"] == exc.details["rows"]
    assert plan.method == method
    check_accounting(table, plan)
    if dedupe:
        assert plan.counts["cross_part_duplicates"] == 0
