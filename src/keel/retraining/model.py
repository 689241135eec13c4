"""What retraining stores: a policy attached to a deployment, and each retrain it started with its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["HOW", "OPEN", "STATUSES", "Retrain", "RetrainPolicy"]

HOW = ("from_scratch", "warm_start")
# running: its pipeline runs; pending_review: a candidate waits for a person; deciding: a decision is being
# carried out (its canary started); the others are ends
STATUSES = ("running", "no_new_data", "refused", "failed", "pending_review", "deciding", "approved", "rejected")
OPEN = ("running", "pending_review", "deciding")  # a policy has at most one retrain in these at a time


@dataclass(frozen=True)
class RetrainPolicy:
    name: str
    deployment: str
    pipeline: str
    spec: dict[str, Any]  # when, data, how, source, time_column, monitor, canary, approval, guard
    created_at: datetime
    created_by: str
    updated_at: datetime

    @property
    def ref(self) -> str:
        return f"retrain_policy:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ref": self.ref, "deployment": self.deployment, "pipeline": self.pipeline,
                **self.spec, "spec": self.spec, "created_at": self.created_at.isoformat(),
                "created_by": self.created_by, "updated_at": self.updated_at.isoformat()}


@dataclass(frozen=True)
class Retrain:
    id: int
    policy: str
    deployment: str
    status: str
    trigger: dict[str, Any]  # kind, condition, why, evidence, key
    window: dict[str, Any] | None = None
    how: dict[str, Any] | None = None
    pipeline_run: int | None = None
    candidate: str | None = None
    gate_report: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    created_at: datetime | None = None
    created_by: str = ""
    updated_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"retrain:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ref": self.ref, "policy": self.policy, "deployment": self.deployment,
                "status": self.status, "trigger": self.trigger, "window": self.window, "how": self.how,
                "pipeline_run": self.pipeline_run, "candidate": self.candidate, "gate_report": self.gate_report,
                "evidence": self.evidence, "decision": self.decision,
                "created_at": self.created_at.isoformat() if self.created_at else None, "created_by": self.created_by,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None}
