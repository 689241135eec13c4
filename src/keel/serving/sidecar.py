"""Each serving process's sidecar: a child process at a low CPU priority (nice 10) that does the serving
process's slow work, so that nothing but answering runs beside the requests.

- **The prediction log's commits.** The serving process only appends to its write-ahead segments and closes them
  (``SegmentLog.rotate``); the sidecar commits closed segments to the ``predictions`` table (a Delta commit costs
  milliseconds of CPU: in the serving process it would stall requests, and show in the p99).
- **Shadow models.** Called in the serving process, a shadow competes with the next request for the interpreter
  lock and the core. The serving process hands the request's rows to a bounded queue (dropped and counted when it
  is full: a shadow never makes a client wait); the sidecar loads the shadow versions, predicts, and logs their
  outputs under the primary's request id through a write-ahead log of its own.

The sidecar may run on any core the process is allowed (it leaves the serving process's pinning) and exits when
its parent is gone; a killed one's segments are recovered like any other's. Commits from here, from the serving
process at shutdown and from a server recovering a dead one's folder are serialised by the folder's commit lock.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from keel.logs import get_logger

__all__ = ["Sidecar"]

_events = get_logger("keel.serve.sidecar")

_CONTEXT = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads or locks


class Sidecar:
    """The serving process's handle: ``start`` once, ``submit`` never blocks, ``close`` drains."""

    def __init__(self, workspace: tuple[Any, Any], folder: Path, *, trusted: bool = False, capacity: int = 10_000,
                 commit_every_s: float = 1.0) -> None:
        """``workspace``: (its class, its settings), what the child opens the same workspace with; ``folder``: the
        serving process's log folder (the child's own is beside it, ``-shadows``)."""
        self.workspace, self.folder, self.trusted, self.commit_every_s = workspace, folder, trusted, commit_every_s
        self._queue: Any = _CONTEXT.Queue(capacity)
        self._process: Any = None
        self.dropped = 0

    def start(self) -> None:
        self._process = _CONTEXT.Process(target=_main, name="keel-sidecar", daemon=True,
                                         args=(self.workspace, str(self.folder), self.trusted, self._queue,
                                               self.commit_every_s, os.getpid()))
        self._process.start()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def submit(self, deployment: str, models: tuple[str, ...], rows: bytes, request_id: str) -> bool:
        """Queue one request's rows (JSON records) for the shadow ``models``; False (counted) when the queue is
        full."""
        try:
            self._queue.put_nowait((deployment, models, request_id, rows))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def close(self, timeout_s: float = 30) -> None:
        """Let the child finish what is queued and commit everything, then stop it."""
        if self._process is None:
            return
        with contextlib.suppress(ValueError, OSError, queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._process.join(timeout_s)
        if self._process.is_alive():  # SIGKILL: it ignores SIGTERM. Its segments are on disk; the next start
            self._process.kill()      # commits them (the orphan recovery of keel.serving.app)
            self._process.join(5)
            _events.warning("sidecar.killed", waited_s=timeout_s, folder=str(self.folder))
        self._process = None


def _main(workspace: tuple[Any, Any], folder: str, trusted: bool, jobs: Any, commit_every_s: float,
          parent: int) -> None:
    """The child: commit the parent's closed segments; predict queued requests with their shadow models."""
    _low_priority()
    for stop in (signal.SIGINT, signal.SIGTERM):  # a terminal's Ctrl-C or a group-wide SIGTERM: the parent drains
        signal.signal(stop, signal.SIG_IGN)       # first and tells this process when to finish
    with contextlib.suppress(OSError):  # any core it may use: the parent's pinning is the parent's
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    import orjson
    from threadpoolctl import threadpool_limits

    from keel.serving.app import hold_folder, prediction_log

    threadpool_limits(1)
    kind, settings = workspace
    ws = kind(settings)
    served = prediction_log(ws, Path(folder))  # the parent's: this process only commits it
    own = Path(folder).with_name(Path(folder).name + "-shadows")
    held = hold_folder(own)
    shadows = prediction_log(ws, own)
    models: dict[str, Any] = {}
    due = time.monotonic() + commit_every_s
    try:
        while os.getppid() == parent:  # reparented: the serving process died; whoever restarts it recovers
            try:
                job = jobs.get(timeout=max(0.0, due - time.monotonic()))
            except queue.Empty:
                job = "tick"
            if job is None:
                break
            if job != "tick":
                deployment, refs, request_id, rows = job
                frame = pd.DataFrame.from_records(orjson.loads(rows))
                shadows.append([_shadow_record(deployment, ref, request_id, frame, models, ws, trusted)
                                for ref in refs])
            if time.monotonic() >= due:
                shadows.rotate()
                try:
                    served.commit_closed(), shadows.commit_closed()
                except Exception as exc:  # the store may be briefly unreachable: the segments wait, retried next time
                    _events.warning("sidecar.commit_failed", error=f"{type(exc).__name__}: {exc}")
                due = time.monotonic() + commit_every_s
    finally:
        shadows.rotate()
        served.commit_closed(), shadows.commit_closed()
        held.close()


def _low_priority() -> None:
    """Nice 10: a tenth of a busy core's share (CFS weight 110 against 1024). Not SCHED_IDLE nor nice 19: an
    idle-class process gets no CPU while the machine is busy, and nice 19 (weight 15) too little: on a 2-core
    machine with four busy processes, the sidecar took minutes to load one shadow model and the log's commits
    (which the canary controller and the monitors read) fell minutes behind. Its work is small and bounded
    (commits, shadows), so a fair-but-low share keeps the log current without competing with the requests.
    Threads started later (Delta's writers) inherit it."""
    os.nice(10)


def _shadow_record(deployment: str, ref: str, request_id: str, frame: pd.DataFrame, models: dict[str, Any], ws: Any,
                   trusted: bool) -> dict[str, Any]:
    from keel.serving.app import jsonable

    started = time.perf_counter()
    try:
        if ref not in models:
            models[ref] = ws.models.load(ref, trusted=trusted)
            started = time.perf_counter()  # the latency is the model's, not its first load
        output: Any = models[ref].predict(frame)
    except Exception as exc:  # a shadow's failure is recorded, never raised to anyone
        output = exc
    return {"request_id": request_id, "at": datetime.now(UTC).isoformat(), "kind": "shadow", "deployment": deployment,
            "model": ref, "served_by": ref, "output": jsonable(output),
            "latency_ms": (time.perf_counter() - started) * 1e3,
            "status": "error" if isinstance(output, Exception) else "ok"}
