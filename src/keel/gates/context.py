"""What every gate test reads: the candidate, the champion, the dumb baseline and the data, loaded once.

A custom test gets the same object: ``ctx.frame`` (the evaluation part, every column), ``ctx.predict(frame)``
(vectorised, through the model's signature), ``ctx.evaluation("candidate" | "champion" | "baseline")``
(metrics per part and slice, computed once and shared by the metric and slice tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keel.data.model import SplitInfo
from keel.errors import InvalidInput
from keel.models.loaded import LoadedModel
from keel.models.model import ModelVersion
from keel.tracking.evaluation import evaluate
from keel.tracking.reports import EvaluationReport

__all__ = ["GateContext"]

WHICH = ("candidate", "champion", "baseline")


@dataclass
class GateContext:
    """The candidate model version and everything its tests are run against."""

    version: ModelVersion
    model: LoadedModel
    task: str
    label: str
    part: str
    frames: dict[str, pd.DataFrame]  # the evaluation part and, when known, "train" (all columns)
    data: str | None  # the split or table ref the frames came from
    champion: LoadedModel | None = None
    champion_version: ModelVersion | None = None
    split: SplitInfo | None = None
    package_size: int = 0
    services: Any = None  # the workspace's data service (a custom test may read more)
    measure_load: Any = None  # () -> MiB a fresh process needs to load the package (the budget test)
    notes: list[str] = field(default_factory=list)
    _evaluations: dict[tuple[str, tuple[str, ...]], EvaluationReport | None] = field(default_factory=dict)
    _baseline: Any = None

    @property
    def frame(self) -> pd.DataFrame:
        """The evaluation part: the rows the tests judge."""
        return self.frames[self.part]

    @property
    def train(self) -> pd.DataFrame | None:
        return self.frames.get("train")

    @property
    def features(self) -> list[str]:
        """The model's input columns, in its signature's order."""
        return list(self.model.signature.columns)

    def predict(self, frame: pd.DataFrame, which: str = "candidate") -> np.ndarray:
        """Predictions for every row at once (the signature drops columns the model does not take)."""
        return self._model(which).predict(frame)

    def predict_proba(self, frame: pd.DataFrame, which: str = "candidate") -> np.ndarray:
        return self._model(which).predict_proba(frame)

    def has_proba(self, which: str = "candidate") -> bool:
        model = self._model(which)
        return hasattr(getattr(model, "model", model), "predict_proba")

    def evaluation(self, which: str = "candidate", slices: tuple[str, ...] = ()) -> EvaluationReport | None:
        """Metrics of the candidate, the champion or the baseline on the evaluation part (and per slice of
        ``slices``); None for a champion or baseline that does not exist here."""
        key = (which, tuple(slices))
        if key not in self._evaluations:
            model = self._scorer(which)
            features = list(self.champion.signature.columns) if which == "champion" and self.champion \
                else self.features  # each model is given its own inputs
            self._evaluations[key] = None if model is None else evaluate(
                None, model, {self.part: self.frame}, task=self.task, label=self.label, features=features,
                slices=list(slices), baseline=False, plots=False, min_slice_rows=1)
        return self._evaluations[key]

    def typical_row(self) -> dict[str, Any]:
        """The data's typical input: the median of each numeric column, the most frequent value of the rest."""
        source = self.train if self.train is not None else self.frame
        row: dict[str, Any] = {}
        for column in self.features:
            values = source[column].dropna()
            if values.empty:
                row[column] = None
            elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
                median = values.median()
                row[column] = values.dtype.type(median) if pd.api.types.is_integer_dtype(values.dtype) \
                    else float(median)
            else:
                row[column] = values.mode().iloc[0]
        return row

    # -- internals -----------------------------------------------------------------------------------------

    def _model(self, which: str) -> Any:
        if which == "candidate":
            return self.model
        if which == "champion":
            if self.champion is None:
                raise InvalidInput("there is no champion to predict with")
            return self.champion
        if which == "baseline":
            baseline = self._scorer("baseline")
            if baseline is None:
                raise InvalidInput("there is no baseline: the data has no train part to fit it on")
            return baseline
        raise InvalidInput(f"unknown model {which!r}; use one of {', '.join(WHICH)}")

    def _scorer(self, which: str) -> Any:
        if which == "candidate":
            return _Scored(self.model)
        if which == "champion":
            return None if self.champion is None else _Scored(self.champion)
        if which == "baseline":
            if self._baseline is None and self.train is not None:
                self._baseline = _fit_baseline(self.task, self.train, self.label, self.features)
            return self._baseline
        raise InvalidInput(f"unknown model {which!r}; use one of {', '.join(WHICH)}")


class _Scored:
    """A LoadedModel as the evaluation sees a model: frames in, predictions out, through the signature."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.model = loaded
        native = loaded.model
        if getattr(native, "classes_", None) is not None:
            self.classes_ = native.classes_
        if hasattr(native, "predict_proba"):
            self.predict_proba = loaded.predict_proba

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict(X)


def _fit_baseline(task: str, train: pd.DataFrame, label: str, features: list[str]) -> Any:
    """The dumb baseline of the talk: the train part's mean (regression) or class prior (classification)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    model = DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor(strategy="mean")
    return model.fit(train[features], train[label])
