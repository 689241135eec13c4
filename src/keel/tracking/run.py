"""An active run: the handle user code logs to inside ``with ws.runs.start(...) as run:``."""

from __future__ import annotations

import contextlib
import contextvars
import io
from collections.abc import Mapping
from numbers import Integral
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from keel.errors import Conflict, InvalidInput, KeelError
from keel.tracking.buffer import checked_value

if TYPE_CHECKING:
    from keel.tracking.service import RunService

__all__ = ["Run", "current_run"]

_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("keel_current_run", default=None)


def current_run() -> Run | None:
    """The run whose ``with`` block the caller is in (autolog logs there), per thread and task."""
    return _current.get()

MAX_KEY = 250


class Run:
    """Logs params, metrics, tags and artifacts; ends as finished, failed (with the error) or killed."""

    def __init__(self, service: RunService, run_id: str, experiment: str, parent_id: str | None) -> None:
        self._service = service
        self.id = run_id
        self.experiment = experiment
        self.parent_id = parent_id
        self._ended = False
        self._params: dict[str, str] = {}

    @property
    def ref(self) -> str:
        return f"run:{self.id}"

    # -- logging -------------------------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are immutable: logging a different value for a key already logged is refused.

        They are written with the run's next metric batch (its end at the latest), not one by one.
        """
        self._check_open()
        values = {_key(k): str(v) for k, v in params.items()}
        changed = {k: (self._params[k], v) for k, v in values.items() if k in self._params and self._params[k] != v}
        if changed:
            detail = "; ".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in changed.items())
            raise Conflict(f"params are immutable within a run ({detail}); start a new run to change them")
        fresh = {k: v for k, v in values.items() if k not in self._params}
        self._params.update(fresh)
        self._service._buffer.add_params(self.id, fresh)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._check_open()
        self._service._write_tags(self.id, {_key(k): str(v) for k, v in tags.items()})

    def log_metric(self, key: str, value: float, step: int | None = None, *, allow_nan: bool = False) -> None:
        """Buffered: returns in microseconds; the point reaches the database with its batch."""
        self._check_open()
        self._service._buffer.add(self.id, [(_key(key), checked_value(key, value, allow_nan))], _step(step))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, *, allow_nan: bool = False) -> None:
        self._check_open()
        points = [(_key(k), checked_value(k, v, allow_nan)) for k, v in metrics.items()]
        self._service._buffer.add(self.id, points, _step(step))

    def log_artifact(self, source: str | Path | bytes, name: str | None = None) -> str:
        """Store a file (streamed) or bytes under ``name``; returns its sha256."""
        self._check_open()
        if isinstance(source, bytes | bytearray):
            if not name:
                raise InvalidInput("log_artifact(bytes) needs a name")
            return self._service._write_artifact(self.id, name, data=bytes(source))
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"artifact {path} does not exist or is not a file")
        return self._service._write_artifact(self.id, name or path.name, path=path)

    def log_figure(self, figure: Any, name: str) -> str:
        """A matplotlib figure (or anything with ``savefig``) stored as PNG."""
        if not hasattr(figure, "savefig"):
            raise InvalidInput(f"log_figure needs a matplotlib figure, not {type(figure).__name__}")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return self.log_artifact(buffer.getvalue(), name if name.endswith(".png") else f"{name}.png")

    def log_model(self, model: Any, name: str, **options: Any) -> Any:
        """Package ``model`` and register it as the next version of ``name``, produced by this run.

        Options: ``input_example`` (a few training rows; the signature is inferred from them),
        ``signature``, ``flavor`` (``"python"`` for any object with ``predict``), ``description``.
        """
        self._check_open()
        logger = self._service.model_logger
        if logger is None:
            raise KeelError("no model registry is attached to this run service; open a workspace with keel.open()")
        return logger(self, model, name, **options)

    def start(self, *, name: str | None = None, tags: Mapping[str, Any] | None = None) -> Run:
        """A nested run under this one (same experiment)."""
        self._check_open()
        return self._service.start(self.experiment, name=name, tags=tags, parent=self.id)

    # -- lifecycle -----------------------------------------------------------------------------------

    def end(self, status: str = "finished", error: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._service._end(self.id, status, error)

    def __enter__(self) -> Run:
        self._token = _current.set(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        token = getattr(self, "_token", None)
        if token is not None:
            self._token = None
            with contextlib.suppress(ValueError):  # ended in another context than it began (a thread)
                _current.reset(token)
        if kind is None:
            self.end("finished")
        elif issubclass(kind, KeyboardInterrupt):
            self.end("killed", "interrupted")
        else:
            self.end("failed", f"{kind.__name__}: {exc}")

    def _check_open(self) -> None:
        if self._ended:
            raise Conflict(f"run {self.id} has ended; start a new run to log more")

    def __repr__(self) -> str:
        return f"Run({self.id!r}, experiment={self.experiment!r})"


def _key(key: str) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
        raise InvalidInput(f"invalid key {key!r}: use a non-empty string of at most {MAX_KEY} characters")
    return key


def _step(step: int | None) -> int | None:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, Integral):
        raise InvalidInput(f"step must be an integer, not {step!r}")
    if not -(2**63) <= step < 2**63:  # refused here: a point the database cannot store would block its batch
        raise InvalidInput(f"step {step} does not fit in 64 bits")
    return int(step)
