"""``ws.runs`` over HTTP: the embedded ``Run`` handle, logging into a client-side buffer sent in batches.

A remote ``log_metric`` must cost what an embedded one does — microseconds — so points, params and tags
are appended to memory and sent as ONE ``POST /runs/{id}/log`` per run and batch: when the buffer
holds ``max_points``, every ``interval_s`` (a background thread), before anything reads runs, at a run's
end, at ``close()`` and at interpreter exit. A batch the server refused as wrong (4xx) is dropped and
its error raised; one that could not be delivered (server unreachable, 5xx) is kept for the next flush.

``RemoteRunService`` offers ``Run`` the same private surface ``RunService`` does (``_buffer``,
``_write_tags``, ``_write_artifact``, ``_end``, ``start``, ``model_logger``), so a remote run *is* a
``keel.Run``: the same checks on keys, values and immutable params, the same context manager, and
``current_run()`` for autolog.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from keel.errors import Conflict, InvalidInput, KeelError, StorageError
from keel.logs import get_logger
from keel.remote.client import Client, ServerError, ServerUnreachable, join
from keel.remote.decode import decode, decode_list
from keel.tracking.model import RunInfo
from keel.tracking.run import Run

__all__ = ["RemoteBuffer", "RemoteRunService"]

log = get_logger("keel.remote")
_LIVE: weakref.WeakSet[RemoteBuffer] = weakref.WeakSet()


@dataclass
class _Pending:
    """What one run has waiting to be sent."""

    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    points: list[tuple[str, float | None, int | None]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        # the client checked every value (Run.log_metric); NaN travels as null, ±inf as JSON's Infinity
        return {"params": self.params, "tags": self.tags, "allow_nan": True,
                "metrics": [{"key": k, "value": v, "step": s} for k, v, s in self.points]}

    def before(self, later: _Pending) -> _Pending:
        """This (older, unsent) batch followed by ``later``: points stay in logging order."""
        return _Pending({**self.params, **later.params}, {**self.tags, **later.tags}, self.points + later.points)


class RemoteBuffer:
    """Pending params, tags and metric points of every run of one remote workspace, sent in batches."""

    def __init__(self, send: Callable[[str, dict[str, Any]], Any], *, max_points: int = 20_000,
                 interval_s: float = 1.0) -> None:
        self._send, self._max_points, self._interval = send, max_points, interval_s
        self._lock = threading.Lock()  # guards _pending and _count (held for microseconds)
        self._flushing = threading.Lock()  # one batch in flight at a time: the server sees logging order
        self._pending: dict[str, _Pending] = {}
        self._count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _LIVE.add(self)

    # -- what Run calls (the same names as keel.tracking.buffer.MetricBuffer) ---------------------------

    def add(self, run_id: str, points: Iterable[tuple[str, float | None]], step: int | None) -> None:
        """Queue checked points; sends inline only when the buffer is full."""
        with self._lock:
            pending = self._pending.get(run_id)
            if pending is None:
                pending = self._pending[run_id] = _Pending()
            before = len(pending.points)
            pending.points.extend((key, value, step) for key, value in points)
            self._count += len(pending.points) - before
            full = self._count >= self._max_points
        if full:
            self.flush()
        elif self._thread is None:
            self._start_thread()

    def add_params(self, run_id: str, params: dict[str, str]) -> None:
        self._queue(run_id, "params", params)

    def add_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._queue(run_id, "tags", tags)

    # -- sending ----------------------------------------------------------------------------------------

    def flush(self, run_id: str | None = None) -> int:
        """Send what is pending (of every run, or of ``run_id``), one request per run; returns the points sent."""
        sent = 0
        with self._flushing:
            with self._lock:
                if run_id is None:
                    batches, self._pending, self._count = self._pending, {}, 0
                else:
                    one = self._pending.pop(run_id, None)
                    batches = {run_id: one} if one is not None else {}
                    self._count -= len(one.points) if one is not None else 0
            items = list(batches.items())
            for index, (run, batch) in enumerate(items):
                try:
                    self._send(run, batch.body())
                except (ServerUnreachable, ServerError):
                    self._requeue(items[index:])  # not delivered: the next flush retries, in order
                    raise
                except KeelError:
                    self._requeue(items[index + 1:])  # refused as wrong: retrying cannot help; drop it
                    raise
                sent += len(batch.points)
        return sent

    def close(self) -> None:
        """Stop the background thread (waiting for it: a thread still running at interpreter exit can
        abort the process), then send what is left."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self.flush()

    def _queue(self, run_id: str, section: str, values: dict[str, str]) -> None:
        if not values:
            return
        with self._lock:
            pending = self._pending.get(run_id)
            if pending is None:
                pending = self._pending[run_id] = _Pending()
            getattr(pending, section).update(values)
        if self._thread is None:
            self._start_thread()

    def _requeue(self, items: list[tuple[str, _Pending]]) -> None:
        with self._lock:
            for run, batch in items:
                later = self._pending.get(run)
                self._pending[run] = batch if later is None else batch.before(later)
                self._count += len(batch.points)

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._tick, name="keel-remote-flush", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except KeelError as exc:  # the next tick, a read or the run's end retries (or raises) it
                log.warning("remote.flush_failed", error=str(exc))


@atexit.register
def _flush_all() -> None:
    """Interpreter exit: what is still buffered reaches the server (or the failure is reported)."""
    for buffer in list(_LIVE):
        try:
            buffer.close()
        except Exception as exc:  # the interpreter is ending: report, do not raise
            log.error("remote.flush_at_exit_failed", error=str(exc))


class RemoteRunService:
    """``ws.runs`` of a remote workspace: the embedded methods that make sense over HTTP."""

    model_logger: Callable[..., Any] | None = None  # set by RemoteWorkspace to ws.models.log_model

    def __init__(self, client: Client, *, max_points: int = 20_000, interval_s: float = 1.0) -> None:
        self._client = client
        self._buffer = RemoteBuffer(self._send_batch, max_points=max_points, interval_s=interval_s)

    # -- runs -------------------------------------------------------------------------------------------

    def start(self, experiment: str, *, name: str | None = None, inputs: Iterable[str] = (),
              tags: Mapping[str, Any] | None = None, parent: str | Run | None = None) -> Run:
        """Create a running run on the server; use it as a context manager so it ends with the right status."""
        parent_id = parent.id if isinstance(parent, Run) else parent
        body = {"experiment": experiment, "name": name, "inputs": list(inputs),
                "tags": {k: str(v) for k, v in (tags or {}).items()}, "parent": parent_id}
        info = decode(RunInfo, self._client.post("/runs", body))
        return Run(self, info.id, info.experiment, info.parent_id)  # type: ignore[arg-type]

    def get(self, run_id: str) -> RunInfo:
        self._buffer.flush()
        return decode(RunInfo, self._client.get(join("runs", run_id.removeprefix("run:"))))

    def handle(self, run_id: str) -> Run:
        """A handle on a running run started elsewhere, to log to it."""
        info = self.get(run_id)
        if info.status != "running":
            raise Conflict(f"run {info.id} has ended ({info.status}); start a new run to log more")
        run = Run(self, info.id, info.experiment, info.parent_id)  # type: ignore[arg-type]
        run._params.update(info.params)
        return run

    def list(self, *, experiment: str | None = None, filter: str | None = None, sort: str | list[str] | None = None,
             status: str | None = None, limit: int = 100) -> list[RunInfo]:
        """Runs matching ``filter``, in ``sort`` order (the server runs the same search as embedded)."""
        self._buffer.flush()
        sort_text = ",".join(sort) if isinstance(sort, list | tuple) else sort
        return decode_list(RunInfo, self._client.get("/runs", experiment=experiment, filter=filter,
                                                     sort=sort_text, status=status, limit=limit))

    def compare(self, run_ids: Iterable[str]) -> dict[str, Any]:
        ids = [r.removeprefix("run:") for r in run_ids]
        if len(ids) < 2:
            raise InvalidInput("compare needs at least two runs")
        self._buffer.flush()
        return self._client.get("/runs/compare", ids=ids)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int | None, float | None]]:
        self._buffer.flush()
        found = self._client.get(join("runs", run_id.removeprefix("run:"), "metrics", key))
        return [(p["step"], p["value"]) for p in found["points"]]

    def download_artifact(self, run_id: str, name: str, destination: str | Path | IO[bytes]) -> Path | None:
        """Stream a run's artifact into a file (or an open binary file), checking its sha256 on the way.

        Returns the path written (None when given a file object).
        """
        run_id = run_id.removeprefix("run:")
        route = join("runs", run_id, "artifacts") + "/" + "/".join(_segment(p) for p in name.split("/"))
        if not isinstance(destination, str | Path):
            _check_digest(name, *self._client.download(route, destination)[1:])
            return None
        target = Path(destination)
        if target.is_dir():
            target = target / Path(name).name
        partial = target.with_name(target.name + ".part")
        try:
            with open(partial, "wb") as out:
                _, digest, expected = self._client.download(route, out)
            _check_digest(name, digest, expected)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def flush(self) -> int:
        """Send buffered params, tags and metric points now; returns how many points were sent."""
        return self._buffer.flush()

    def close(self) -> None:
        self._buffer.close()

    # -- embedded-only helpers ----------------------------------------------------------------------------

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        raise _embedded_only("ws.runs.fit")

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        raise _embedded_only("ws.runs.evaluate")

    def importance(self, *args: Any, **kwargs: Any) -> Any:
        raise _embedded_only("ws.runs.importance")

    # -- what Run calls -------------------------------------------------------------------------------------

    def _send_batch(self, run_id: str, body: dict[str, Any]) -> Any:
        return self._client.post(join("runs", run_id, "log"), body)

    def _write_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._buffer.add_tags(run_id, tags)

    def _write_artifact(self, run_id: str, name: str, *, data: bytes | None = None, path: Path | None = None) -> str:
        route = join("runs", run_id, "artifacts") + "/" + "/".join(_segment(p) for p in name.split("/"))
        answer = self._client.upload("PUT", route, data if data is not None else path)  # type: ignore[arg-type]
        return answer["sha256"]

    def _end(self, run_id: str, status: str, error: str | None) -> None:
        self._buffer.flush(run_id)  # everything logged to the run is stored before it is marked ended
        self._client.post(join("runs", run_id, "end"), {"status": status, "error": error})


def _segment(part: str) -> str:
    return join(part)[1:]


def _check_digest(name: str, digest: str, expected: str | None) -> None:
    """The bytes received against the sha256 the server recorded for them (sent with them, Repr-Digest)."""
    if expected is None:
        raise StorageError(f"the server sent artifact {name!r} without its sha256 (Repr-Digest); it cannot be "
                           "checked, so it is refused: is the server older than this client?")
    if digest != expected:
        raise StorageError(f"artifact {name!r} arrived with sha256 {digest}, not the {expected} it was stored "
                              "with; it was changed on the server or in transit")


def _embedded_only(what: str) -> KeelError:
    return InvalidInput(f"{what} needs the data in this process; run it in an embedded workspace "
                        "(keel.open(path)) and log the results to the server's run")
