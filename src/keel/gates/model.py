"""What a gate run produces: one result per test and the report that holds them.

Every test, built-in or custom, returns a :class:`GateOutcome` (passed, the measured value, the threshold it
was held to, evidence rows); the runner adds the test's name, kind, level and duration to make a
:class:`TestResult`. A :class:`GateReport` is stored and decides whether a version may be released.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EVIDENCE_ROWS", "STATUSES", "ChecklistInfo", "GateOutcome", "GateReport", "TestResult"]

EVIDENCE_ROWS = 20  # evidence rows kept per test: enough to see the pattern, small enough to store
STATUSES = ("passed", "failed", "error", "skipped")


@dataclass
class GateOutcome:
    """The result contract of every gate test: built-ins return it, and so must a custom test.

    ``evidence`` are the rows that show why (violating rows, the worst slices): a DataFrame or a list of
    dicts, of which the first ``EVIDENCE_ROWS`` are kept. ``skipped`` means the test could not apply
    (no champion to compare with), which never blocks a release.
    """

    passed: bool
    value: Any = None
    threshold: Any = None
    evidence: Any = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


@dataclass(frozen=True)
class TestResult:
    """One test of one gate run, as stored."""

    __test__ = False  # not a pytest class

    name: str
    kind: str
    required: bool
    status: str  # passed | failed | error | skipped
    value: Any
    threshold: Any
    message: str
    evidence: list[dict[str, Any]]
    evidence_rows: int  # how many rows showed the problem (evidence holds the first EVIDENCE_ROWS)
    details: dict[str, Any]
    duration_s: float

    @property
    def blocking(self) -> bool:
        """A required test that did not pass (failed or raised) blocks the release."""
        return self.required and self.status in ("failed", "error")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    """A stored gate run of one model version against one checklist version (``gate:<id>`` in lineage)."""

    id: str
    model: str
    version: int
    checklist_version: int
    status: str  # passed | failed
    against: str | None  # the alias compared with ("production")
    against_version: int | None  # the version it pointed at (None: nothing to compare with)
    data: str | None  # the split or table the tests read
    results: list[TestResult]
    duration_s: float
    created_at: datetime
    created_by: str
    override: dict[str, Any] | None = None  # {by, reason, at} when an approver released it despite failures
    reused: bool = False  # this run found the report of an earlier identical run

    @property
    def ref(self) -> str:
        return f"gate:{self.id}"

    @property
    def model_ref(self) -> str:
        return f"{self.model}/{self.version}"

    @property
    def blocking(self) -> list[TestResult]:
        return [r for r in self.results if r.blocking]

    @property
    def releasable(self) -> bool:
        """Every required test passed, or an approver overrode the failures with a reason."""
        return self.status == "passed" or self.override is not None

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ref=self.ref, releasable=self.releasable, counts=self.counts(),
                   blocking=[r.name for r in self.blocking])
        return out


@dataclass(frozen=True)
class ChecklistInfo:
    """A stored version of a model's checklist."""

    model: str
    version: int
    spec: dict[str, Any]
    fingerprint: str
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evidence_rows(evidence: Any) -> tuple[list[dict[str, Any]], int]:
    """The first EVIDENCE_ROWS rows of ``evidence`` as JSON-safe dicts, and how many rows there were."""
    if evidence is None:
        return [], 0
    if isinstance(evidence, pd.DataFrame):
        total = len(evidence)
        rows = evidence.head(EVIDENCE_ROWS).to_dict(orient="records")
    else:
        rows = list(evidence)
        total = len(rows)
        rows = rows[:EVIDENCE_ROWS]
    return [{str(k): json_safe(v) for k, v in dict(row).items()} for row in rows], total


def json_safe(value: Any) -> Any:
    """numpy scalars, timestamps and NaN as JSON can hold them (NaN and infinities become None)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)
