"""The built-in gate tests, by kind: each is ``fn(ctx, test) -> GateOutcome``, listed here explicitly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keel.gates.checks.behaviour import run_directional, run_invariance, run_minimum_functionality
from keel.gates.checks.budget import run_budget
from keel.gates.checks.fairness import run_fairness
from keel.gates.checks.leakage import run_leakage
from keel.gates.checks.performance import run_metric, run_slice
from keel.gates.checks.smoke import run_smoke

__all__ = ["BUILT_IN"]

BUILT_IN: dict[str, Callable[..., Any]] = {
    "metric": run_metric,
    "slice": run_slice,
    "smoke": run_smoke,
    "invariance": run_invariance,
    "minimum_functionality": run_minimum_functionality,
    "directional": run_directional,
    "leakage": run_leakage,
    "budget": run_budget,
    "fairness": run_fairness,
}
