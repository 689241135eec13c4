"""Release gates: the model testing checklist (metric, slice, smoke, behavioural, leakage, budget, fairness
and custom tests), run before any release and enforced on promotion."""

from keel.gates.context import GateContext
from keel.gates.model import ChecklistInfo, GateOutcome, GateReport, TestResult
from keel.gates.spec import (
    BudgetTest,
    Case,
    Checklist,
    CustomTest,
    DirectionalTest,
    FairnessTest,
    InvarianceTest,
    LeakageTest,
    MetricTest,
    MinimumFunctionalityTest,
    Perturbation,
    SliceTest,
    SmokeTest,
    custom_gate,
)

__all__ = [
    "BudgetTest",
    "Case",
    "Checklist",
    "ChecklistInfo",
    "CustomTest",
    "DirectionalTest",
    "FairnessTest",
    "GateContext",
    "GateOutcome",
    "GateReport",
    "InvarianceTest",
    "LeakageTest",
    "MetricTest",
    "MinimumFunctionalityTest",
    "Perturbation",
    "SliceTest",
    "SmokeTest",
    "TestResult",
    "custom_gate",
]
