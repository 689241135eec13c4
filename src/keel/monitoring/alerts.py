"""Alert rules: a threshold on any series a monitor stores, held for a number of windows.

    psi(price) > 0.2 for 2 windows       drift(neighbourhood) >= 0.1       missing(bedrooms) > 0.05
    rmse > 1.2 x training                accuracy < 0.9 x training         share_drifted >= 0.5
    prediction_drift > 0.1               label_drift > 0.1                 rows < 100
    kpi(revenue) < 1000
    p99_ms > 50 for 3 windows            fallback_rate > 0.01              requests < 10
    cpu > 0.8 for 3 windows              memory_mb > 2048                  uptime < 0.99
    restarts > 0                         error_rate > 0.01

A column series reads the report's statistic for that column (``drift``: whatever its method; a method's name:
only when the column is measured with it); a metric reads the window's performance from labels; ``x training``
compares with the metric the version's run recorded; the infrastructure series (``cpu``: cores in use as a share of
one, ``memory_mb``: the peak resident memory of one serving process, ``uptime``: the share of the window covered,
``restarts``, ``error_rate``) read the serving processes' heartbeats (keel.monitoring.infra), and a window without
heartbeats has no value for them. A rule *fires* when it has held for its last N windows and
*resolves* when it stops holding: one event each, not one per window.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keel.errors import InvalidInput

__all__ = ["Rule", "evaluate", "parse_rule", "series_value"]

METRICS = ("rmse", "mae", "r2", "mape", "accuracy", "precision", "recall", "f1")
COLUMN_SERIES = ("drift", "missing", "psi", "ks", "wasserstein", "jensenshannon", "chisquare", "z", "kpi")
SERVICE_SERIES = ("requests", "p50_ms", "p95_ms", "p99_ms", "fallback_rate")
INFRA_SERIES = ("cpu", "memory_mb", "uptime", "restarts", "error_rate")
PLAIN_SERIES = ("share_drifted", "prediction_drift", "label_drift", "rows", *SERVICE_SERIES, *INFRA_SERIES, *METRICS)
_OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                   "<=": operator.le}
_RULE = re.compile(r"\s*(?P<series>[a-z][a-z0-9_]*)(?:\((?P<column>[^()]+)\))?\s*(?P<op>>=|<=|>|<)\s*"
                   r"(?P<value>-?\d+(?:\.\d+)?(?:e-?\d+)?)(?P<training>\s*x\s*training)?"
                   r"(?:\s+for\s+(?P<windows>\d+)\s+windows?)?\s*", re.IGNORECASE)
MAX_WINDOWS = 100


@dataclass(frozen=True)
class Rule:
    text: str
    series: str
    column: str | None
    op: str
    value: float
    training: bool  # the value multiplies the metric recorded at training time
    windows: int

    def holds(self, results: dict[str, Any], rows: int) -> tuple[bool, float | None]:
        """(the condition holds, the series' value) for one report."""
        value = series_value(self, results, rows)
        if value is None:
            return False, None
        bound = self.value
        if self.training:
            recorded = results.get("performance", {}).get("training", {}).get(self.series)
            if recorded is None:
                return False, value
            bound = self.value * recorded
        return _OPS[self.op](value, bound), value


def parse_rule(text: str) -> Rule:
    match = _RULE.fullmatch(text or "")
    if match is None:
        raise InvalidInput(f"alert rule {text!r}: write SERIES OP NUMBER [x training] [for N windows], e.g. "
                           "'psi(price) > 0.2 for 2 windows' or 'rmse > 1.2 x training'")
    series, column = match["series"].lower(), match["column"]
    if series in COLUMN_SERIES and not column:
        raise InvalidInput(f"alert rule {text!r}: {series} needs a column, e.g. {series}(price)")
    if series in PLAIN_SERIES and column:
        raise InvalidInput(f"alert rule {text!r}: {series} takes no column")
    if series not in COLUMN_SERIES and series not in PLAIN_SERIES:
        raise InvalidInput(f"alert rule {text!r}: unknown series {series!r}; use one of "
                           f"{', '.join(f'{s}(column)' for s in COLUMN_SERIES)}, {', '.join(PLAIN_SERIES)}")
    if match["training"] and series not in METRICS:
        raise InvalidInput(f"alert rule {text!r}: 'x training' compares a metric ({', '.join(METRICS)}) with "
                           "its training-time value")
    windows = int(match["windows"] or 1)
    if not 1 <= windows <= MAX_WINDOWS:
        raise InvalidInput(f"alert rule {text!r}: for 1 to {MAX_WINDOWS} windows")
    return Rule(text.strip(), series, column.strip() if column else None, match["op"], float(match["value"]),
                bool(match["training"]), windows)


def series_value(rule: Rule, results: dict[str, Any], rows: int) -> float | None:
    """The rule's series in one report's results; None when the report does not have it."""
    if rule.series == "rows":
        return float(rows)
    if rule.series in METRICS:
        return results.get("performance", {}).get("metrics", {}).get(rule.series)
    if rule.series == "kpi":
        return results.get("kpis", {}).get(rule.column or "", {}).get("value")
    if rule.series in INFRA_SERIES:
        infra = results.get("service", {}).get("infrastructure") or {}
        if rule.series == "memory_mb":
            peak = (infra.get("memory") or {}).get("peak_bytes")
            return None if peak is None else peak / 2**20
        value = infra.get(rule.series)
        return None if value is None else float(value)
    if rule.series in SERVICE_SERIES:
        service = results.get("service", {})
        if rule.series.endswith("_ms"):
            return (service.get("latency_ms") or {}).get(rule.series.removesuffix("_ms"))
        return service.get(rule.series)
    overall = results.get("overall", {})
    if rule.series == "share_drifted":
        return overall.get("share_of_drifted_columns")
    if rule.series in ("prediction_drift", "label_drift"):
        columns = (results.get(rule.series.removesuffix("_drift")) or {}).get("columns", [])
        return columns[0].get("statistic") if columns else None
    column = next((c for c in overall.get("columns", []) if c["column"] == rule.column), None)
    if column is None:
        return None
    if rule.series == "missing":
        return column.get("missing_rate_change")
    if rule.series != "drift" and column.get("method") != rule.series:
        return None  # measured with another method: set methods: {column: <method>} in the monitor
    return column.get("statistic")


def evaluate(rules: list[Rule], history: list[tuple[dict[str, Any], int]], previous: list[dict[str, Any]]
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each rule's state for the newest report of ``history`` (newest first: (results, rows)), and the events:
    ``firing`` when it starts to hold for its N windows, ``resolved`` when it stops. ``previous``: the states
    the report before stored."""
    was = {p["rule"]: p.get("firing", False) for p in previous}
    states, events = [], []
    for rule in rules:
        checks = [rule.holds(results, rows) for results, rows in history[:rule.windows]]
        value = checks[0][1] if checks else None
        firing = len(checks) == rule.windows and all(ok for ok, _ in checks)
        states.append({"rule": rule.text, "value": value, "holds": bool(checks and checks[0][0]), "firing": firing})
        if firing != was.get(rule.text, False):
            events.append({"rule": rule.text, "state": "firing" if firing else "resolved", "value": value})
    return states, events
