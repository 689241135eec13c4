"""Gate conditions and perturbations, without a workspace: the arithmetic a release decision rests on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.gates.checks.behaviour import perturbed
from keel.gates.checks.fairness import group_rates
from keel.gates.checks.smoke import synthetic_rows
from keel.gates.conditions import parse_condition
from keel.gates.spec import Perturbation


@pytest.mark.parametrize(("text", "value", "refs", "passed", "bound"), [
    ("rmse <= 60", 59.0, {}, True, 60.0),
    ("rmse < 60", 60.0, {}, False, 60.0),
    ("rmse <= 0.95 * champion", 40.0, {"champion": 43.0}, True, 40.85),
    ("rmse <= 0.95 * champion", 41.0, {"champion": 43.0}, False, 40.85),
    ("roc_auc >= baseline + 0.05", 0.56, {"baseline": 0.5}, True, 0.55),
    ("roc_auc >= baseline + 0.05", 0.54, {"baseline": 0.5}, False, 0.55),
    ("r2 > champion - 0.01", 0.80, {"champion": 0.805}, True, 0.795),
    ("mae <= 2e1", 20.0, {}, True, 20.0),
])
def test_conditions_compute_their_bound_and_verdict(text, value, refs, passed, bound) -> None:
    judgement = parse_condition(text).judge(value, refs)
    assert (judgement.passed, judgement.skipped) == (passed, False)
    assert judgement.bound == pytest.approx(bound)


def test_a_missing_reference_skips_and_an_undefined_metric_fails() -> None:
    condition = parse_condition("rmse <= champion")
    assert condition.judge(10.0, {"champion": None}).skipped
    assert not parse_condition("rmse <= 5").judge(None, {}).passed


def test_min_change_asks_for_a_real_improvement_in_the_metric_direction() -> None:
    lower = parse_condition("rmse <= champion")
    assert not lower.judge(9.95, {"champion": 10.0}, min_change=0.1).passed
    assert lower.judge(9.85, {"champion": 10.0}, min_change=0.1).passed
    higher = parse_condition("roc_auc >= champion")
    assert not higher.judge(0.801, {"champion": 0.8}, min_change=0.01).passed
    assert higher.judge(0.82, {"champion": 0.8}, min_change=0.01).passed


@pytest.mark.parametrize(("text", "message"), [
    ("rmse", "cannot read"), ("rmse <= ", "cannot read"), ("rmse == 3", "cannot read"),
    ("accuracyy >= 0.9", "unknown metric"), ("rmse <= 2 * best", "unknown reference"),
    ("rmse <= champion * 2", "cannot read"),
])
def test_malformed_conditions_are_refused(text, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_condition(text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=60), st.integers(0, 10_000))
def test_a_swap_within_groups_keeps_each_groups_values(values, seed) -> None:
    n = len(values)
    frame = pd.DataFrame({"v": values, "g": np.arange(n) % 3})
    out = perturbed(frame, Perturbation(column="v", how="swap", within="g"), np.random.default_rng(seed))
    for _, group in frame.groupby("g"):
        assert sorted(out.loc[group.index, "v"]) == sorted(group["v"])
    assert out.drop(columns="v").equals(frame.drop(columns="v"))


def test_noise_keeps_an_integer_column_integer_and_set_fills_every_row() -> None:
    frame = pd.DataFrame({"n": np.arange(100, dtype=np.int64), "c": ["x"] * 100})
    noisy = perturbed(frame, Perturbation(column="n", how="noise", scale=0.5), np.random.default_rng(0))
    assert noisy["n"].dtype == np.int64 and not noisy["n"].equals(frame["n"])
    filled = perturbed(frame, Perturbation(column="c", how="set", value="y"), np.random.default_rng(0))
    assert set(filled["c"]) == {"y"}


def test_synthetic_rows_stay_within_what_the_data_holds() -> None:
    data = pd.DataFrame({"i": [1, 5, 9], "f": [0.5, 2.5, 1.0], "s": ["a", "b", None], "b": [True, False, True]})
    rows = synthetic_rows(data, ["i", "f", "s", "b"], 500, np.random.default_rng(1))
    assert len(rows) == 500 and rows["i"].between(1, 9).all() and rows["f"].between(0.5, 2.5).all()
    assert set(rows["s"].dropna()) <= {"a", "b"} and rows["s"].isna().any()  # a third missing in the data
    assert rows["i"].dtype == data["i"].dtype and rows["b"].dtype == bool


def test_group_rates_are_the_per_group_selection_and_error_rates() -> None:
    truth = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    pred = np.array([1, 0, 1, 0, 1, 1], dtype=bool)
    rates = group_rates(truth, pred, np.array([0, 0, 0, 1, 1, 1]), 2)
    assert rates["selection_rate"].tolist() == pytest.approx([2 / 3, 2 / 3])
    assert rates["true_positive_rate"].tolist() == pytest.approx([0.5, 1.0])
    assert rates["false_positive_rate"].tolist() == pytest.approx([1.0, 0.5])
