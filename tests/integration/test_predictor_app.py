"""The data plane over HTTP (in-process ASGI client): formats, bad input as structured 4xx, fallbacks, metrics,
and every answer in the prediction log."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from keel.serving.app import LOG_TABLE, create_predictor_app

ROWS = toy_frame(3)[FEATURES].to_dict(orient="records")


@pytest.fixture
def served(ws: keel.Workspace, tmp_path):
    split = toy_world(ws, n=600)
    first, second = register(ws, split), register(ws, split)
    ws.deployments.create("price", first.name, fallbacks=[second.name])
    app = create_predictor_app(ws, log_folder=tmp_path / "log", commit_every_s=0.2)
    with TestClient(app) as client:
        yield ws, client


def test_records_and_columnar_bodies_are_answered_and_name_the_version(served) -> None:
    _, client = served
    answer = client.post("/v1/endpoints/price/predict", json={"records": ROWS})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "toy/1" and len(body["predictions"]) == 3 and body["request_id"]
    frame = toy_frame(3)[FEATURES]
    columnar = client.post("/v1/endpoints/price/predict",
                           json={"columns": list(frame.columns), "data": frame.values.tolist()})
    assert columnar.json()["predictions"] == pytest.approx(body["predictions"])
    mlflow = client.post("/invocations", json={"dataframe_split": {"columns": list(frame.columns),
                                                                   "data": frame.values.tolist()}})
    assert mlflow.json()["predictions"] == pytest.approx(body["predictions"])
    assert client.post("/invocations", json={"dataframe_records": ROWS}).status_code == 200
    assert client.get("/readyz").json() == {"ready": True, "deployments": ["price"]}
    metrics = client.get("/metrics").text
    assert 'keel_predictions_total{arm="primary",deployment="price",version="toy/1"} 4.0' in metrics


@pytest.mark.parametrize(("body", "headers", "status", "message"), [
    (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
    (b'{"records": []}', {"content-type": "application/json"}, 400, "empty"),
    (b'{"rows": []}', {"content-type": "application/json"}, 400, "neither records nor data"),
    (b'{"columns": ["x1"], "data": [[1, 2]]}', {"content-type": "application/json"}, 400, "list of 1 values"),
    (b'{"records": [{"x1": 1}]}', {"content-type": "text/plain"}, 415, "application/json"),
    (b'{"records": [{"x1": 1.0}]}', {"content-type": "application/json"}, 422, "missing column"),
    (b'{"records": [{"x1": "many", "x2": 1.0, "cat": "a"}]}', {"content-type": "application/json"}, 422, "x1"),
    (b"\xff\xfe", {"content-type": "application/json"}, 400, "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, {"content-type": "application/json"}, 400, "not valid JSON"),
])
def test_bad_requests_get_a_structured_4xx_and_are_counted(served, body, headers, status, message) -> None:
    _, client = served
    answer = client.post("/v1/endpoints/price/predict", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert message in error["message"] and error["type"]
    assert f'keel_rejections_total{{deployment="price",status="{status}"}} 1.0' in client.get("/metrics").text


def test_oversized_bodies_and_unknown_deployments_are_refused(served) -> None:
    _, client = served
    big = client.post("/v1/endpoints/price/predict", content=b"x", headers={"content-type": "application/json",
                                                                              "content-length": str(9 * 2**20)})
    assert big.status_code == 413
    assert client.post("/v1/endpoints/nope/predict", json={"records": ROWS}).status_code == 404


def test_every_answer_is_in_the_prediction_log_with_who_served_it(served) -> None:
    ws, client = served
    ids = [client.post("/v1/endpoints/price/predict", json={"records": ROWS},
                       headers={"x-request-id": f"req-{i}"}).json()["request_id"] for i in range(5)]
    client.__exit__(None, None, None)  # the lifespan's exit commits what is still open
    logged = ws.data.read(LOG_TABLE)
    primary = logged[logged.kind == "primary"]
    assert sorted(primary.request_id) == sorted(ids) and set(primary.served_by) == {"toy/1"}
    assert json.loads(primary.iloc[0].inputs)[0].keys() >= set(FEATURES)
    assert len(json.loads(primary.iloc[0].output)) == 3 and (primary.latency_ms > 0).all()
