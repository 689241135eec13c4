"""``ws.pipelines`` and ``ws.retraining`` over HTTP: the embedded methods a client can call, returning the same
records (PipelineInfo, PipelineRun, RetrainPolicy, Retrain).

Runs and retrains started remotely are queued: the server's scheduler (``keel scheduler``) executes them;
``run(..., wait=True)`` polls until the run ends. Applying pipelines imports code, so it stays with the SDK and
CLI next to the metadata store.
"""

from __future__ import annotations

import time
from typing import Any

from keel.errors import InvalidInput, KeelError
from keel.pipelines.model import PipelineInfo, PipelineRun
from keel.remote.client import Client, join
from keel.remote.decode import decode, decode_list
from keel.retraining.model import Retrain, RetrainPolicy

__all__ = ["RemotePipelineService", "RemoteRetrainService"]


class RemotePipelineService:
    """The pipelines of a keel server."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def apply(self, *_: Any, **__: Any) -> Any:
        raise InvalidInput("applying pipelines imports their code: run `keel pipelines apply` where the metadata "
                           "store is (a workspace folder), not against a server URL")

    def list(self) -> list[PipelineInfo]:
        return decode_list(PipelineInfo, self._client.get("/pipelines"))

    def get(self, name: str, version: int | None = None) -> PipelineInfo:
        return decode(PipelineInfo, self._client.get(join("pipelines", name), version=version))

    def enqueue(self, name: str, params: dict[str, Any] | None = None, *, force: bool = False,
                trigger: dict[str, Any] | None = None) -> PipelineRun:
        del trigger  # the server records the caller as the trigger
        return decode(PipelineRun, self._client.post(join("pipelines", name, "runs"),
                                                     {"params": dict(params or {}), "force": force}))

    def run(self, name: str, params: dict[str, Any] | None = None, *, force: bool = False, wait: bool = True,
            timeout_s: float = 3600.0, **_: Any) -> PipelineRun:
        """Queue a run; with ``wait``, poll until the server's scheduler has finished it."""
        made = self.enqueue(name, params, force=force)
        deadline = time.monotonic() + timeout_s
        while wait and made.status in ("queued", "running"):
            if time.monotonic() > deadline:
                raise KeelError(f"{made.ref} is still {made.status} after {timeout_s:g} s; is `keel scheduler` "
                                "running beside the server?")
            time.sleep(1.0)
            made = self.show(made.id)
        return made

    def runs(self, name: str | None = None, *, status: str | None = None, limit: int = 50) -> list[PipelineRun]:
        if name is None:
            raise InvalidInput("name the pipeline whose runs to list")
        return decode_list(PipelineRun, self._client.get(join("pipelines", name, "runs"), status=status, limit=limit))

    def show(self, run_id: int | str) -> PipelineRun:
        return decode(PipelineRun, self._client.get(join("pipeline-runs", _id(run_id, "pipeline_run:"))))

    def retry(self, run_id: int | str, **_: Any) -> PipelineRun:
        """Queue a failed run again (the server's scheduler resumes it from its failure)."""
        return decode(PipelineRun, self._client.post(join("pipeline-runs", _id(run_id, "pipeline_run:"), "retry")))


class RemoteRetrainService:
    """The retraining policies and retrains of a keel server."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create_policy(self, name: str, deployment: str, pipeline: str, *, when: list[str], data: str = "all",
                      how: str = "from_scratch", source: str | None = None, time_column: str | None = None,
                      monitor: str | None = None, canary: dict[str, Any] | None = None, auto_approve: bool = False,
                      allow_production_auto: bool = False, max_influenced: float | None = 0.8,
                      holdout: float | None = None, reason: str | None = None) -> RetrainPolicy:
        body = {"deployment": deployment, "pipeline": pipeline, "when": list(when), "data": data, "how": how,
                "source": source, "time_column": time_column, "monitor": monitor, "auto_approve": auto_approve,
                "allow_production_auto": allow_production_auto, "max_influenced": max_influenced,
                "holdout": holdout, "reason": reason, **({"canary": canary} if canary else {})}
        return decode(RetrainPolicy, self._client.put(join("retraining", "policies", name), body))

    def policies(self, deployment: str | None = None) -> list[RetrainPolicy]:
        return decode_list(RetrainPolicy, self._client.get("/retraining/policies", deployment=deployment))

    def policy(self, name: str) -> RetrainPolicy:
        return decode(RetrainPolicy, self._client.get(join("retraining", "policies", name)))

    def delete_policy(self, name: str, *, reason: str | None = None) -> None:
        self._client.delete(join("retraining", "policies", name), reason=reason)

    def start(self, policy: str, *, reason: str, override_guard: str | None = None, **_: Any) -> Retrain:
        """A manual retrain, queued on the server (its scheduler runs the pipeline)."""
        return decode(Retrain, self._client.post(join("retraining", "policies", policy, "retrains"),
                                                 {"reason": reason, "override_guard": override_guard}))

    def list(self, policy: str | None = None, *, status: str | None = None, limit: int = 50) -> list[Retrain]:
        return decode_list(Retrain, self._client.get("/retraining/retrains", policy=policy, status=status,
                                                     limit=limit))

    def get(self, retrain_id: int | str) -> Retrain:
        return decode(Retrain, self._client.get(join("retraining", "retrains", _id(retrain_id, "retrain:"))))

    def review(self, retrain_id: int | str) -> dict[str, Any]:
        return self._client.get(join("retraining", "retrains", _id(retrain_id, "retrain:"), "review"))

    def approve(self, retrain_id: int | str, *, reason: str, override: bool = False) -> Retrain:
        return decode(Retrain, self._client.post(join("retraining", "retrains", _id(retrain_id, "retrain:"),
                                                      "approve"), {"reason": reason, "override": override}))

    def reject(self, retrain_id: int | str, *, reason: str) -> Retrain:
        return decode(Retrain, self._client.post(join("retraining", "retrains", _id(retrain_id, "retrain:"),
                                                      "reject"), {"reason": reason, "override": False}))


def _id(value: int | str, prefix: str) -> str:
    return str(value).strip().removeprefix(prefix)
