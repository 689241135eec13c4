"""/api/v1/pipelines and /api/v1/pipeline-runs (issue 9): applied pipelines and their runs over REST. A run started
here is queued with the token's user as its ``api`` trigger and executed by the scheduler; an Idempotency-Key makes
a repeated request return the first run; only a failed run is retried. A viewer reads but cannot start or retry;
bad input is a structured 4xx, never a 500, and creates nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.pipelines.scheduler import Scheduler

from .api_helpers import api_error, call
from .conftest import Server

TRAINING = Path(__file__).parents[1] / "integration" / "pipeline_defs" / "training.py"


@pytest.fixture
def applied(server: Server) -> Server:
    """listings@0 and the pipelines of tests/integration/pipeline_defs/training.py."""
    rng = np.random.default_rng(0)
    server.ws.data.ingest(pd.DataFrame({"x": rng.normal(size=60), "y": rng.integers(0, 2, 60)}), "listings")
    server.ws.pipelines.apply(TRAINING)
    return server


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def _execute_queued(server: Server) -> list[int]:
    """What ``keel scheduler`` does with queued runs: one tick, inline."""
    scheduler = Scheduler(server.ws, holder="test", executor="inline", canaries=False)
    try:
        return scheduler.tick(wait=True).started
    finally:
        scheduler.close()


def test_a_viewer_reads_pipelines(applied: Server) -> None:
    listed = _ok(call(applied, "GET", "/pipelines", "viewer"))
    assert [(p["name"], p["version"], p["ref"]) for p in listed] == [
        ("chain", 1, "pipeline:chain@1"), ("flaky", 1, "pipeline:flaky@1"), ("procs", 1, "pipeline:procs@1"),
        ("train", 1, "pipeline:train@1"), ("wrong", 1, "pipeline:wrong@1")]
    train = _ok(call(applied, "GET", "/pipelines/train", "viewer"))
    assert [s["name"] for s in train["steps"]] == ["prepare", "count", "check", "report", "independent"]
    assert train["steps"][1]["inputs"] == {"split": "prepare"} and train["steps"][0]["output"] == "Split"
    assert [t["kind"] for t in train["triggers"]] == ["manual", "api"] and train["applied_by"] == "admin-user"
    assert train["description"] == "split, count, check, report"
    assert _ok(call(applied, "GET", "/pipelines/train", "viewer", version=1)) == train
    api_error(call(applied, "GET", "/pipelines/train", "viewer", version=2), 404, "NotFound")
    assert _ok(call(applied, "GET", "/pipelines/train/runs", "viewer")) == []
    api_error(call(applied, "GET", "/pipelines", None), 401)


def test_a_started_run_is_queued_as_the_caller_and_executed_by_the_scheduler(applied: Server,
                                                                            tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    started = _ok(call(applied, "POST", "/pipelines/train/runs", "developer", {"params": {"trace": str(trace)}}),
                  202)
    assert started["status"] == "queued" and started["created_by"] == "developer-user" and not started["force"]
    assert started["trigger"]["kind"] == "api" and started["trigger"]["by"] == "developer-user"
    assert started["params"]["steps"]["prepare"]["table"] == "table:listings@0"  # pinned when queued
    assert {s["status"] for s in started["steps"]} == {"pending"} and not trace.exists()  # not executed here
    forced = _ok(call(applied, "POST", "/pipelines/flaky/runs", "admin", {"force": True,
                                                                         "params": {"counter": str(tmp_path / "c")}}),
                 202)
    assert forced["force"] is True and forced["trigger"]["by"] == "admin-user"

    listed = _ok(call(applied, "GET", "/pipelines/train/runs", "viewer"))
    assert [(r["id"], r["status"]) for r in listed] == [(started["id"], "queued")]
    assert _ok(call(applied, "GET", "/pipelines/train/runs", "viewer", status="succeeded")) == []

    assert _execute_queued(applied) == [started["id"]]
    shown = _ok(call(applied, "GET", f"/pipeline-runs/{started['id']}", "viewer"))
    assert shown["status"] == "succeeded" and shown["created_by"] == "developer-user"
    steps = {s["step"]: s for s in shown["steps"]}
    assert steps["prepare"]["output"] == "split:toy-split@1"
    assert "splitting table:listings@0" in steps["prepare"]["logs"]
    assert ["prepare", "count"] in shown["edges"]
    assert sorted(trace.read_text().split()) == ["check", "count", "independent", "prepare", "report"]
    assert [r["status"] for r in _ok(call(applied, "GET", "/pipelines/train/runs", "viewer"))] == ["succeeded"]


def test_an_idempotency_key_starts_one_run_per_user(applied: Server) -> None:
    plain = _ok(call(applied, "POST", "/pipelines/train/runs", "developer", {}), 202)
    first = applied.client.post("/api/v1/pipelines/train/runs", json={"params": {"trace": "t"}},
                                headers={**applied.as_role("developer"), "Idempotency-Key": "nightly-42"})
    made = _ok(first, 202)
    assert made["status"] == "queued" and made["trigger"]["by"] == "developer-user"
    again = applied.client.post("/api/v1/pipelines/train/runs", json={"params": {"trace": "t"}},
                                headers={**applied.as_role("developer"), "Idempotency-Key": "nightly-42"})
    assert _ok(again, 200)["id"] == made["id"]  # the first run, not a second
    other_user = applied.client.post("/api/v1/pipelines/train/runs", json={},
                                     headers={**applied.as_role("admin"), "Idempotency-Key": "nightly-42"})
    assert _ok(other_user, 202)["id"] not in (made["id"], plain["id"])  # keys are per user
    runs = _ok(call(applied, "GET", "/pipelines/train/runs", "viewer"))
    assert len(runs) == 3  # the one without a key, nightly-42 of developer-user, nightly-42 of admin-user
    too_long = applied.client.post("/api/v1/pipelines/train/runs", json={},
                                   headers={**applied.as_role("developer"), "Idempotency-Key": "k" * 201})
    api_error(too_long, (400, 422), "InvalidInput")
    assert len(_ok(call(applied, "GET", "/pipelines/train/runs", "viewer"))) == 3


def test_an_idempotent_request_keeps_its_force_flag(applied: Server) -> None:
    """``force`` in the body of a request with an Idempotency-Key must reach the run, as it does without one."""
    made = _ok(applied.client.post("/api/v1/pipelines/train/runs", json={"force": True},
                                   headers={**applied.as_role("developer"), "Idempotency-Key": "forced-1"}), 202)
    assert made["force"] is True, made


def test_only_a_failed_run_is_retried(applied: Server, tmp_path: Path) -> None:
    flag = tmp_path / "refuse"
    flag.touch()
    failed = applied.ws.pipelines.run("train", {"fail_if": str(flag)}, executor="inline")
    assert failed.status == "failed"
    api_error(call(applied, "POST", f"/pipeline-runs/{failed.id}/retry", "viewer"), 403, "PermissionDenied")
    queued = _ok(call(applied, "POST", f"/pipeline-runs/{failed.id}/retry", "developer"), 202)
    assert (queued["id"], queued["status"], queued["attempt"]) == (failed.id, "queued", 2)
    steps = {s["step"]: s["status"] for s in queued["steps"]}
    assert steps == {"prepare": "succeeded", "independent": "succeeded", "count": "succeeded", "check": "pending",
                     "report": "pending"}  # finished steps keep their outputs
    api_error(call(applied, "POST", f"/pipeline-runs/{failed.id}/retry", "developer"), 409, "Conflict")  # queued

    flag.unlink()
    assert _execute_queued(applied) == [failed.id]
    done = _ok(call(applied, "GET", f"/pipeline-runs/{failed.id}", "viewer"))
    assert (done["status"], done["attempt"]) == ("succeeded", 2)
    conflict = api_error(call(applied, "POST", f"/pipeline-runs/{failed.id}/retry", "developer"), 409, "Conflict")
    assert "only a failed run is retried" in conflict["message"]
    api_error(call(applied, "POST", "/pipeline-runs/999/retry", "developer"), 404, "NotFound")


def test_refusals_are_structured_and_create_nothing(applied: Server) -> None:
    error = api_error(call(applied, "GET", "/pipelines/nope", "viewer"), 404, "NotFound")
    assert "no pipeline 'nope'" in error["message"]
    api_error(call(applied, "POST", "/pipelines/nope/runs", "developer", {}), 404, "NotFound")
    api_error(call(applied, "GET", "/pipelines/nope/runs", "viewer"), 404, "NotFound")
    api_error(call(applied, "GET", "/pipeline-runs/999", "viewer"), 404, "NotFound")
    api_error(call(applied, "GET", "/pipeline-runs/abc", "viewer"), (400, 422), "InvalidInput")
    api_error(call(applied, "POST", "/pipelines/train/runs", "developer", {"parms": {"trace": "t"}}), (400, 422),
              "InvalidInput")  # a misspelt field
    api_error(call(applied, "POST", "/pipelines/train/runs", "developer", {"params": ["trace"]}), (400, 422),
              "InvalidInput")
    api_error(call(applied, "POST", "/pipelines/train/runs", "developer", {"force": "maybe"}), (400, 422),
              "InvalidInput")
    unknown = api_error(call(applied, "POST", "/pipelines/train/runs", "developer", {"params": {"epochs": 3}}), 400,
                        "InvalidInput")
    assert "has no parameter epochs" in unknown["message"]
    api_error(call(applied, "POST", "/pipelines/train/runs", "viewer", {}), 403, "PermissionDenied")
    api_error(call(applied, "POST", "/pipelines/train/runs", None, {}), 401)
    assert applied.ws.pipelines.runs() == []
