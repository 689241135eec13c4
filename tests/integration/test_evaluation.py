"""ws.runs.fit / evaluate / importance on stored splits: train-only fitting, metrics checked against
scikit-learn, the dummy baseline, slices, what lands on the run, and bad input."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import keel
from keel.demo.generator import LISTINGS_CONTRACT
from keel.errors import InvalidInput, NotFound

NUMERIC = ["accommodates", "bedrooms", "bathrooms", "beds", "latitude", "longitude", "minimum_nights",
           "number_of_reviews"]
CATEGORICAL = ["neighbourhood", "room_type", "property_type"]


def _synthetic(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """y depends on a and b; noise does not; a2 duplicates a; x has missing values; g is a category."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(10, 3, n), "b": rng.normal(size=n), "noise": rng.normal(size=n),
                          "g": rng.choice(["north", "south", "east"], n)})
    frame["x"] = np.where(rng.random(n) < 0.1, np.nan, rng.normal(100, 10, n))
    frame["y"] = 3 * frame["a"] - 2 * frame["b"] + np.where(frame["g"] == "east", 5.0, 0.0) + rng.normal(0, 1, n)
    frame["clicked"] = (frame["a"] + 2 * frame["b"] + rng.normal(0, 2, n) > 12).astype(np.int64)
    return frame


class _Zeros:
    """A model outside scikit-learn's tags: only the labels can say what the task is."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(X))


@pytest.fixture
def split(ws: keel.Workspace) -> str:
    ws.data.ingest(_synthetic(), "points")
    return ws.data.split("points", target="y", name="points-split").ref.removeprefix("split:")


def test_fit_sees_the_train_part_only(ws: keel.Workspace, split: str) -> None:
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), LinearRegression())
    fitted = ws.runs.fit(pipe, split, features=["a", "b", "x"])
    train = ws.data.read_split(split, "train")
    full = ws.data.read("points")
    imputer, scaler = fitted[0], fitted[1]
    assert imputer.statistics_ == pytest.approx(train[["a", "b", "x"]].mean().to_numpy())
    assert scaler.mean_ == pytest.approx(train[["a", "b", "x"]].fillna(train[["a", "b", "x"]].mean()).mean().to_numpy())
    assert not np.allclose(imputer.statistics_, full[["a", "b", "x"]].mean().to_numpy())  # not the whole table
    assert list(fitted.feature_names_in_) == ["a", "b", "x"]


def test_regression_metrics_match_sklearn_and_beat_the_baseline(ws: keel.Workspace, split: str) -> None:
    model = ws.runs.fit(RandomForestRegressor(n_estimators=30, random_state=0), split, exclude=["g", "clicked"])
    report = ws.runs.evaluate(model, split, exclude=["g", "clicked"])
    assert report.task == "regression" and report.primary_metric == "rmse"
    assert list(report.metrics) == ["train", "validation", "test"]  # train too: overfitting is visible
    train_y = ws.data.read_split(split, "train")["y"]
    for part in ("validation", "test"):
        frame = ws.data.read_split(split, part)
        pred = model.predict(frame[report.features])
        got = report.metrics[part]
        assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(frame["y"], pred))
        assert got["mae"] == pytest.approx(skm.mean_absolute_error(frame["y"], pred))
        assert got["r2"] == pytest.approx(skm.r2_score(frame["y"], pred))
        assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(frame["y"], pred))
        baseline = np.full(len(frame), train_y.mean())
        assert report.baseline[part]["rmse"] == pytest.approx(skm.root_mean_squared_error(frame["y"], baseline))
        assert report.baseline[part]["rmse"] > 2 * got["rmse"]
        assert report.rows[part] == len(frame)
    assert report.metrics["train"]["rmse"] < report.metrics["validation"]["rmse"]
    assert report.better_than_baseline == {"train": True, "validation": True, "test": True}
    assert report.to_frame().loc[("validation", "baseline"), "rmse"] == report.baseline["validation"]["rmse"]
    assert "better than the baseline" in report.summary()


def test_classification_metrics_match_sklearn(ws: keel.Workspace) -> None:
    ws.data.ingest(_synthetic(600, seed=1).drop(columns=["y", "x"]), "clicks")
    ref = ws.data.split("clicks", target="clicked").ref
    train, valid = ws.data.read_split(ref, "train"), ws.data.read_split(ref, "validation")
    for estimator in (LogisticRegression(), GradientBoostingClassifier(n_estimators=30, random_state=0)):
        model = ws.runs.fit(estimator, ref, features=["a", "b", "noise"])
        report = ws.runs.evaluate(model, ref, slices=["g"])
        assert report.task == "classification" and report.primary_metric == "roc_auc"
        X, y = valid[["a", "b", "noise"]], valid["clicked"]
        pred, proba = model.predict(X), model.predict_proba(X)[:, 1]
        got = report.metrics["validation"]
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
        assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
        assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
        assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba))
        assert got["log_loss"] == pytest.approx(skm.log_loss(y, y_proba=proba))
        counts = train["clicked"].value_counts()
        assert report.class_imbalance_ratio == pytest.approx(counts.max() / counts.min())
        assert report.baseline["validation"]["roc_auc"] == pytest.approx(0.5)  # the prior predicts no ranking
        assert report.better_than_baseline["validation"] is True
        east = valid["g"] == "east"
        row = next(r for r in report.slices if r["part"] == "validation" and r["value"] == "east")
        assert row["rows"] == east.sum()
        assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y[east], proba[east.to_numpy()]))


def test_slices_are_per_value_and_numeric_columns_are_binned(ws: keel.Workspace, split: str) -> None:
    model = ws.runs.fit(LinearRegression(), split, features=["a", "b"])  # misses g's effect: east is worst
    report = ws.runs.evaluate(model, split, slices=["g", "a", "x"], parts=["validation"], min_slice_rows=5)
    valid = ws.data.read_split(split, "validation")
    rows = report.slices_frame().loc["validation"]
    assert set(rows.loc["g"].index) == {"north", "south", "east"}
    assert rows.loc["g", "rows"].sum() == len(valid)
    assert len(rows.loc["a"]) == 4 and rows.loc["a", "rows"].sum() == len(valid)  # quartile bins
    assert rows.loc[("x", "(missing)"), "rows"] == valid["x"].isna().sum()
    east = valid[valid["g"] == "east"]
    assert rows.loc[("g", "east"), "rmse"] == pytest.approx(
        skm.root_mean_squared_error(east["y"], model.predict(east[["a", "b"]])))
    assert report.worst_slices["validation"]["rmse"]["slice"] == "g=east"
    assert list(report.metrics) == ["validation"] and "validation" in report.baseline  # baseline still on train
    reordered = ws.runs.evaluate(model, split, features=["b", "a"], parts="validation", baseline=False)
    assert reordered.features == ["a", "b"] and reordered.baseline == {}  # the model's column order
    assert reordered.metrics["validation"] == pytest.approx(report.metrics["validation"], rel=1e-12)


def test_everything_lands_on_the_run(ws: keel.Workspace, split: str) -> None:
    def revenue(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.minimum(y_true, y_pred).sum())

    revenue.greater_is_better = True
    with ws.runs.start("points", inputs=[split]) as run:
        model = ws.runs.fit(make_pipeline(SimpleImputer(), StandardScaler(), Ridge(alpha=2.0)), split,
                            features=["a", "b", "x"], run=run)
        report = ws.runs.evaluate(model, split, slices=["g"], run=run, business_metric=revenue)
        ws.runs.importance(model, split, run=run, shap=False)
    info = ws.runs.get(run.id)
    assert info.params["ridge.alpha"] == "2.0" and info.params["simpleimputer"] == "SimpleImputer"
    assert info.tags["model.class"] == "sklearn.pipeline.Pipeline" and info.tags["evaluation.task"] == "regression"
    assert info.metrics["validation.rmse"] == pytest.approx(report.metrics["validation"]["rmse"])
    assert info.metrics["baseline.test.rmse"] == pytest.approx(report.baseline["test"]["rmse"])
    assert info.metrics["validation.revenue"] == pytest.approx(report.metrics["validation"]["revenue"])
    assert info.metrics["train.rows"] == report.rows["train"]
    assert not any("=" in key for key in info.metrics)  # slices go to an artifact, not to metric keys
    expected = {"evaluation/report.json", "evaluation/slices.json", "importance/importance.json",
                "importance/importance.png", *report.figures}
    assert expected <= set(info.artifacts)
    assert {"evaluation/validation_residuals.png", "evaluation/test_predicted_vs_actual.png"} <= set(report.figures)
    stored = json.loads(ws.artifacts.get_bytes(f"runs/{run.id}/artifacts/evaluation/report.json"))
    assert stored["metrics"]["validation"]["rmse"] == pytest.approx(report.metrics["validation"]["rmse"])
    assert stored["better_than_baseline"]["validation"] is True
    slices = json.loads(ws.artifacts.get_bytes(f"runs/{run.id}/artifacts/evaluation/slices.json"))
    assert {r["value"] for r in slices["slices"]} == {"north", "south", "east"}
    png = ws.artifacts.get_bytes(f"runs/{run.id}/artifacts/{report.figures[0]}")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_classification_plots_land_on_the_run(ws: keel.Workspace) -> None:
    frame = _synthetic(300, seed=2)
    data = {"train": frame[:200], "validation": frame[200:]}
    with ws.runs.start("clicks") as run:
        model = ws.runs.fit(LogisticRegression(), data, label="clicked", features=["a", "b"], run=run)
        report = ws.runs.evaluate(model, data, label="clicked", run=run)
    assert set(report.figures) == {f"evaluation/validation_{k}.png" for k in ("confusion_matrix", "roc_curve",
                                                                             "pr_curve")}
    assert set(report.figures) <= set(ws.runs.get(run.id).artifacts)


def test_the_demo_listings_through_a_pipeline(ws: keel.Workspace, listings: pd.DataFrame) -> None:
    ws.data.ingest(listings, "listings", contract=LISTINGS_CONTRACT, on_bad_rows="quarantine")
    ref = ws.data.split("listings", target="price", time_column="listed_at", dedupe=True, gap=timedelta(days=1)).ref
    with pytest.raises(InvalidInput, match=r"non-numeric feature\(s\) listed_at .*exclude="):
        ws.runs.fit(LinearRegression(), ref)  # every column but the label, datetimes and text included
    encode = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])
    linear = ws.runs.fit(make_pipeline(encode, Ridge()), ref, features=NUMERIC + CATEGORICAL)
    boosted = ws.runs.fit(GradientBoostingRegressor(n_estimators=50, random_state=0), ref, features=NUMERIC)
    for model in (linear, boosted):
        report = ws.runs.evaluate(model, ref, slices=["room_type"])
        assert report.better_than_baseline["validation"] and report.better_than_baseline["test"]
        assert report.source == ref and report.label == "price"
        assert {r["value"] for r in report.slices if r["part"] == "test"} <= {"Entire home/apt", "Private room",
                                                                              "Shared room", "Hotel room"}
    ohe = linear[0].named_transformers_["cat"]
    train = ws.data.read_split(ref, "train")
    assert set(ohe.categories_[0]) == set(train["neighbourhood"].unique())  # encoder fitted on train only


def test_numpy_tuples_and_dict_frames_work(ws: keel.Workspace) -> None:
    frame = _synthetic(300, seed=3)
    X, y = frame[["a", "b"]].to_numpy(), frame["y"].to_numpy()
    data = {"train": (X[:200], y[:200]), "validation": (X[200:], y[200:])}
    model = ws.runs.fit(LinearRegression(), data)
    report = ws.runs.evaluate(model, data)
    assert report.features == ["x0", "x1"]
    assert report.metrics["validation"]["rmse"] == pytest.approx(
        skm.root_mean_squared_error(y[200:], model.predict(X[200:])))
    frames = {"validation": frame[200:]}
    report = ws.runs.evaluate(model, {"validation": (frame[200:][["a", "b"]].to_numpy(), y[200:])})
    assert report.baseline == {} and "no train part" in report.notes[0]
    named = ws.runs.fit(LinearRegression(), {"train": frame[:200]}, label="y", features=["a", "b"])
    assert ws.runs.evaluate(named, frames, label="y").metrics["validation"]["r2"] > 0.9  # features from the model


def test_mape_leaves_out_zero_targets_and_says_so(ws: keel.Workspace) -> None:
    frame = _synthetic(200, seed=4)
    frame.loc[[150, 160, 170], "y"] = 0.0
    data = {"train": frame[:120], "validation": frame[120:]}
    model = ws.runs.fit(LinearRegression(), data, label="y", features=["a", "b"])
    report = ws.runs.evaluate(model, data, label="y")
    valid = frame[120:]
    kept = valid[valid["y"] != 0]
    assert report.metrics["validation"]["mape"] == pytest.approx(
        skm.mean_absolute_percentage_error(kept["y"], model.predict(kept[["a", "b"]])))
    assert "mape on validation leaves out 3 row(s)" in " ".join(report.notes)


def test_bad_input_is_refused_with_a_clear_error(ws: keel.Workspace, split: str) -> None:
    model = ws.runs.fit(LinearRegression(), split, features=["a", "b"])
    frame = _synthetic(100)
    cases = [
        (lambda: ws.runs.evaluate(model, split, parts=["holdout"]), "unknown part 'holdout'"),
        (lambda: ws.runs.evaluate(model, {"holdout": frame}, label="y"), "unknown part 'holdout'"),
        (lambda: ws.runs.evaluate(model, split, label="price"), "label column 'price'"),
        (lambda: ws.runs.evaluate(model, {"validation": frame}), "label= is required"),
        (lambda: ws.runs.evaluate(LinearRegression(), split), "is not fitted"),
        (lambda: ws.runs.evaluate(model, split, task="classification"), "LinearRegression is a regressor"),
        (lambda: ws.runs.evaluate(_Zeros(), split, task="classification"), "labels are continuous"),
        (lambda: ws.runs.evaluate(model, split, task="ranking"), "unknown task"),
        (lambda: ws.runs.evaluate(model, split, features=["a"]), "the model was fitted on a, b"),
        (lambda: ws.runs.evaluate(model, split, exclude=["b"]), "leaves out b, which it needs"),
        (lambda: ws.runs.evaluate(model, split, slices=["nope"]), "'nope' not in split"),
        (lambda: ws.runs.evaluate(model, split, min_slice_rows=0), "min_slice_rows"),
        (lambda: ws.runs.evaluate(model, split, business_metric=lambda t, p: 1.0), "business_metric needs a name"),
        (lambda: ws.runs.fit(LinearRegression(), split, exclude=["typo"]), "unknown column"),
        (lambda: ws.runs.fit(LinearRegression(), split, features=["a", "g"]), r"non-numeric feature\(s\) g"),
        (lambda: ws.runs.fit(LinearRegression(), split, features=["a", "x"]), "missing values .* SimpleImputer"),
        (lambda: ws.runs.fit(LinearRegression(), {"train": frame.assign(y=np.nan)}, label="y", features=["a"]),
         "have no label"),
        (lambda: ws.runs.fit(object(), split), "has no fit method"),
        (lambda: ws.runs.evaluate(LogisticRegression().fit(frame[["a", "b"]], frame["clicked"]), split,
                                  task="regression"), "is a classifier"),
        (lambda: ws.runs.importance(model, split, n_repeats=1), "n_repeats"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInput, match=message):
            call()
    ws.data.split("points", target="y", name="two-way", fractions=(0.8, 0.2))
    with pytest.raises(InvalidInput, match="has no validation part; it has train, test"):
        ws.runs.importance(model, "two-way")
    with pytest.raises(NotFound, match="unknown split"):
        ws.runs.evaluate(model, "no-such-split")
