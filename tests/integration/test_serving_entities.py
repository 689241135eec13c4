"""Entity requests end to end, on SQLite and on Redis: a model trained on a keel training set gets, for entity ids,
exactly the online values and the on-demand values the offline code computes, predicts as on its training rows,
keeps reading the view versions it was trained on, and every bad request is refused with a clear message."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

import keel
from conftest import REDIS_URL
from keel import Entity, Feature, FeatureView, OnDemandFeatureView, RequestField
from keel.errors import InvalidInput
from keel.serving.entities import EntityFeatures

LISTING = Entity("listing", ["listing_id"])
NOW = datetime.now(UTC).replace(microsecond=0)
REQUESTED = ["stats:nights", "stats:rating", "stats:city", "per_guest:rating_per_guest"]
INPUTS = ["nights", "rating", "rating_per_guest", "guests"]  # what the model takes: a subset, and a request field


def per_guest(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"rating_per_guest": frame["rating"] / frame["guests"],
                         "busy": (frame["nights"] > 20).astype("float64")}, index=frame.index)


def stats_view(transform: str | None = None) -> FeatureView:
    return FeatureView("stats", [LISTING], source="bookings", timestamp="event_ts", ttl=timedelta(days=30),
                       features=[Feature("nights", "int64"), Feature("rating", "float64"), Feature("city", "string")],
                       transform=transform)


PER_GUEST = OnDemandFeatureView("per_guest", sources=["stats:rating", "stats:nights"], function=per_guest,
                                features=[Feature("rating_per_guest", "float64"), Feature("busy", "float64")],
                                request=[RequestField("guests", "int64")])


def bookings(n: int, listings: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    at = pd.Timestamp(NOW - timedelta(days=25)) + pd.to_timedelta(rng.integers(0, 24 * 86400, n), unit="s")
    frame = pd.DataFrame({"listing_id": rng.integers(0, listings, n), "event_ts": at,
                          "nights": rng.integers(0, 40, n), "rating": np.round(rng.random(n) * 5, 3),
                          "city": rng.choice(["Lisbon", "Porto", None], n)})
    old = pd.DataFrame({"listing_id": [500], "event_ts": [pd.Timestamp(NOW - timedelta(days=60))], "nights": [3],
                        "rating": [4.0], "city": ["Faro"]})  # older than the ttl: expired
    return pd.concat([frame, old], ignore_index=True)


def labels(ids: list[int], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"listing_id": ids, "event_timestamp": [pd.Timestamp(NOW)] * len(ids),
                         "guests": rng.integers(1, 7, len(ids)), "price": rng.normal(100, 20, len(ids))})


def train(ws: keel.Workspace, training: keel.TrainingSet, name: str, inputs: list[str]) -> tuple[str, pd.DataFrame]:
    """Fit on the training set's rows, with the run's input the training set itself; register the model."""
    frame = training.to_pandas()
    model = make_pipeline(SimpleImputer(), Ridge()).fit(frame[inputs], frame["price"])
    with ws.runs.start("price", inputs=[training.ref]) as run:
        version = ws.models.register(model, name, run=run, input_example=frame[inputs].head(5))
    return version.name, frame


@pytest.fixture(params=["sqlite", "redis"])
def ews(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[keel.Workspace]:
    settings = {}
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("KEEL_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
        settings["online_url"] = REDIS_URL
    ws = keel.init(tmp_path / f"ws-{uuid.uuid4().hex[:8]}", **settings)  # its own registry id: its own namespaces
    ws.data.ingest(bookings(600, 60, 0), "bookings", time_column="event_ts")
    ws.features.apply([LISTING, stats_view(), PER_GUEST])
    yield ws
    store = ws.online_store()
    for name in store.namespaces():
        if name.startswith(ws._features.registry + "/"):
            store.delete_namespace(name)
    ws.close()


@pytest.fixture
def trained(ews: keel.Workspace) -> tuple[str, keel.TrainingSet, pd.DataFrame]:
    entities = labels([*range(60), 500], seed=1)
    training = ews.features.training_set(entities, REQUESTED, label="price", name="price_training")
    ref, frame = train(ews, training, "price", INPUTS)
    ews.features.materialize()
    return ref, training, frame


def test_the_frame_holds_the_online_values_and_the_offline_on_demand_values(
        ews: keel.Workspace, trained: tuple[str, keel.TrainingSet, pd.DataFrame]) -> None:
    ref, training, _ = trained
    serving = EntityFeatures.for_models(ews, ref)
    assert serving.describe()["models"][0] | {"features": None} == {
        "model": "price/1", "training_set": training.ref, "features": None, "join_keys": ["listing_id"],
        "request_fields": ["guests"], "from_request": ["guests"], "stale_views": {}, "problem": None}
    assert list(serving.describe()["models"][0]["features"].values()) == ["nights", "rating", "rating_per_guest"]

    entities = [{"listing_id": 3, "guests": 2}, {"listing_id": 10_000, "guests": 1}, {"listing_id": 500, "guests": 4},
                {"listing_id": 7, "guests": 3}]
    frame, fetched = serving.frame(entities)
    online = ews.features.online(["stats:nights", "stats:rating"], entities)
    for column in ("nights", "rating"):
        expected = [np.nan if v is None else v for v in online.values[column]]
        np.testing.assert_array_equal(frame[column].to_numpy(dtype="float64"), np.array(expected, dtype="float64"))
        assert fetched["columns"][column]["statuses"] == ["present", "missing", "expired", "present"]
        assert fetched["columns"][column]["values"] == online.values[column]
    assert fetched["columns"]["rating_per_guest"] | {"values": None, "event_timestamps": None} == {
        "feature": "per_guest:rating_per_guest", "version": 1, "values": None, "event_timestamps": None,
        "statuses": ["present", "missing", "expired", "present"]}
    assert fetched["incomplete"] == [1, 2] and fetched["training_sets"] == {"price/1": training.ref}
    assert frame["guests"].tolist() == [2, 1, 4, 3] and frame["listing_id"].tolist() == [3, 10_000, 500, 7]
    assert "city" not in frame and "busy" not in frame  # only what the model takes is looked up

    offline = ews.features.training_set(pd.DataFrame({
        "listing_id": [3, 7], "guests": [2, 3], "event_timestamp": [pd.Timestamp(NOW)] * 2}), REQUESTED,
        store=False).to_pandas()  # the same function, run by the offline code
    assert frame["rating_per_guest"].iloc[[0, 3]].tolist() == offline["rating_per_guest"].tolist()
    assert frame["nights"].iloc[[0, 3]].tolist() == offline["nights"].tolist()
    assert frame[["nights", "rating", "rating_per_guest"]].iloc[[1, 2]].isna().all().all()  # passed on as NaN

    model = ews.models.load(ref)
    predicted = model.predict(frame)  # the missing and expired rows too: the model's imputer decides
    assert len(predicted) == 4 and np.isfinite(predicted).all()


def test_predictions_from_entities_equal_predictions_on_the_training_rows(
        ews: keel.Workspace, trained: tuple[str, keel.TrainingSet, pd.DataFrame]) -> None:
    ref, _, rows = trained
    model = ews.models.load(ref)
    entities = rows[["listing_id", "guests"]].to_dict(orient="records")
    frame, fetched = EntityFeatures.for_models(ews, ref).frame(entities)
    np.testing.assert_allclose(model.predict(frame), model.predict(rows[INPUTS]), rtol=0, atol=1e-9)
    for column in ("nights", "rating", "rating_per_guest"):
        np.testing.assert_allclose(frame[column].to_numpy(dtype="float64"), rows[column].to_numpy(dtype="float64"),
                                   rtol=0, atol=0, equal_nan=True)
    assert fetched["incomplete"] == [rows.index[rows["listing_id"] == 500][0]]  # the expired one, NaN in both


def test_a_model_reads_the_view_versions_it_was_trained_on(
        ews: keel.Workspace, trained: tuple[str, keel.TrainingSet, pd.DataFrame]) -> None:
    ref, _, rows = trained
    ews.features.apply([LISTING, stats_view("SELECT listing_id, event_ts, nights, rating * 10 AS rating, city "
                                            "FROM source"), PER_GUEST])
    ews.features.materialize()  # the latest version (stats@2) only; stats@1 stays as materialised before
    assert [(d["view"], d["version"]) for d in ews.features.materialize(["stats@1"])] == [("stats", 1)]  # kept fresh
    serving = EntityFeatures.for_models(ews, ref)
    assert serving.describe()["models"][0]["stale_views"] == {"stats": {"trained_on": 1, "latest": 2}}
    entities = [{"listing_id": 3, "guests": 2}]
    frame, fetched = serving.frame(entities)
    trained_value = rows.loc[rows["listing_id"] == 3, "rating"].iloc[0]
    assert frame["rating"].iloc[0] == trained_value and fetched["columns"]["rating"]["version"] == 1
    assert frame["rating_per_guest"].iloc[0] == trained_value / 2
    assert ews.features.online(["stats:rating"], entities).values["rating"] == [trained_value * 10]  # the latest

    newer = ews.features.training_set(labels(list(range(60)), seed=2), REQUESTED, label="price", name="newer")
    new_ref, _ = train(ews, newer, "price", INPUTS)  # price/2, on stats@2
    assert EntityFeatures.for_models(ews, new_ref).frame(entities)[0]["rating"].iloc[0] == trained_value * 10
    both = EntityFeatures.for_models(ews, [ref, new_ref])
    with pytest.raises(InvalidInput, match="different versions of feature view 'stats'"):
        both.frame(entities)


def test_a_model_trained_on_a_split_of_a_training_set_finds_that_training_set(ews: keel.Workspace) -> None:
    ews.features.training_set(labels(list(range(30)), seed=3), REQUESTED, label="price", name="split_training")
    training = ews.features.training_set(labels([*range(60), 500], seed=4), REQUESTED, label="price",
                                         name="split_training", full_names=True)  # a second version of its table
    split = ews.data.split(training.table_ref, target="price", name="prices-split")
    columns = ["stats__nights", "stats__rating", "per_guest__rating_per_guest", "guests"]
    with ews.runs.start("price", inputs=[split.ref]) as run:
        model = ews.runs.fit(make_pipeline(SimpleImputer(), Ridge()), split.ref, features=columns, run=run)
        version = ews.models.register(model, "split_price", run=run,
                                      input_example=ews.data.read_split(split.ref, "train", columns=columns).head(5))
    ews.features.materialize()
    serving = EntityFeatures.for_models(ews, version.name)
    described = serving.describe()["models"][0]
    assert described["training_set"] == training.ref and training.ref.endswith("@1")
    assert list(described["features"].values()) == columns[:3]
    rows = ews.data.read_split(split.ref, "test")
    frame, _ = serving.frame(rows[["listing_id", "guests"]].to_dict(orient="records"))
    loaded = ews.models.load(version.name)
    np.testing.assert_allclose(loaded.predict(frame), loaded.predict(rows), rtol=0, atol=1e-9)


def test_two_models_with_different_inputs_share_one_lookup(
        ews: keel.Workspace, trained: tuple[str, keel.TrainingSet, pd.DataFrame]) -> None:
    ref, _, rows = trained
    full = ews.features.training_set(labels(list(range(60)), seed=5), ["stats:rating"], label="price",
                                     name="full_names", full_names=True)
    other, _ = train(ews, full, "rating_only", ["stats__rating"])
    serving = EntityFeatures.for_models(ews, [ref, other, "baseline"])  # the baseline fallback needs nothing
    frame, fetched = serving.frame([{"listing_id": 3, "guests": 2}])
    assert frame["stats__rating"].iloc[0] == frame["rating"].iloc[0] == rows.loc[rows["listing_id"] == 3,
                                                                                 "rating"].iloc[0]
    assert set(fetched["columns"]) == {"nights", "rating", "rating_per_guest", "stats__rating"}
    for model in (ref, other):
        assert len(ews.models.load(model).predict(frame)) == 1  # each keeps its signature's columns


def test_bad_entity_requests_are_refused_clearly(
        ews: keel.Workspace, trained: tuple[str, keel.TrainingSet, pd.DataFrame]) -> None:
    ref, _, rows = trained
    serving = EntityFeatures.for_models(ews, ref)
    cases = [([], "non-empty list"), ({"listing_id": 1}, "non-empty list"), (["x"], r"entities\[0\] must be an object"),
             ([{"listing_id": 1, "guests": 1}, {"guests": 2}], r"entities\[1\] lacks join key 'listing_id'"),
             ([{"listing_id": 1}], r"entities\[0\] lacks request field 'guests'"),
             ([{"listing_id": 1.5, "guests": 1}], r"entities\[0\].listing_id must be an integer or a string"),
             ([{"listing_id": True, "guests": 1}], "integer or a string"),
             ([{"listing_id": 1, "guests": 1, "rating": 3.0}], r"entities\[0\] carries rating")]
    for entities, message in cases:
        with pytest.raises(InvalidInput, match=message):
            serving.frame(entities)  # type: ignore[arg-type]

    plain = make_pipeline(SimpleImputer(), Ridge()).fit(rows[["nights", "rating"]], rows["price"])
    version = ews.models.register(plain, "plain", input_example=rows[["nights", "rating"]].head(3))
    for refs in ([version.name], [ref, version.name]):  # alone, or beside a model that could
        serving = EntityFeatures.for_models(ews, refs)  # loading is fine: records still work
        with pytest.raises(InvalidInput, match="model plain/1 was not trained on a keel training set, so it cannot "
                                               "look features up; send records"):
            serving.frame([{"listing_id": 1, "guests": 1}])


def test_the_data_plane_answers_entities_with_looked_up_features_and_logs_what_it_fetched(
        ews: keel.Workspace, trained: tuple[str, keel.TrainingSet, pd.DataFrame], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from keel.serving.app import create_predictor_app

    ref, _, rows = trained
    ews.deployments.create("price", ref)
    entities = rows[["listing_id", "guests"]].head(3).to_dict(orient="records")
    with TestClient(create_predictor_app(ews, log_folder=tmp_path / "log")) as client:
        answer = client.post("/v1/endpoints/price/predict", json={"entities": entities})
        assert answer.status_code == 200, answer.text
        expected = ews.models.load(ref).predict(rows[INPUTS].head(3))
        np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=0, atol=1e-9)
        refused = client.post("/v1/endpoints/price/predict", json={"entities": [{"guests": 2}]})
        assert refused.status_code == 400 and "listing_id" in refused.json()["error"]["message"]
    logged = ews.data.read("predictions")
    fetched = json.loads(logged[logged.kind == "primary"].iloc[0].features)
    assert set(fetched["columns"]) == {"nights", "rating", "rating_per_guest"}
    assert json.loads(logged[logged.kind == "primary"].iloc[0].inputs) == entities
