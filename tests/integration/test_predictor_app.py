"""The data plane over HTTP (in-process ASGI client): formats, bad input as structured 4xx, fallbacks, metrics,
and every answer in the prediction log."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from keel.errors import NotFound
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
    assert client.get("/readyz").json() == {"ready": True, "deployments": ["price"], "problems": {},
                                            "requirement_drift": []}
    metrics = client.get("/metrics").text
    assert 'keel_predictions_total{arm="primary",deployment="price",version="toy/1"} 4.0' in metrics
    assert all(f"process_{m} " in metrics for m in ("cpu_seconds_total", "resident_memory_bytes",
                                                    "start_time_seconds"))  # the worker's CPU, memory, uptime


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


def test_the_open_inference_protocol_v2_answers_like_the_native_route(served) -> None:
    _, client = served
    frame = toy_frame(3)[FEATURES]
    native = client.post("/v1/endpoints/price/predict", json={"records": ROWS}).json()["predictions"]
    per_column = {"id": "req-v2", "inputs": [
        {"name": "x1", "shape": [3], "datatype": "FP64", "data": frame.x1.tolist()},
        {"name": "x2", "shape": [3, 1], "datatype": "FP64", "data": [[v] for v in frame.x2]},
        {"name": "cat", "shape": [3], "datatype": "BYTES", "data": frame.cat.tolist()}]}
    answer = client.post("/v2/models/price/infer", json=per_column)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("price", "toy/1", "req-v2")
    assert body["outputs"][0]["name"] == "predict" and body["outputs"][0]["shape"] == [3]
    assert body["outputs"][0]["data"] == pytest.approx(native)
    metadata = client.get("/v2/models/price").json()
    assert [i["name"] for i in metadata["inputs"]] == FEATURES and metadata["platform"] == "keel"
    assert client.get("/v2/models/price/ready").json() == {"name": "price", "ready": True}
    assert client.get("/v2/health/ready").status_code == 200 and client.get("/v2/health/live").json()["live"]
    assert client.get("/v2/models/nope/ready").status_code == 404


@pytest.mark.parametrize(("body", "message"), [
    ({"inputs": []}, "inputs"),
    ({"inputs": [{"name": "x1", "shape": [2], "datatype": "FP99", "data": [1, 2]}]}, "datatype"),
    ({"inputs": [{"name": "x1", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}, "shape [3]"),
    ({"inputs": [{"name": "x1", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                 {"name": "x2", "shape": [1], "datatype": "FP64", "data": [1]}]}, "same number of rows"),
    ({"inputs": [{"name": "t", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}, "takes 3"),
])
def test_bad_v2_requests_get_a_structured_400(served, body, message) -> None:
    _, client = served
    answer = client.post("/v2/models/price/infer", json=body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]["message"]


def test_deployment_changes_are_picked_up_without_a_restart(ws: keel.Workspace, tmp_path) -> None:
    split = toy_world(ws, n=600)
    first, second = register(ws, split), register(ws, split)
    ws.deployments.create("price", first.name)
    app = create_predictor_app(ws, log_folder=tmp_path / "log", reload_every_s=0.05, grace_s=0.1)

    def until(check) -> None:
        for _ in range(200):
            if check():
                return
            time.sleep(0.02)
        raise AssertionError("the change was not picked up")

    with TestClient(app) as client:
        ask = lambda name: client.post(f"/v1/endpoints/{name}/predict", json={"records": ROWS})  # noqa: E731
        assert ask("price").json()["model"] == first.name
        ws.deployments.shadow("price", second.name)
        ws.deployments.promote("price")
        until(lambda: ask("price").json()["model"] == second.name)
        ws.deployments.create("fresh", first.name)  # created while serving: served too
        until(lambda: ask("fresh").status_code == 200)
        ws.deployments.delete("price")
        until(lambda: ask("price").status_code == 404)
        assert client.get("/readyz").json()["deployments"] == ["fresh"]


def test_a_different_library_version_is_reported_and_refused_when_strict(served, ws, tmp_path, monkeypatch) -> None:
    from keel.serving import loader

    real = loader.metadata.version
    monkeypatch.setattr(loader.metadata, "version", lambda name: "0.0.1" if name == "scikit-learn" else real(name))
    with TestClient(create_predictor_app(ws, log_folder=tmp_path / "lenient")) as client:
        ready = client.get("/readyz").json()
        assert ready["ready"] and ready["requirement_drift"][0]["installed"] == "0.0.1"
        assert 'keel_requirement_drift{installed="0.0.1"' in client.get("/metrics").text
        assert client.post("/v1/endpoints/price/predict", json={"records": ROWS}).status_code == 200
    strict = create_predictor_app(ws, ["price"], log_folder=tmp_path / "strict", strict_requirements=True)
    with TestClient(strict) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "0.0.1" in ready.json()["problems"]["price"]
        refused = client.post("/v1/endpoints/price/predict", json={"records": ROWS})
        assert refused.status_code == 503 and "not loaded" in refused.json()["error"]["message"]
    ws.deployments.create("strict", "toy/1", strict_requirements=True)  # the endpoint itself says so
    ws.deployments.shadow("strict", "toy/2")
    assert ws.deployments.get("strict").current.policy["strict_requirements"]  # kept through changes
    with TestClient(create_predictor_app(ws, log_folder=tmp_path / "per-endpoint")) as client:
        ready = client.get("/readyz").json()
        assert ready["deployments"] == ["price"] and "0.0.1" in ready["problems"]["strict"]


def test_values_the_model_cannot_take_are_refused_per_its_signature_not_fallen_back_from(ws, tmp_path) -> None:
    split = toy_world(ws, n=600)
    plain = register(ws, split)  # a linear regression on the numbers: no missing value there
    declared = {c.name: c.nullable for c in ws.models.load(plain.name).signature.inputs}
    assert declared == {"x1": False, "x2": False, "cat": True}  # the encoder ignores an unknown (missing) category
    ws.deployments.create("price", plain.name, fallbacks=["baseline"])
    with TestClient(create_predictor_app(ws, log_folder=tmp_path / "log")) as client:
        rows = [dict(ROWS[0]), {**ROWS[1], "x2": None}]
        answer = client.post("/v1/endpoints/price/predict", json={"records": rows})
        assert answer.status_code == 422, answer.text
        assert "'x2' has missing values" in answer.json()["error"]["message"]
        body = json.dumps({"records": [ROWS[0]]}).replace(str(ROWS[0]["x2"]), "1e999")  # JSON has no Infinity
        infinite = client.post("/v1/endpoints/price/predict", content=body,
                               headers={"content-type": "application/json"})
        assert infinite.status_code == 400 and "infinity" in infinite.json()["error"]["message"]
        assert "keel_fallbacks_total{" not in client.get("/metrics").text  # refused, not answered by a fallback


def test_a_model_that_takes_missing_values_declares_them_nullable(ws) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    frame = toy_frame(200)
    model = HistGradientBoostingRegressor(max_iter=5).fit(frame[["x1", "x2"]], frame["y"])
    version = ws.models.register(model, "hgb", input_example=frame[["x1", "x2"]].head(5))
    assert all(c.nullable for c in ws.models.load(version.name).signature.inputs)  # it handles NaN itself


def test_the_sidecar_commits_the_log_and_runs_shadows_logged_under_the_primarys_request_id(ws, tmp_path) -> None:
    from serving_helpers import ConstantModel

    example = toy_frame(5)[FEATURES]
    fast = ws.models.register(ConstantModel(1.0), "const", flavor="python", input_example=example)
    slow = ws.models.register(ConstantModel(7.0, delay_s=0.3), "const", flavor="python", input_example=example)
    ws.deployments.create("c", fast.name)
    ws.deployments.shadow("c", slow.name)
    app = create_predictor_app(ws, log_folder=tmp_path / "log", trusted=True, commit_every_s=0.2, sidecar=True)
    with TestClient(app) as client:
        started = time.perf_counter()
        ids = [client.post("/v1/endpoints/c/predict", json={"records": ROWS}).json()["request_id"] for _ in range(5)]
        assert time.perf_counter() - started < 1.0  # five answers, not five waits for a 0.3 s shadow
        for _ in range(200):  # committed while serving, by the sidecar
            with contextlib.suppress(NotFound):  # the table's first commit may be under way
                if len(ws.data.read(LOG_TABLE)) >= 10:
                    break
            time.sleep(0.1)
        assert not list((tmp_path / "log").glob("*.closed"))  # nothing waits on the serving process to commit
    logged = ws.data.read(LOG_TABLE)
    shadow = logged[logged.kind == "shadow"]
    assert sorted(shadow.request_id) == sorted(ids) and set(shadow.model) == {slow.name}
    assert all(json.loads(o) == [7.0] * 3 for o in shadow.output) and (shadow.latency_ms >= 300).all()
    assert (tmp_path / "log-shadows" / "lock").exists()  # the child wrote through its own write-ahead log
