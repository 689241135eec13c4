"""A small, known world for release-gate tests: a toy table whose price grows with ``x1`` and with the
category, a time split of it, and models that are good or broken in one known way each.

    y = 3 * x1 + {a: 0, b: 5, c: 10}[cat] + noise(1)        x2 is noise; id and ts never matter
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import keel

FEATURES = ["x1", "x2", "cat"]

CHECKLIST = """
tests:
  - kind: metric
    conditions: ["rmse <= 2", "rmse <= 0.5 * baseline", "rmse <= 1.05 * champion"]
  - kind: slice
    by: [cat]
    conditions: ["rmse <= 3"]
  - kind: smoke
    range: [-50, 100]
  - kind: invariance
    perturb: {column: id, how: shuffle}
  - kind: minimum_functionality
    cases:
      - input: {x1: 9, cat: c}
        min: 30
      - input: {x1: 0, cat: a}
        max: 5
  - kind: directional
    column: x1
    delta: 1
  - kind: leakage
  - kind: fairness
    sensitive: cat
    max_error_rate_gap: 2
    required: false
"""


def toy_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": np.arange(n), "x1": rng.uniform(0, 10, n), "x2": rng.normal(0, 1, n),
                          "cat": rng.choice(["a", "b", "c"], n),
                          "ts": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")})
    frame["y"] = 3 * frame.x1 + frame.cat.map({"a": 0, "b": 5, "c": 10}) + rng.normal(0, 1, n)
    return frame


def toy_world(ws: keel.Workspace, n: int = 2000) -> keel.SplitInfo:
    """The toy table ingested and split by time (70/15/15)."""
    ws.data.ingest(toy_frame(n), "toy", time_column="ts")
    return ws.data.split("toy", target="y", time_column="ts")


def pipeline(features: list[str] = FEATURES) -> Any:
    encode = [c for c in features if c == "cat"]
    return make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), encode),
                                                 remainder="passthrough"), LinearRegression())


def register(ws: keel.Workspace, split: keel.SplitInfo, *, name: str = "toy", features: list[str] = FEATURES,
             broken: str | None = None, metrics: dict[str, float] | None = None) -> keel.ModelVersion:
    """Fit a linear pipeline on the split's train part and register it. ``broken``:

    - ``"ignores_x1"``: trained without the most important feature;
    - ``"anti_monotone"``: the x1 coefficient flipped, so the output falls as x1 grows.
    """
    used = [c for c in features if c != "x1"] if broken == "ignores_x1" else features
    with ws.runs.start(name) as run:
        model = ws.runs.fit(pipeline(used), split.ref, features=used, run=run)
        if broken == "anti_monotone":
            coef = model[-1].coef_
            names = list(model[0].get_feature_names_out())
            coef[names.index("remainder__x1")] = -3.0
        if metrics:  # as an evaluation would have recorded them
            run.log_metrics(metrics)
        example = ws.data.read_split(split.ref, "train", columns=used).head(5)
        return ws.models.register(model, name, run=run, input_example=example)


class RaisingModel:
    """A python-flavor model that raises on rows with x2 above 1.5 (a crash the smoke test must find)."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if (X["x2"] > 1.5).any():
            raise ValueError("x2 above 1.5: this model cannot handle it")
        return 3 * X["x1"].to_numpy() + 5
