"""The deployments one server process serves, kept in step with the metadata store without a restart.

``refresh`` compares every served deployment's current policy version with the store's; a changed one gets a new
``Endpoint`` (new model versions loaded, verified and warmed first; versions already loaded are reused) that
replaces the old one in a single assignment, so a request is answered wholly by the old policy or wholly by the
new one and none is dropped. The old endpoint is closed once requests still inside it have had time to finish.
A deployment that cannot be loaded keeps serving its previous policy (if any) and is reported, never half-served.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pandas as pd

from keel.errors import KeelError, NotFound
from keel.serving.endpoint import Endpoint, ShadowSink
from keel.serving.entities import EntityFeatures
from keel.serving.service import BASELINE

__all__ = ["EndpointSet", "RequirementDrift", "requirement_drift"]

_LIBRARIES = {"sklearn": "scikit-learn", "lightgbm": "lightgbm", "xgboost": "xgboost"}  # flavor -> distribution


@dataclass(frozen=True)
class RequirementDrift:
    """The serving environment has another version of the library a model's package was written with."""

    model: str
    package: str
    recorded: str
    installed: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "package": self.package, "recorded": self.recorded, "installed": self.installed}


def requirement_drift(loaded: Any) -> RequirementDrift | None:
    """Compare the flavor library recorded in ``loaded``'s package with the one installed here."""
    manifest = getattr(loaded, "manifest", None)
    package = _LIBRARIES.get(getattr(manifest, "flavor", ""))
    if manifest is None or package is None:
        return None
    try:
        installed: str | None = metadata.version(package)
    except metadata.PackageNotFoundError:
        installed = None
    if installed == manifest.flavor_version:
        return None
    return RequirementDrift(loaded.ref, package, manifest.flavor_version, installed)


class BaselineModel:
    """The talk's "dumb model" as a fallback: the constant a deployment's policy recorded for it (the train part's
    mean, or its most frequent class)."""

    ref = BASELINE
    inline = True  # answered on the request's own thread: a constant needs no timeout

    def __init__(self, value: Any) -> None:
        self.value = value

    def predict(self, frame: pd.DataFrame) -> Any:
        return [self.value] * len(frame)


@dataclass
class EndpointSet:
    """Loaded endpoints by deployment name; ``endpoints`` is replaced whole on every change (readers never lock)."""

    ws: Any
    names: list[str] | None  # None: every deployment that is not deleted, including ones created later
    timeout_s: float
    on_shadow: Callable[[str], ShadowSink]  # deployment name -> where in-process shadow outputs go
    shadows_elsewhere: bool = False  # answers name their shadows; the app runs them (its sidecar)
    trusted: bool = False
    strict_requirements: bool = False
    grace_s: float = 30.0
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    drift: list[RequirementDrift] = field(default_factory=list)
    _models: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self) -> list[str]:
        """Bring every served deployment to its current policy; returns the names that changed. One small query
        when nothing changed (it runs every second inside the serving process)."""
        with self._lock:  # one refresh at a time (the watcher and a startup load never interleave)
            current = self.ws.deployments.versions()
            held = {n: e.deployment.current.version for n, e in self.endpoints.items()}
            if self.endpoints and not self.problems and \
                    held == {n: v for n, v in current.items() if self.names is None or n in self.names}:
                return []
            wanted = self._wanted()
            endpoints = dict(self.endpoints)
            changed = []
            for name, deployment in wanted.items():
                held = endpoints.get(name)
                if held is not None and held.deployment.current.version == deployment.current.version:
                    continue
                try:
                    endpoints[name] = self._endpoint(deployment)
                except (KeelError, OSError, ValueError, TypeError, ImportError) as exc:
                    self.problems[name] = f"{type(exc).__name__}: {exc}"
                    continue
                self.problems.pop(name, None)
                changed.append(name)
                if held is not None:
                    self._retire(held)
            for name in [n for n in endpoints if n not in wanted]:  # deleted: no longer served
                self._retire(endpoints.pop(name))
                changed.append(name)
            self.endpoints = endpoints  # one assignment: a request sees the old set or the new one
            used = {m for e in endpoints.values() for m in e.models}
            self._models = {ref: m for ref, m in self._models.items() if ref in used}
            self.drift = [d for d in (requirement_drift(m) for m in self._models.values()) if d is not None]
            return changed

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.close()

    # -- internals -------------------------------------------------------------------------------------------

    def _wanted(self) -> dict[str, Any]:
        if self.names is None:
            return {d.name: d for d in self.ws.deployments.list()}
        wanted = {}
        for name in self.names:
            try:
                wanted[name] = self.ws.deployments.get(name)
            except NotFound as exc:
                self.problems[name] = str(exc)
        return wanted

    def _endpoint(self, deployment: Any) -> Endpoint:
        models = {ref: self._load(ref) for ref in deployment.models}
        for ref, model in models.items():
            drift = requirement_drift(model)
            if drift is not None and (self.strict_requirements or deployment.current.policy.get("strict_requirements")):
                raise KeelError(f"{ref} was packaged with {drift.package} {drift.recorded} but {drift.installed} is "
                                "installed here, and this deployment refuses a different version")
        if BASELINE in deployment.current.policy.get("fallbacks", []):
            value = deployment.current.policy.get("baseline", {}).get("value")
            if value is not None:
                models[BASELINE] = BaselineModel(value)
        warm_ms = {ref: _warm(model) for ref, model in models.items()}
        endpoint = Endpoint(deployment, models, timeout_s=self.timeout_s, on_shadow=self.on_shadow(deployment.name),
                            shadows_elsewhere=self.shadows_elsewhere,
                            warm_ms={ref: ms for ref, ms in warm_ms.items() if ms is not None})
        endpoint.entity_features = EntityFeatures.for_models(self.ws, deployment.models)  # resolved once, here
        return endpoint

    def _load(self, ref: str) -> Any:
        if ref not in self._models:
            self._models[ref] = self.ws.models.load(ref, trusted=self.trusted)
        return self._models[ref]

    def _retire(self, endpoint: Endpoint) -> None:
        timer = threading.Timer(self.grace_s, endpoint.close)  # requests inside it finish first
        timer.daemon = True
        timer.start()


_TYPICAL = {"string": "", "boolean": False, "datetime": pd.Timestamp(0, tz="UTC"), "float": 0.0}


def _warm(model: Any, calls: int = 3) -> float | None:
    """Calls on a row fitting the signature (zeros, empty strings): first calls are slow (lazy imports, caches),
    so the first client does not pay for them. Returns the fastest warm call in ms (what decides whether the model
    may answer on the request's thread), None when it could not be measured: a model may refuse a synthetic row,
    and warming never stops a deployment from loading."""
    signature = getattr(model, "signature", None)
    if signature is None or not signature.inputs:
        return None
    row = pd.DataFrame([{c.name: _TYPICAL.get(c.type, 0) for c in signature.inputs}])
    try:
        model.predict(row)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            model.predict(row)
            times.append((time.perf_counter() - started) * 1e3)
    except Exception:  # see above
        return None
    return min(times)
