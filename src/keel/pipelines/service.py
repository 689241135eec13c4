"""Pipelines (``ws.pipelines``): apply definitions from a module, start runs (by hand, from the API, from a
trigger), list and show them, retry a failed run from its failure.

A run is created ``queued`` with its parameters resolved (a table named ``listings`` becomes ``table:listings@7``),
so a retry or a resumed run sees the very same inputs. ``run()`` executes it here and now; ``enqueue()`` leaves it
to the scheduler. ``fire()`` is how triggers start runs: the event's idempotency key is inserted in the same
transaction as the run, so an event starts at most one run, whoever fires it.

The CLI, REST API and remote client call exactly these methods.
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from keel.audit import AuditLog
from keel.code import load_module
from keel.errors import Conflict, InvalidInput, NotFound
from keel.lineage import LineageService
from keel.logs import get_logger
from keel.pipelines.definition import Pipeline, definition_json, fingerprint, order, ref_params
from keel.pipelines.model import PipelineInfo, PipelineRun, StepRun
from keel.pipelines.runner import EXECUTORS, HEARTBEAT_S, Runner
from keel.pipelines.types import REF_TYPES
from keel.storage.db import Database, is_unique_violation
from keel.storage.schema import pipeline_runs, pipeline_step_runs, pipeline_versions, trigger_fires

__all__ = ["PipelineService", "parse_params"]

log = get_logger("keel.pipelines")

STALE_AFTER_S = HEARTBEAT_S * 6  # a running run whose heartbeat is this old lost its process: it may be resumed


class PipelineService:
    """Apply, run, list, show and retry pipelines."""

    def __init__(self, db: Database, lineage: LineageService, audit: AuditLog, user: str,
                 canonical_ref: Callable[[str], str], workspace: Callable[[], Any],
                 opener: Callable[..., Any] | None = None, settings: dict[str, Any] | None = None) -> None:
        self._db, self._lineage, self._audit, self._user = db, lineage, audit, user
        self._canonical_ref, self._workspace = canonical_ref, workspace
        self._opener, self._settings = opener, dict(settings or {})

    # -- definitions -------------------------------------------------------------------------------------

    def apply(self, source: ModuleType | str | Path | Pipeline | list[Pipeline], *,
              reason: str | None = None) -> list[PipelineInfo]:
        """Store every Pipeline found in ``source`` (a module, a Python file, a dotted module name, or pipelines);
        a pipeline is stored as a new version only when its definition changed."""
        found = _pipelines(source)
        if not found:
            raise InvalidInput(f"no Pipeline is defined in {source!r}; define one: Pipeline('name', [steps])")
        definitions = [definition_json(p) for p in found]  # every one is checked before any is stored
        names = [d["name"] for d in definitions]
        if len(set(names)) != len(names):
            raise InvalidInput(f"two pipelines share a name in {source!r}: {sorted(names)}")
        now = datetime.now(UTC)

        def store(conn: sa.Connection) -> list[PipelineInfo]:
            applied = []
            for definition in definitions:
                current = _version_row(conn, definition["name"])
                digest = fingerprint(definition)
                if current is not None and current.fingerprint == digest:
                    applied.append(_info(current))
                    continue
                version = 1 if current is None else current.version + 1
                conn.execute(pipeline_versions.insert().values(
                    name=definition["name"], version=version, definition=definition, fingerprint=digest,
                    applied_at=now, applied_by=self._user))
                self._audit.record(conn, actor=self._user, action="pipeline.apply",
                                   target=f"pipeline:{definition['name']}@{version}", reason=reason,
                                   details={"steps": [s["name"] for s in definition["steps"]],
                                            "triggers": [t["kind"] for t in definition["triggers"]]})
                applied.append(PipelineInfo(definition["name"], version, definition, now, self._user))
            return applied

        return self._db.retrying(store)

    def get(self, name: str, version: int | None = None) -> PipelineInfo:
        with self._db.read() as conn:
            row = _version_row(conn, name, version)
        if row is None:
            raise NotFound(f"no pipeline {name!r}" + (f" version {version}" if version else "")
                           + "; apply it first: keel pipelines apply MODULE")
        return _info(row)

    def list(self) -> list[PipelineInfo]:
        newest = sa.select(pipeline_versions.c.name, sa.func.max(pipeline_versions.c.version).label("v")) \
            .group_by(pipeline_versions.c.name).subquery()
        query = sa.select(pipeline_versions).join(newest, sa.and_(pipeline_versions.c.name == newest.c.name,
                                                                  pipeline_versions.c.version == newest.c.v)) \
            .order_by(pipeline_versions.c.name)
        with self._db.read() as conn:
            return [_info(r) for r in conn.execute(query)]

    # -- runs --------------------------------------------------------------------------------------------

    def run(self, name: str, params: dict[str, Any] | None = None, *, force: bool = False,
            executor: str = "process", workers: int = 2, trigger: dict[str, Any] | None = None) -> PipelineRun:
        """Create a run and execute it here; returns it finished (succeeded or failed: a failed run is an answer,
        not an exception; ``show`` has each step's error and logs)."""
        _check_executor(executor)  # before anything is written: a refused run leaves nothing queued
        made = self.enqueue(name, params, force=force, trigger=trigger or {"kind": "manual", "by": self._user})
        return self.execute(made.id, executor=executor, workers=workers)

    def enqueue(self, name: str, params: dict[str, Any] | None = None, *, force: bool = False,
                trigger: dict[str, Any] | None = None) -> PipelineRun:
        """Create a queued run (the scheduler executes it): parameters checked and resolved now."""
        info = self.get(name)
        resolved = self._resolve(info, dict(params or {}))
        trigger = {"kind": "api", "by": self._user, **(trigger or {})}
        return self._create(info, resolved, force, trigger, key=None)

    def fire(self, name: str, key: str, trigger: dict[str, Any], params: dict[str, Any] | None = None, *,
             force: bool = False) -> PipelineRun | None:
        """Start a run for a trigger's event, once: None when an event with this idempotency key already fired."""
        info = self.get(name)
        resolved = self._resolve(info, dict(params or {}))
        return self._create(info, resolved, force, {**trigger, "key": key}, key=key)

    def fired(self, key: str) -> int | None:
        """The run an event's idempotency key started, None when it has not fired."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(trigger_fires.c.run).where(trigger_fires.c.key == key)).first()
        return None if row is None else row.run

    def execute(self, run_id: int | str, *, executor: str = "process", workers: int = 2,
                holder: str | None = None) -> PipelineRun:
        """Execute a queued run (or resume a claimed one whose process is gone) to its end."""
        _check_executor(executor)
        run = self.show(run_id)
        holder = holder or _holder()
        if not self._claim(run.id, holder):
            raise Conflict(f"{run.ref} is {run.status}" + (" and its process is alive" if run.status == "running"
                                                             else "") + "; nothing to execute")
        info = self.get(run.pipeline, run.version)
        user = run.created_by  # its steps act as whoever started the run, wherever it executes
        workspace = self._workspace if user == self._user else (lambda: self._workspace().acting_as(user))
        runner = Runner(self._db, self._lineage, workspace, self._opener, {**self._settings, "user": user},
                        executor=executor, workers=workers, holder=holder)
        log.info("pipeline.run.started", pipeline=run.pipeline, run=run.id, attempt=run.attempt, holder=holder)
        try:
            status = runner.execute(run.id, info.definition, run.pipeline, run.params["steps"], run.force)
        except BaseException as exc:
            self._end(run.id, "failed", f"the runner stopped: {type(exc).__name__}: {exc}", interrupted=True)
            raise
        failed = [s for s in self.show(run.id).steps if s.status == "failed"]
        error = "; ".join(f"{s.step}: {s.error}" for s in failed)[:4000] or None
        self._end(run.id, status, error)
        log.info("pipeline.run.ended", pipeline=run.pipeline, run=run.id, status=status)
        return self.show(run.id)

    def retry(self, run_id: int | str, *, execute: bool = True, executor: str = "process",
              workers: int = 2) -> PipelineRun:
        """Resume a failed run: its failed and skipped steps run again, its finished ones keep their outputs
        (``execute=False``: queue it for the scheduler). When the pipeline was applied again since (the fix of
        the failure) with the same steps wired the same way, the retry runs the new version's code."""
        _check_executor(executor)
        run = self.show(run_id)
        if run.status != "failed":
            raise Conflict(f"{run.ref} is {run.status}; only a failed run is retried (start a new one with "
                           f"keel pipelines run {run.pipeline})")
        latest, current = self.get(run.pipeline), self.get(run.pipeline, run.version)
        version = latest.version if _wiring(latest) == _wiring(current) else run.version

        def reset(conn: sa.Connection) -> None:
            moved = conn.execute(pipeline_runs.update().where(pipeline_runs.c.id == run.id,
                                                              pipeline_runs.c.status == "failed")
                                 .values(status="queued", attempt=run.attempt + 1, ended_at=None, error=None,
                                         version=version))
            if moved.rowcount != 1:
                raise Conflict(f"{run.ref} changed meanwhile; look again")
            conn.execute(pipeline_step_runs.update().where(
                pipeline_step_runs.c.run == run.id, pipeline_step_runs.c.status.in_(("failed", "skipped", "running")))
                .values(status="pending", error=None))
            self._audit.record(conn, actor=self._user, action="pipeline.retry", target=run.ref, reason=None,
                               details={"attempt": run.attempt + 1, "version": version})

        self._db.retrying(reset)
        return self.execute(run.id, executor=executor, workers=workers) if execute else self.show(run.id)

    def runs(self, name: str | None = None, *, status: str | None = None, limit: int = 50) -> list[PipelineRun]:
        """Runs, newest first, with their steps (without logs)."""
        query = sa.select(pipeline_runs).order_by(pipeline_runs.c.id.desc()).limit(limit)
        if name is not None:
            self.get(name)
            query = query.where(pipeline_runs.c.pipeline == name)
        if status is not None:
            query = query.where(pipeline_runs.c.status == status)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
            steps = _steps(conn, [r.id for r in rows], logs=False)
            orders = {(r.pipeline, r.version): order(_version_row(conn, r.pipeline, r.version).definition)
                      for r in {(r.pipeline, r.version): r for r in rows}.values()}
        return [_run(r, sorted(steps.get(r.id, []), key=lambda s, names=orders[(r.pipeline, r.version)]:
                               names.index(s.step))) for r in rows]

    def show(self, run_id: int | str) -> PipelineRun:
        """A run with each step's status, times, inputs, output, error and logs."""
        number = _run_id(run_id)
        with self._db.read() as conn:
            row = conn.execute(sa.select(pipeline_runs).where(pipeline_runs.c.id == number)).first()
            if row is None:
                raise NotFound(f"no pipeline run {number}")
            steps = _steps(conn, [number], logs=True).get(number, [])
            definition = _version_row(conn, row.pipeline, row.version)
        names = order(definition.definition)
        run = _run(row, sorted(steps, key=lambda s: names.index(s.step)))
        edges = [(src, s["name"]) for s in definition.definition["steps"] for src in s["inputs"].values()]
        return PipelineRun(**{**run.__dict__, "edges": edges})

    def claimable(self) -> list[int]:
        """Runs waiting for a process: queued ones, and running ones whose heartbeat stopped (resumed)."""
        stale = datetime.now(UTC).timestamp() - STALE_AFTER_S
        query = sa.select(pipeline_runs.c.id, pipeline_runs.c.status, pipeline_runs.c.heartbeat_at) \
            .where(pipeline_runs.c.status.in_(("queued", "running"))).order_by(pipeline_runs.c.id)
        with self._db.read() as conn:
            return [r.id for r in conn.execute(query) if r.status == "queued" or r.heartbeat_at is None
                    or r.heartbeat_at.timestamp() < stale]

    # -- internals ---------------------------------------------------------------------------------------

    def _resolve(self, info: PipelineInfo, given: dict[str, Any]) -> dict[str, Any]:
        """Per step, its parameters' values for this run: given, else the default; refs pinned to a version."""
        known = {p for s in info.steps for p in s["params"]}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidInput(f"pipeline {info.name!r} has no parameter {', '.join(unknown)}; its parameters: "
                               f"{', '.join(sorted(known)) or 'none'}")
        steps = {s["name"]: {p: given.get(p, default) for p, default in s["params"].items()} for s in info.steps}
        for step, param, declared in ref_params(info.definition):
            value = steps[step][param]
            if value is None:
                continue
            kind = REF_TYPES[declared].kind
            text = str(value) if ":" in str(value) or kind == "table" else f"{kind}:{value}"
            resolved = self._canonical_ref(text) if kind in ("table", "split", "model") else text
            if not str(resolved).startswith(f"{kind}:"):
                raise InvalidInput(f"parameter {param!r} of step {step!r} is a {declared}; {value!r} is a "
                                   f"{str(resolved).split(':', 1)[0]}")
            steps[step][param] = resolved
        return {"given": given, "steps": steps}

    def _create(self, info: PipelineInfo, params: dict[str, Any], force: bool, trigger: dict[str, Any],
                key: str | None) -> PipelineRun | None:
        now = datetime.now(UTC)
        try:
            with self._db.transaction() as conn:
                made = conn.execute(pipeline_runs.insert().values(
                    pipeline=info.name, version=info.version, status="queued", params=params, trigger=trigger,
                    force=force, attempt=1, created_at=now, created_by=self._user))
                run_id = int(made.inserted_primary_key[0])
                conn.execute(pipeline_step_runs.insert(), [{"run": run_id, "step": name, "status": "pending",
                                                             "attempts": 0} for name in order(info.definition)])
                if key is not None:
                    conn.execute(trigger_fires.insert().values(
                        key=key, subject=f"pipeline:{info.name}", kind=trigger.get("kind", "?"),
                        what=str(trigger.get("what", ""))[:2000], fired_at=now, run=run_id))
                self._audit.record(conn, actor=self._user, action="pipeline.run", target=f"pipeline_run:{run_id}",
                                   reason=trigger.get("what"), details={"pipeline": info.name, "trigger": trigger})
        except IntegrityError as exc:
            if key is not None and is_unique_violation(exc):
                return None  # this event fired already
            raise
        log.info("pipeline.run.created", pipeline=info.name, run=run_id, trigger=trigger.get("kind"), key=key)
        return self.show(run_id)

    def _claim(self, run_id: int, holder: str) -> bool:
        now = datetime.now(UTC)
        stale = datetime.fromtimestamp(now.timestamp() - STALE_AFTER_S, UTC)
        with self._db.transaction() as conn:
            row = conn.execute(sa.select(pipeline_runs.c.status, pipeline_runs.c.heartbeat_at,
                                         pipeline_runs.c.attempt).where(pipeline_runs.c.id == run_id)).first()
            if row is None:
                return False
            resumed = row.status == "running"
            claimable = pipeline_runs.c.status == "queued"
            if resumed:
                claimable = sa.and_(pipeline_runs.c.status == "running", sa.or_(
                    pipeline_runs.c.heartbeat_at.is_(None), pipeline_runs.c.heartbeat_at < stale))
            values: dict[str, Any] = {"status": "running", "claimed_by": holder, "heartbeat_at": now}
            if resumed:
                values["attempt"] = row.attempt + 1
            else:
                values["started_at"] = now
            moved = conn.execute(pipeline_runs.update().where(pipeline_runs.c.id == run_id, claimable).values(**values))
            if moved.rowcount != 1:
                return False
            if resumed:  # its process died mid-step: those steps run again
                conn.execute(pipeline_step_runs.update().where(pipeline_step_runs.c.run == run_id,
                                                               pipeline_step_runs.c.status == "running")
                             .values(status="pending"))
                log.warning("pipeline.run.resumed", run=run_id, holder=holder)
        return True

    def _end(self, run_id: int, status: str, error: str | None, *, interrupted: bool = False) -> None:
        with self._db.transaction() as conn:
            conn.execute(pipeline_runs.update().where(pipeline_runs.c.id == run_id)
                         .values(status=status, ended_at=datetime.now(UTC), error=error))
            if interrupted:  # the steps it was running did not finish: a retry runs them again
                conn.execute(pipeline_step_runs.update().where(pipeline_step_runs.c.run == run_id,
                                                               pipeline_step_runs.c.status == "running")
                             .values(status="failed", error=error))


def _wiring(info: PipelineInfo) -> list[tuple[str, dict[str, str]]]:
    """The steps and how they are wired: a version with the same wiring can take over a run in the middle."""
    return sorted((s["name"], s["inputs"]) for s in info.steps)


def _check_executor(executor: str) -> None:
    if executor not in EXECUTORS:
        raise InvalidInput(f"executor {executor!r}: use process (each step in its own process) or inline")


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["k=v", ...]`` as a dict; a value is read as JSON when it is JSON (3, 0.5, true, [1,2]), else as text."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param {pair!r}: write it as name=value")
        try:
            out[key.strip()] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key.strip()] = value
    return out


def _pipelines(source: Any) -> list[Pipeline]:
    """The Pipelines ``source`` holds: itself, a list of them, or a module's (a module, a .py file, a dotted name)."""
    if isinstance(source, Pipeline):
        return [source]
    if isinstance(source, list | tuple) and all(isinstance(p, Pipeline) for p in source):
        return list(source)
    module = source
    if isinstance(source, str | Path):
        text = str(source)
        module = load_module(text) if text.endswith(".py") or Path(text).is_file() else _import(text)
    if not isinstance(module, ModuleType):
        raise InvalidInput(f"cannot read pipelines from {source!r}: give a module, a .py file or Pipeline objects")
    return [v for v in vars(module).values() if isinstance(v, Pipeline)]


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise InvalidInput(f"cannot import {name!r}: {exc}; give a Python file or an importable module") from None


def _version_row(conn: sa.Connection, name: str, version: int | None = None) -> Any:
    """The stored row of pipeline ``name`` at ``version`` (default: its newest), or None."""
    query = sa.select(pipeline_versions).where(pipeline_versions.c.name == name)
    query = query.where(pipeline_versions.c.version == version) if version is not None else \
        query.order_by(pipeline_versions.c.version.desc()).limit(1)
    return conn.execute(query).first()


def _info(row: Any) -> PipelineInfo:
    return PipelineInfo(row.name, row.version, row.definition, row.applied_at, row.applied_by)


def _steps(conn: sa.Connection, run_ids: list[int], *, logs: bool) -> dict[int, list[StepRun]]:
    if not run_ids:
        return {}
    query = sa.select(pipeline_step_runs).where(pipeline_step_runs.c.run.in_(run_ids))
    out: dict[int, list[StepRun]] = {}
    for r in conn.execute(query.order_by(pipeline_step_runs.c.started_at)):
        out.setdefault(r.run, []).append(StepRun(
            r.step, r.status, r.attempts, r.cache_key, r.cached_from, r.inputs or {}, (r.output or {}).get("value"),
            r.started_at, r.ended_at, (r.logs or "") if logs else "", r.error))
    return out


def _run(row: Any, steps: list[StepRun]) -> PipelineRun:
    return PipelineRun(row.id, row.pipeline, row.version, row.status, row.params, row.trigger, row.force,
                       row.attempt, row.created_at, row.created_by, row.started_at, row.ended_at, row.error, steps)


def _run_id(value: int | str) -> int:
    text = str(value).removeprefix("pipeline_run:")
    if not text.isdigit():
        raise InvalidInput(f"{value!r} is not a pipeline run id (a number, or pipeline_run:N)")
    return int(text)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"

