"""What the pipeline store holds: applied pipelines, their runs and each run's steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["DONE", "PipelineInfo", "PipelineRun", "StepRun"]

DONE = ("succeeded", "cached")  # a step in one of these has its output


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    version: int
    definition: dict[str, Any]
    applied_at: datetime
    applied_by: str

    @property
    def ref(self) -> str:
        return f"pipeline:{self.name}@{self.version}"

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.definition["steps"]

    @property
    def triggers(self) -> list[dict[str, Any]]:
        return self.definition["triggers"]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "ref": self.ref, "description":
                self.definition.get("description", ""), "steps": self.steps, "triggers": self.triggers,
                "definition": self.definition, "applied_at": _iso(self.applied_at), "applied_by": self.applied_by}


@dataclass(frozen=True)
class StepRun:
    step: str
    status: str  # pending | running | succeeded | cached | failed | skipped
    attempts: int = 0
    cache_key: str | None = None
    cached_from: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    logs: str = ""
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def to_dict(self, *, logs: bool = True) -> dict[str, Any]:
        out = {"step": self.step, "status": self.status, "attempts": self.attempts, "cache_key": self.cache_key,
               "cached_from": self.cached_from, "inputs": self.inputs, "output": self.output,
               "started_at": _iso(self.started_at), "ended_at": _iso(self.ended_at), "seconds": self.seconds,
               "error": self.error}
        if logs:
            out["logs"] = self.logs
        return out


@dataclass(frozen=True)
class PipelineRun:
    id: int
    pipeline: str
    version: int
    status: str  # queued | running | succeeded | failed
    params: dict[str, Any]
    trigger: dict[str, Any]
    force: bool
    attempt: int
    created_at: datetime
    created_by: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    steps: list[StepRun] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)  # (from step, to step): the graph, for the UI

    @property
    def ref(self) -> str:
        return f"pipeline_run:{self.id}"

    def step(self, name: str) -> StepRun:
        return next(s for s in self.steps if s.step == name)

    def output(self, name: str) -> Any:
        """A finished step's output (a ref or a JSON value)."""
        return self.step(name).output

    def to_dict(self, *, logs: bool = True) -> dict[str, Any]:
        return {"id": self.id, "ref": self.ref, "pipeline": self.pipeline, "version": self.version,
                "status": self.status, "params": self.params, "trigger": self.trigger, "force": self.force,
                "attempt": self.attempt, "created_at": _iso(self.created_at), "created_by": self.created_by,
                "started_at": _iso(self.started_at), "ended_at": _iso(self.ended_at), "error": self.error,
                "steps": [s.to_dict(logs=logs) for s in self.steps], "edges": [list(e) for e in self.edges]}
