"""Monitors (issue 8) on a real data plane: predictions served by ``create_predictor_app`` land in the log, and a
monitor compares a window of it with the deployed version's training part: no drift for data like training,
the shifted column (and a new category, a new slice value, the prediction) for shifted data, "no data" for an
empty window; each run a numbered report with lineage; bad input refused with nothing stored."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from keel.errors import Conflict, InvalidInput, NotFound
from keel.serving.app import create_predictor_app


def mean_prediction(rows: pd.DataFrame) -> float:
    """A KPI: what the model said on average."""
    return float(rows["prediction"].mean())


def labelled_share(rows: pd.DataFrame) -> float:
    return float(rows["label"].notna().mean())


def broken_kpi(rows: pd.DataFrame) -> float:
    raise ValueError("no revenue column in " + ", ".join(rows.columns[:2]))


@pytest.fixture
def world(ws: keel.Workspace):
    split = toy_world(ws, n=4000)
    model = register(ws, split, metrics={"test.rmse": 1.0, "test.mae": 0.8, "validation.rmse": 9.0})
    ws.deployments.create("price", model.name)
    return ws, model


def serve(ws: keel.Workspace, frame: pd.DataFrame, folder: Path, batch: int = 250) -> list[dict]:
    """Every row of ``frame`` predicted through the data plane (its log is committed when the app stops); the
    answers."""
    app = create_predictor_app(ws, ["price"], log_folder=folder)
    answers = []
    with TestClient(app) as client:
        for start in range(0, len(frame), batch):
            rows = frame.iloc[start:start + batch][FEATURES].to_dict(orient="records")
            reply = client.post("/v1/endpoints/price/predict", json={"records": rows})
            assert reply.status_code == 200, reply.text
            answers.append(reply.json())
    return answers


def columns(report: keel.DriftReport, section: str = "overall") -> dict[str, dict]:
    return {c["column"]: c for c in report.results[section]["columns"]}


def test_a_window_like_training_does_not_drift_and_the_report_is_stored_with_lineage(world, tmp_path) -> None:
    ws, model = world
    monitor = ws.monitors.create("price-drift", "price", window="1h", slices=["cat"])
    assert (monitor.deployment, monitor.baseline, monitor.latest_report) == ("price", "training", 0)
    serve(ws, toy_frame(1500, seed=11), tmp_path / "log")
    report = ws.monitors.run("price-drift")
    assert (report.number, report.status, report.rows, report.model) == (1, "ok", 1500, model.name)
    assert not report.drifted and report.drifted_columns() == []
    found = columns(report)
    assert set(found) == set(FEATURES) and not any(c["drifted"] for c in found.values())
    assert "prediction" in columns(report, "prediction") and not report.results["prediction"]["drifted"]
    assert set(report.results["slices"]["cat"]) == {"a", "b", "c"}
    assert ws.monitors.report("price-drift").number == 1 and ws.monitors.get("price-drift").latest_report == 1
    upstream = ws.lineage.upstream(report.ref, depth=1).refs()
    assert {monitor.ref, model.ref, "deployment:price@1", f"table:predictions@{report.log_version}"} <= set(upstream)


def test_a_shifted_window_drifts_on_the_shifted_columns_its_new_category_and_the_prediction(world, tmp_path) -> None:
    ws, _ = world
    ws.monitors.create("price-drift", "price", window="1h", slices=["cat"])
    shifted = toy_frame(1500, seed=12)
    shifted["x1"] = shifted["x1"] + 6.0  # a mean shift of the most important input: the prediction shifts too
    shifted.loc[shifted.index[:300], "cat"] = "d"  # a category training never saw
    serve(ws, shifted, tmp_path / "log")
    report = ws.monitors.run("price-drift")
    found = columns(report)
    assert report.drifted and found["x1"]["drifted"] and not found["x2"]["drifted"]
    assert found["cat"]["new_categories"] == ["d"]
    assert report.results["prediction"]["drifted"]
    assert report.results["slices"]["cat"]["d"]["status"] == "new_value"
    assert report.results["slices"]["cat"]["a"]["columns"]  # the known values get their own comparison
    page = ws.monitors.html("price-drift")
    assert page.startswith("<!doctype html>") and "<script" not in page and "x1" in page and "<svg" in page
    with pytest.raises(NotFound):
        ws.monitors.html("price-drift", number=7)


def test_an_empty_window_is_no_data_not_zero_drift(world, tmp_path) -> None:
    ws, _ = world
    ws.monitors.create("price-drift", "price")
    serve(ws, toy_frame(50, seed=13), tmp_path / "log")
    report = ws.monitors.run("price-drift", window="2020-01-01T00:00Z..2020-01-02T00:00Z")
    assert (report.status, report.rows, report.drifted) == ("no_data", 0, False)
    assert ws.monitors.reports("price-drift")[0].status == "no_data"


def test_a_log_table_registered_but_not_yet_committed_reads_as_empty(world) -> None:
    """A serving process registers the log table (to allocate row ids) a moment before its first commit lands;
    readers in between see an empty log, never "unknown table"."""
    ws, _ = world
    ws.data.catalog.ensure_dataset("predictions", partition_by=[], time_column=None, key_columns=[], user="test")
    assert ws.deployments.log("price", pd.Timestamp("2020-01-01", tz="UTC").to_pydatetime()).num_rows == 0
    assert ws.deployments.report("price")["requests"] == 0
    assert ws.monitors.query_log().num_rows == 0
    ws.monitors.create("price-drift", "price")
    assert ws.monitors.run("price-drift").status == "no_data"
    with pytest.raises(NotFound, match="nothing has been logged yet"):
        ws.monitors.trace("0" * 32)


def test_bad_input_is_refused_and_nothing_is_stored(world) -> None:
    ws, _ = world
    with pytest.raises(NotFound, match="no deployment 'nope'"):
        ws.monitors.create("m", "nope")
    with pytest.raises(InvalidInput, match="slice column"):
        ws.monitors.create("m", "price", slices=["not_a_column"])
    with pytest.raises(InvalidInput):
        ws.monitors.create("m", "price", window="yesterday-ish")
    with pytest.raises(InvalidInput, match="share"):
        ws.monitors.create("m", "price", share=0)
    assert ws.monitors.list() == []
    ws.monitors.create("m", "price")
    with pytest.raises(Conflict):
        ws.monitors.create("m", "price")
    with pytest.raises(InvalidInput, match="ends before it starts"):
        ws.monitors.run("m", window="2024-01-02T00:00Z..2024-01-01T00:00Z")
    with pytest.raises(NotFound, match="no report yet"):
        ws.monitors.report("m")
    ws.monitors.delete("m")
    with pytest.raises(NotFound):
        ws.monitors.run("m")


def test_the_baseline_is_computed_once_and_reused(world, tmp_path) -> None:
    ws, _ = world
    ws.monitors.create("one", "price")
    ws.monitors.create("two", "price")  # same version, same columns: the stored sketch is reused
    stored = [k for k in ws.artifacts.list("monitoring/baselines/")]
    assert len(stored) == 1


def test_a_trace_tells_one_predictions_story(world, tmp_path) -> None:
    ws, model = world
    answers = serve(ws, toy_frame(3, seed=14), tmp_path / "log", batch=3)
    request_id = answers[0]["request_id"]
    ws.deployments.feedback("price", [{"request_id": request_id, "label": [1.0, 2.0, 3.0]}])
    found = ws.monitors.trace(request_id)
    assert found["request_id"] == request_id and found["deployment"] == "price"
    assert [set(r) for r in found["request"]] == [set(FEATURES)] * 3
    assert found["output"] == pytest.approx(answers[0]["predictions"])
    assert found["route"] == {"arm": "primary", "model": model.name, "served_by": model.name, "fallback": None}
    assert found["model"]["version"] == model.name and found["model"]["trained_on"].startswith("split:toy")
    assert any(r.startswith("table:toy@") for r in found["model"]["upstream"])  # the data it was trained on
    assert found["deployment_version"]["version"] == 1 and found["feedback"][0]["label"] == [1.0, 2.0, 3.0]
    with pytest.raises(NotFound, match="no prediction with request id"):
        ws.monitors.trace("it's-not-there")  # a quote in the id is data, not SQL


def test_the_log_is_searched_by_any_field_with_sql_that_cannot_read_files(world, tmp_path) -> None:
    ws, model = world
    serve(ws, toy_frame(40, seed=15), tmp_path / "log", batch=10)
    found = ws.monitors.query_log("deployment = 'price' and latency_ms >= 0 and kind = 'primary'",
                                  columns=["request_id", "at", "served_by"], limit=3)
    assert found.num_rows == 3 and set(found["served_by"].to_pylist()) == {model.name}
    assert found["at"].to_pylist() == sorted(found["at"].to_pylist(), reverse=True)  # newest first
    assert ws.monitors.query_log("deployment = 'other'").num_rows == 0
    with pytest.raises(InvalidInput):
        ws.monitors.query_log("latency_ms >>> 5")
    with pytest.raises(InvalidInput, match="no column"):
        ws.monitors.query_log(columns=["Conflict"])
    with pytest.raises(InvalidInput):
        ws.monitors.query_log("exists (select * from read_csv('/etc/passwd'))")


def test_labels_that_arrive_later_score_the_window_against_training_and_catch_a_concept_change(world,
                                                                                               tmp_path) -> None:
    ws, _ = world
    ws.monitors.create("perf", "price", window="1h", slices=["cat"])
    frame = toy_frame(400, seed=16)
    answers = serve(ws, frame, tmp_path / "log", batch=100)
    assert ws.monitors.run("perf").results["label"] == {"status": "no_labels"}
    truth = frame["y"].to_numpy()
    items = [{"request_id": a["request_id"], "label": truth[i * 100:(i + 1) * 100].tolist()}
             for i, a in enumerate(answers[:3])]  # three of four requests labelled, one row-aligned list each
    items.append({"request_id": "never-answered", "label": 1.0})
    ws.deployments.feedback("price", items)
    results = ws.monitors.run("perf").results
    found, labels = results["performance"], results["label"]
    assert (found["status"], found["rows"], found["task"], found["unmatched_labels"]) == ("ok", 300, "regression", 1)
    assert labels["status"] == "ok" and not labels["drifted"] and labels["columns"][0]["column"] == "label"
    assert found["metrics"]["rmse"] == pytest.approx(1.0, abs=0.25)  # the toy's noise is N(0, 1)
    assert {s["value"] for s in found["slices"]["cat"]} == {"a", "b", "c"}
    assert found["training"] == {"rmse": 1.0, "mae": 0.8}  # the test part's, preferred to validation's
    assert found["change"]["rmse"]["ratio"] == pytest.approx(found["metrics"]["rmse"])
    # the world changed: the same inputs now cost 10 more (concept drift, the features did not move)
    ws.deployments.feedback("price", [{"request_id": answers[3]["request_id"],
                                       "label": (truth[300:] + 10).tolist()}])
    results = ws.monitors.run("perf").results
    shifted = results["performance"]
    assert results["label"]["drifted"]  # label drift: the labels' distribution moved from training's
    assert shifted["rows"] == 400 and shifted["metrics"]["rmse"] > 4 and shifted["change"]["rmse"]["worse"]
    assert not ws.monitors.report("perf").drifted_columns()  # the inputs did not drift: only the labels tell


class Receiver:
    """A real HTTP server on a loopback port that keeps what is POSTed to it."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_an_alert_fires_after_its_windows_resolves_once_and_reaches_the_webhook(tmp_path) -> None:
    with keel.init(tmp_path / "ws", webhook_allow_private=True) as ws:  # the receiver is on loopback
        ws.deployments.create("price", register(ws, toy_world(ws, n=4000)).name)
        receiver = Receiver()
        try:
            ws.monitors.create("watch", "price", window="1h", webhook=receiver.url,
                               alerts=["drift(x1) > 0.1 for 2 windows", "rows < 1"])
            shifted = toy_frame(1500, seed=17)
            shifted["x1"] += 6.0
            serve(ws, shifted, tmp_path / "log")
            first, second = ws.monitors.run("watch"), ws.monitors.run("watch")
            empty = ws.monitors.run("watch", window="2020-01-01T00:00Z..2020-01-02T00:00Z")
        finally:
            receiver.close()
        assert [a["firing"] for a in first.results["alerts"]] == [False, False]  # one window of two
        assert [a["firing"] for a in second.results["alerts"]] == [True, False]
        assert [a["firing"] for a in empty.results["alerts"]] == [False, True]  # no data: x1 unknown, rows 0
        events = ws.monitors.alerts("watch")
        assert [(e.report, e.rule, e.state, e.webhook) for e in reversed(events)] == [
            (2, "drift(x1) > 0.1 for 2 windows", "firing", "sent"),
            (3, "drift(x1) > 0.1 for 2 windows", "resolved", "sent"), (3, "rows < 1", "firing", "sent")]
        assert [(r["rule"], r["state"], r["deployment"], r["report"]) for r in receiver.received] == [
            ("drift(x1) > 0.1 for 2 windows", "firing", "price", "monitor_report:watch/2"),
            ("drift(x1) > 0.1 for 2 windows", "resolved", "price", "monitor_report:watch/3"),
            ("rows < 1", "firing", "price", "monitor_report:watch/3")]


def test_a_private_webhook_is_refused_unless_the_workspace_allows_it(world) -> None:
    ws, _ = world
    with pytest.raises(InvalidInput, match="webhook_allow_private"):
        ws.monitors.create("m", "price", webhook="http://127.0.0.1:9/hook")
    with pytest.raises(InvalidInput, match="alert rule"):
        ws.monitors.create("m", "price", alerts=["psi > 1"])
    assert ws.monitors.list() == []


def test_labels_from_a_file_are_one_commit_and_score_the_window(world, tmp_path) -> None:
    ws, _ = world
    ws.monitors.create("perf", "price", window="1h")
    frame = toy_frame(60, seed=18)
    answers = serve(ws, frame, tmp_path / "log", batch=20)  # three requests of 20 rows
    ids = [a["request_id"] for a in answers for _ in range(20)]
    labels = pd.DataFrame({"request_id": ids, "position": list(range(20)) * 3, "truth": frame["y"].to_numpy()})
    labels.loc[5, "truth"] = None  # a missing label is skipped and counted
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    before = ws.data.version("predictions").version
    done = ws.monitors.ingest_labels("price", path, label="truth", row="position")
    assert done == {"deployment": "price", "requests": 3, "skipped_missing": 1}
    assert ws.data.version("predictions").version == before + 1  # one commit for every label
    found = ws.monitors.run("perf").results["performance"]
    assert found["rows"] == 59 and found["metrics"]["rmse"] == pytest.approx(1.0, abs=0.35)
    with pytest.raises(InvalidInput, match="several rows"):
        ws.monitors.ingest_labels("price", labels.drop(columns=["position"]), label="truth")
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        ws.monitors.ingest_labels("price", path, label="nope")
    with pytest.raises(NotFound):
        ws.monitors.ingest_labels("nowhere", path)
    assert ws.data.version("predictions").version == before + 1  # nothing written by a refused file


def test_kpis_and_service_health_per_window_a_failing_kpi_reported_the_others_computed(world, tmp_path) -> None:
    ws, _ = world
    ws.monitors.create("biz", "price", window="1h", kpis={"mean": mean_prediction, "broken": broken_kpi,
                                                         "labelled": "test_monitoring:labelled_share"},
                       alerts=["kpi(mean) > 0", "p99_ms > 100000", "fallback_rate > 0.5"])
    answers = serve(ws, toy_frame(100, seed=19), tmp_path / "log", batch=25)
    ws.deployments.feedback("price", [{"request_id": answers[0]["request_id"], "label": [1.0] * 25}])
    report = ws.monitors.run("biz")
    kpis = report.results["kpis"]
    expected = sum(sum(a["predictions"]) for a in answers) / 100
    assert kpis["mean"] == {"value": pytest.approx(expected)} and kpis["labelled"] == {"value": 0.25}
    assert kpis["broken"]["value"] is None and "ValueError: no revenue column" in kpis["broken"]["error"]
    service = report.results["service"]
    assert (service["requests"], service["fallback_rate"], service["served_by"]) == (4, 0.0, {"toy/1": 4})
    assert 0 < service["latency_ms"]["p50"] <= service["latency_ms"]["p99"] <= service["latency_ms"]["max"]
    assert [a["firing"] for a in report.results["alerts"]] == [True, False, False]
    with pytest.raises(InvalidInput, match="cannot import"):
        ws.monitors.create("bad", "price", kpis={"x": "no_such_module_here:f"})
    with pytest.raises(InvalidInput, match="top level"):
        ws.monitors.create("bad", "price", kpis={"x": lambda rows: 1.0})
