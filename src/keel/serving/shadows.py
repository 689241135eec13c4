"""Shadow models in a process of their own, at the lowest CPU priority: a shadow shares nothing with the answer.

A shadow called in the serving process competes with the next request for the interpreter lock and the core, and
shows in the primary's latency. Here the serving process only hands the request's rows to a queue (dropped and
counted when the queue is full: a shadow never makes a client wait); a child process (``nice 19``) loads the shadow
versions, predicts, and writes their outputs to the prediction log under the primary's request id, through a
segment log of its own (recovered like any other if the child dies).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

__all__ = ["ShadowProcess"]

_CONTEXT = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads or locks


class ShadowProcess:
    """The serving process's handle: ``submit`` never blocks; the child starts on the first shadow request."""

    def __init__(self, workspace: tuple[Any, Any], folder: Path, *, trusted: bool = False, capacity: int = 10_000,
                 commit_every_s: float = 1.0) -> None:
        """``workspace``: (its class, its settings), what the child opens the same workspace with."""
        self.workspace, self.folder, self.trusted, self.commit_every_s = workspace, folder, trusted, commit_every_s
        self._queue: Any = _CONTEXT.Queue(capacity)
        self._process: Any = None
        self._lock = threading.Lock()
        self.dropped = 0

    def submit(self, deployment: str, models: tuple[str, ...], frame: pd.DataFrame, request_id: str) -> bool:
        """Queue one request's rows for ``models``; False (and counted) when the queue is full."""
        self._start()
        rows = orjson.dumps(frame.to_dict(orient="records"), default=str, option=orjson.OPT_SERIALIZE_NUMPY)
        try:
            self._queue.put_nowait((deployment, models, request_id, rows))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def close(self, timeout_s: float = 30) -> None:
        """Let the child finish what is queued and commit it, then stop it."""
        with self._lock:
            if self._process is None:
                return
            with contextlib.suppress(ValueError, OSError):
                self._queue.put(None, timeout=timeout_s)
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.terminate()
            self._process = None

    def _start(self) -> None:
        if self._process is not None:
            return
        with self._lock:
            if self._process is None:
                self._process = _CONTEXT.Process(target=_main, name="keel-shadows", daemon=True,
                                                 args=(self.workspace, str(self.folder), self.trusted, self._queue,
                                                       self.commit_every_s))
                self._process.start()


def _main(workspace: tuple[Any, Any], folder: str, trusted: bool, jobs: Any, commit_every_s: float) -> None:
    """The child: predict each queued request with its shadow models; log the outputs."""
    os.nice(19)
    from threadpoolctl import threadpool_limits

    from keel.serving.app import hold_folder, prediction_log

    threadpool_limits(1)
    kind, settings = workspace
    ws = kind(settings)
    held = hold_folder(Path(folder))
    log = prediction_log(ws, Path(folder))
    stop = threading.Event()

    def commit() -> None:
        while not stop.wait(commit_every_s):
            log.commit()

    committer = threading.Thread(target=commit, name="keel-shadow-commit", daemon=True)
    committer.start()
    models: dict[str, Any] = {}
    try:
        for job in iter(jobs.get, None):
            deployment, refs, request_id, rows = job
            frame = pd.DataFrame.from_records(orjson.loads(rows))
            log.append([_shadow_record(deployment, ref, request_id, frame, models, ws, trusted) for ref in refs])
    finally:
        stop.set()
        committer.join(10)
        log.close()
        held.close()


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
