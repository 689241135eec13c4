"""Evaluation and importance plots, drawn on bare matplotlib Figures.

Figures are made with ``matplotlib.figure.Figure`` rather than pyplot: nothing is registered in
pyplot's global figure list (so nothing leaks or needs closing), no backend is selected, and the PNG
is rendered by the Agg canvas that ``savefig`` picks for the format. Scatter plots draw a seeded
sample of at most ``MAX_POINTS`` rows: a million dots say no more than five thousand and take minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MAX_POINTS",
    "confusion_matrix_figure",
    "importance_figure",
    "pr_curve_figure",
    "predicted_vs_actual_figure",
    "residuals_figure",
    "roc_curve_figure",
]

MAX_POINTS = 5000
MAX_CURVES = 10  # one-vs-rest curves drawn for at most this many classes
MAX_BARS = 30


def _figure(width: float = 5.5, height: float = 4.5) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots()


def _sample(n: int, seed: int = 0) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))


def confusion_matrix_figure(truth: np.ndarray, pred: np.ndarray, classes: Sequence[Any], title: str) -> Any:
    """Counts of (true class, predicted class), annotated, rows normalised by colour."""
    k = len(classes)
    counts = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, ax = _figure(max(4.5, 0.6 * k + 3), max(4.0, 0.6 * k + 2.5))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, label="share of the true class")
    if k <= 20:
        for i, j in np.ndindex(k, k):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=8)
    labels = [str(c) for c in classes]
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return figure


def _one_vs_rest(truth: np.ndarray, proba: np.ndarray,
                 classes: Sequence[Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if len(classes) == 2:
        return [(str(classes[1]), truth == 1, proba[:, 1])]
    support = np.bincount(truth, minlength=len(classes))
    order = np.argsort(-support)[:MAX_CURVES]
    return [(str(classes[k]), truth == k, proba[:, k]) for k in order if 0 < support[k] < len(truth)]


def roc_curve_figure(truth: np.ndarray, proba: np.ndarray, classes: Sequence[Any], title: str) -> Any:
    """ROC curve of the positive class (one-vs-rest per class when there are more than two)."""
    from sklearn.metrics import auc, roc_curve

    figure, ax = _figure()
    for name, positive, score in _one_vs_rest(truth, proba, classes):
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize=8)
    return figure


def pr_curve_figure(truth: np.ndarray, proba: np.ndarray, classes: Sequence[Any], title: str) -> Any:
    """Precision-recall curve; the dashed line is the positive rate (what a constant guess achieves)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    figure, ax = _figure()
    for name, positive, score in _one_vs_rest(truth, proba, classes):
        if not positive.any():
            continue
        precision, recall, _ = precision_recall_curve(positive, score)
        ap = average_precision_score(positive, score)
        line = ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
        ax.axhline(positive.mean(), linestyle="--", color=line[0].get_color(), alpha=0.5)
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    return figure


def residuals_figure(y: np.ndarray, pred: np.ndarray, title: str) -> Any:
    """Residual (actual - predicted) against predicted: structure here is signal the model missed."""
    rows = _sample(len(y))
    figure, ax = _figure()
    ax.scatter(pred[rows], (y - pred)[rows], s=6, alpha=0.4)
    ax.axhline(0, color="grey", linestyle="--")
    ax.set(xlabel="predicted", ylabel="residual (actual - predicted)", title=title)
    return figure


def predicted_vs_actual_figure(y: np.ndarray, pred: np.ndarray, title: str) -> Any:
    """Predicted against actual with the identity line: a perfect model lies on it."""
    rows = _sample(len(y))
    figure, ax = _figure()
    ax.scatter(y[rows], pred[rows], s=6, alpha=0.4)
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([low, high], [low, high], color="grey", linestyle="--")
    ax.set(xlabel="actual", ylabel="predicted", title=title)
    return figure


def importance_figure(table: pd.DataFrame, title: str) -> Any:
    """Horizontal bars of permutation importance (± one std), with built-in and SHAP beside when known."""
    top = table.head(MAX_BARS).iloc[::-1]
    columns = [c for c in ("permutation_mean", "builtin", "shap_mean_abs") if c in top and top[c].notna().any()]
    figure, axes = _figure_row(len(columns), max(3.0, 0.3 * len(top) + 1.5))
    for ax, column in zip(axes, columns, strict=True):
        values = top[column].fillna(0.0)
        errors = top["permutation_std"].fillna(0.0) if column == "permutation_mean" else None
        ax.barh(range(len(top)), values, xerr=errors, color="tab:blue" if errors is not None else "tab:grey")
        ax.set_yticks(range(len(top)), [str(i) for i in top.index])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(column.replace("_", " "))
    figure.suptitle(title)
    return figure


def _figure_row(n: int, height: float) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.0 * max(n, 1) + 1.5, height), layout="constrained")
    axes = figure.subplots(1, max(n, 1), sharey=True, squeeze=False)[0]
    return figure, list(axes)
