"""``keel scheduler``: the long-running process that turns triggers into runs and runs them.

Each tick, the scheduler holding the lease (a row in the metadata store, renewed every tick, taken over when it
expires) runs the monitors whose next window has closed, evaluates every pipeline's triggers and the retraining
policies (which read those reports), and steps the canaries. Every event has an
idempotency key that is inserted with the run it starts, so an event fires once even when two schedulers evaluate
it or one is killed between firing and recording what it saw. Any scheduler executes queued runs (claimed
atomically) and resumes a run whose process died (its heartbeat stopped), from the steps that had not finished.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from keel.errors import Conflict, KeelError
from keel.logs import get_logger
from keel.monitoring.window import parse_window
from keel.pipelines.cursors import read_cursor, save_cursor
from keel.pipelines.triggers import Event, git_head, schedule_events
from keel.storage.db import is_unique_violation
from keel.storage.schema import scheduler_leases

__all__ = ["LEASE", "Scheduler", "Tick"]

log = get_logger("keel.pipelines")

LEASE = "scheduler"


@dataclass
class Tick:
    """What one tick did: whether this scheduler led, the events it fired, runs it started, canary decisions."""

    leader: bool
    fired: list[dict[str, Any]] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    canaries: dict[str, str] = field(default_factory=dict)
    monitored: list[str] = field(default_factory=list)  # the monitor reports this tick made
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"leader": self.leader, "fired": self.fired, "started": self.started, "canaries": self.canaries,
                "monitored": self.monitored, "errors": self.errors}


class Scheduler:
    """Evaluate triggers under a lease and execute runs: ``tick()`` once, or ``serve(stop)`` until stopped."""

    def __init__(self, ws: Any, *, holder: str | None = None, interval_s: float = 10.0, lease_s: float = 60.0,
                 executor: str = "process", workers: int = 2, canaries: bool = True, monitors: bool = True) -> None:
        self._ws, self._db = ws, ws.db
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._interval, self._lease_s = interval_s, max(lease_s, interval_s * 2)
        self._executor, self._workers, self._canaries, self._monitors = executor, workers, canaries, monitors
        self._running: cf.Future[Any] | None = None
        self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix="keel-scheduler-run")

    def tick(self, now: datetime | None = None, *, wait: bool = False) -> Tick:
        """One pass: lead if the lease is free, fire due events, start the next claimable run (``wait``: and
        wait for it, for tests and ``--once``)."""
        now = now or datetime.now(UTC)
        tick = Tick(self.lease(now))
        if tick.leader:
            for pipeline in self._ws.pipelines.list():
                for index, spec in enumerate(pipeline.triggers):
                    try:
                        events, seen = self._events(pipeline.name, index, spec, now)
                        for event in events:
                            made = self._ws.pipelines.fire(pipeline.name, event.key, {
                                "kind": spec["kind"], "what": event.what, "by": f"scheduler {self.holder}",
                                **event.detail})
                            if made is not None:
                                tick.fired.append({"pipeline": pipeline.name, "key": event.key, "run": made.id})
                        if seen is not None:  # only once its events fired: a failure in between re-fires them
                            save_cursor(self._db, f"pipeline:{pipeline.name}", f"{index}:{spec['kind']}", seen)
                    except KeelError as exc:
                        tick.errors.append(f"{pipeline.name} trigger {index} ({spec['kind']}): {exc.message}")
                        log.warning("scheduler.trigger_failed", pipeline=pipeline.name, trigger=index,
                                    error=exc.message)
            if self._monitors:
                tick.monitored, failed = self._run_monitors(now)
                tick.errors += failed
            retraining = getattr(self._ws, "retraining", None)
            if retraining is not None:
                try:
                    for made in retraining.evaluate(now=now, scheduler=self.holder):
                        tick.fired.append({"policy": made.policy, "key": made.trigger.get("key"), "retrain": made.id})
                except KeelError as exc:
                    tick.errors.append(f"retraining: {exc.message}")
            if self._canaries:
                try:
                    tick.canaries = {k: v.action for k, v in self._ws.deployments.check_canaries(now=now).items()}
                except KeelError as exc:
                    tick.errors.append(f"canaries: {exc.message}")
        tick.started = self._start_next(wait=wait)
        return tick

    def serve(self, stop: threading.Event) -> None:
        """Tick every ``interval_s`` until ``stop`` is set; a run in progress finishes first."""
        log.info("scheduler.started", holder=self.holder, interval_s=self._interval)
        while not stop.is_set():
            try:
                tick = self.tick()
                if tick.fired or tick.started or tick.errors:
                    log.info("scheduler.tick", **tick.to_dict())
            except Exception as exc:  # the metadata store was away a moment: the next tick tries again
                log.warning("scheduler.tick_failed", error=f"{type(exc).__name__}: {exc}")
            stop.wait(self._interval)
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.release()

    # -- the lease ---------------------------------------------------------------------------------------

    def lease(self, now: datetime | None = None) -> bool:
        """Take or renew the lease; False while another scheduler holds an unexpired one."""
        now = now or datetime.now(UTC)
        until = now + timedelta(seconds=self._lease_s)
        with self._db.transaction() as conn:
            held = conn.execute(scheduler_leases.update().where(
                scheduler_leases.c.name == LEASE,
                sa.or_(scheduler_leases.c.holder == self.holder, scheduler_leases.c.expires_at < now))
                .values(holder=self.holder, expires_at=until, acquired_at=now))
            if held.rowcount == 1:
                return True
        try:
            with self._db.transaction() as conn:
                conn.execute(scheduler_leases.insert().values(name=LEASE, holder=self.holder, expires_at=until,
                                                              acquired_at=now))
            return True
        except IntegrityError as exc:
            if is_unique_violation(exc):
                return False  # held by another scheduler
            raise

    def release(self) -> None:
        with self._db.transaction() as conn:
            conn.execute(scheduler_leases.delete().where(scheduler_leases.c.name == LEASE,
                                                         scheduler_leases.c.holder == self.holder))

    # -- monitors ----------------------------------------------------------------------------------------

    def _run_monitors(self, now: datetime) -> tuple[list[str], list[str]]:
        """Each monitor whose next window has closed runs over it: windows follow one another, each as long as the
        monitor's ``window``, from its last report's end (or its creation), so every request is judged once."""
        made, errors = [], []
        for monitor in self._ws.monitors.list():
            try:
                start, end = parse_window(monitor.window, now)
                length = end - start
                last = self._ws.monitors.reports(monitor.name, limit=1)
                begin = last[0].window_end if last else monitor.created_at
                if begin is None or begin + length > now:
                    continue
                window = f"{begin.isoformat()}..{(begin + length).isoformat()}"
                made.append(self._ws.monitors.run(monitor.name, window=window).ref)
            except KeelError as exc:
                errors.append(f"monitor {monitor.name}: {exc.message}")
        return made, errors

    # -- triggers ----------------------------------------------------------------------------------------

    def _events(self, pipeline: str, index: int, spec: dict[str, Any], now: datetime
                ) -> tuple[list[Event], dict[str, Any] | None]:
        """The trigger's events since its cursor, and the cursor to save once they fired (None: keep it)."""
        cursor = self._cursor(f"pipeline:{pipeline}", f"{index}:{spec['kind']}")
        kind = spec["kind"]
        if kind == "schedule":
            seen = datetime.fromisoformat(cursor["at"]) if cursor else None
            return schedule_events(pipeline, index, spec, seen, now), {"at": now.isoformat()}
        if kind == "data":
            version = self._source_version(spec["source"])
            if version is None:
                return [], None
            if cursor is None or version <= int(cursor.get("version", -1)):
                return [], {"version": version}  # the first look records what exists; a later version is news
            return [Event(f"data:{pipeline}:{spec['source']}@{version}", f"new version {spec['source']}@{version}",
                          {"source": f"{spec['source']}@{version}"})], {"version": version}
        if kind == "git":
            commit = git_head(spec["path"], spec["branch"])
            if cursor is None or cursor.get("commit") == commit:
                return [], {"commit": commit}
            return [Event(f"git:{pipeline}:{spec['path']}:{spec['branch']}:{commit}",
                          f"new commit {commit[:12]} on {spec['branch']} of {spec['path']}",
                          {"commit": commit, "branch": spec["branch"]})], {"commit": commit}
        return [], None  # api and manual runs are started by people, not by the scheduler

    def _cursor(self, subject: str, trigger: str) -> dict[str, Any] | None:
        return read_cursor(self._db, subject, trigger)

    def _source_version(self, source: str) -> int | None:
        kind, _, name = source.partition(":")
        if kind == "features":
            try:
                return int(self._ws.features.get(name).version)
            except KeelError:
                return None
        latest = self._ws.data.catalog.latest(name)
        return None if latest is None else int(latest.version)

    # -- runs --------------------------------------------------------------------------------------------

    def _start_next(self, *, wait: bool) -> list[int]:
        if self._running is not None and not self._running.done():
            return []
        for run_id in self._ws.pipelines.claimable():
            future = self._pool.submit(self._execute, run_id)
            self._running = future
            if wait and future.result() is None:
                continue  # another scheduler claimed it first
            return [run_id]
        return []

    def _execute(self, run_id: int) -> Any:
        try:
            return self._ws.pipelines.execute(run_id, executor=self._executor, workers=self._workers,
                                              holder=self.holder)
        except Conflict:
            return None  # claimed by another scheduler meanwhile
        except Exception as exc:
            log.warning("scheduler.run_failed", run=run_id, error=f"{type(exc).__name__}: {exc}")
            return None
