"""Runs a checklist's tests one after the other; a test that raises fails with its exception and the run goes
on with the others, so one broken test never hides the rest of the checklist."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from keel.gates.checks import BUILT_IN
from keel.gates.context import GateContext
from keel.gates.model import GateOutcome, TestResult, evidence_rows, json_safe
from keel.gates.spec import Checklist, CustomTest, resolve_custom

__all__ = ["run_tests"]


def run_tests(ctx: GateContext, checklist: Checklist, spec: dict[str, Any],
              functions: dict[str, Callable[..., Any]]) -> list[TestResult]:
    """One result per test, in the checklist's order."""
    results = []
    for name, test, stored in zip(checklist.names(), checklist.tests, spec["tests"], strict=True):
        started = time.perf_counter()
        try:
            outcome = _run(ctx, test, stored, functions)
            status = "skipped" if outcome.skipped else "passed" if outcome.passed else "failed"
        except Exception as exc:  # the model or the test raised: it fails, the run goes on
            outcome = GateOutcome(False, message=f"{type(exc).__name__}: {exc}"[:2000])
            status = "error"
        evidence, total = evidence_rows(outcome.evidence)
        results.append(TestResult(
            name=name, kind=test.kind, required=test.required, status=status, value=json_safe(outcome.value),
            threshold=json_safe(outcome.threshold), message=outcome.message, evidence=evidence, evidence_rows=total,
            details=json_safe(outcome.details), duration_s=time.perf_counter() - started))
    return results


def _run(ctx: GateContext, test: Any, stored: dict[str, Any], functions: dict[str, Callable[..., Any]]) -> GateOutcome:
    if isinstance(test, CustomTest):
        function = resolve_custom(stored["function"], functions)
        outcome = function(ctx, **test.params)
        if not isinstance(outcome, GateOutcome):
            raise TypeError(f"custom test {stored['function']['name']} returned {type(outcome).__name__}, not a "
                            "keel.GateOutcome(passed=..., value=..., threshold=..., evidence=...)")
        return outcome
    return BUILT_IN[test.kind](ctx, test)
