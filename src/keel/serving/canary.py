"""The canary controller's judgement: guardrails held to each arm's numbers from the prediction log.

Guardrails read ``MEASURE < LIMIT`` (or ``<=``): ``error_rate`` (the share of the arm's requests its model failed,
answered by a fallback), ``p50_ms`` / ``p99_ms`` (latency), ``mean_shift(prediction)`` (|canary mean - stable
mean| / |stable mean|). The numbers are one DuckDB query over the log's rows since the step began.
"""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from keel.errors import InvalidInput
from keel.storage.tables import query_arrow

__all__ = ["CanaryDecision", "Guardrail", "arm_stats", "decide", "parse_guardrail"]

MEASURES = ("error_rate", "p50_ms", "p99_ms", "mean_shift(prediction)")
_PATTERN = re.compile(r"^\s*(error_rate|p50_ms|p99_ms|mean_shift\(prediction\))\s*(<=|<)\s*"
                      r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")
_OPS = {"<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Guardrail:
    text: str
    measure: str
    op: str
    limit: float

    def judge(self, canary: dict[str, Any], stable: dict[str, Any]) -> tuple[bool, float | None]:
        if self.measure == "mean_shift(prediction)":
            mine, base = canary.get("mean_output"), stable.get("mean_output")
            if mine is None or base is None:
                return True, None  # nothing to compare yet
            value = abs(mine - base) / max(abs(base), 1e-12)
        else:
            value = canary.get(self.measure)
            if value is None:
                return True, None
        return bool(_OPS[self.op](value, self.limit)), float(value)


@dataclass(frozen=True)
class CanaryDecision:
    """What the controller decided at one check: advance, promote, rollback, or wait (and why)."""

    action: str
    reason: str
    step: float
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_guardrail(text: str) -> Guardrail:
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(f"cannot read guardrail {text!r}; write MEASURE < LIMIT with MEASURE one of "
                           f"{', '.join(MEASURES)} (e.g. 'error_rate < 0.01', 'p99_ms < 50')")
    return Guardrail(text.strip(), match[1], match[2], float(match[3]))


def arm_stats(rows: pa.Table) -> dict[str, dict[str, Any]]:
    """Per arm: requests, error rate, p50/p99 latency and mean output, from prediction-log rows."""
    if rows.num_rows == 0:
        return {}
    table = query_arrow(
        "WITH base AS (SELECT arm, count(*) AS requests, "
        "avg(CASE WHEN reason IS NOT NULL THEN 1.0 ELSE 0.0 END) AS error_rate, "
        "quantile_cont(latency_ms, 0.5) AS p50_ms, quantile_cont(latency_ms, 0.99) AS p99_ms FROM log GROUP BY arm), "
        "outs AS (SELECT arm, avg(v) AS mean_output FROM (SELECT arm, unnest(from_json(output, '[\"DOUBLE\"]')) AS v "
        "FROM log WHERE reason IS NULL) GROUP BY arm) "
        "SELECT base.*, outs.mean_output FROM base LEFT JOIN outs USING (arm)",
        log=rows.select(["arm", "reason", "latency_ms", "output"]))
    return {r["arm"]: {k: v for k, v in r.items() if k != "arm"} for r in table.to_pylist()}


def decide(policy: dict[str, Any], stats: dict[str, dict[str, Any]], *, min_requests: int) -> CanaryDecision:
    """Roll back on any failed guardrail; wait while the canary has too few requests; else advance (promote
    after the last step)."""
    step = float(policy["step"])
    canary, stable = stats.get("canary", {}), stats.get("stable", {})
    failed = []
    for text in policy.get("guardrails", []):
        guardrail = parse_guardrail(text)
        ok, value = guardrail.judge(canary, stable)
        if not ok:
            failed.append({"guardrail": guardrail.text, "value": value})
    if failed:
        named = "; ".join(f"{f['guardrail']} (measured {f['value']:.4g})" for f in failed)
        return CanaryDecision("rollback", f"guardrail failed at {step:.0%}: {named}", step, stats, failed)
    if canary.get("requests", 0) < min_requests:
        return CanaryDecision("wait", f"the canary has {canary.get('requests', 0)} request(s) at {step:.0%}; "
                                      f"{min_requests} are needed to judge it", step, stats)
    steps = policy["steps"]
    index = int(policy.get("step_index", 0))
    if index + 1 >= len(steps):
        return CanaryDecision("promote", f"every guardrail held through {step:.0%}", step, stats)
    return CanaryDecision("advance", f"every guardrail held at {step:.0%}; on to {steps[index + 1]:.0%}",
                          float(steps[index + 1]), stats)
