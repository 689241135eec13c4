"""Metric conditions as people write them: ``rmse <= 60``, ``rmse <= 0.95 * champion``, ``auc >= baseline + 0.05``.

A condition names a metric, a comparison and a bound: a number, or a multiple of the champion's or the
baseline's value of the same metric plus an offset. ``min_change`` (MLflow's ``min_absolute_change``) asks
the candidate to also beat that reference by at least so much in the metric's better direction, so a
difference inside the noise does not count as better.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any

from keel.errors import InvalidInput
from keel.tracking.scoring import CLASSIFICATION_METRICS, HIGHER_IS_BETTER, REGRESSION_METRICS

__all__ = ["METRICS", "Condition", "Judgement", "parse_condition"]

METRICS = (*REGRESSION_METRICS, *CLASSIFICATION_METRICS)
REFERENCES = ("champion", "baseline")
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_NEGATED = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERN = re.compile(
    rf"^\s*(?P<metric>[a-z_0-9]+)\s*(?P<op><=|>=|<|>)\s*"
    rf"(?:(?P<number>{_NUMBER})\s*$|(?:(?P<factor>{_NUMBER})\s*\*\s*)?(?P<ref>[a-z]+)"
    rf"(?:\s*(?P<sign>[-+])\s*(?P<offset>{_NUMBER}))?\s*$)"
)


@dataclass(frozen=True)
class Judgement:
    passed: bool
    skipped: bool
    value: float | None
    bound: float | None
    message: str


@dataclass(frozen=True)
class Condition:
    """``metric op factor * reference + offset`` (reference None: ``metric op offset``)."""

    text: str
    metric: str
    op: str
    reference: str | None
    factor: float
    offset: float

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]

    def judge(self, value: float | None, references: dict[str, float | None], min_change: float = 0.0) -> Judgement:
        """Hold ``value`` to this condition; a missing reference (no champion yet) skips it."""
        if self.reference is not None and references.get(self.reference) is None:
            return Judgement(True, True, value, None, f"{self.text}: skipped, no {self.reference} to compare with")
        if value is None:
            return Judgement(False, False, None, None, f"{self.text}: {self.metric} is undefined on this data")
        ref = references.get(self.reference) if self.reference else None
        bound = self.offset if ref is None else self.factor * ref + self.offset
        passed = _OPS[self.op](value, bound)
        shown = self.op if passed else _NEGATED[self.op]  # "rmse 34.6 > 2", not "rmse 34.6 <= 2", when it fails
        message = f"{self.text}: {self.metric} {_fmt(value)} {shown} {_fmt(bound)}"
        if ref is not None:
            message += f" ({self.reference} {_fmt(ref)})"
            if min_change > 0:
                gain = value - ref if self.higher_is_better else ref - value
                if gain < min_change:
                    passed = False
                    message += f"; beats the {self.reference} by {_fmt(gain)}, less than min_change {_fmt(min_change)}"
        return Judgement(bool(passed), False, value, bound, message)


def parse_condition(text: str) -> Condition:
    """A condition from its text; unknown metrics and references are refused with what is known."""
    if not isinstance(text, str):
        raise ValueError(f"a condition is a string like 'rmse <= 0.95 * champion', not {text!r}")
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(f"cannot read condition {text!r}; write 'METRIC OP NUMBER', 'METRIC OP [F *] champion "
                         "[+|- N]' or the same with baseline, OP one of <=, <, >=, >")
    metric = match["metric"]
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} in {text!r}; metrics are {', '.join(METRICS)}")
    if match["number"] is not None:
        return Condition(text.strip(), metric, match["op"], None, 0.0, float(match["number"]))
    reference = match["ref"]
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r} in {text!r}; compare with champion or baseline")
    offset = float(match["offset"]) if match["offset"] else 0.0
    return Condition(text.strip(), metric, match["op"], reference,
                     float(match["factor"]) if match["factor"] else 1.0, -offset if match["sign"] == "-" else offset)


def check_metrics(conditions: list[Condition], task: str, where: str) -> None:
    """Every metric named fits the task (no AUC for a regressor)."""
    known = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    for condition in conditions:
        if condition.metric not in known:
            raise InvalidInput(f"{where}: {condition.metric} is not a {task} metric; use one of {', '.join(known)}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
