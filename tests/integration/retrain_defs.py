"""The toy model's retraining pipeline (tests/integration/test_retraining.py): built-in steps over table toy."""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge, SGDRegressor

from gates_helpers import FEATURES, pipeline
from keel.pipelines import Pipeline
from keel.pipelines.builtin import gates, split, train, window


def toy_estimator() -> Any:
    return pipeline()


def boosting() -> Any:
    return HistGradientBoostingRegressor(max_iter=20, random_state=0)


def sgd() -> Any:
    return SGDRegressor(random_state=0)


def ridge() -> Any:
    return Ridge()


PARAMS = {"source": "toy", "where": "TRUE", "target": "y", "time_column": "ts",
          "estimator": "retrain_defs:toy_estimator", "model_name": "toy", "features": FEATURES,
          "window_table": "toy_window", "experiment": "toy-retrain"}

toy_retrain = Pipeline("toy-retrain", [window, split, train, gates], params=PARAMS)
