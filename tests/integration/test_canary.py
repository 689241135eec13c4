"""The canary controller: advances while the guardrails hold on the prediction log, promotes after the last
step, and rolls back to the stable version on a bad candidate, saying which guardrail failed and by how much."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
import pytest

import keel
from gates_helpers import register, toy_world
from keel.errors import InvalidInput
from keel.serving.app import LOG_SCHEMA, LOG_TABLE

GUARDRAILS = ["error_rate < 0.05", "p99_ms < 50", "mean_shift(prediction) < 0.2"]


@pytest.fixture
def canary(ws: keel.Workspace):
    split = toy_world(ws, n=600)
    stable, candidate = register(ws, split), register(ws, split)
    ws.deployments.create("api", stable.name)
    ws.deployments.canary("api", candidate.name, steps=[10, 50, 100], interval_s=60, guardrails=GUARDRAILS)
    return ws


def log(ws: keel.Workspace, arm: str, n: int, *, latency: float = 5.0, output: float = 20.0,
        failed: float = 0.0) -> None:
    now = datetime.now(UTC)
    rows = [{"request_id": f"{arm}-{now.timestamp()}-{i}", "at": now, "kind": "primary", "deployment": "api",
             "arm": arm, "model": "toy/x", "served_by": "toy/x",
             "reason": "ValueError: boom" if i < failed * n else None, "inputs": "[]",
             "output": orjson.dumps([output, output]).decode(), "latency_ms": latency, "status": "ok"}
            for i in range(n)]
    ws.data.write_batches([pa.Table.from_pylist(rows, schema=LOG_SCHEMA)], LOG_TABLE)


def later(ws: keel.Workspace, seconds: float = 61) -> datetime:
    return ws.deployments.get("api").current.at + timedelta(seconds=seconds)


def test_a_good_canary_advances_step_by_step_and_is_promoted(canary) -> None:
    ws = canary
    assert ws.deployments.check_canary("api", now=later(ws, 10)).action == "wait"  # the interval has not passed
    log(ws, "stable", 200)
    log(ws, "canary", 5)
    waiting = ws.deployments.check_canary("api", now=later(ws))
    assert waiting.action == "wait" and "5 request(s)" in waiting.reason
    log(ws, "canary", 40, output=21.0)  # within 20% of the stable mean
    first = ws.deployments.check_canary("api", now=later(ws))
    assert (first.action, first.step) == ("advance", 0.5) and ws.deployments.get("api").current.policy["step"] == 0.5
    log(ws, "stable", 100)
    log(ws, "canary", 100, output=20.5)
    assert ws.deployments.check_canary("api", now=later(ws)).action == "advance"
    log(ws, "canary", 50)
    final = ws.deployments.check_canary("api", now=later(ws))
    assert final.action == "promote"
    promoted = ws.deployments.get("api")
    assert promoted.kind == "single" and promoted.current.policy["arms"][0]["model"] == "toy/2"
    assert [v.action for v in ws.deployments.history("api")][-3:] == ["advance", "advance", "promote"]


@pytest.mark.parametrize(("bad", "guardrail"), [
    ({"failed": 0.3}, "error_rate < 0.05"),
    ({"latency": 120.0}, "p99_ms < 50"),
    ({"output": 60.0}, "mean_shift(prediction) < 0.2"),
])
def test_a_bad_canary_is_rolled_back_to_the_stable_version_with_the_reason(canary, bad, guardrail) -> None:
    ws = canary
    log(ws, "stable", 200)
    log(ws, "canary", 40, **bad)
    decision = ws.deployments.check_canary("api", now=later(ws))
    assert decision.action == "rollback" and decision.failed[0]["guardrail"] == guardrail
    back = ws.deployments.get("api")
    assert back.kind == "single" and back.current.policy["arms"][0]["model"] == "toy/1"
    assert back.current.policy["rolled_back"] == "toy/2" and guardrail in back.current.reason
    entry = ws.audit.list(action="deployment.rollback", limit=1)[0]
    assert guardrail in entry.reason
    with pytest.raises(InvalidInput, match="not an active canary"):
        ws.deployments.check_canary("api")


def test_a_guardrail_that_does_not_parse_is_refused_when_the_canary_is_set(ws: keel.Workspace) -> None:
    split = toy_world(ws, n=300)
    stable, candidate = register(ws, split), register(ws, split)
    ws.deployments.create("api", stable.name)
    with pytest.raises(InvalidInput, match="cannot read guardrail"):
        ws.deployments.canary("api", candidate.name, steps=[10], interval_s=60, guardrails=["errors are low"])
    assert ws.deployments.get("api").kind == "single"


def test_the_controller_runs_from_the_cli_and_over_http(canary, tmp_path) -> None:
    from remote_server import serving
    from test_cli import keel_cli, ok, user_error

    from keel.server.app import create_app

    ws = canary
    root = ws.settings.root
    waiting = ok(keel_cli("-w", root, "deploy", "check-canary", "api", cwd=tmp_path))
    assert waiting.out.startswith("wait: ") and "interval" in waiting.out
    user_error(keel_cli("-w", root, "deploy", "check-canary", "nope", cwd=tmp_path), "nope")
    with serving(create_app(ws, auth=False)) as url:
        remote = keel.open(url)
        decision = remote.deployments.check_canary("api", min_requests=5)
        assert decision.action == "wait" and decision.step == 0.1
        with pytest.raises(InvalidInput, match="server's time"):
            remote.deployments.check_canary("api", now=datetime.now(UTC))
