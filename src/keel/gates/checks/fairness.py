"""Fairness test: per-group metrics over a sensitive column and their gaps, defined as Fairlearn defines them.

For a classifier, with the favourable class as positive: the demographic parity difference is the spread
(max - min over groups) of the selection rate; the equalized odds difference is the larger of the spreads
of the true positive rate and the false positive rate; the error rate gap is the spread of the error rate.
For a regressor only the error gap applies, as the spread of the mean absolute error. Groups smaller than
``min_group_rows`` are listed but left out of the spreads. Everything is a bincount over group codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keel.errors import InvalidInput
from keel.gates.context import GateContext
from keel.gates.model import GateOutcome
from keel.gates.spec import FairnessTest

__all__ = ["group_rates", "run_fairness"]


def run_fairness(ctx: GateContext, test: FairnessTest) -> GateOutcome:
    frame = ctx.frame
    predicted = np.asarray(ctx.predict(frame))
    truth = frame[ctx.label].to_numpy()
    codes, groups = pd.factorize(frame[test.sensitive], use_na_sentinel=False)
    if ctx.task == "classification":
        positive = test.positive if test.positive is not None else _last_class(ctx, truth)
        table = group_rates(truth == positive, predicted == positive, codes, len(groups))
        table["error_rate"] = np.bincount(codes, predicted != truth, minlength=len(groups)) / table["rows"]
    else:
        error = np.abs(predicted.astype(float) - truth.astype(float))
        table = {"rows": np.bincount(codes, minlength=len(groups)).astype(float)}
        table["mae"] = np.bincount(codes, error, minlength=len(groups)) / table["rows"]
    big = table["rows"] >= test.min_group_rows
    gaps = _gaps(table, big, ctx.task)
    limits = {"demographic_parity_difference": test.max_demographic_parity_difference,
              "equalized_odds_difference": test.max_equalized_odds_difference,
              "error_rate_gap": test.max_error_rate_gap}
    judged = [(name, gaps.get(name), limit) for name, limit in limits.items() if limit is not None]
    over = [(n, v, lim) for n, v, lim in judged if v is not None and v > lim]
    rows = [{test.sensitive: _plain(g), **{k: _plain(v[i]) for k, v in table.items()}, "judged": bool(big[i])}
            for i, g in enumerate(groups)]
    shown = over[0] if over else judged[0]
    return GateOutcome(not over, value=shown[1], threshold=shown[2], evidence=rows,
                       details={"gaps": gaps, "groups": len(groups), "judged_groups": int(big.sum())},
                       message=", ".join(f"{n} {_fmt(v)} {'>' if (v or 0) > lim else '<='} {lim:g}"
                                         for n, v, lim in judged) + f" over {int(big.sum())} {test.sensitive} group(s)")


def group_rates(y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Rows, selection rate, true and false positive rate per group, from boolean truth and prediction."""
    rows = np.bincount(codes, minlength=n).astype(float)
    positives = np.bincount(codes, y_true, minlength=n).astype(float)
    negatives = rows - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"rows": rows,
                "selection_rate": np.bincount(codes, y_pred, minlength=n) / rows,
                "true_positive_rate": np.bincount(codes, y_pred & y_true, minlength=n) / positives,
                "false_positive_rate": np.bincount(codes, y_pred & ~y_true, minlength=n) / negatives}


def _gaps(table: dict[str, np.ndarray], judged: np.ndarray, task: str) -> dict[str, float | None]:
    def spread(values: np.ndarray) -> float | None:
        kept = values[judged & np.isfinite(values)]
        return float(kept.max() - kept.min()) if kept.size else None

    if task != "classification":
        return {"error_rate_gap": spread(table["mae"])}
    tpr, fpr = spread(table["true_positive_rate"]), spread(table["false_positive_rate"])
    odds = None if tpr is None and fpr is None else max(v for v in (tpr, fpr) if v is not None)
    return {"demographic_parity_difference": spread(table["selection_rate"]), "equalized_odds_difference": odds,
            "error_rate_gap": spread(table["error_rate"])}


def check_fairness(test: FairnessTest, task: str) -> None:
    if task != "classification" and (test.max_demographic_parity_difference is not None
                                      or test.max_equalized_odds_difference is not None):
        raise InvalidInput(f"fairness test on {test.sensitive!r}: demographic parity and equalized odds apply to "
                           "classifiers; for a regressor use max_error_rate_gap (the spread of the MAE)")


def _last_class(ctx: GateContext, truth: np.ndarray) -> Any:
    known = getattr(ctx.model.model, "classes_", None)
    classes = np.asarray(known) if known is not None else np.sort(pd.unique(truth))
    return classes[-1]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4g}"
