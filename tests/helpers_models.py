"""Models and hostile payloads for the model-package tests (importable by pickle, which needs a real module).

pytest puts ``tests/`` on ``sys.path`` (rootdir conftest), so test modules import this as ``helpers_models``.
Every hostile payload here, if it ever ran, creates a marker file: the tests assert the file never appears.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import zipfile
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin


class ToyModel:
    """A plain object with ``predict``: what the python flavor is for (and no automatic flavor takes)."""

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = weights or {"a": 2.0, "b": -1.0}

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return sum(frame[name].to_numpy(dtype="float64") * w for name, w in self.weights.items())


class NoPredict:
    """A class with no ``predict``: no flavor, not even python, can package it."""

    def transform(self, frame: Any) -> Any:
        return frame


class _TouchOnUnpickle:
    """Unpickling this calls ``Path.touch(marker)``: code execution in its simplest, observable form."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = pathlib.Path(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


class _SystemOnUnpickle:
    """Unpickling this runs a shell command (``os.system``), the classic pickle RCE."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = pathlib.Path(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.marker}'",))


class BombModel(ToyModel):
    """A model that predicts like ToyModel but whose pickle touches ``marker`` when loaded."""

    def __init__(self, marker: pathlib.Path) -> None:
        super().__init__()
        self.marker = pathlib.Path(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


class MarkerEstimator(RegressorMixin, BaseEstimator):
    """A scikit-learn estimator (so the sklearn flavor takes it) whose ``__setstate__`` touches a marker.

    skops restores an object by calling ``__setstate__``: if keel ever let skops build this type, the
    marker would appear.
    """

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def fit(self, X: Any, y: Any) -> MarkerEstimator:
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.mean_)

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("marker"):
            pathlib.Path(state["marker"]).touch()
        self.__dict__.update(state)


def touch_pickle(marker: pathlib.Path) -> bytes:
    """A pickle that creates ``marker`` when loaded."""
    return pickle.dumps(_TouchOnUnpickle(marker), protocol=pickle.HIGHEST_PROTOCOL)


def system_pickle(marker: pathlib.Path) -> bytes:
    """A pickle that runs ``touch marker`` in a shell when loaded."""
    return pickle.dumps(_SystemOnUnpickle(marker), protocol=pickle.HIGHEST_PROTOCOL)


def crafted_skops(module: str, name: str, value: Any, *, call_with_args: bool = True) -> bytes:
    """A hand-made skops file whose root node names ``module.name``, for skops to call on load.

    ``call_with_args``: a ``ConstructorFromReduceNode`` calling ``module.name(*value)``; else the root node
    skops writes for ``value`` (a dict, a list, an estimator...) with its type renamed, so skops calls
    ``module.name`` the way it would call that type. Nothing ``skops.io.dump`` writes looks like this;
    an attacker writes it. With ``numpy.testing._private.utils.runstring`` the call is an ``exec``.
    """
    import skops.io as sio

    legit = zipfile.ZipFile(io.BytesIO(sio.dumps(value)))
    schema = json.loads(legit.read("schema.json"))
    if call_with_args:
        node_keys = ("__class__", "__module__", "__loader__", "content")
        inner = {k: v for k, v in schema.items() if k in node_keys}
        outer = {k: v for k, v in schema.items() if k not in node_keys}
        evil = {**outer, "__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
                "content": inner}
    else:
        evil = {**schema, "__class__": name, "__module__": module}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for entry in legit.namelist():
            archive.writestr(entry, json.dumps(evil) if entry == "schema.json" else legit.read(entry))
    return out.getvalue()


def exec_skops(marker: pathlib.Path) -> bytes:
    """A skops file that, if skops ever built it, would exec Python code creating ``marker``."""
    code = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    return crafted_skops("numpy.testing._private.utils", "runstring", (code, {}))


def regression_frame(rows: int = 40, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two numeric columns and a target: enough to fit any tiny regressor."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.integers(0, 10, rows), "b": rng.normal(size=rows)})
    return frame, frame["a"] * 2.0 - frame["b"] + rng.normal(scale=0.1, size=rows)


def double(frame: Any) -> Any:
    """A plain function of a test module: skops stores it by reference, keel must not trust it."""
    return frame * 2
