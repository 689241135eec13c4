"""One deployment, loaded: routes a request, predicts, falls back, shadows, interleaves. The data plane's core,
without HTTP.

Each model runs on a thread of its own (one at a time: a model is never called concurrently, and a worker uses
one core for models however many requests wait). The primary answers within ``timeout_s`` or the next model of
the fallback chain does (and the next, ...); the answer says who served and why. A deployment without a fallback
has nobody to hand a slow request to, so a fast model of it (its warm call under ``INLINE_BELOW_MS``) answers on
the request's own thread: the hand-over to the model's thread would cost more than it buys, and blocking the
event loop for that long delays no one noticeably. Shadow models run on a
background pool after the primary has answered, so a shadow that fails or hangs changes neither the response nor
its latency; their outputs go to ``on_shadow`` (the prediction log) to be compared later. An interleave
deployment ranks the request's rows with both models and merges the rankings team-draft.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import KeelError, UserError
from keel.models.signature import check_values
from keel.serving.interleaving import team_draft
from keel.serving.model import Deployment
from keel.serving.routing import Route, route

__all__ = ["INLINE_BELOW_MS", "Answer", "Endpoint", "NoModelAnswered"]

INLINE_BELOW_MS = 5.0  # a model of a deployment without fallbacks answering faster than this runs inline

ShadowSink = Callable[[str, str, Any, float], None]  # (model, request id, output or exception, ms)


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
    ranking: dict[str, list[Any]] | None = None  # interleave: {"items": [...], "teams": [arm, ...]}
    shadows: tuple[str, ...] = ()  # the shadow models this request was routed to (run elsewhere: see Endpoint)


class Endpoint:
    """A deployment's models, loaded once; ``answer`` (async) or ``predict`` (blocking) answers one request."""

    def __init__(self, deployment: Deployment, models: dict[str, Any], *, timeout_s: float = 1.0,
                 on_shadow: ShadowSink | None = None, shadows_elsewhere: bool = False,
                 shadow_workers: int = 1, warm_ms: dict[str, float] | None = None) -> None:
        """``shadows_elsewhere``: the answer only names its shadow models (``Answer.shadows``) and the caller runs
        them (keel serve hands them to its sidecar); otherwise they run here, on a background thread, and
        ``on_shadow`` gets their outputs. ``warm_ms``: each model's time for a warm call (the loader measures it),
        which decides the models that answer inline (see the module docstring)."""
        missing = [m for m in deployment.models if m not in models]
        if missing:
            raise KeelError(f"deployment {deployment.name!r} routes to {', '.join(missing)}, which are not loaded")
        self.deployment, self.models, self.timeout_s = deployment, models, timeout_s
        self.policy = deployment.routing()
        self.chain: list[str] = [m for m in deployment.current.policy.get("fallbacks", []) if m in models]
        self.item_key: str | None = deployment.current.policy.get("item_key")
        fast = {m for m, ms in (warm_ms or {}).items() if ms < INLINE_BELOW_MS} if not self.chain else set()
        self.inline: frozenset[str] = frozenset(m for m in models if not timeout_s or m in fast
                                                or getattr(models[m], "inline", False))
        self._on_shadow, self.shadows_elsewhere = on_shadow, shadows_elsewhere
        self.entity_features: Any = None  # serving.entities.EntityFeatures: set by the loader for entity requests
        self._threads = {m: ThreadPoolExecutor(1, thread_name_prefix=f"keel-model-{i}") for i, m in enumerate(models)}
        self._shadows = ThreadPoolExecutor(max_workers=shadow_workers, thread_name_prefix="keel-shadow")

    async def answer(self, frame: pd.DataFrame, key: str, request_id: str | None = None) -> Answer:
        """Route by ``key``; try the chosen model, then the fallbacks; shadows run after the answer."""
        started = time.perf_counter()
        chosen = route(self.policy, key)
        if chosen.both:
            answer = await self._interleave(chosen, frame, key, started)
        else:
            answer = await self._chain(chosen, frame, started)
        if self.shadows_elsewhere:
            return replace(answer, shadows=chosen.shadows)
        for model in chosen.shadows:
            self._shadows.submit(self._run_shadow, model, frame, request_id or key)
        return answer

    def predict(self, frame: pd.DataFrame, key: str, request_id: str | None = None) -> Answer:
        """``answer`` for callers without an event loop (tests, scripts)."""
        return asyncio.run(self.answer(frame, key, request_id))

    def close(self) -> None:
        for pool in self._threads.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._shadows.shutdown(wait=False, cancel_futures=True)

    # -- internals -------------------------------------------------------------------------------------------

    async def _chain(self, chosen: Route, frame: pd.DataFrame, started: float) -> Answer:
        attempts: list[dict[str, Any]] = []
        for model in [chosen.model, *[m for m in self.chain if m != chosen.model]]:
            outcome = await self._attempt(model, frame)
            attempts.append(outcome)
            if outcome["ok"]:
                return Answer(outcome["predictions"], chosen.arm, chosen.model, model,
                              None if model == chosen.model else attempts[0]["error"],
                              (time.perf_counter() - started) * 1e3, _public(attempts))
        raise NoModelAnswered(f"no model of deployment {self.deployment.name!r} answered: "
                              + "; ".join(f"{a['model']}: {a['error']}" for a in attempts),
                              details={"attempts": _public(attempts)})

    async def _interleave(self, chosen: Route, frame: pd.DataFrame, key: str, started: float) -> Answer:
        """Both rankers score the request's rows; their rankings merged team-draft, each item credited to the arm
        that drafted it. A ranker that fails leaves the other's ranking alone; both failing, the chain answers."""
        arms = {a.model: a.name for a in self.policy.arms}
        first, second = chosen.both
        outcomes = await asyncio.gather(self._attempt(first, frame), self._attempt(second, frame))
        ok = [o for o in outcomes if o["ok"]]
        items = frame[self.item_key].tolist() if self.item_key and self.item_key in frame else list(range(len(frame)))
        rankings = {o["model"]: [items[i] for i in np.argsort(-np.asarray(o["predictions"], float), kind="stable")]
                    for o in ok}
        if len(ok) == 2:
            merged = team_draft(rankings[first], rankings[second], seed=self.policy.seed, key=key)
            teams = [arms[first] if t == "a" else arms[second] for t in merged.teams]
            ranking, served_by, reason = {"items": list(merged.items), "teams": teams}, chosen.model, None
        elif ok:
            alone = ok[0]["model"]
            failed = next(o for o in outcomes if not o["ok"])
            ranking = {"items": rankings[alone], "teams": [arms[alone]] * len(items)}
            served_by, reason = alone, f"{failed['model']}: {failed['error']}"
        else:
            fallback = await self._chain(Route(chosen.arm, first), frame, started)
            order = np.argsort(-np.asarray(fallback.predictions, float), kind="stable")
            ranking = {"items": [items[i] for i in order], "teams": [fallback.served_by] * len(items)}
            served_by, reason = fallback.served_by, fallback.reason
        return Answer(np.asarray(ranking["items"]), chosen.arm, chosen.model, served_by, reason,
                      (time.perf_counter() - started) * 1e3, _public(list(outcomes)), ranking)

    async def _attempt(self, model: str, frame: pd.DataFrame) -> dict[str, Any]:
        started = time.perf_counter()
        signature = getattr(self.models[model], "signature", None)
        if signature is not None:
            check_values(frame, signature)  # a value the model cannot take is the client's error (422), no fallback
        if model in self.inline:  # no timeout asked, a constant (the baseline), or fast with no fallback to wait
            # for: called on the request's own thread, sparing the hand-over to the model's thread
            try:
                predictions = np.asarray(self.models[model].predict(frame))
            except UserError:
                raise
            except Exception as exc:  # the model failed: the next in the chain answers
                return {"model": model, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500],
                        "ms": (time.perf_counter() - started) * 1e3}
            return {"model": model, "ok": True, "error": None, "predictions": predictions,
                    "ms": (time.perf_counter() - started) * 1e3}
        call = asyncio.get_running_loop().run_in_executor(self._threads[model], self.models[model].predict, frame)
        try:
            predictions = np.asarray(await asyncio.wait_for(call, self.timeout_s))
            return {"model": model, "ok": True, "error": None, "predictions": predictions,
                    "ms": (time.perf_counter() - started) * 1e3}
        except TimeoutError:
            error = f"timed out after {self.timeout_s * 1e3:.0f} ms"
        except UserError:
            raise  # the request is wrong (its columns do not fit the signature): a 4xx, not a reason to fall back
        except Exception as exc:  # the model failed: the next in the chain answers, and the log says why
            error = f"{type(exc).__name__}: {exc}"[:500]
        return {"model": model, "ok": False, "error": error, "ms": (time.perf_counter() - started) * 1e3}

    def _run_shadow(self, model: str, frame: pd.DataFrame, request_id: str) -> None:
        started = time.perf_counter()
        try:
            output: Any = self._threads[model].submit(self.models[model].predict, frame).result(timeout=30)
            output = np.asarray(output)
        except Exception as exc:  # a shadow's failure is recorded, never raised to anyone
            output = exc
        if self._on_shadow is not None:
            self._on_shadow(model, request_id, output, (time.perf_counter() - started) * 1e3)


def _public(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k != "predictions"} for a in attempts]
