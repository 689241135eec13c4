"""A deployment as stored: a named endpoint and the current version of its routing policy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from keel.serving.routing import Arm, Policy

__all__ = ["Deployment", "DeploymentVersion", "policy_of"]


@dataclass(frozen=True)
class DeploymentVersion:
    """One version of a deployment's policy: what changed, who changed it and why."""

    deployment: str
    version: int
    policy: dict[str, Any]
    state: str  # active | paused | deleted
    action: str
    reason: str | None
    at: datetime
    by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Deployment:
    """An endpoint: its current policy version, and whether it serves production traffic."""

    name: str
    production: bool
    seed: str
    current: DeploymentVersion
    created_at: datetime
    created_by: str
    models: list[str] = field(default_factory=list)  # every version the policy routes to, shadows and fallbacks too

    @property
    def ref(self) -> str:
        return f"deployment:{self.name}@{self.current.version}"

    @property
    def kind(self) -> str:
        return str(self.current.policy["kind"])

    @property
    def state(self) -> str:
        return self.current.state

    def routing(self) -> Policy:
        return policy_of(self.current.policy, self.seed)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ref=self.ref, kind=self.kind, state=self.state)
        return out


def policy_of(stored: dict[str, Any], seed: str) -> Policy:
    """The routing policy a stored policy document describes (validated by Policy itself)."""
    arms = tuple(Arm(a["name"], a["model"], float(a.get("weight", 1.0))) for a in stored["arms"])
    return Policy(stored["kind"], arms, seed=seed, step=float(stored.get("step", 0.0)),
                  shadows=tuple(stored.get("shadows", ())), sample=float(stored.get("sample", 1.0)),
                  holdout=float(stored.get("holdout", 0.0)), holdout_model="baseline" if stored.get("holdout") else "")
