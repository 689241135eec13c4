"""What every acting-as view of one workspace shares in the feature store: prepared view rows, the functions
applied in this process, and the latest definitions (with the feature plans resolved from them).

Serving reads the latest definitions on every lookup; reading them from the metadata store would cost ten
times the lookup itself. They are re-read at most every ``ttl`` seconds, and at once after an apply made in
this process; an apply made elsewhere is seen within ``ttl``. A model reading the view versions it was trained on
(``pinned``) gets the latest with those versions laid over, built once per ``ttl`` as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from keel.features.frames import FrameCache
from keel.features.model import FeatureViewInfo
from keel.features.online import Serving
from keel.features.requests import Requested, resolve_features

__all__ = ["SharedState"]

Views = dict[str, FeatureViewInfo]


class SharedState:
    def __init__(self, frames: FrameCache, registry: str, ttl: float = 1.0) -> None:
        self.frames, self.registry, self.ttl = frames, registry, ttl
        self.functions: dict[str, Callable[..., Any]] = {}
        self._latest: dict[str, FeatureViewInfo] | None = None
        self._loaded_at = 0.0
        self._plans: dict[tuple[Any, ...], Requested] = {}
        self._serving: dict[tuple[str, int], Serving] = {}
        self._versions: dict[tuple[str, int], FeatureViewInfo] = {}  # stored versions never change: kept
        # pins -> (the latest views they were laid over, the views with the pinned versions in place)
        self._pinned: dict[tuple[tuple[str, int], ...], tuple[Views, Views]] = {}
        self._lock = threading.Lock()

    def latest(self, load: Callable[[], dict[str, FeatureViewInfo]]) -> dict[str, FeatureViewInfo]:
        latest = self._latest
        if latest is None or time.monotonic() - self._loaded_at >= self.ttl:
            latest = load()
            with self._lock:
                self._latest, self._loaded_at, self._plans, self._pinned = latest, time.monotonic(), {}, {}
        return latest

    def pinned(self, views: Views, versions: Mapping[str, int], load: Callable[[str, int], FeatureViewInfo]) -> Views:
        """``views`` (the latest) with the given versions in place of the latest ones: what a model trained on
        those versions reads. ``views`` itself when they are the latest (the common case, nothing to build)."""
        if all(views.get(n) is not None and views[n].version == v for n, v in versions.items()):
            return views
        key = tuple(sorted(versions.items()))
        found = self._pinned.get(key)
        if found is not None and found[0] is views:
            return found[1]
        out = dict(views)
        for name, version in key:
            if name not in views or views[name].version != version:
                info = self._versions.get((name, version))
                if info is None:
                    info = self._versions[(name, version)] = load(name, version)
                out[name] = info
        if views is self._latest:
            with self._lock:
                if len(self._pinned) < 256:
                    self._pinned[key] = (views, out)
        return out

    def plan(self, features: tuple[str, ...], full_names: bool, views: dict[str, FeatureViewInfo]) -> Requested:
        """The resolved plan for ``features`` against ``views`` (kept while ``views`` stays the latest, or pinned
        versions laid over the latest)."""
        key = (features, full_names, id(views))
        found = self._plans.get(key)
        if found is None:
            found = resolve_features(list(features), views, full_names=full_names)
            cacheable = views is self._latest or any(out is views for _, out in self._pinned.values())
            if cacheable and len(self._plans) < 1024:
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
            self._latest, self._plans, self._pinned = None, {}, {}
