"""Batch scoring through a keel server (issue 7): the same user code, embedded and remote, scores the same rows
and returns the same ``ScoringResult``; the same errors for bad input, and nothing written by a refused job.

A real uvicorn server on a free loopback port (``remote_server.start_team``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from remote_server import Team, start_team

from gates_helpers import FEATURES, RaisingModel, register, toy_frame, toy_world
from keel.errors import InvalidInput, InvalidRef, NotFound, PermissionDenied, SignatureMismatch, UntrustedModel
from keel.remote.predictions import RemotePredictionService
from keel.serving.batch import PredictionService, ScoringResult


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Team]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with start_team(tmp_path / "server", metadata_url=url) as started:
        register(started.ws, toy_world(started.ws, 600))
        yield started


def user_code(ws: Any, output: str) -> list[ScoringResult]:
    """What an engineer writes, unchanged whichever workspace ``ws`` is."""
    return [
        ws.predictions.score("toy@latest", input="toy@0", output=output, chunk_rows=200, reason="nightly"),
        ws.predictions.score("toy/1", input="toy", output=output, keep=["id"], mode="overwrite"),
    ]


def test_the_same_code_scores_the_same_rows(team: Team) -> None:
    embedded, remote = team.embedded("developer"), team.remote("developer")
    try:
        here, there = user_code(embedded, "here"), user_code(remote, "there")
        for mine, theirs in zip(here, there, strict=True):
            assert isinstance(theirs, ScoringResult) and theirs.scored_at.tzinfo is not None
            assert (theirs.model, theirs.input, theirs.rows, theirs.chunks, theirs.columns, theirs.mode) == (
                mine.model, mine.input, mine.rows, mine.chunks, mine.columns, mine.mode)
            assert theirs.output == mine.output.replace("here", "there")
        rows = [team.ws.data.read(t).sort_values("id")[["id", "prediction", "model"]].reset_index(drop=True)
                for t in ("here", "there")]
        assert rows[0].equals(rows[1])
        assert [e.actor for e in team.ws.audit.list(action="predictions.score")] == ["dev"] * 4
        assert "model:toy/1" in remote.lineage.upstream("table:there@0").refs()
    finally:
        remote.close()


def test_the_same_rules_hold_embedded_and_remote(team: Team) -> None:
    team.ws.data.ingest(toy_frame(5)[["id", "x1"]], "partial")
    team.ws.models.register(RaisingModel(), "raiser", flavor="python", input_example=toy_frame(5)[FEATURES])
    developer, viewer = team.remote("developer"), team.remote("viewer")
    try:
        for ws in (developer, team.embedded("developer")):
            with pytest.raises(NotFound):
                ws.predictions.score("toy/9", input="toy", output="out")
            with pytest.raises(NotFound):
                ws.predictions.score("toy/1", input="nope", output="out")
            with pytest.raises(SignatureMismatch, match="x2, cat"):
                ws.predictions.score("toy/1", input="partial", output="out")
            with pytest.raises(InvalidRef):
                ws.predictions.score("toy/1", input="toy", output="no/slashes")
            with pytest.raises(InvalidInput, match="chunk_rows"):
                ws.predictions.score("toy/1", input="toy", output="out", chunk_rows=0)
            with pytest.raises(InvalidInput, match="mode"):
                ws.predictions.score("toy/1", input="toy", output="out", mode="replace")
            with pytest.raises(InvalidInput, match="list of column names"):
                ws.predictions.score("toy/1", input="toy", output="out", keep="id")
            with pytest.raises(UntrustedModel):
                ws.predictions.score("raiser/1", input="toy", output="out")
        with pytest.raises(InvalidInput, match="never loads a model that needs trust"):
            developer.predictions.score("raiser/1", input="toy", output="out", trusted=True)
        with pytest.raises(PermissionDenied):
            viewer.predictions.score("toy/1", input="toy", output="out")
        assert not team.ws.tables.exists("out")
    finally:
        developer.close()
        viewer.close()


def test_the_remote_service_has_every_method_of_the_embedded_one_with_the_same_parameters() -> None:
    def methods(cls: type) -> dict[str, list[str]]:
        return {name: list(inspect.signature(f).parameters) for name, f in vars(cls).items()
                if callable(f) and not name.startswith("_")}

    assert methods(RemotePredictionService) == methods(PredictionService)
