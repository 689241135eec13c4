"""What every acting-as view of one workspace shares in the feature store: prepared view rows, the functions
applied in this process, and the latest definitions (with the feature plans resolved from them).

Serving reads the latest definitions on every lookup; reading them from the metadata store would cost ten
times the lookup itself. They are re-read at most every ``ttl`` seconds, and at once after an apply made in
this process; an apply made elsewhere is seen within ``ttl``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from keel.features.frames import FrameCache
from keel.features.model import FeatureViewInfo
from keel.features.online import Serving
from keel.features.requests import Requested, resolve_features

__all__ = ["SharedState"]


class SharedState:
    def __init__(self, frames: FrameCache, registry: str, ttl: float = 1.0) -> None:
        self.frames, self.registry, self.ttl = frames, registry, ttl
        self.functions: dict[str, Callable[..., Any]] = {}
        self._latest: dict[str, FeatureViewInfo] | None = None
        self._loaded_at = 0.0
        self._plans: dict[tuple[Any, ...], Requested] = {}
        self._serving: dict[tuple[str, int], Serving] = {}
        self._lock = threading.Lock()

    def latest(self, load: Callable[[], dict[str, FeatureViewInfo]]) -> dict[str, FeatureViewInfo]:
        latest = self._latest
        if latest is None or time.monotonic() - self._loaded_at >= self.ttl:
            latest = load()
            with self._lock:
                self._latest, self._loaded_at, self._plans = latest, time.monotonic(), {}
        return latest

    def plan(self, features: tuple[str, ...], full_names: bool, views: dict[str, FeatureViewInfo]) -> Requested:
        """The resolved plan for ``features`` against ``views`` (kept while ``views`` stays the latest)."""
        key = (features, full_names, id(views))
        found = self._plans.get(key)
        if found is None:
            found = resolve_features(list(features), views, full_names=full_names)
            if views is self._latest and len(self._plans) < 1024:
                self._plans[key] = found
        return found

    def serving(self, info: FeatureViewInfo) -> Serving:
        found = self._serving.get((info.name, info.version))
        if found is None:
            found = self._serving[(info.name, info.version)] = Serving(info, self.registry)
        return found

    def changed(self) -> None:
        """An apply happened here: the next read loads the definitions again."""
        with self._lock:
            self._latest, self._plans = None, {}
