"""Pipelines and retraining through a keel server (issue 9): the remote SDK returns the embedded records; runs and
retrains started remotely are queued and executed by the server's scheduler; a viewer reads but cannot set a
policy or start a run, a developer cannot approve, an approver can; bad input is a 4xx with the same error.

A real uvicorn server on a free loopback port (``remote_server.start_team``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from remote_server import Team, start_team
from test_retraining import CANARY, later

from gates_helpers import register, toy_world
from keel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from keel.pipelines.model import PipelineInfo, PipelineRun
from keel.pipelines.scheduler import Scheduler
from keel.retraining.model import Retrain, RetrainPolicy

DEFS = Path(__file__).with_name("retrain_defs.py")


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Team]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with start_team(tmp_path / "server", metadata_url=url) as started:
        split = toy_world(started.ws, 800)
        register(started.ws, split)
        started.ws.deployments.create("price", "toy/1", fallbacks=["baseline"])
        started.ws.gates.set_checklist("toy", {"tests": [{"kind": "metric", "conditions": ["rmse <= 5"]}]})
        started.ws.pipelines.apply(DEFS)
        yield started


def test_a_remote_retrain_is_queued_run_by_the_scheduler_and_decided_by_an_approver(team: Team) -> None:
    developer, approver, viewer = team.remote("developer"), team.remote("approver"), team.remote("viewer")
    assert [p.name for p in viewer.pipelines.list()] == ["toy-retrain"]
    assert isinstance(viewer.pipelines.get("toy-retrain"), PipelineInfo)
    with pytest.raises(PermissionDenied):
        viewer.retraining.create_policy("toy-manual", "price", "toy-retrain", when=["manual()"])
    made_policy = developer.retraining.create_policy(
        "toy-manual", "price", "toy-retrain", when=["manual()"], data="all", source="toy", canary=CANARY,
        max_influenced=None, holdout=0.1)
    assert isinstance(made_policy, RetrainPolicy) and made_policy.spec["holdout"] == 0.1
    assert developer.retraining.policy("toy-manual").spec == team.ws.retraining.policy("toy-manual").spec
    assert developer.deployments.get("price").current.policy["holdout"] == 0.1
    team.ws.data.ingest(later(200, seed=21), "toy")
    queued = developer.retraining.start("toy-manual", reason="the new month is in")
    assert isinstance(queued, Retrain) and queued.status == "running" and queued.pipeline_run is not None
    assert developer.pipelines.show(queued.pipeline_run).status == "queued"
    with pytest.raises(Conflict):
        developer.retraining.start("toy-manual", reason="again")  # one open retrain per policy
    scheduler = Scheduler(team.ws, holder="server-scheduler", executor="inline", canaries=False)
    scheduler.tick(wait=True)  # runs the queued pipeline
    scheduler.tick(wait=True)  # moves the retrain on: gated, pending review
    scheduler.close()
    pending = developer.retraining.get(queued.id)
    assert pending.status == "pending_review", pending.evidence
    review = viewer.retraining.review(queued.id)
    assert review["candidate"] == pending.candidate and review["gate_report"]["status"] == "passed"
    with pytest.raises(PermissionDenied):
        developer.retraining.approve(queued.id, reason="looks good")
    approved = approver.retraining.approve(queued.id, reason="gates passed")
    assert approved.status == "approved" and approved.decision["by"] == "alice"
    assert team.ws.deployments.get("price").kind == "canary"
    assert [r.id for r in viewer.retraining.list("toy-manual")] == [queued.id]
    run = viewer.pipelines.show(queued.pipeline_run)
    assert isinstance(run, PipelineRun) and run.status == "succeeded" and run.trigger["kind"] == "retrain"
    assert ("split", "train") in run.edges


def test_remote_runs_are_queued_with_the_callers_identity_and_bad_input_is_refused(team: Team) -> None:
    developer, viewer = team.remote("developer"), team.remote("viewer")
    queued = developer.pipelines.enqueue("toy-retrain", {"where": "x1 > 5"})
    assert queued.status == "queued" and queued.trigger["kind"] == "api" and queued.trigger["by"] == "dev"
    assert queued.params["given"] == {"where": "x1 > 5"}
    with pytest.raises(PermissionDenied):
        viewer.pipelines.enqueue("toy-retrain")
    with pytest.raises(InvalidInput, match="no parameter"):
        developer.pipelines.enqueue("toy-retrain", {"nope": 1})
    with pytest.raises(NotFound):
        developer.pipelines.enqueue("missing")
    with pytest.raises(InvalidInput, match="imports their code"):
        developer.pipelines.apply(DEFS)
    with pytest.raises(InvalidInput, match="unknown condition"):
        developer.retraining.create_policy("bad", "price", "toy-retrain", when=["whenever()"])
    with pytest.raises(Conflict):
        developer.pipelines.retry(queued.id)  # only a failed run is retried
    assert [r.id for r in viewer.pipelines.runs("toy-retrain")] == [queued.id]
