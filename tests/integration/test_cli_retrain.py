"""``keel retrain`` and ``keel deploy holdout`` as subprocesses (issue 9): a policy set from the command line, a
manual retrain run to review, the review printed, a developer refused and an approver approving; bad input exits 2
with one ``error:`` line and stores nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_cli import Run, keel_cli, ok, user_error
from test_retraining import later

import keel
from gates_helpers import register, toy_world

DEFS = Path(__file__).with_name("retrain_defs.py")


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """toy/1 deployed as ``price`` (with a baseline), its retraining pipeline applied, a month of new rows; users
    ``dev`` (developer) and ``alice`` (approver)."""
    root = tmp_path / "ws"
    shutil.copy(DEFS, tmp_path / "retrain_defs.py")
    shutil.copy(Path(__file__).parents[1] / "gates_helpers.py", tmp_path / "gates_helpers.py")
    with keel.init(root) as ws:
        ws.users.add("dev", "developer")
        ws.users.add("alice", "approver")
        split = toy_world(ws, 600)
        register(ws, split)
        ws.deployments.create("price", "toy/1", fallbacks=["baseline"])
        ws.gates.set_checklist("toy", {"tests": [{"kind": "metric", "conditions": ["rmse <= 5"]}]})
        ws.data.ingest(later(200, seed=31), "toy")
    ok(keel_cli("-w", root, "pipelines", "apply", tmp_path / "retrain_defs.py", cwd=tmp_path))
    return root


def retrain(*args: object, cwd: Path, user: str = "dev") -> Run:
    return keel_cli("-w", cwd / "ws", "retrain", *args, cwd=cwd, env={"KEEL_USER": user, "PYTHONPATH": str(cwd)})


def test_a_policy_a_manual_retrain_its_review_and_an_approval(built: Path) -> None:
    here = built.parent
    made = ok(retrain("policy", "set", "toy-manual", "--deployment", "price", "--pipeline", "toy-retrain", "--when",
                      "manual()", "--data", "all", "--canary-steps", "50,100", "--canary-interval", "1s",
                      "--holdout", "0.1", "--no-guard", cwd=here)).out
    assert "retrain_policy:toy-manual on deployment price" in made
    listed = json.loads(ok(retrain("policy", "list", "--json", cwd=here)).out)
    assert [p["name"] for p in listed] == ["toy-manual"] and listed[0]["holdout"] == 0.1
    started = ok(retrain("start", "toy-manual", "--reason", "a new month", "--executor", "inline", cwd=here)).out
    assert "retrain:1 (toy-manual): pending_review" in started and "candidate toy/2" in started
    review = ok(retrain("review", "1", cwd=here)).out
    assert "why: a new month" in review and "data: all" in review and "candidate: toy/2 vs serving toy/1" in review
    assert "on approve: approve toy/2 for production and start a canary" in review
    refused = retrain("approve", "1", "--reason", "fine", cwd=here)
    assert "approver" in user_error(refused, "approv")
    approved = json.loads(ok(retrain("approve", "1", "--reason", "gates passed", "--json", cwd=here,
                                     user="alice")).out)
    assert approved["status"] == "approved" and approved["decision"]["by"] == "alice"
    with keel.open(built) as ws:
        assert ws.deployments.get("price").kind == "canary"


@pytest.mark.parametrize(("args", "needle"), [
    (["policy", "set", "p", "--deployment", "price", "--pipeline", "toy-retrain", "--when", "sometimes()"],
     "unknown condition"),
    (["policy", "set", "p", "--deployment", "price", "--pipeline", "toy-retrain", "--when", "manual()", "--data",
      "last(soon)"], "duration"),
    (["policy", "set", "p", "--deployment", "nope", "--pipeline", "toy-retrain", "--when", "manual()"], "nope"),
    (["start", "missing", "--reason", "x"], "missing"),
    (["review", "retrain:x"], "not a retrain id"),
])
def test_bad_input_is_one_line_and_exit_2(built: Path, args: list[str], needle: str) -> None:
    user_error(retrain(*args, cwd=built.parent), needle)
    with keel.open(built) as ws:
        assert ws.retraining.policies() == [] and ws.retraining.list() == []


def test_deploy_holdout_needs_a_baseline_and_a_share_in_range(built: Path) -> None:
    here = built.parent
    deploy = lambda *a: keel_cli("-w", built, "deploy", *a, cwd=here, env={"KEEL_USER": "dev"})  # noqa: E731
    assert '"holdout": 0.2' in ok(deploy("holdout", "price", "--share", "0.2", "--format", "json")).out
    user_error(deploy("holdout", "price", "--share", "0.9"), "0.5")
