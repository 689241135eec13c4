"""``keel deploy`` as a subprocess (issue 7): create, shadow, canary, promote, rollback, A/B, interleave, pause,
resume, status, history, list and delete on a workspace the SDK built; bad input exits 2 with one ``error:``
line. The same commands work against a server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from remote_server import start_team
from test_cli import Run, concurrently, keel_cli, ok, user_error

import keel
from gates_helpers import register, toy_world
from keel.cli.deploy import parse_duration
from keel.errors import InvalidInput
from keel.serving.feedback import LOG_SCHEMA, LOG_TABLE


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """toy/1 and toy/2, a developer ``dev``; the endpoint ``api`` serving toy/1."""
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        split = toy_world(ws, 600)
        register(ws, split)
        register(ws, split)
        ws.users.add("dev", "developer")
        ws.acting_as("dev").deployments.create("api", "toy/1")
    return root


def deploy(*args: object, cwd: Path) -> Run:
    return keel_cli("-w", cwd / "ws", "deploy", *args, cwd=cwd, env={"KEEL_USER": "dev"})


def test_each_command(built: Path) -> None:
    here = built.parent
    made = ok(deploy("create", "price", "--model", "toy/1", "--fallback", "toy/2", "--fallback", "baseline",
                     "--reason", "first", cwd=here))
    assert made.out.startswith("deployment:price@1 single active (create by dev") and "fallback 2" in made.out
    assert "shadow" in ok(deploy("shadow", "price", "--candidate", "toy/2", "--sample", "0.5", cwd=here)).out
    canary = ok(deploy("canary", "price", "--candidate", "toy/2", "--steps", "5,25,50,100", "--interval", "10m",
                       "--guardrail", "error_rate < 0.01", "--guardrail", "p99_ms < 50", cwd=here))
    assert "every 10m" in canary.out and "error_rate < 0.01; p99_ms < 50" in canary.out and "95%" in canary.out
    promoted = json.loads(ok(deploy("promote", "price", "--reason", "held", "--format", "json", cwd=here)).out)
    assert promoted["current"]["policy"]["arms"][0]["model"] == "toy/2" and promoted["current"]["reason"] == "held"
    assert "canary" in ok(deploy("rollback", "price", "--reason", "undo", cwd=here)).out
    ab = ok(deploy("ab", "price", "--variant", "a=toy/1:70", "--variant", "b=toy/2:30", "--sticky-key", "host_id",
                   cwd=here))
    assert "70%" in ab.out and "30%" in ab.out and "sticky on host_id" in ab.out
    assert "interleaved" in ok(deploy("interleave", "price", "--variant", "a=toy/1", "--variant", "b=toy/2",
                                      cwd=here)).out
    assert " paused" in ok(deploy("pause", "price", "--reason", "incident", cwd=here)).out
    assert " active" in ok(deploy("resume", "price", cwd=here)).out
    status, status_json, history, listed, listed_json = concurrently(*(
        lambda args=args: deploy(*args, cwd=here) for args in (
            ("status", "price"), ("status", "price", "--format", "json"), ("history", "price"), ("list",),
            ("list", "--format", "json"))))
    assert ok(status).out.startswith("deployment:price@9 interleave active")
    assert json.loads(ok(status_json).out)["current"]["version"] == 9
    assert all(action in ok(history).out for action in ("create", "shadow", "canary", "promote", "rollback",
                                                        "pause", "resume", "incident"))
    assert "2 deployment(s)" in ok(listed).out
    assert [d["name"] for d in json.loads(ok(listed_json).out)] == ["api", "price"]
    assert ok(deploy("delete", "price", "--reason", "retired", cwd=here)).out.strip() == "deleted deployment price"
    with keel.open(built) as ws:
        assert [d.name for d in ws.deployments.list()] == ["api"]
        assert ws.audit.list(action="deployment.delete", limit=1)[0].actor == "dev"


def test_bad_input_is_one_error_line_and_exit_2(built: Path) -> None:
    here = built.parent
    runs = concurrently(*(lambda args=args: deploy(*args, cwd=here) for args in (
        ("ab", "api", "--variant", "toy/1:50"),
        ("ab", "api", "--variant", "a=toy/1", "--variant", "b=toy/2:50"),
        ("ab", "api", "--variant", "a=toy/1:half", "--variant", "b=toy/2:50"),
        ("interleave", "api", "--variant", "a"),
        ("canary", "api", "--candidate", "toy/2", "--steps", "5,25", "--interval", "10 minutes"),
        ("canary", "api", "--candidate", "toy/2", "--steps", "5,x", "--interval", "10m"),
        ("canary", "api", "--candidate", "toy/2", "--steps", "50,25", "--interval", "10m"),
        ("create", "api", "--model", "toy/1"),
        ("status", "nope"),
        ("promote", "api"),
        ("list", "--format", "xml"),
        ("create", "prod", "--model", "toy/1", "--production"),
    )))
    fragments = ["ARM=MODEL", "ARM=MODEL:WEIGHT", "not a number", "ARM=MODEL", "--interval", "--steps",
                 "rising percentages", "exists", "no deployment 'nope'", "only a canary or a shadow", "--format",
                 "no production approval"]
    for run, fragment in zip(runs, fragments, strict=True):
        user_error(run, fragment)
    with keel.open(built) as ws:
        assert len(ws.deployments.history("api")) == 1


def log_answers(root: Path, name: str, outputs: list[float]) -> None:
    """Answered requests r0, r1, ... of endpoint ``name`` in the prediction log, as ``keel serve`` writes them."""
    now = datetime.now(UTC)
    rows = [{"request_id": f"r{i}", "at": now, "kind": "primary", "deployment": name, "arm": "primary",
             "model": "toy/1", "served_by": "toy/1", "output": json.dumps([v]), "latency_ms": 2.0 + i, "status": "ok"}
            for i, v in enumerate(outputs)]
    with keel.open(root) as ws:
        ws.data.write_batches([pa.Table.from_pylist(rows, schema=LOG_SCHEMA)], LOG_TABLE)


def test_report_and_feedback(built: Path) -> None:
    here = built.parent
    log_answers(built, "api", [10.0, 20.0, 30.0, 40.0])
    assert ok(deploy("feedback", "api", "--request-id", "r0", "--label", "12", cwd=here)).out.strip() == \
        "recorded 1 feedback item(s) for api"
    lines = here / "feedback.jsonl"
    lines.write_text('{"request_id": "r1", "label": 21}\n\n{"request_id": "r2", "label": 33}\n'
                     '{"request_id": "lost", "outcome": 1}\n')
    assert "recorded 3 feedback" in ok(deploy("feedback", "api", "--file", lines, cwd=here)).out
    table, as_json = concurrently(*(lambda args=args: deploy(*args, cwd=here) for args in (
        ("report", "api"), ("report", "api", "--format", "json", "--since", "1h"))))
    out = ok(table).out
    assert out.startswith("deployment:api@1 single: 4 request(s) from ") and "toy/1" in out
    assert "mae 2 [" in out and "(3)" in out and "1 request id(s) unmatched" in out
    found = json.loads(ok(as_json).out)
    arm = found["arms"][0]
    assert (arm["requests"], arm["metric"]["name"], arm["metric"]["n"]) == (4, "mae", 3)
    assert arm["metric"]["value"] == pytest.approx(2.0) and found["feedback"]["unmatched"] == 1
    bad = concurrently(*(lambda args=args: deploy(*args, cwd=here) for args in (
        ("feedback", "api", "--request-id", "r1"),
        ("feedback", "api", "--request-id", "r1", "--label", "3", "--outcome", "1"),
        ("feedback", "api", "--request-id", "r1", "--outcome", "high"),
        ("feedback", "api", "--file", here / "missing.jsonl"),
        ("feedback", "api", "--file", lines, "--request-id", "r1"),
        ("feedback", "nope", "--request-id", "r1", "--outcome", "1"),
        ("report", "api", "--since", "yesterday"),
        ("report", "nope"),
    )))
    fragments = ["exactly one of --label", "exactly one of --label", "outcome must be a finite number",
                 "cannot read", "not both", "no deployment 'nope'", "ISO time", "no deployment 'nope'"]
    for run, fragment in zip(bad, fragments, strict=True):
        user_error(run, fragment)


def test_durations() -> None:
    assert [parse_duration(t) for t in ("30s", "10m", "1h", "2d", "90", "1.5h")] == [30, 600, 3600, 172800, 90,
                                                                                     5400]
    for bad in ("", "10 minutes", "m", "-5m", "1w"):
        with pytest.raises(InvalidInput, match="duration"):
            parse_duration(bad)


def test_the_same_commands_work_against_a_server(tmp_path: Path) -> None:
    with start_team(tmp_path / "server") as team:
        split = toy_world(team.ws, 600)
        register(team.ws, split)
        register(team.ws, split)

        def remote(*args: object, role: str = "developer") -> Run:
            return keel_cli("deploy", *args, cwd=tmp_path, env={"KEEL_URL": team.url, "KEEL_TOKEN": team.tokens[role]})

        ok(remote("create", "api", "--model", "toy/1"))
        ok(remote("canary", "api", "--candidate", "toy/2", "--steps", "10,100", "--interval", "1h"))
        assert ok(remote("watch", "--once")).out.startswith("api: wait: ")  # the controller's pass, at the server
        user_error(remote("pause", "api", role="viewer"), "viewer")
        ok(remote("feedback", "api", "--request-id", "r0", "--outcome", "1"))
        user_error(remote("feedback", "api", "--request-id", "r0", "--outcome", "1", role="viewer"), "viewer")
        assert json.loads(ok(remote("report", "api", "--format", "json", role="viewer")).out)["feedback"] == {
            "rows": 1, "matched": 0, "unmatched": 1}
        assert "deployment:api@3 single" in ok(remote("promote", "api")).out
        assert [v.action for v in team.ws.deployments.history("api")] == ["create", "canary", "promote"]
        assert team.ws.deployments.get("api").current.by == "dev"
