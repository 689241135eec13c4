"""``keel predict`` as a subprocess (issue 7): batch scoring on a workspace the SDK built, in the table and JSON
formats; bad input exits 2 with one ``error:`` line and writes nothing. The same command works against a server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from remote_server import start_team
from test_cli import Run, concurrently, keel_cli, ok, user_error

import keel
from gates_helpers import register, toy_world


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """The toy table (600 rows) and model toy/1; a developer ``dev``."""
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        register(ws, toy_world(ws, 600))
        ws.users.add("dev", "developer")
    return root


def predict(*args: object, cwd: Path) -> Run:
    return keel_cli("-w", cwd / "ws", "predict", *args, cwd=cwd, env={"KEEL_USER": "dev"})


def test_scoring_prints_what_it_wrote(built: Path) -> None:
    here = built.parent
    made = ok(predict("toy@latest", "--input", "toy@0", "--output", "scored", "--chunk-rows", "250",
                      "--keep", "id,y", "--reason", "nightly", cwd=here))
    assert made.out.startswith("table:scored@0: 600 row(s) of table:toy@0 scored by toy/1 in 3 chunk(s)")
    assert "columns: id, y, input_row_id, prediction, model, scored_at" in made.out
    again = json.loads(ok(predict("toy/1", "-i", "toy", "-o", "scored", "--columns", "id", "--columns", "y",
                                  "--mode", "overwrite", "--format", "json", cwd=here)).out)
    assert (again["output"], again["rows"], again["chunks"], again["mode"]) == ("table:scored@1", 600, 1, "overwrite")
    with keel.open(built) as ws:
        assert ws.data.read_arrow("scored").column_names == again["columns"]
        entry = ws.audit.list(action="predictions.score", limit=2)[-1]
        assert (entry.actor, entry.reason, entry.target) == ("dev", "nightly", "table:scored@0")
        assert "model:toy/1" in ws.lineage.upstream("table:scored@1").refs()


def test_bad_input_is_one_error_line_and_exit_2(built: Path) -> None:
    here = built.parent
    runs = concurrently(*(lambda args=args: predict(*args, cwd=here) for args in (
        ("nope", "--input", "toy", "--output", "out"),
        ("toy/1", "--input", "nope", "--output", "out"),
        ("toy/1", "--input", "toy@9", "--output", "out"),
        ("toy/1", "--input", "toy", "--output", "bad/name"),
        ("toy/1", "--input", "toy", "--output", "out", "--chunk-rows", "0"),
        ("toy/1", "--input", "toy", "--output", "out", "--mode", "replace"),
        ("toy/1", "--input", "toy", "--output", "out", "--keep", "id,nope"),
        ("toy/1", "--input", "toy", "--output", "toy"),
        ("toy/1", "--input", "toy", "--output", "out", "--format", "xml"),
        ("toy/1", "--output", "out"),
    )))
    fragments = ["nope", "nope", "no version 9", "invalid output table name", "chunk_rows", "invalid mode",
                 "no column(s) nope", "must differ", "--format", "--input"]
    for run, fragment in zip(runs, fragments, strict=True):
        user_error(run, fragment)
    with keel.open(built) as ws:
        assert [t.name for t in ws.data.tables()] == ["toy"]


def test_the_same_command_works_against_a_server(tmp_path: Path) -> None:
    with start_team(tmp_path / "server") as team:
        register(team.ws, toy_world(team.ws, 600))

        def remote(*args: object, role: str = "developer") -> Run:
            return keel_cli("predict", *args, cwd=tmp_path, env={"KEEL_URL": team.url, "KEEL_TOKEN": team.tokens[role]})

        user_error(remote("toy/1", "--input", "toy", "--output", "out", role="viewer"), "viewer")
        user_error(remote("toy/1", "--input", "toy", "--output", "out", "--trusted"), "trust")
        assert "table:out@0: 600 row(s)" in ok(remote("toy/1", "--input", "toy", "--output", "out")).out
        assert team.ws.audit.list(action="predictions.score", limit=1)[0].actor == "dev"
