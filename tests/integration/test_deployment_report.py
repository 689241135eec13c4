"""Deployment reports on real deployments (issue 7): answers from the deployed models go through the prediction
log's write-ahead path, feedback through ``ws.deployments.feedback``, and the report's numbers are checked
against numpy and scipy on the same values; the window follows the policy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from scipy import stats

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from keel.errors import InvalidInput, NotFound
from keel.serving.feedback import LOG_SCHEMA, LOG_TABLE
from keel.serving.interleaving import team_draft
from keel.serving.predlog import SegmentLog
from keel.serving.routing import route


@pytest.fixture
def world(any_ws: keel.Workspace):
    split = toy_world(any_ws, 600)
    register(any_ws, split)
    register(any_ws, split, broken="ignores_x1")  # toy/2: clearly worse
    return any_ws


def commit(ws: keel.Workspace, records: list[dict[str, Any]], folder: Path) -> None:
    """Rows into the log the way ``keel serve`` writes them: a segment, then one commit."""
    log = SegmentLog(folder, write=lambda rows: ws.data.write_batches([rows], LOG_TABLE, reason="prediction log"),
                     committed=lambda ids: [], schema=LOG_SCHEMA)
    log.append(records)
    log.commit()


def serve(ws: keel.Workspace, name: str, frame: pd.DataFrame, folder: Path, prefix: str) -> pd.DataFrame:
    """Answer each row of ``frame`` as one request, routed by the deployment's policy; log them."""
    deployment = ws.deployments.get(name)
    policy = deployment.routing()
    ids = [f"{prefix}{i}" for i in range(len(frame))]
    arms = [route(policy, key) for key in ids]
    models = {ref: ws.models.load(ref) for ref in deployment.models}
    predictions = np.empty(len(frame))
    for ref in {r.model for r in arms}:
        mask = np.array([r.model == ref for r in arms])
        predictions[mask] = models[ref].predict(frame.loc[mask, FEATURES])
    now = datetime.now(UTC).isoformat()
    answered = enumerate(zip(ids, arms, predictions, strict=True))
    commit(ws, [{"request_id": i, "at": now, "kind": "primary", "deployment": name, "arm": r.arm, "model": r.model,
                 "served_by": r.model, "output": orjson.dumps([float(p)]).decode(), "inputs": "[]",
                 "latency_ms": 1.0 + k % 7, "status": "ok"} for k, (i, r, p) in answered], folder)
    return pd.DataFrame({"request_id": ids, "arm": [r.arm for r in arms], "model": [r.model for r in arms],
                         "prediction": predictions, "y": frame["y"].to_numpy()})


def test_an_ab_report_compares_the_arms_on_their_labels_and_outcomes(world, tmp_path: Path) -> None:
    ws = world
    ws.deployments.create("api", "toy/1")
    before = serve(ws, "api", toy_frame(50, seed=1), tmp_path / "log0", "old-")  # the single policy's requests
    ws.deployments.ab("api", {"a": ("toy/1", 50), "b": ("toy/2", 50)})
    ws.deployments.pause("api", reason="a pause keeps the policy")
    ws.deployments.resume("api")
    served = serve(ws, "api", toy_frame(500, seed=2), tmp_path / "log1", "req-")
    accepted = ws.deployments.feedback("api", [{"request_id": r, "label": y}
                                               for r, y in zip(served.request_id, served.y, strict=True)])
    assert accepted == {"deployment": "api", "accepted": 500}
    rng = np.random.default_rng(3)
    served["converted"] = (rng.random(500) < np.where(served.arm == "a", 0.3, 0.1)).astype(int)
    ws.deployments.feedback("api", [{"request_id": r, "outcome": c} for r, c in
                                    zip(served.request_id, served.converted, strict=True)]
                            + [{"request_id": "never-answered", "outcome": 1}])
    report = ws.deployments.report("api")
    orjson.dumps(report)
    assert (report["deployment"], report["kind"], report["version"], report["requests"]) == ("api", "ab", 4, 500)
    assert [a["arm"] for a in report["arms"]] == ["a", "b"]  # the single policy's requests are before the window
    assert report["feedback"] == {"rows": 1001, "matched": 500, "unmatched": 1}
    errors = (served.prediction - served.y).abs()
    for arm in report["arms"]:
        mine = served[served.arm == arm["arm"]]
        assert (arm["model"], arm["requests"], arm["target_share"]) == (mine.model.iloc[0], len(mine), 0.5)
        assert arm["prediction"]["mean"] == pytest.approx(mine.prediction.mean())
        mae = next(m for m in arm["metrics"] if m["name"] == "mae")
        assert (mae["n"], mae["value"]) == (len(mine), pytest.approx(errors[mine.index].mean()))
        assert arm["metric"]["name"] == "outcome" and arm["metric"]["value"] == pytest.approx(mine.converted.mean())
    a, b = (served.arm == "a"), (served.arm == "b")
    expected = stats.ttest_ind(errors[b], errors[a], equal_var=False)
    mae_b = next(m for m in report["arms"][1]["metrics"] if m["name"] == "mae")
    assert mae_b["vs_control"]["p_value"] == pytest.approx(expected.pvalue)
    assert mae_b["vs_control"]["significant"] and mae_b["vs_control"]["difference"] > 0  # toy/2 is worse
    outcome_b = report["arms"][1]["vs_control"]
    assert outcome_b["p_value"] == pytest.approx(stats.ttest_ind(served.converted[b], served.converted[a],
                                                                 equal_var=False).pvalue)
    assert not report["srm"]["mismatch"] and sum(report["srm"]["observed"].values()) == 500
    wider = ws.deployments.report("api", since="1h")
    assert wider["requests"] == 550 and wider["srm"] is None
    assert wider["arms"][2]["arm"] == "primary" and wider["arms"][2]["requests"] == len(before)
    assert wider["arms"][2]["target_share"] is None
    assert ws.deployments.report("api", since=datetime.now(UTC))["requests"] == 0


def test_a_shadow_report_pairs_the_candidate_with_the_primary(world, tmp_path: Path) -> None:
    ws = world
    ws.deployments.create("api", "toy/1")
    ws.deployments.shadow("api", "toy/2")
    frame = toy_frame(120, seed=4)
    served = serve(ws, "api", frame, tmp_path / "log", "s-")
    candidate = ws.models.load("toy/2").predict(frame[FEATURES])
    now = datetime.now(UTC).isoformat()
    commit(ws, [{"request_id": r, "at": now, "kind": "shadow", "deployment": "api", "model": "toy/2",
                 "served_by": "toy/2", "output": orjson.dumps([float(p)]).decode(), "latency_ms": 3.0, "status": "ok"}
                for r, p in zip(served.request_id, candidate, strict=True)]
           + [{"request_id": "s-0", "at": now, "kind": "shadow", "deployment": "api", "model": "toy/2",
               "output": '{"error": "RuntimeError: boom"}', "latency_ms": 9.0, "status": "error"}], tmp_path / "log")
    ws.deployments.feedback("api", [{"request_id": r, "label": y} for r, y in
                                    zip(served.request_id[:60], served.y[:60], strict=True)])
    shadow = ws.deployments.report("api")["shadow"]
    difference = candidate - served.prediction.to_numpy()
    within = np.abs(difference) <= 0.01 * np.abs(served.prediction.to_numpy())
    model = shadow["models"]["toy/2"]
    assert (model["pairs"], model["agreement_rate"]) == (120, pytest.approx(within.mean()))
    assert model["difference"]["mean"] == pytest.approx(difference.mean())
    assert model["difference"]["max_abs"] == pytest.approx(np.abs(difference).max())
    assert model["metric"]["value"] == pytest.approx(np.abs(candidate[:60] - served.y[:60]).mean())
    assert shadow["latency"]["shadows"]["toy/2"] == {"p50": 3.0, "p99": pytest.approx(3.0), "calls": 121,
                                                     "errors": 1}


def test_interleaving_feedback_credits_the_drafting_model(world, tmp_path: Path) -> None:
    ws = world
    ws.deployments.create("rank", "toy/1")
    deployment = ws.deployments.interleave("rank", {"a": "toy/1", "b": "toy/2"})
    now = datetime.now(UTC).isoformat()
    records, clicks = [], []
    for i in range(60):
        key = f"q{i}"
        shown = team_draft([f"i{j}" for j in range(5)], [f"i{j}" for j in range(4, -1, -1)], seed=deployment.seed,
                           key=key)
        records.append({"request_id": key, "at": now, "kind": "primary", "deployment": "rank",
                        "arm": route(deployment.routing(), key).arm, "model": "toy/1", "served_by": "toy/1",
                        "output": orjson.dumps({"items": shown.items, "teams": shown.teams}).decode(),
                        "latency_ms": 2.0, "status": "ok"})
        wanted = "a" if i < 45 else "b"  # 45 requests click an item a drafted, 15 one of b's
        clicks.append({"request_id": key, "chosen": [shown.items[shown.teams.index(wanted)]]})
    commit(ws, records, tmp_path / "log")
    ws.deployments.feedback("rank", clicks)
    inter = ws.deployments.report("rank")["interleave"]
    assert (inter["impressions"], inter["with_feedback"], inter["wins"], inter["ties"]) == (60, 60,
                                                                                          {"a": 45, "b": 15}, 0)
    assert inter["p_value"] == pytest.approx(stats.binomtest(45, 60).pvalue) and inter["significant"]


def test_feedback_first_then_the_data_plane_and_bad_feedback_writes_nothing(world, tmp_path: Path) -> None:
    ws = world
    ws.deployments.create("api", "toy/1")
    assert ws.deployments.report("api")["requests"] == 0  # no log yet: an empty report
    ws.deployments.feedback("api", [{"request_id": "early", "label": 3.0}])  # before the answer is committed
    served = serve(ws, "api", toy_frame(5, seed=5).assign(y=3.0), tmp_path / "log", "early")  # ids early0..4
    ws.deployments.feedback("api", [{"request_id": "early0", "label": 3.0}])
    report = ws.deployments.report("api")
    assert report["feedback"] == {"rows": 2, "matched": 1, "unmatched": 1}
    assert report["arms"][0]["metric"]["value"] == pytest.approx(abs(served.prediction[0] - 3.0))
    version = ws.data.catalog.latest(LOG_TABLE).version
    with pytest.raises(InvalidInput, match="feedback item 1: outcome must be a finite number"):
        ws.deployments.feedback("api", [{"request_id": "x", "outcome": 1}, {"request_id": "y", "outcome": "high"}])
    with pytest.raises(NotFound):
        ws.deployments.feedback("nope", [{"request_id": "x", "outcome": 1}])
    with pytest.raises(InvalidInput, match="ISO time"):
        ws.deployments.report("api", since="last week")
    assert ws.data.catalog.latest(LOG_TABLE).version == version
