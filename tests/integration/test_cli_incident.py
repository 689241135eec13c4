"""``keel incident`` as a subprocess (issue 8): timeline (table and JSON), create, list, show and note on a workspace
whose deployment served predictions, was put on a canary and rolled back; bad input exits 2 with one ``error:`` line
and stores nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import Run, concurrently, keel_cli, ok, user_error
from test_monitoring import serve

import keel
from gates_helpers import register, toy_frame, toy_world


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """toy/1 deployed as ``price``, 300 predictions in its log, a canary of toy/2 rolled back; a developer ``dev``."""
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        ws.users.add("dev", "developer")
        split = toy_world(ws, 600)
        register(ws, split)
        ws.deployments.create("price", "toy/1")
        serve(ws, toy_frame(300, seed=3), tmp_path / "log")
        register(ws, split)
        ws.deployments.canary("price", "toy/2", steps=[20], interval_s=60)
        ws.deployments.rollback("price", reason="looked wrong")
    return root


def incident(*args: object, cwd: Path) -> Run:
    return keel_cli("-w", cwd / "ws", "incident", *args, cwd=cwd, env={"KEEL_USER": "dev"})


def test_each_command(built: Path) -> None:
    here = built.parent
    table = ok(incident("timeline", "--deployment", "price", "--from", "1h", cwd=here)).out
    assert "deployment:price@3" in table and "rollback" in table and "model:toy/2" in table
    found = json.loads(ok(incident("timeline", "--deployment", "price", "--from", "1h", "--json", cwd=here)).out)
    actions = [e["details"]["action"] for e in found["events"] if e["kind"] == "deployment"]
    assert actions == ["create", "canary", "rollback"] and found["versions"] == [1, 2, 3]
    assert found["traffic"]["requests"] == 2  # the test client sent 300 rows in 2 requests
    made = json.loads(ok(incident("create", "--deployment", "price", "--from", "1h", "--title", "bad canary",
                                  "--severity", "high", "--note", "first look", "--format", "json", cwd=here)).out)
    assert (made["id"], made["severity"], made["created_by"]) == (1, "high", "dev")
    assert [n["text"] for n in made["notes"]] == ["first look"] and made["timeline"]["events"] == found["events"]
    ok(incident("note", "1", "rolled back at 14:05", cwd=here))
    listed, shown, shown_json = concurrently(
        lambda: incident("list", "--json", cwd=here), lambda: incident("show", "incident:1", cwd=here),
        lambda: incident("show", "1", "--json", cwd=here))
    assert [(i["id"], len(i["notes"])) for i in json.loads(ok(listed).out)] == [(1, 2)]
    text = ok(shown).out
    assert "bad canary" in text and "rolled back at 14:05" in text and "rollback" in text
    assert [n["text"] for n in json.loads(ok(shown_json).out)["notes"]] == ["first look", "rolled back at 14:05"]


def test_bad_input_exits_2_with_one_line(built: Path) -> None:
    here = built.parent
    results = concurrently(
        lambda: incident("timeline", "--deployment", "nope", "--from", "1h", cwd=here),
        lambda: incident("timeline", "--deployment", "price", "--from", "2024-01-02", "--to", "2024-01-01",
                         cwd=here),
        lambda: incident("timeline", "--deployment", "price", "--from", "whenever", cwd=here),
        lambda: incident("create", "--deployment", "price", "--from", "1h", "--title", " ", cwd=here),
        lambda: incident("create", "--deployment", "price", "--from", "1h", "--title", "t", "--severity", "sev1",
                         cwd=here),
        lambda: incident("show", "9", cwd=here),
        lambda: incident("note", "9", "text", cwd=here),
        lambda: incident("list", "--format", "xml", cwd=here))
    user_error(results[0], "no deployment 'nope'")
    user_error(results[1], "not before")
    user_error(results[2], "--from 'whenever'")
    user_error(results[3], "title")
    user_error(results[4], "severity")
    user_error(results[5], "no incident")
    user_error(results[6], "no incident")
    user_error(results[7], "--format")
    assert json.loads(ok(incident("list", "--json", cwd=here)).out) == []
