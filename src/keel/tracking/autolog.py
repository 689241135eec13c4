"""``keel.autolog(ws)``: every scikit-learn ``fit`` becomes a logged run with no extra code.

For each top-level fit (not the steps a Pipeline or an ensemble fits inside it) keel logs the
estimator's params, its metrics on the data it was fitted on, and the fitted model as a package and a
registered version; when a split is given, the evaluation per part beside the dummy baseline and the
feature importance too. The fit goes into the run opened with ``with ws.runs.start(...)`` around it
(a nested run for each further fit), else into a run of its own.

Patching ``fit`` is global by nature; it is confined to this module, undone by ``disable()`` (or
leaving the ``with`` block), and a failure to log never breaks the user's training: it is reported
as a warning naming what was not logged.
"""

from __future__ import annotations

import contextvars
import functools
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.errors import InvalidInput
from keel.tracking.run import Run, current_run

if TYPE_CHECKING:
    from keel.tracking.service import RunService

__all__ = ["Autolog", "autolog"]

_depth: contextvars.ContextVar[int] = contextvars.ContextVar("keel_autolog_depth", default=0)
_active: Autolog | None = None


class Autolog:
    """The switched-on autologger; ``disable()`` restores every patched ``fit``."""

    def __init__(self, runs: RunService, *, experiment: str, model_name: str | None, split: str | None,
                 log_models: bool, evaluate: bool, importance: bool) -> None:
        self.runs, self.experiment, self.model_name, self.split = runs, experiment, model_name, split
        self.log_models, self.evaluate, self.importance = log_models, evaluate, importance
        self.logged: list[str] = []  # run ids, in order
        self._patched: dict[type, Callable[..., Any]] = {}
        self._used_runs: set[str] = set()

    # -- patching ------------------------------------------------------------------------------------

    def _patch(self) -> None:
        for cls in _estimator_classes():
            original = cls.__dict__["fit"]
            self._patched[cls] = original
            cls.fit = _patched_fit(original)

    def disable(self) -> None:
        """Put every original ``fit`` back; later fits are not logged."""
        global _active
        for cls, original in self._patched.items():
            cls.fit = original
        self._patched.clear()
        if _active is self:
            _active = None

    def __enter__(self) -> Autolog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disable()

    # -- logging -------------------------------------------------------------------------------------

    def record(self, estimator: Any, X: Any, y: Any) -> None:
        """Log one finished top-level fit."""
        outer = current_run()
        if outer is not None and outer.id not in self._used_runs:
            self._log(outer, estimator, X, y)
            return
        with (outer.start(name=type(estimator).__name__) if outer is not None
              else self.runs.start(self.experiment, name=type(estimator).__name__)) as run:
            self._log(run, estimator, X, y)

    def _log(self, run: Run, estimator: Any, X: Any, y: Any) -> None:
        from keel.tracking.evaluation import flat_params

        self._used_runs.add(run.id)
        self.logged.append(run.id)
        run.log_params(flat_params(estimator))
        run.set_tags({"autolog": "sklearn", "model.class": f"{type(estimator).__module__}.{type(estimator).__name__}"})
        frame = _frame(X)
        supervised = y is not None and hasattr(estimator, "predict")
        if supervised:
            self._try("training metrics", lambda: self.runs.evaluate(
                estimator, {"train": (frame, pd.Series(np.asarray(y)))}, baseline=False, plots=False, run=run))
        if self.log_models and hasattr(estimator, "predict"):
            name = self.model_name or run.experiment
            self._try("the model", lambda: run.log_model(estimator, name, input_example=frame.head(5)))
        if self.split and supervised:
            features = [str(c) for c in frame.columns]
            if self.evaluate:
                self._try("the evaluation", lambda: self.runs.evaluate(estimator, self.split, features=features,
                                                                       run=run))
            if self.importance:
                self._try("the importance", lambda: self.runs.importance(estimator, self.split, features=features,
                                                                         run=run))

    @staticmethod
    def _try(what: str, work: Callable[[], Any]) -> None:
        try:
            work()
        except Exception as exc:  # logging must never break the user's training
            warnings.warn(f"keel autolog: {what} was not logged: {type(exc).__name__}: {exc}", stacklevel=4)


def autolog(runs: RunService, *, experiment: str = "autolog", model_name: str | None = None,
            split: str | None = None, log_models: bool = True, evaluate: bool = True,
            importance: bool = True) -> Autolog:
    """Switch autologging on for scikit-learn (one autologger at a time; a new call replaces the old)."""
    global _active
    if split is not None and not isinstance(split, str):
        raise InvalidInput("autolog(split=...) takes a split ref such as 'listings-split'")
    if split is not None:
        runs._data.split_info(split)  # an unknown split is refused now, not at the first fit
    if _active is not None:
        _active.disable()
    _active = Autolog(runs, experiment=experiment, model_name=model_name, split=split, log_models=log_models,
                      evaluate=evaluate, importance=importance)
    _active._patch()
    return _active


def _patched_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, X: Any, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        if _active is None or _depth.get() > 0:  # inner fits (pipeline steps, ensemble members) are not runs
            return original(self, X, y, *args, **kwargs)
        token = _depth.set(1)
        try:
            result = original(self, X, y, *args, **kwargs)
        finally:
            _depth.reset(token)
        logger = _active
        if logger is not None:
            token = _depth.set(1)  # fits done while logging (the dummy baseline) are not runs either
            try:
                logger.record(self, X, y)
            finally:
                _depth.reset(token)
        return result

    fit.__keel_autolog__ = True  # type: ignore[attr-defined]
    return fit


def _estimator_classes() -> list[type]:
    """The classes defining the ``fit`` of every scikit-learn estimator (often a private base class)."""
    from sklearn.pipeline import Pipeline
    from sklearn.utils import all_estimators

    owners = {_fit_owner(cls) for cls in {cls for _, cls in all_estimators()} | {Pipeline}}
    return sorted((c for c in owners if c is not None), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _fit_owner(cls: type) -> type | None:
    return next((base for base in cls.__mro__ if "fit" in base.__dict__), None)


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    values = np.asarray(X)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    return pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])
