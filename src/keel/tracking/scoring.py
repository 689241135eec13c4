"""Standard metrics for many groups at once (a whole part is one group, each slice value another).

Everything is counted with ``np.bincount`` over group codes, so a slice column with a thousand values
costs a few array passes, not a thousand calls into ``sklearn.metrics``. The definitions match
scikit-learn's (the tests check them against it): binary precision/recall/F1 for the positive class,
macro averages over the classes present in a group for multiclass, ROC AUC as the Mann-Whitney
statistic with mid-ranks for ties (one-vs-rest macro for multiclass), log loss with probabilities
clipped to machine epsilon, R² forced finite for a constant target. Undefined values are NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CLASSIFICATION_METRICS",
    "HIGHER_IS_BETTER",
    "REGRESSION_METRICS",
    "classification_metrics",
    "regression_metrics",
]

REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
HIGHER_IS_BETTER = {"accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True,
                    "log_loss": False, "rmse": False, "mae": False, "r2": True, "mape": False}


def _divide(num: np.ndarray, den: np.ndarray, empty: float = np.nan) -> np.ndarray:
    out = np.full(np.shape(num), empty, dtype=float)
    np.divide(num, den, out=out, where=den != 0)
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """RMSE, MAE, R² and MAPE per group; MAPE leaves out rows whose target is 0 (``mape_rows`` counts the rest)."""
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    n = np.bincount(groups, minlength=n_groups).astype(float)
    err = pred - y
    sse = np.bincount(groups, err * err, minlength=n_groups)
    mean_y = _divide(np.bincount(groups, y, minlength=n_groups), n)
    centred = y - mean_y[groups]
    sst = np.bincount(groups, centred * centred, minlength=n_groups)
    r2 = np.where(sst > 0, 1 - _divide(sse, sst), np.where(sse == 0, 1.0, 0.0))  # scikit-learn's force_finite
    r2[n < 2] = np.nan
    nonzero = y != 0
    mape_rows = np.bincount(groups[nonzero], minlength=n_groups).astype(float)
    ape = np.bincount(groups[nonzero], np.abs(err[nonzero] / y[nonzero]), minlength=n_groups)
    return {"rmse": np.sqrt(_divide(sse, n)), "mae": _divide(np.bincount(groups, np.abs(err), minlength=n_groups), n),
            "r2": r2, "mape": _divide(ape, mape_rows), "mape_rows": mape_rows}


def classification_metrics(truth: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, n_classes: int,
                           groups: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall, F1, ROC AUC and log loss per group from class codes 0..n_classes-1.

    ``proba`` has one column per class code (None when the model has no ``predict_proba``). With two
    classes, code 1 is the positive class.
    """
    n = np.bincount(groups, minlength=n_groups).astype(float)
    out = {"accuracy": _divide(np.bincount(groups, (truth == pred).astype(float), minlength=n_groups), n)}
    if n_classes == 2:
        tp = np.bincount(groups, (truth == 1) & (pred == 1), minlength=n_groups)
        fp = np.bincount(groups, (truth == 0) & (pred == 1), minlength=n_groups)
        fn = np.bincount(groups, (truth == 1) & (pred == 0), minlength=n_groups)
        out["precision"] = _divide(tp, tp + fp, 0.0)
        out["recall"] = _divide(tp, tp + fn, 0.0)
        out["f1"] = _divide(2 * tp, 2 * tp + fp + fn, 0.0)
    else:
        out.update(_macro(truth, pred, n_classes, groups, n_groups))
    if proba is None:
        out["roc_auc"] = out["log_loss"] = np.full(n_groups, np.nan)
        return out
    eps = np.finfo(proba.dtype).eps
    p_true = np.clip(proba[np.arange(len(truth)), truth], eps, 1 - eps)
    out["log_loss"] = _divide(np.bincount(groups, -np.log(p_true), minlength=n_groups), n)
    if n_classes == 2:
        out["roc_auc"] = _auc(proba[:, 1], truth == 1, groups, n_groups)
    else:  # one-vs-rest, macro: undefined when a class is missing from a group
        out["roc_auc"] = np.mean([_auc(proba[:, k], truth == k, groups, n_groups) for k in range(n_classes)], axis=0)
    return out


def _macro(truth: np.ndarray, pred: np.ndarray, k: int, groups: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """Macro averages over the classes that occur (as label or prediction) in each group."""
    size = n_groups * k
    support = np.bincount(groups * k + truth, minlength=size).reshape(n_groups, k).astype(float)
    predicted = np.bincount(groups * k + pred, minlength=size).reshape(n_groups, k).astype(float)
    tp = np.bincount(groups * k + truth, (truth == pred).astype(float), minlength=size).reshape(n_groups, k)
    present = (support + predicted) > 0
    count = present.sum(axis=1)

    def average(values: np.ndarray) -> np.ndarray:
        return _divide((values * present).sum(axis=1), count)

    return {"precision": average(_divide(tp, predicted, 0.0)), "recall": average(_divide(tp, support, 0.0)),
            "f1": average(_divide(2 * tp, support + predicted, 0.0))}


def _auc(score: np.ndarray, positive: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """ROC AUC per group: (sum of positive ranks - P(P+1)/2) / (P·N), ranks averaged over ties."""
    ranks = pd.Series(score).groupby(groups).rank(method="average").to_numpy()
    n_pos = np.bincount(groups, positive, minlength=n_groups)
    n_neg = np.bincount(groups, minlength=n_groups) - n_pos
    rank_sum = np.bincount(groups, ranks * positive, minlength=n_groups)
    return _divide(rank_sum - n_pos * (n_pos + 1) / 2, n_pos * n_neg)
