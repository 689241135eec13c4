"""Retraining with human oversight (issue 9) on the toy world, through a real data plane: a drift streak fires its
policy once; the retrain trains on the declared window, gates the candidate and waits; approval starts a canary,
rejection leaves the deployment alone; no new data, an empty window, a failed required gate and a window
dominated by the model's own influence are each refused with a reason; automatic approval only where allowed."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from keel.errors import Conflict, GatesFailed, InvalidInput, PermissionDenied
from keel.pipelines.scheduler import Scheduler
from keel.serving.app import create_predictor_app
from keel.serving.routing import HOLDOUT

DEFS = Path(__file__).with_name("retrain_defs.py")
DRIFT = "drift(x1, windows=1)"
CANARY = {"steps": [50.0, 100.0], "interval_s": 1.0, "guardrails": ["error_rate < 0.01"]}


@pytest.fixture
def world(ws: keel.Workspace):
    split = toy_world(ws, n=3000)
    model = register(ws, split)
    ws.deployments.create("price", model.name, fallbacks=["baseline"])
    ws.monitors.create("watch", "price", window="1h")
    ws.pipelines.apply(DEFS)
    ws.gates.set_checklist("toy", {"tests": [{"kind": "metric", "conditions": ["rmse <= 5"]}]})
    ws.users.add(ws.user, "approver", reason="reviews its own retrains in these tests")
    return ws, model


def later(n: int, seed: int, *, shift: float = 0.0, after: str = "2024-06-01") -> pd.DataFrame:
    """Toy rows listed after the training data (ts from ``after``), x1 shifted by ``shift``."""
    frame = toy_frame(n, seed=seed)
    frame["ts"] = pd.date_range(after, periods=n, freq="h", tz="UTC")
    frame["id"] = frame["id"] + 1_000_000 * seed
    frame["x1"] = frame["x1"] + shift
    frame["y"] = frame["y"] + 3 * shift
    return frame


def serve(ws: keel.Workspace, frame: pd.DataFrame, folder: Path, *, labels: bool = True) -> list[dict]:
    """``frame`` predicted through the data plane, one request per row (keyed by id); labels sent after."""
    app = create_predictor_app(ws, ["price"], log_folder=folder)
    answers = []
    with TestClient(app) as client:
        for _, row in frame.iterrows():
            reply = client.post("/v1/endpoints/price/predict", json={"records": [row[FEATURES].to_dict()]},
                                headers={"x-keel-key": str(row["id"])})
            assert reply.status_code == 200, reply.text
            answers.append(reply.json())
    if labels:
        ws.monitors.ingest_labels("price", pa.table({"request_id": [a["request_id"] for a in answers],
                                                     "label": frame["y"].astype(float).tolist()}))
    return answers


def policy(ws: keel.Workspace, **options) -> keel.RetrainPolicy:
    spec = {"when": [DRIFT], "data": "since_drift_start", "source": "toy", "time_column": "ts", "canary": CANARY,
            "max_influenced": None, **options}
    return ws.retraining.create_policy("toy-drift", "price", "toy-retrain", **spec)


def retrain_now(ws: keel.Workspace, made: keel.Retrain) -> keel.Retrain:
    """What the scheduler does with a fired retrain: run its pipeline, then move it on."""
    assert made.status == "running" and made.pipeline_run is not None, made
    ws.pipelines.execute(made.pipeline_run, executor="inline")
    return ws.retraining.progress(made.id)


def test_a_drift_streak_fires_once_retrains_on_its_window_and_waits_for_a_person(world, tmp_path) -> None:
    ws, model = world
    policy(ws)
    serve(ws, later(150, seed=3, after="2024-05-10"), tmp_path / "a")  # quiet: like training
    assert ws.monitors.run("watch").drifted is False
    assert ws.retraining.evaluate() == []
    boundary = ws.data.read("toy", columns=["ts"])["ts"].max()
    shifted = later(400, seed=4, shift=6.0)
    ws.data.ingest(shifted, "toy")  # the drifted month arrives, then is served
    serve(ws, shifted.iloc[:150], tmp_path / "b")
    assert ws.monitors.run("watch").drifted
    fired = ws.retraining.evaluate()
    assert [r.trigger["kind"] for r in fired] == ["drift"] and fired[0].status == "running"
    assert fired[0].trigger["condition"] == DRIFT and fired[0].trigger["base_model"] == model.name
    made = retrain_now(ws, fired[0])
    assert made.status == "pending_review", made.evidence
    window = made.window
    assert window["kind"] == "since_drift_start" and window["rows"] == len(shifted)
    trained_on = ws.data.read("toy_window")
    assert len(trained_on) == len(shifted) and (trained_on["ts"] > boundary).all()  # exactly the declared window
    assert made.candidate and made.candidate != model.name and made.gate_report
    review = ws.retraining.review(made.id)
    comparison = review["evidence"]["comparison"]
    assert comparison["serving"] == model.name and comparison["on"].startswith("split:")
    rmse = next(m for m in comparison["metrics"] if m["metric"] == "rmse")
    assert rmse["candidate"] < rmse["serving"]  # on the drifted rows, the retrained model is the better one
    assert "canary" in review["on_approve"] and review["serving"] == model.name
    assert f"retrain:{made.id}" in ws.lineage.upstream(ws.models.version(made.candidate).ref).refs()
    serve(ws, shifted.iloc[150:300], tmp_path / "c")  # the drift goes on: the same streak fires nothing new
    assert ws.monitors.run("watch").drifted
    assert ws.retraining.evaluate() == []
    before = ws.deployments.get("price").current.version
    rejected = ws.retraining.reject(made.id, reason="trained on too little of the new data")
    assert rejected.status == "rejected" and rejected.decision["by"] == ws.user
    assert ws.deployments.get("price").current.version == before  # production untouched
    assert ws.retraining.evaluate() == []  # the same event never fires twice, even with nothing open
    with pytest.raises(Conflict):
        ws.retraining.approve(made.id, reason="changed my mind")


def test_approval_starts_a_canary_of_the_candidate_and_is_recorded(world) -> None:
    ws, _ = world
    policy(ws, when=["manual()"], data="all")
    ws.data.ingest(later(300, seed=5), "toy")
    made = ws.retraining.start("toy-drift", reason="a new month of data", executor="inline")
    assert made.status == "pending_review" and made.trigger["kind"] == "manual"
    approved = ws.retraining.approve(made.id, reason="gates passed; better on the new month")
    deployment = ws.deployments.get("price")
    assert deployment.kind == "canary" and deployment.current.policy["arms"][1]["model"] == made.candidate
    assert approved.status == "approved" and approved.decision["canary"] == deployment.ref
    version = ws.models.version(made.candidate)
    assert ws.models.approvals(version.model, version.version, environment="production")
    assert any(e.action == "retrain.approve" for e in ws.audit.list(target=made.ref))


def test_no_new_data_says_so_and_does_nothing(world) -> None:
    ws, _ = world
    policy(ws, when=["manual()"], data="all")
    made = ws.retraining.start("toy-drift", reason="just because", executor="inline")
    assert made.status == "no_new_data" and made.pipeline_run is None
    assert "no version newer" in made.evidence["message"]
    assert ws.pipelines.runs("toy-retrain") == []


def test_an_empty_window_is_refused_before_anything_runs(world) -> None:
    ws, _ = world
    policy(ws, when=["manual()"], data="ts >= TIMESTAMPTZ '2024-03-01 00:00:00+00'")  # holds rows today
    ws.data.ingest(toy_frame(50, seed=6), "toy", mode="overwrite")  # a restatement: only January is left
    made = ws.retraining.start("toy-drift", reason="try", executor="inline")
    assert made.status == "refused" and "holds no rows" in made.evidence["error"]
    assert ws.pipelines.runs("toy-retrain") == []


def test_a_failed_required_gate_blocks_approval_unless_overridden(world) -> None:
    ws, _ = world
    ws.gates.set_checklist("toy", {"tests": [{"kind": "metric", "conditions": ["rmse <= 0.0001"]}]})
    policy(ws, when=["manual()"], data="all")
    ws.data.ingest(later(300, seed=7), "toy")
    made = ws.retraining.start("toy-drift", reason="a new month", executor="inline")
    assert made.status == "pending_review" and made.evidence["gates"]["releasable"] is False
    with pytest.raises(GatesFailed):
        ws.retraining.approve(made.id, reason="looks fine to me")
    assert ws.deployments.get("price").kind == "single"
    approved = ws.retraining.approve(made.id, reason="the threshold is wrong for toy data", override=True)
    assert approved.decision["override"] is True
    assert ws.gates.report(made.gate_report.removeprefix("gate:")).override is not None


def test_the_feedback_loop_guard_refuses_a_window_of_the_models_own_outcomes_unless_overridden(world, tmp_path):
    ws, _ = world
    policy(ws, when=["manual()"], data="all", max_influenced=0.8)
    ws.data.ingest(later(120, seed=8), "toy")
    serve(ws, later(120, seed=8), tmp_path / "a")  # every label is an outcome the model answered
    refused = ws.retraining.start("toy-drift", reason="weekly", executor="inline")
    assert refused.status == "refused" and "feedback loop" in refused.evidence["error"]
    assert refused.window["guard"]["share"] == 1.0 and refused.window["guard"]["labelled"] == 120
    made = ws.retraining.start("toy-drift", reason="weekly", override_guard="the model does not steer toy outcomes",
                               executor="inline")
    assert made.status == "pending_review"
    assert made.window["guard"]["overridden"]["reason"] == "the model does not steer toy outcomes"


def test_a_holdout_answers_its_share_with_the_baseline_and_the_guard_counts_it(world, tmp_path) -> None:
    ws, _ = world
    policy(ws, when=["manual()"], data="all", max_influenced=0.8, holdout=0.4)
    assert ws.deployments.get("price").current.policy["holdout"] == 0.4
    frame = later(200, seed=9)
    ws.data.ingest(frame, "toy")
    answers = serve(ws, frame, tmp_path / "a")
    held = [a for a in answers if a["arm"] == HOLDOUT]
    assert 0.25 < len(held) / len(answers) < 0.55
    baseline = ws.deployments.get("price").current.policy["baseline"]["value"]
    assert all(a["predictions"] == [pytest.approx(baseline)] for a in held)  # the model did not answer them
    made = ws.retraining.start("toy-drift", reason="weekly", executor="inline")
    guard = made.window["guard"]
    assert made.status == "pending_review" and guard["holdout"] == len(held) and guard["share"] < 0.8
    report = ws.monitors.run("watch")
    assert report.rows == len(answers) - len(held)  # the monitor watches the model's answers only


def test_automatic_approval_only_where_allowed_and_recorded_as_the_policys(world) -> None:
    ws, model = world
    policy(ws, when=["manual()"], data="all", auto_approve=True)
    ws.data.ingest(later(300, seed=10), "toy")
    made = ws.retraining.start("toy-drift", reason="nightly", executor="inline")
    assert made.status == "approved" and made.decision["automatic"] and made.decision["by"] == "policy:toy-drift"
    assert ws.deployments.get("price").kind == "canary"
    ws.gates.run(model.name)
    ws.deployments.create("prod", model.name, production=True, override=True, reason="a production endpoint")
    with pytest.raises(PermissionDenied):
        ws.retraining.create_policy("prod-auto", "prod", "toy-retrain", when=["manual()"], auto_approve=True)
    with pytest.raises(PermissionDenied):
        ws.retraining.create_policy("prod-auto", "prod", "toy-retrain", when=["manual()"], auto_approve=True,
                                    canary={"guardrails": []}, allow_production_auto=True)


@pytest.mark.parametrize(("options", "message"), [
    ({"when": ["drift(x1, threshold=-1)"]}, "positive"),
    ({"when": ["retrain_when_sad()"]}, "unknown condition"),
    ({"when": ["schedule('61 * * * *')"]}, "cron"),
    ({"when": ["performance(auc)"]}, "unknown metric"),
    ({"when": []}, "at least one condition"),
    ({"data": "last(abc)"}, "duration"),
    ({"how": "sideways"}, "from_scratch or warm_start"),
    ({"max_influenced": 1.5}, "max_influenced"),
    ({"canary": {"steps": [50.0, 10.0]}}, "rising"),
    ({"data": "x1 > 1000"}, "holds no rows"),
    ({"data": "no_such_column > 1"}, "no_such_column"),
])
def test_bad_policies_are_refused_and_nothing_is_stored(world, options, message) -> None:
    ws, _ = world
    with pytest.raises(InvalidInput, match=message):
        policy(ws, **options)
    assert ws.retraining.policies() == []


def test_a_pipeline_without_a_where_parameter_cannot_retrain(world, tmp_path) -> None:
    ws, _ = world
    module = tmp_path / "plain.py"
    module.write_text("from keel.pipelines import Pipeline, step\n\n@step\ndef one() -> int:\n    return 1\n\n"
                      "plain = Pipeline('plain', [one])\n")
    ws.pipelines.apply(module)
    with pytest.raises(InvalidInput, match="where"):
        ws.retraining.create_policy("p", "price", "plain", when=["manual()"])


def test_volume_fires_once_per_batch_of_new_labels(world, tmp_path) -> None:
    ws, _ = world
    policy(ws, when=["volume(100)"], data="all")
    frame = later(60, seed=11)
    ws.data.ingest(frame, "toy")
    serve(ws, frame, tmp_path / "a")
    assert ws.retraining.evaluate() == []  # 60 < 100
    serve(ws, later(60, seed=12), tmp_path / "b")
    fired = ws.retraining.evaluate()
    assert len(fired) == 1 and fired[0].trigger["labelled"] == 120
    retrain_now(ws, fired[0])
    ws.retraining.reject(fired[0].id, reason="not now")
    assert ws.retraining.evaluate() == []  # the labels counted since the last retrain: 0 new


def test_the_scheduler_runs_each_monitor_once_per_closed_window_back_to_back(world, tmp_path) -> None:
    ws, _ = world
    monitor = ws.monitors.get("watch")
    serve(ws, later(40, seed=13), tmp_path / "a", labels=False)
    scheduler = Scheduler(ws, holder="s1", executor="inline", canaries=False)
    assert scheduler.tick(now=monitor.created_at + timedelta(minutes=30)).monitored == []  # the hour is not over
    first = scheduler.tick(now=monitor.created_at + timedelta(minutes=61)).monitored
    assert first == ["monitor_report:watch/1"]
    assert scheduler.tick(now=monitor.created_at + timedelta(minutes=62)).monitored == []  # once per window
    second = scheduler.tick(now=monitor.created_at + timedelta(minutes=125)).monitored
    reports = ws.monitors.reports("watch")
    assert second == ["monitor_report:watch/2"] and reports[0].window_start == reports[1].window_end
    assert reports[1].window_start == monitor.created_at and reports[1].rows == 40
    scheduler.close()


def test_one_decision_per_candidate_and_no_policy_deleted_under_an_open_retrain(world) -> None:
    ws, _ = world
    policy(ws, when=["manual()"], data="all")
    ws.data.ingest(later(300, seed=14), "toy")
    made = ws.retraining.start("toy-drift", reason="a new month", executor="inline")
    with pytest.raises(Conflict, match="reject or finish"):
        ws.retraining.delete_policy("toy-drift")
    ws.users.add("bob", "approver")
    deciders = [ws.acting_as(ws.user), ws.acting_as("bob")]
    outcomes: list[object] = []

    def decide(view: keel.Workspace, approve: bool) -> None:
        try:
            outcomes.append(view.retraining.approve(made.id, reason="ok") if approve else
                            view.retraining.reject(made.id, reason="no"))
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=decide, args=(view, i == 0)) for i, view in enumerate(deciders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    decided = [o for o in outcomes if isinstance(o, keel.Retrain)]
    assert len(decided) == 1 and len(outcomes) == 2  # approve and reject at once: one wins, the other is refused
    final = ws.retraining.get(made.id)
    assert final.status == decided[0].status
    assert (ws.deployments.get("price").kind == "canary") == (final.status == "approved")
    ws.retraining.delete_policy("toy-drift", reason="done with it")
    assert ws.retraining.policies() == []
