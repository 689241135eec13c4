"""Metric and slice tests: conditions on the candidate's metrics, beside the champion's and the baseline's.

Each of the three is evaluated once on the evaluation part (and once per slice set), by the same vectorised
evaluation that ``ws.runs.evaluate`` uses, so a gate and an evaluation never disagree on a number.
"""

from __future__ import annotations

from typing import Any

from keel.gates.conditions import Condition, Judgement
from keel.gates.context import GateContext
from keel.gates.model import GateOutcome
from keel.gates.spec import MetricTest, SliceTest
from keel.tracking.reports import EvaluationReport

__all__ = ["run_metric", "run_slice"]


def run_metric(ctx: GateContext, test: MetricTest) -> GateOutcome:
    conditions = test.parsed()
    reports = _reports(ctx, conditions, ())
    rows, judgements = [], []
    for condition in conditions:
        value = _metric(reports["candidate"], ctx.part, condition.metric)
        references = {w: _metric(reports[w], ctx.part, condition.metric) for w in ("champion", "baseline")}
        judgement = condition.judge(value, references, test.min_change)
        judgements.append(judgement)
        rows.append(_row(condition, judgement, references))
    return _combined(judgements, rows, ctx)


def run_slice(ctx: GateContext, test: SliceTest) -> GateOutcome:
    """Every slice with at least ``min_rows`` rows is held to every condition; the worst slice is named."""
    conditions = test.parsed()
    reports = _reports(ctx, conditions, tuple(test.by))
    others = {w: _by_slice(reports[w]) for w in ("champion", "baseline")}
    judged, failing, small = [], [], 0
    for row in reports["candidate"].slices:
        if row["rows"] < test.min_rows:
            small += 1
            continue
        key = (row["column"], row["value"])
        for condition in conditions:
            references = {w: (others[w].get(key) or {}).get(condition.metric) for w in others}
            judgement = condition.judge(row.get(condition.metric), references, test.min_change)
            entry = {"slice": f"{row['column']}={row['value']}", "rows": row["rows"],
                     **_row(condition, judgement, references)}
            judged.append((condition, judgement, entry))
            if not judgement.passed:
                failing.append(entry)
    details: dict[str, Any] = {"slices": [{k: v for k, v in r.items() if k != "part"}
                                          for r in reports["candidate"].slices],
                               "min_rows": test.min_rows, "too_small": small, "metric": conditions[0].metric,
                               "condition": conditions[0].text,
                               "failing_slices": sorted({e["slice"] for e in failing})}
    if not judged:
        return GateOutcome(True, skipped=True, details=details,
                           message=f"no slice of {', '.join(test.by)} has {test.min_rows} rows or more")
    first = conditions[0]
    candidates = [(j, e) for c, j, e in judged if c is first and j.value is not None]
    worst = (min if first.higher_is_better else max)(candidates, key=lambda pair: pair[0].value) if candidates else None
    if worst is not None:
        details["worst_slice"] = worst[1]["slice"]
    all_skipped = all(j.skipped for _, j, _ in judged)
    passed = not failing
    named = f"worst slice {worst[1]['slice']} ({first.metric} {worst[0].value:.4g})" if worst else "no slice scored"
    message = (f"{len(failing)} slice condition(s) failed; " if failing else "every slice passed; ") + named
    return GateOutcome(passed, value=worst[0].value if worst else None, threshold=worst[0].bound if worst else None,
                       evidence=failing or [worst[1]] if worst else failing, message=message, details=details,
                       skipped=all_skipped)


def _reports(ctx: GateContext, conditions: list[Condition], slices: tuple[str, ...]) -> dict[str, Any]:
    """The candidate's evaluation, and the champion's and baseline's only where a condition needs them."""
    needed = {c.reference for c in conditions if c.reference}
    return {w: ctx.evaluation(w, slices) if w == "candidate" or w in needed else None
            for w in ("candidate", "champion", "baseline")}


def _metric(report: EvaluationReport | None, part: str, metric: str) -> float | None:
    return None if report is None else report.metrics.get(part, {}).get(metric)


def _by_slice(report: EvaluationReport | None) -> dict[tuple[str, str], dict[str, Any]]:
    return {} if report is None else {(r["column"], r["value"]): r for r in report.slices}


def _row(condition: Condition, judgement: Judgement, references: dict[str, float | None]) -> dict[str, Any]:
    return {"condition": condition.text, "value": judgement.value, "bound": judgement.bound,
            "champion": references.get("champion"), "baseline": references.get("baseline"),
            "status": "skipped" if judgement.skipped else "passed" if judgement.passed else "failed",
            "message": judgement.message}


def _combined(judgements: list[Judgement], rows: list[dict[str, Any]], ctx: GateContext) -> GateOutcome:
    failed = [j for j in judgements if not j.passed]
    first = judgements[0]
    shown = failed[0] if failed else next((j for j in judgements if not j.skipped), first)
    details = {"champion": ctx.champion_version.name if ctx.champion_version else None, "part": ctx.part}
    return GateOutcome(not failed, value=shown.value, threshold=shown.bound, evidence=rows,
                       message="; ".join(j.message for j in (failed or judgements)), details=details,
                       skipped=all(j.skipped for j in judgements))
