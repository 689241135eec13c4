"""One deployment, loaded: routes a request, predicts, falls back, shadows. The data plane's core, without HTTP.

The primary answers within ``timeout_s`` or the next model of the fallback chain does (and the next, ...); the
answer says who served and why. Shadow models run on a background pool after the primary has answered, so a
shadow that fails or hangs changes neither the response nor its latency; their outputs go to ``on_shadow``
(the prediction log) to be compared later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import KeelError, UserError
from keel.serving.model import Deployment
from keel.serving.routing import Route, route

__all__ = ["Answer", "Endpoint", "NoModelAnswered"]


class NoModelAnswered(KeelError):
    """Every model of the chain failed or timed out for this request (503: the client may retry)."""

    http_status = 503


@dataclass(frozen=True)
class Answer:
    """A prediction and the circumstances it was made in (what the prediction log records)."""

    predictions: np.ndarray
    arm: str
    model: str  # the version the route chose
    served_by: str  # the version that answered: the chosen one, or a fallback
    reason: str | None  # why a fallback answered (the chosen model's error or timeout)
    latency_ms: float
    attempts: list[dict[str, Any]] = field(default_factory=list)


class Endpoint:
    """A deployment's models, loaded once; ``predict`` answers one request."""

    def __init__(self, deployment: Deployment, models: dict[str, Any], *, timeout_s: float = 1.0,
                 on_shadow: Callable[[str, str, Any, float], None] | None = None, shadow_workers: int = 1) -> None:
        missing = [m for m in deployment.models if m not in models]
        if missing:
            raise KeelError(f"deployment {deployment.name!r} routes to {', '.join(missing)}, which are not loaded")
        self.deployment, self.models, self.timeout_s = deployment, models, timeout_s
        self.policy = deployment.routing()
        self.chain: list[str] = [m for m in deployment.current.policy.get("fallbacks", []) if m in models]
        self._on_shadow = on_shadow
        self._calls = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"keel-{deployment.name}")
        self._shadows = ThreadPoolExecutor(max_workers=shadow_workers, thread_name_prefix="keel-shadow")

    def predict(self, frame: pd.DataFrame, key: str) -> Answer:
        """Route by ``key``; try the chosen model, then the fallbacks; shadows run after the answer."""
        started = time.perf_counter()
        chosen = route(self.policy, key)
        attempts: list[dict[str, Any]] = []
        for model in [chosen.model, *[m for m in self.chain if m != chosen.model]]:
            outcome = self._attempt(model, frame)
            attempts.append(outcome)
            if outcome["ok"]:
                answer = Answer(outcome["predictions"], chosen.arm, chosen.model, model,
                                None if model == chosen.model else attempts[0]["error"],
                                (time.perf_counter() - started) * 1e3,
                                [{k: v for k, v in a.items() if k != "predictions"} for a in attempts])
                self._shadow(chosen, frame, key)
                return answer
        raise NoModelAnswered(f"no model of deployment {self.deployment.name!r} answered: "
                              + "; ".join(f"{a['model']}: {a['error']}" for a in attempts),
                              details={"attempts": [{k: v for k, v in a.items() if k != "predictions"}
                                                    for a in attempts]})

    def close(self) -> None:
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._shadows.shutdown(wait=False, cancel_futures=True)

    def _attempt(self, model: str, frame: pd.DataFrame) -> dict[str, Any]:
        started = time.perf_counter()
        call: Future[Any] = self._calls.submit(self.models[model].predict, frame)
        try:
            predictions = np.asarray(call.result(timeout=self.timeout_s))
            return {"model": model, "ok": True, "error": None, "predictions": predictions,
                    "ms": (time.perf_counter() - started) * 1e3}
        except FutureTimeout:
            error = f"timed out after {self.timeout_s * 1e3:.0f} ms"
        except UserError:
            raise  # the request is wrong (its columns do not fit the signature): a 4xx, not a reason to fall back
        except Exception as exc:  # the model failed: the next in the chain answers, and the log says why
            error = f"{type(exc).__name__}: {exc}"[:500]
        return {"model": model, "ok": False, "error": error, "ms": (time.perf_counter() - started) * 1e3}

    def _shadow(self, chosen: Route, frame: pd.DataFrame, key: str) -> None:
        for model in chosen.shadows:
            self._shadows.submit(self._run_shadow, model, frame, key)

    def _run_shadow(self, model: str, frame: pd.DataFrame, key: str) -> None:
        started = time.perf_counter()
        try:
            output: Any = np.asarray(self.models[model].predict(frame))
        except Exception as exc:  # a shadow's failure is recorded, never raised to anyone
            output = exc
        if self._on_shadow is not None:
            self._on_shadow(model, key, output, (time.perf_counter() - started) * 1e3)
