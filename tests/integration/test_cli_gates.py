"""``keel gates`` as a subprocess (issue 6): set, checklist, run, show, list and override on a workspace the SDK
built; ``run`` exits 0 when the report passed and 1 when a required test failed (what a CI step needs), bad input
exits 2 with one ``error:`` line, ``show --html`` writes the page. The same commands work against a server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from remote_server import start_team
from test_cli import Run, cmd, concurrently, keel_cli, ok, user_error

import keel
from gates_helpers import CHECKLIST, register, toy_world

TESTS = ["metric", "slice", "smoke", "invariance", "minimum_functionality", "directional", "leakage", "fairness"]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """toy/1 (good) and toy/2 (falls as x1 grows), a developer ``dev`` and an approver ``alice``; gates.yaml
    beside the workspace."""
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        split = toy_world(ws, 600)
        register(ws, split)
        register(ws, split, broken="anti_monotone")
        ws.users.add("dev", "developer")
        ws.users.add("alice", "approver")
    (tmp_path / "gates.yaml").write_text(CHECKLIST)
    return root


def gates(*args: object, cwd: Path, user: str = "dev") -> Run:
    return keel_cli("-w", cwd / "ws", "gates", *args, cwd=cwd, env={"KEEL_USER": user})


def lines_by_test(run: Run) -> dict[str, list[str]]:
    """Each test's line of a ``run``/``show`` table, split on runs of spaces."""
    lines = {}
    for line in run.out.splitlines():
        words = line.split()
        if words and words[0] in TESTS:
            assert words[0] not in lines, run.out  # one line per test
            lines[words[0]] = words
    return lines


def test_set_run_show_list_and_override(built: Path) -> None:
    here = built.parent
    first = ok(gates("set", "toy", "gates.yaml", "--reason", "the first checklist", cwd=here))
    assert first.out.startswith("stored: toy checklist v1 (8 tests, 7 required")
    again, shown, as_json = concurrently(*(lambda args=args: gates(*args, cwd=here) for args in (
        ("set", "toy", here / "gates.yaml"), ("checklist", "toy"), ("checklist", "toy", "--format", "json"))))
    assert ok(again).out.startswith("unchanged: toy checklist v1")
    assert all(name in ok(shown).out for name in TESTS) and "nice-to-have" in shown.out
    assert json.loads(ok(as_json).out)["version"] == 1

    passed = gates("run", "toy/1", cwd=here)
    assert passed.code == 0, passed.err
    lines = lines_by_test(passed)
    assert list(lines) == TESTS and all(words[2] == "passed" for words in lines.values())
    assert lines["fairness"][1] == "nice-to-have" and lines["metric"][1] == "required"
    assert passed.out.splitlines()[0].startswith("gate:") and " toy/1 PASSED: 8 passed" in passed.out

    failed = gates("run", "toy/2", cwd=here)
    assert failed.code == 1, failed.out + failed.err  # a required test failed: CI stops here
    lines = lines_by_test(failed)
    assert lines["directional"][1:3] == ["required", "failed"] and lines["smoke"][2] == "passed"
    assert "blocking: " in failed.out and "directional" in failed.out.split("blocking: ")[1]
    report = failed.out.split()[0].removeprefix("gate:")

    again, listed, listed_json = concurrently(
        cmd("-w", built, "gates", "run", "toy/2", "--format", "json", cwd=here),
        cmd("-w", built, "gates", "list", "toy", cwd=here),
        cmd("-w", built, "gates", "list", "toy/2", "--format", "json", cwd=here))
    assert again.code == 1 and json.loads(again.out)["reused"] and json.loads(again.out)["id"] == report
    assert report in ok(listed).out and "2 gate report(s)" in listed.out
    assert [r["id"] for r in json.loads(ok(listed_json).out)] == [report]

    page = here / "out" / "report.html"
    shown, shown_json = concurrently(cmd("-w", built, "gates", "show", f"gate:{report}", "--html", page, cwd=here),
                                     cmd("-w", built, "gates", "show", report, "--format", "json", cwd=here))
    assert lines_by_test(ok(shown))["directional"][2] == "failed" and f"wrote {page}" in shown.out
    assert page.is_file() and report in page.read_text() and "<html" in page.read_text()
    assert {"directional", "minimum_functionality"} <= set(json.loads(ok(shown_json).out)["blocking"])

    refused = gates("override", report, "--reason", "ship it", cwd=here)
    user_error(refused, "approver")
    blocked = keel_cli("-w", built, "models", "promote", "toy/2", "staging", cwd=here, env={"KEEL_USER": "dev"})
    user_error(blocked, "failed required gate test(s)")
    done = ok(gates("override", report, "--reason", "toys need not be monotone", cwd=here, user="alice"))
    assert f"gate:{report} (toy/2" in done.out and "overridden by alice: toys need not be monotone" in done.out
    ok(keel_cli("-w", built, "models", "promote", "toy/2", "staging", cwd=here, env={"KEEL_USER": "dev"}))
    assert "overridden by alice" in ok(gates("show", report, cwd=here)).out


def test_bad_input_is_one_error_line_and_exit_2(built: Path) -> None:
    here = built.parent
    (here / "unknown.yaml").write_text("tests:\n  - kind: vibes\n")
    (here / "baddate.yaml").write_text("tests:\n  - kind: smoke\nwhen: 2024-13-45\n")
    (here / "column.yaml").write_text("tests:\n  - kind: directional\n    column: x9\n    delta: 1\n")
    runs = concurrently(*(lambda args=args: gates(*args, cwd=here) for args in (
        ("run", "toy/1"),  # no checklist yet
        ("set", "toy", "missing.yaml"),
        ("set", "toy", "unknown.yaml"),
        ("set", "toy", "baddate.yaml"),
        ("set", "toy", "column.yaml"),
        ("set", "nope", "unknown.yaml"),
        ("show", "0123456789abcdef"),
        ("checklist", "toy", "--format", "xml"),
        ("override", "0123456789abcdef"),
        ("list", "--version", "2"),
    )))
    fragments = ["keel gates set toy", "no checklist file", "unknown kind 'vibes'", "not valid YAML",
                 "unknown column 'x9'", "unknown model 'nope'", "no gate report", "--format", "--reason",
                 "--version needs a MODEL"]
    for run, fragment in zip(runs, fragments, strict=True):
        user_error(run, fragment)
    with keel.open(built) as ws:
        assert ws.gates.checklists("toy") == []


def test_custom_tests_are_set_and_run_from_the_cli_on_the_workspace_machine(built: Path) -> None:
    here = built.parent
    (built / "checks.py").write_text("import keel\n\n\n@keel.custom_gate\ndef small_batch(ctx, limit):\n"
                                     "    rows = len(ctx.frame)\n"
                                     "    return keel.GateOutcome(passed=rows <= limit, value=rows, threshold=limit)\n")
    (here / "custom.yaml").write_text("tests:\n  - kind: custom\n    name: small batch\n"
                                      "    function: checks.py:small_batch\n    params: {limit: 5}\n")
    ok(gates("set", "toy", "custom.yaml", cwd=here))
    failed = gates("run", "toy/1", cwd=here)
    assert failed.code == 1 and "small batch" in failed.out and "failed" in failed.out, failed.out + failed.err


def test_the_same_commands_work_against_a_server(tmp_path: Path) -> None:
    with start_team(tmp_path / "server") as team:
        split = toy_world(team.ws, 600)
        register(team.ws, split)
        register(team.ws, split, broken="anti_monotone")
        (tmp_path / "gates.yaml").write_text(CHECKLIST)  # on the client: read there, sent as text

        def remote(*args: object, role: str = "developer") -> Run:
            return keel_cli("gates", *args, cwd=tmp_path, env={"KEEL_URL": team.url, "KEEL_TOKEN": team.tokens[role]})

        assert ok(remote("set", "toy", "gates.yaml")).out.startswith("stored: toy checklist v1")
        passed, failed = concurrently(lambda: remote("run", "toy/1"), lambda: remote("run", "toy/2"))
        assert passed.code == 0 and failed.code == 1, passed.err + failed.err
        assert lines_by_test(failed)["directional"][2] == "failed"
        report = failed.out.split()[0]
        user_error(remote("override", report, "--reason", "ship it"), "approver")
        ok(remote("override", report, "--reason", "accepted", role="approver"))
        page = tmp_path / "report.html"
        assert "overridden by alice" in ok(remote("show", report, "--html", page)).out
        assert report.removeprefix("gate:") in page.read_text()
        user_error(remote("run", "toy/1", "--trusted"), "trusted")
