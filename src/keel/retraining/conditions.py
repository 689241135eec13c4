"""When a retraining policy fires: conditions written as calls, read with ``ast`` (never evaluated).

    drift(neighbourhood)                                drift(prediction, method=psi, threshold=0.2, windows=2)
    performance(rmse, degradation=0.2)                  performance(accuracy, degradation=0.05, windows=3)
    volume(5000)                                        schedule("0 3 * * 1", timezone="Europe/Berlin")
    manual()

Drift and performance read the deployment's monitor reports. ``drift(c, windows=n)`` holds when the monitor found
column ``c`` drifted (``prediction``: the prediction) in each of the last n reports, by its own method and
threshold; with ``threshold=t``, when the statistic is past t in the method's direction (a distance such as psi at
or above t; a test such as ks below t as a p-value); with ``method=m``, only when the column is measured with m.
``performance(m, degradation=d)`` is the monitor alert rule ``m > 1+d x training`` for an error (rmse, mae, mape)
and ``m < 1-d x training`` for a score. A condition holding
over a run of consecutive reports is one event, keyed by the run's first report: drift that lasts three months
fires once, not three times.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from keel.errors import InvalidInput
from keel.monitoring.alerts import METRICS, Rule, parse_rule
from keel.monitoring.drift import DISTANCES
from keel.pipelines.triggers import check_cron

__all__ = ["KINDS", "Condition", "parse_condition"]

KINDS = ("drift", "performance", "volume", "schedule", "manual")
ERRORS = ("rmse", "mae", "mape")  # lower is better; the others are scores


@dataclass(frozen=True)
class Condition:
    text: str
    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def windows(self) -> int:
        return int(self.args.get("windows", 1))

    def holds(self, results: dict[str, Any], rows: int) -> tuple[bool, float | None]:
        """(the condition holds, the value it read) for one monitor report."""
        if self.kind == "drift":
            return _drift(self.args, results)
        rule = self.rule()
        return rule.holds(results, rows) if rule is not None else (False, None)

    def rule(self) -> Rule | None:
        """The monitor alert rule that decides a performance condition."""
        if self.kind == "performance":
            metric, degradation = self.args["metric"], self.args["degradation"]
            bound = f"> {1 + degradation:g}" if metric in ERRORS else f"< {1 - degradation:g}"
            return parse_rule(f"{metric} {bound} x training for {self.args['windows']} windows")
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "kind": self.kind, "args": dict(self.args)}


def parse_condition(text: str) -> Condition:
    """One condition, checked: InvalidInput names what is wrong and shows the form."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a retraining condition is text such as 'drift(price, threshold=0.2)'")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise InvalidInput(f"cannot read the condition {text!r}; write it as a call, e.g. "
                           "drift(neighbourhood, threshold=0.1) or volume(5000)") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.func.id not in KINDS:
        raise InvalidInput(f"unknown condition {text!r}; use one of {', '.join(f'{k}(...)' for k in KINDS)}")
    kind = node.func.id
    args = [_value(a, text) for a in node.args]
    kwargs = {k.arg: _value(k.value, text) for k in node.keywords if k.arg}
    return Condition(text.strip(), kind, _checked(kind, args, kwargs, text))


def _value(node: ast.AST, text: str) -> Any:
    if isinstance(node, ast.Name):  # drift(neighbourhood): a bare name is the text
        return node.id
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise InvalidInput(f"in {text!r}: arguments are names, numbers or quoted text") from None


def _checked(kind: str, args: list[Any], kwargs: dict[str, Any], text: str) -> dict[str, Any]:
    def take(names: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
        if len(args) > len(names):
            raise InvalidInput(f"{text!r}: {kind} takes at most {len(names)} positional argument(s)")
        got = dict(zip(names, args, strict=False)) | kwargs
        unknown = set(got) - set(names)
        if unknown:
            raise InvalidInput(f"{text!r}: {kind} has no argument {', '.join(sorted(unknown))}; it takes "
                               f"{', '.join(names) or 'none'}")
        missing = [n for n in required if n not in got]
        if missing:
            raise InvalidInput(f"{text!r}: {kind} needs {', '.join(missing)}")
        return got

    if kind == "drift":
        got = take(("column", "method", "threshold", "windows"), ("column",))
        got.setdefault("threshold", None)
        got.setdefault("windows", 1)
        got.setdefault("method", None)
        if got["threshold"] is not None:
            _positive(got["threshold"], "threshold", text)
        _windows(got["windows"], text)
        return got
    if kind == "performance":
        got = take(("metric", "degradation", "windows"), ("metric",))
        if got["metric"] not in METRICS:
            raise InvalidInput(f"{text!r}: unknown metric {got['metric']!r}; use one of {', '.join(METRICS)}")
        got.setdefault("degradation", 0.1)
        got.setdefault("windows", 1)
        if not isinstance(got["degradation"], int | float) or not 0 < got["degradation"] < 10:
            raise InvalidInput(f"{text!r}: degradation is a share, e.g. 0.2 for 20% worse than at training")
        _windows(got["windows"], text)
        return got
    if kind == "volume":
        got = take(("rows",), ("rows",))
        if not isinstance(got["rows"], int) or isinstance(got["rows"], bool) or got["rows"] < 1:
            raise InvalidInput(f"{text!r}: volume takes a whole number of new labelled rows, e.g. volume(5000)")
        return got
    if kind == "schedule":
        got = take(("cron", "timezone"), ("cron",))
        got.setdefault("timezone", "UTC")
        check_cron(got["cron"], got["timezone"])
        return got
    return take((), ())


def _drift(args: dict[str, Any], results: dict[str, Any]) -> tuple[bool, float | None]:
    """A column's (or the prediction's) drift in one report: the monitor's own verdict, or, with a threshold, the
    statistic past it in the method's direction (a distance at or above it; a test's p-value below it)."""
    column = args["column"]
    found = (results.get("prediction") or {}).get("columns", []) if column == "prediction" else \
        [c for c in (results.get("overall") or {}).get("columns", []) if c.get("column") == column]
    if not found or found[0].get("no_data"):
        return False, None
    measured = found[0]
    if args.get("method") and measured.get("method") != args["method"]:
        return False, None  # measured with another method: set the monitor's methods: {column: method}
    threshold = args.get("threshold")
    if measured.get("method") in DISTANCES or measured.get("p_value") is None:
        value = measured.get("statistic")
        held = bool(measured.get("drifted")) if threshold is None else value is not None and value >= threshold
    else:
        value = measured.get("p_value")
        held = bool(measured.get("drifted")) if threshold is None else value is not None and value < threshold
    return held, value


def _positive(value: Any, name: str, text: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(f"{text!r}: {name} is a positive number")


def _windows(value: Any, text: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
        raise InvalidInput(f"{text!r}: windows is a whole number from 1 to 100")
