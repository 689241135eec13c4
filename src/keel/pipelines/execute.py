"""Running one step: find its function again (by module and source hash), call it with its inputs and a
StepContext, capture what it prints and logs, and check what it returned against what it declared.

The same function runs in the caller's process (``executor="inline"``) or in a worker of a process pool
(``executor="process"``, the default), where it opens the workspace itself through the opener it is given.
"""

from __future__ import annotations

import contextlib
import io
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keel.code import resolve_function
from keel.errors import KeelError
from keel.pipelines.types import check_output

__all__ = ["MAX_LOG", "StepContext", "StepOutcome", "run_step"]

MAX_LOG = 100_000  # characters of a step's log that are kept (the end, where the error is)
_KNOWN: dict[str, Callable[..., Any]] = {}


@dataclass
class StepContext:
    """What a step gets besides its inputs: the workspace (acting as the run's user), where it is, and a log."""

    ws: Any
    pipeline: str
    run: int
    step: str
    engine: str = "local"
    params: dict[str, Any] = field(default_factory=dict)

    def log(self, message: str) -> None:
        """A line in the step's log (``keel pipelines show RUN``), with the time: printed, and the step's output is
        captured into its log."""
        print(f"{datetime.now(UTC):%H:%M:%S} {message}")


@dataclass(frozen=True)
class StepOutcome:
    ok: bool
    value: Any = None
    logs: str = ""
    error: str | None = None
    seconds: float = 0.0


def run_step(ws: Any, spec: dict[str, Any], pipeline: str, run: int, kwargs: dict[str, Any]) -> StepOutcome:
    """Call the step ``spec`` describes with ``kwargs``; never raises: a failure is an outcome with its error."""
    buffer = io.StringIO()
    started = time.perf_counter()
    try:
        function = resolve_function(spec["function"], f"step {spec['name']!r}", _KNOWN,
                                    changed="apply the pipeline again (keel pipelines apply)")
        ctx = StepContext(ws, pipeline, run, spec["name"], spec.get("engine", "local"), dict(kwargs))
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            value = function(ctx, **kwargs) if spec.get("context") else function(**kwargs)
        stored = check_output(spec["name"], spec["output"], value)
    except KeelError as exc:
        return StepOutcome(False, None, _tail(buffer.getvalue()), f"{type(exc).__name__}: {exc.message}",
                           time.perf_counter() - started)
    except Exception as exc:  # a step is user code: any error is the step's failure, with its traceback
        trace = traceback.format_exc(limit=20)
        return StepOutcome(False, None, _tail(buffer.getvalue() + trace), f"{type(exc).__name__}: {exc}",
                           time.perf_counter() - started)
    return StepOutcome(True, stored, _tail(buffer.getvalue()), None, time.perf_counter() - started)


def run_step_in_worker(opener: Callable[..., Any], settings: dict[str, Any], spec: dict[str, Any], pipeline: str,
                       run: int, kwargs: dict[str, Any]) -> StepOutcome:
    """``run_step`` in a pool worker: the workspace is opened here, from the caller's settings, and closed after."""
    try:
        ws = opener(**settings)
    except Exception as exc:
        return StepOutcome(False, None, "", f"cannot open the workspace in the worker: {type(exc).__name__}: {exc}")
    try:
        return run_step(ws, spec, pipeline, run, kwargs)
    finally:
        ws.close()


def _tail(text: str) -> str:
    return text if len(text) <= MAX_LOG else "[...]\n" + text[-MAX_LOG:]
