"""The tracking capability's records: what a run is, as stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["RUN_STATUSES", "RunInfo"]

RUN_STATUSES = ("running", "finished", "failed", "killed")


@dataclass(frozen=True)
class RunInfo:
    """A run with its params, tags, latest metrics and artifacts."""

    id: str
    experiment: str
    name: str | None
    parent_id: str | None
    status: str
    error: str | None
    created_by: str
    started_at: datetime
    ended_at: datetime | None
    environment: dict[str, Any] | None  # None in list results (not loaded); get(id) has it
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> sha256
    inputs: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"run:{self.id}"

    @property
    def duration_s(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None
