"""The vectorised, grouped metrics in keel.tracking.scoring equal scikit-learn's, group by group."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from keel.tracking.scoring import classification_metrics, regression_metrics


def _groups(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.integers(0, k, size=n)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 80), n_groups=st.integers(1, 4))
def test_regression_metrics_equal_sklearn_per_group(seed: int, n: int, n_groups: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 20, n).round(1)
    y[rng.random(n) < 0.1] = 0.0  # zero targets: MAPE leaves them out
    pred = y + rng.normal(0, 5, n)
    groups = _groups(rng, n, n_groups)
    got = regression_metrics(y, pred, groups, n_groups)
    for g in range(n_groups):
        rows = groups == g
        if not rows.any():
            assert np.isnan(got["rmse"][g])
            continue
        assert got["rmse"][g] == pytest.approx(skm.root_mean_squared_error(y[rows], pred[rows]))
        assert got["mae"][g] == pytest.approx(skm.mean_absolute_error(y[rows], pred[rows]))
        if rows.sum() >= 2:
            assert got["r2"][g] == pytest.approx(skm.r2_score(y[rows], pred[rows]), abs=1e-9)
        nonzero = rows & (y != 0)
        if nonzero.any():
            assert got["mape"][g] == pytest.approx(skm.mean_absolute_percentage_error(y[nonzero], pred[nonzero]))
        assert got["mape_rows"][g] == nonzero.sum()


def test_r2_of_a_constant_target_is_forced_finite_like_sklearn() -> None:
    y = np.array([3.0, 3.0, 3.0, 3.0])
    groups = np.array([0, 0, 1, 1])
    got = regression_metrics(y, np.array([3.0, 3.0, 2.0, 4.0]), groups, 2)
    assert got["r2"].tolist() == [1.0, 0.0]
    assert skm.r2_score(y[:2], y[:2]) == 1.0 and skm.r2_score(y[2:], [2.0, 4.0]) == 0.0


def _proba(rng: np.random.Generator, n: int, k: int, truth: np.ndarray) -> np.ndarray:
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), truth] += 1.0
    logits = logits.round(1)  # ties in the scores: AUC must average them like sklearn
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(6, 120), k=st.integers(2, 4), n_groups=st.integers(1, 3))
def test_classification_metrics_equal_sklearn_per_group(seed: int, n: int, k: int, n_groups: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    proba = _proba(rng, n, k, truth)
    pred = np.where(rng.random(n) < 0.2, rng.integers(0, k, n), proba.argmax(axis=1))
    groups = _groups(rng, n, n_groups)
    got = classification_metrics(truth, pred, proba, k, groups, n_groups)
    average = "binary" if k == 2 else "macro"
    for g in range(n_groups):
        rows = groups == g
        if not rows.any():
            continue
        t, p, pr = truth[rows], pred[rows], proba[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert got["accuracy"][g] == pytest.approx(skm.accuracy_score(t, p))
            assert got["precision"][g] == pytest.approx(skm.precision_score(t, p, average=average, zero_division=0))
            assert got["recall"][g] == pytest.approx(skm.recall_score(t, p, average=average, zero_division=0))
            assert got["f1"][g] == pytest.approx(skm.f1_score(t, p, average=average, zero_division=0))
            assert got["log_loss"][g] == pytest.approx(skm.log_loss(t, y_proba=pr, labels=list(range(k))))
        present = np.unique(t)
        if len(present) < k:
            assert np.isnan(got["roc_auc"][g])  # undefined: a class is missing from the group
        elif k == 2:
            assert got["roc_auc"][g] == pytest.approx(skm.roc_auc_score(t, pr[:, 1]))
        else:
            assert got["roc_auc"][g] == pytest.approx(skm.roc_auc_score(t, pr, multi_class="ovr", average="macro"))


def test_without_probabilities_auc_and_log_loss_are_undefined() -> None:
    truth, pred = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    got = classification_metrics(truth, pred, None, 2, np.zeros(4, dtype=np.int64), 1)
    assert np.isnan(got["roc_auc"][0]) and np.isnan(got["log_loss"][0])
    assert got["recall"][0] == pytest.approx(0.5) and got["precision"][0] == pytest.approx(1.0)
