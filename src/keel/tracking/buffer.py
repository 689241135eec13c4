"""Buffered metric logging: ``log_metric`` appends to memory; batches reach the database whole.

A loop of ``log_metric`` must cost microseconds, not a database round trip (MLflow's costs ~3 ms).
Points are flushed in one transaction each — on a size threshold, on a time threshold (a background
thread), when a run ends and at interpreter exit — so a batch is either entirely stored or not at all.
On SIGKILL at most the points of the last flush interval are lost; never part of a batch.
"""

from __future__ import annotations

import atexit
import functools
import math
import threading
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from numbers import Real
from typing import Any

from keel.errors import InvalidInput
from keel.logs import get_logger
from keel.storage.db import Database, Prepared, Writes, dialect_insert
from keel.storage.schema import run_latest_metrics, run_metrics, run_params

__all__ = ["MetricBuffer", "checked_value", "flush_all"]

log = get_logger("keel.tracking")
_LIVE: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()  # flushed at interpreter exit


def checked_value(key: str, value: Any, allow_nan: bool) -> float | None:
    """A finite float, or (only when asked) NaN/±inf; NaN is stored as NULL."""
    if type(value) is float:  # the common case, without the costlier checks below
        number = value
    elif isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInput(f"metric {key!r} must be a number, not {type(value).__name__} ({value!r})")
    else:
        number = float(value)
    if not math.isfinite(number):
        if not allow_nan:
            raise InvalidInput(f"metric {key!r} is {number}, not a finite number; pass allow_nan=True to record it")
        return None if math.isnan(number) else number
    return number


class MetricBuffer:
    """Pending metric points of one workspace, written in batches by ``flush``."""

    def __init__(self, db: Database, *, max_points: int = 5_000, interval_s: float = 1.0) -> None:
        self._db = db
        self._max_points = max_points
        self._interval = interval_s
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []  # (run_id, key, seq, step, value, logged_at)
        self._params: list[tuple[str, str, str]] = []  # (run_id, key, value)
        self._seq: dict[tuple[str, str], int] = {}
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _LIVE.add(self)

    def add(self, run_id: str, points: Iterable[tuple[str, float | None]], step: int | None) -> None:
        """Queue points (already checked); flushes inline only when the buffer is full."""
        now = datetime.now(UTC)
        with self._lock:
            for key, value in points:
                seq = self._seq.get((run_id, key), -1) + 1
                self._seq[(run_id, key)] = seq
                self._pending.append((run_id, key, seq, step, value, now))
            full = len(self._pending) >= self._max_points
        if full:
            self.flush()
        else:
            self._ensure_thread()

    def add_params(self, run_id: str, params: dict[str, str]) -> None:
        """Queue params; they are written with the next batch (a run's end at the latest)."""
        with self._lock:
            self._params.extend((run_id, k, v) for k, v in params.items())
        self._ensure_thread()

    def start_run(self, run_id: str, known: dict[str, int] | None = None) -> None:
        """Continue sequence numbers of a resumed run (``known``: key -> last seq stored); never goes back, so
        points queued here meanwhile keep their numbers."""
        with self._lock:
            for key, seq in (known or {}).items():
                self._seq[(run_id, key)] = max(self._seq.get((run_id, key), -1), seq)

    def flush(self, then: Callable[[Writes], None] | None = None) -> int:
        """Write every pending point and param in one transaction, with ``then`` (e.g. a run's end)
        in the same transaction; returns how many points were written."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
                params, self._params = self._params, []
            if not batch and not params and then is None:
                return 0
            try:
                with self._db.writes() as writes:
                    insert_params, insert_points, upsert_latest = _statements(self._db.dialect)
                    writes.run(insert_params, params)
                    writes.run(insert_points, batch)
                    writes.run(upsert_latest, _latest(batch))
                    if then is not None:
                        then(writes)
            except Exception:
                with self._lock:  # keep them for the next attempt; nothing was written
                    self._pending[:0] = batch
                    self._params[:0] = params
                raise
            return len(batch)

    def close(self) -> None:
        self._stop.set()
        self.flush()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="keel-metric-flush", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception as exc:  # the next tick or the run's end retries; say why now
                log.warning("metrics.flush_failed", error=str(exc))


_POINT = ("run_id", "key", "seq", "step", "value", "logged_at")


@functools.cache
def _statements(dialect: str) -> tuple[Prepared, Prepared, Prepared]:
    """A flush's statements, built and compiled once (that costs more than running them)."""
    insert = dialect_insert(dialect)
    latest = insert(run_latest_metrics)
    upsert_latest = latest.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={"seq": latest.excluded.seq, "step": latest.excluded.step, "value": latest.excluded.value},
        where=run_latest_metrics.c.seq < latest.excluded.seq,
    )  # run_latest_metrics keeps the highest seq per (run, key): what searches and sorts read
    return (Prepared(insert(run_params).on_conflict_do_nothing(), ("run_id", "key", "value")),
            Prepared(run_metrics.insert(), _POINT), Prepared(upsert_latest, _POINT[:-1]))


def _latest(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The last point of each (run, key) in ``batch`` (which is in seq order per key), without logged_at."""
    return [point[:-1] for point in {(point[0], point[1]): point for point in batch}.values()]


@atexit.register
def flush_all() -> None:
    """Flush every live buffer: at interpreter exit, and before a process exits without atexit."""
    for buffer in list(_LIVE):
        try:
            buffer.close()
        except Exception as exc:  # the interpreter is ending: report, do not raise
            log.error("metrics.flush_at_exit_failed", error=str(exc))
