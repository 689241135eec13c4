"""Executing a pipeline run: steps in dependency order, independent ones side by side, each in a new interpreter
(keel.pipelines.worker; ``inline``: in this process).

Before a step runs, its cache key (the function's source hash, its inputs and parameters) is looked up: a step
that succeeded with the same key in an earlier run of the pipeline is not run again, its output is reused
(``cached``), unless the run is forced. A step that fails (after its retries) stops the steps that depend on it
(``skipped``) while the others go on; every finished step keeps its output, so a retry resumes from the failure.
Each finished step records lineage from its input refs to its output ref, and the run's heartbeat shows the
scheduler that it is alive.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from keel.lineage import Edge, LineageService
from keel.logs import get_logger
from keel.pipelines.definition import order
from keel.pipelines.execute import MAX_LOG, StepOutcome, run_step
from keel.pipelines.model import DONE
from keel.pipelines.types import REF_TYPES
from keel.storage.db import Database
from keel.storage.schema import pipeline_runs, pipeline_step_runs

__all__ = ["EXECUTORS", "HEARTBEAT_S", "Runner"]

log = get_logger("keel.pipelines")

EXECUTORS = ("process", "inline")
HEARTBEAT_S = 5.0


class Runner:
    """Runs one pipeline run to its end: ``execute(run_id, definition)``."""

    def __init__(self, db: Database, lineage: LineageService, workspace: Callable[[], Any],
                 opener: Callable[..., Any] | None, settings: dict[str, Any], *, executor: str = "process",
                 workers: int = 2, holder: str = "") -> None:
        self._db, self._lineage, self._workspace = db, lineage, workspace
        self._opener, self._settings = opener, settings
        self._executor, self._workers, self._holder = executor, max(1, workers), holder

    def execute(self, run_id: int, definition: dict[str, Any], pipeline: str, params: dict[str, Any],
                force: bool) -> str:
        """Run every step not yet done; returns the run's final status."""
        steps = {s["name"]: s for s in definition["steps"]}
        status = self._statuses(run_id)
        outputs = self._outputs(run_id)
        attempts: dict[str, int] = {}
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(run_id, stop), daemon=True, name="keel-run-heartbeat")
        beat.start()
        pool = self._pool()
        running: dict[cf.Future[StepOutcome], str] = {}
        try:
            while True:
                for name in order(definition):
                    if status[name] != "pending":
                        continue
                    sources = steps[name]["inputs"].values()
                    if any(status[u] in ("failed", "skipped") for u in sources):
                        status[name] = "skipped"
                        self._finish(run_id, name, "skipped", error="a step it depends on failed")
                    elif all(status[u] in DONE for u in sources) and len(running) < self._workers:
                        kwargs = {**params.get(name, {}),
                                  **{p: outputs[u] for p, u in steps[name]["inputs"].items()}}
                        key = cache_key(steps[name], kwargs)
                        cached = None if force else self._cached(pipeline, name, key, run_id)
                        if cached is not None:
                            outputs[name], status[name] = cached[1], "cached"
                            self._finish(run_id, name, "cached", key=key, inputs=kwargs, output=cached[1],
                                         cached_from=cached[0])
                            continue
                        attempts[name] = attempts.get(name, 0) + 1
                        self._start(run_id, name, key, kwargs, attempts[name])
                        status[name] = "running"
                        running[self._submit(pool, steps[name], pipeline, run_id, kwargs)] = name
                if not running:
                    break
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    outcome = _outcome(future)
                    spec = steps[name]
                    if outcome.ok:
                        outputs[name], status[name] = outcome.value, "succeeded"
                        kwargs = {**params.get(name, {}), **{p: outputs[u] for p, u in spec["inputs"].items()}}
                        self._finish(run_id, name, "succeeded", output=outcome.value, logs=outcome.logs,
                                     edges=_edges(pipeline, run_id, spec, kwargs, outcome.value))
                        log.info("pipeline.step.succeeded", pipeline=pipeline, run=run_id, step=name,
                                 seconds=round(outcome.seconds, 3))
                    elif attempts.get(name, 1) <= int(spec.get("retries", 0)):
                        status[name] = "pending"  # retried on the next pass
                        self._finish(run_id, name, "pending", logs=outcome.logs, error=outcome.error)
                    else:
                        status[name] = "failed"
                        self._finish(run_id, name, "failed", logs=outcome.logs, error=outcome.error)
                        log.warning("pipeline.step.failed", pipeline=pipeline, run=run_id, step=name,
                                    error=outcome.error)
        finally:
            stop.set()
            beat.join(timeout=10)
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return "succeeded" if all(s in DONE for s in status.values()) else "failed"

    # -- execution ---------------------------------------------------------------------------------------

    def _pool(self) -> cf.Executor | None:
        if self._executor == "inline" or self._opener is None:
            return None
        return cf.ThreadPoolExecutor(self._workers, thread_name_prefix="keel-step")  # each waits on its process

    def _submit(self, pool: cf.Executor | None, spec: dict[str, Any], pipeline: str, run_id: int,
                kwargs: dict[str, Any]) -> cf.Future[StepOutcome]:
        if pool is None:
            future: cf.Future[StepOutcome] = cf.Future()
            future.set_result(run_step(self._workspace(), spec, pipeline, run_id, kwargs))
            return future
        opener = f"{self._opener.__module__}:{self._opener.__qualname__}"
        return pool.submit(_in_process, {"opener": opener, "settings": self._settings, "spec": spec,
                                         "pipeline": pipeline, "run": run_id, "kwargs": kwargs,
                                         "sys_path": [p for p in sys.path if p]})

    def _heartbeat(self, run_id: int, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                with self._db.transaction() as conn:
                    conn.execute(pipeline_runs.update().where(pipeline_runs.c.id == run_id)
                                 .values(heartbeat_at=datetime.now(UTC)))
            except Exception as exc:  # a missed beat is retried; the run goes on
                log.warning("pipeline.heartbeat_failed", run=run_id, error=str(exc))

    # -- the store ---------------------------------------------------------------------------------------

    def _statuses(self, run_id: int) -> dict[str, str]:
        query = sa.select(pipeline_step_runs.c.step, pipeline_step_runs.c.status) \
            .where(pipeline_step_runs.c.run == run_id)
        with self._db.read() as conn:
            return {step: status for step, status in conn.execute(query)}

    def _outputs(self, run_id: int) -> dict[str, Any]:
        query = sa.select(pipeline_step_runs.c.step, pipeline_step_runs.c.output).where(
            pipeline_step_runs.c.run == run_id, pipeline_step_runs.c.status.in_(DONE))
        with self._db.read() as conn:
            return {step: (output or {}).get("value") for step, output in conn.execute(query)}

    def _cached(self, pipeline: str, step: str, key: str, run_id: int) -> tuple[int, Any] | None:
        query = sa.select(pipeline_step_runs.c.run, pipeline_step_runs.c.output) \
            .join(pipeline_runs, pipeline_runs.c.id == pipeline_step_runs.c.run) \
            .where(pipeline_runs.c.pipeline == pipeline, pipeline_step_runs.c.step == step,
                   pipeline_step_runs.c.cache_key == key, pipeline_step_runs.c.status == "succeeded",
                   pipeline_step_runs.c.run != run_id) \
            .order_by(pipeline_step_runs.c.run.desc()).limit(1)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row.run, (row.output or {}).get("value"))

    def _start(self, run_id: int, step: str, key: str, inputs: dict[str, Any], attempts: int) -> None:
        with self._db.transaction() as conn:
            conn.execute(pipeline_step_runs.update().where(pipeline_step_runs.c.run == run_id,
                                                           pipeline_step_runs.c.step == step)
                         .values(status="running", cache_key=key, inputs=inputs, attempts=attempts,
                                 started_at=datetime.now(UTC), ended_at=None, error=None))

    def _finish(self, run_id: int, step: str, status: str, *, key: str | None = None,
                inputs: dict[str, Any] | None = None, output: Any = None, cached_from: int | None = None,
                logs: str | None = None, error: str | None = None, edges: list[Edge] | None = None) -> None:
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": status, "error": error, "ended_at": now}
        if status in DONE:
            values["output"] = {"value": output}
        if key is not None:
            values.update(cache_key=key, inputs=inputs, cached_from=cached_from, started_at=now, attempts=0)
        if logs is not None:
            values["logs"] = logs
        with self._db.transaction() as conn:
            conn.execute(pipeline_step_runs.update().where(pipeline_step_runs.c.run == run_id,
                                                           pipeline_step_runs.c.step == step).values(**values))
            if edges:
                self._lineage.add(conn, edges)


def cache_key(spec: dict[str, Any], kwargs: dict[str, Any]) -> str:
    """Same function source, same inputs and parameters, same engine: same key."""
    material = {"step": spec["name"], "code": spec["function"]["sha256"], "inputs": kwargs,
                "engine": spec.get("engine", "local")}
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _in_process(payload: dict[str, Any]) -> StepOutcome:
    """Run the step in a new interpreter (keel.pipelines.worker) and read its outcome."""
    with tempfile.TemporaryDirectory(prefix="keel-step-") as folder:
        sent, result = Path(folder) / "payload.json", Path(folder) / "result.json"
        sent.write_bytes(orjson.dumps(payload))
        done = subprocess.run([sys.executable, "-m", "keel.pipelines.worker", str(sent), str(result)],
                              capture_output=True, check=False)
        if not result.exists():
            tail = (done.stdout + done.stderr).decode(errors="replace")[-MAX_LOG:]
            return StepOutcome(False, None, tail, f"the step's process ended with exit code {done.returncode} "
                                                  "before it finished")
        out = orjson.loads(result.read_bytes())
        printed = (done.stdout + done.stderr).decode(errors="replace")
        logs = (out["logs"] + ("\n" + printed if printed.strip() else ""))[-MAX_LOG:]
        return StepOutcome(out["ok"], out["value"], logs, out["error"], out["seconds"])


def _outcome(future: cf.Future[StepOutcome]) -> StepOutcome:
    try:
        return future.result()
    except Exception as exc:  # the worker died (killed, out of memory): the step failed, the run goes on
        return StepOutcome(False, None, "", f"the step's worker process ended: {type(exc).__name__}: {exc}")


def _edges(pipeline: str, run_id: int, spec: dict[str, Any], kwargs: dict[str, Any], output: Any) -> list[Edge]:
    """Lineage of a finished step: each input ref to its output ref, and the run that made it."""
    if spec["output"] not in REF_TYPES or not isinstance(output, str):
        return []
    relation = f"pipeline {pipeline}/{spec['name']}"
    edges = [Edge(value, output, relation) for param, value in kwargs.items()
             if spec["types"].get(param) in REF_TYPES and isinstance(value, str) and value != output]
    return [*edges, Edge(f"pipeline_run:{run_id}", output, f"made by step {spec['name']}")]
