"""keel.autolog (issue 3): every scikit-learn fit becomes a run with params, metrics and a model version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import keel
from keel.demo.generator import LISTINGS_CONTRACT
from keel.errors import InvalidInput, NotFound
from keel.tracking.autolog import _estimator_classes


def _data(rows: int = 80) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.random(rows), "b": rng.random(rows)})
    return x, 2 * x["a"] + x["b"] + rng.normal(0, 0.01, rows)


@pytest.fixture
def autologged(ws: keel.Workspace) -> Iterator[keel.Workspace]:
    handle = keel.autolog(ws, experiment="auto")
    yield ws
    handle.disable()


def test_a_fit_outside_a_run_gets_its_own_finished_run_with_params_metrics_and_model(
        autologged: keel.Workspace) -> None:
    ws = autologged
    x, y = _data()
    model = Ridge(alpha=0.5).fit(x, y)
    [run] = ws.runs.list(experiment="auto")
    assert run.status == "finished" and run.params["alpha"] == "0.5"
    assert run.tags["model.class"] == "sklearn.linear_model._ridge.Ridge" and run.tags["autolog"] == "sklearn"
    rmse = float(np.sqrt(np.mean((model.predict(x) - y) ** 2)))
    assert run.metrics["train.rmse"] == pytest.approx(rmse)
    version = ws.models.version("auto/1")
    assert version.run_id == run.id
    assert np.allclose(ws.models.load("auto/1").predict(x), model.predict(x))


def test_pipeline_steps_are_not_separate_runs_and_params_are_flattened(autologged: keel.Workspace) -> None:
    ws = autologged
    x, y = _data()
    make_pipeline(StandardScaler(), Ridge(alpha=2.0)).fit(x, y)
    [run] = ws.runs.list(experiment="auto")
    assert run.params["ridge.alpha"] == "2.0" and run.params["standardscaler"] == "StandardScaler"
    assert ws.models.versions("auto")[0].model_class == "sklearn.pipeline.Pipeline"


def test_fits_inside_a_run_use_it_then_nest(autologged: keel.Workspace) -> None:
    ws = autologged
    x, y = _data()
    with ws.runs.start("price") as outer:
        RandomForestRegressor(n_estimators=5, random_state=0).fit(x, y)  # inherits fit from a private base
        LinearRegression().fit(x, y)
    assert ws.runs.get(outer.id).params["n_estimators"] == "5"
    [child] = [r for r in ws.runs.list(experiment="price") if r.parent_id == outer.id]
    assert child.tags["model.class"].endswith("LinearRegression")
    assert [v.run_id for v in ws.models.versions("price")] == [outer.id, child.id]


def test_disable_restores_fit_and_stops_logging(ws: keel.Workspace) -> None:
    originals = {cls: cls.__dict__["fit"] for cls in _estimator_classes()}
    handle = keel.autolog(ws, experiment="auto")
    assert all(getattr(cls.fit, "__keel_autolog__", False) for cls in originals)
    handle.disable()
    assert all(cls.__dict__["fit"] is fit for cls, fit in originals.items())
    Ridge().fit(*_data())
    assert ws.runs.list(experiment="auto") == []


def test_a_logging_failure_warns_and_never_breaks_training(autologged: keel.Workspace) -> None:
    x, y = _data()
    x = x.assign(age=pd.to_timedelta(np.arange(len(x)), unit="D"))  # a type no signature can describe
    pipeline = make_pipeline(ColumnTransformer([("num", "passthrough", ["a", "b"])]), Ridge())
    with pytest.warns(UserWarning, match="keel autolog: the model was not logged: InvalidInput"):
        fitted = pipeline.fit(x, y)
    assert fitted is pipeline and fitted[-1].coef_.shape == (2,)  # the user's training is untouched
    [run] = autologged.runs.list(experiment="auto")
    assert run.status == "finished" and "train.rmse" in run.metrics
    assert autologged.models.list() == []


def test_numpy_input_gets_named_columns(autologged: keel.Workspace) -> None:
    x, y = _data()
    Ridge().fit(x.to_numpy(), y)
    assert [c["name"] for c in autologged.models.version("auto").signature["inputs"]] == ["x0", "x1"]


def test_with_a_split_it_evaluates_beside_the_baseline_and_stores_importance(
        ws: keel.Workspace, listings_csv: Path) -> None:
    ws.data.ingest(listings_csv, "listings", contract=LISTINGS_CONTRACT, on_bad_rows="quarantine")
    split = ws.data.split("listings", target="price", time_column="listed_at", dedupe=True)
    features = ["accommodates", "bedrooms", "beds"]
    train = ws.data.read_split(split.ref, "train")
    with keel.autolog(ws, experiment="price", split=split.ref), ws.runs.start("price", inputs=[split.ref]) as run:
        LinearRegression().fit(train[features].fillna(0), train["price"])
    info = ws.runs.get(run.id)
    assert {"validation.rmse", "baseline.validation.rmse", "test.rmse"} <= set(info.metrics)
    assert info.metrics["validation.rmse"] < info.metrics["baseline.validation.rmse"]
    assert "evaluation/report.json" in info.artifacts
    assert any(name.startswith("importance/") for name in info.artifacts)


def test_bad_options_are_refused(ws: keel.Workspace) -> None:
    with pytest.raises(NotFound):
        keel.autolog(ws, split="no-such-split")
    with pytest.raises(InvalidInput):
        keel.autolog(ws, split=3)  # type: ignore[arg-type]
