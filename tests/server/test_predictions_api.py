"""/api/v1/predictions (issue 7): batch scoring over REST, as the token's user and with the developer
permission; bad input as a structured 4xx (never a 500) that writes nothing; a model needing trust is refused.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from gates_helpers import FEATURES, RaisingModel, register, toy_frame, toy_world  # tests/ is on sys.path
from keel.server.security import api_routes, permission_of

from .api_helpers import api_error as _error
from .conftest import Server


@pytest.fixture
def toy(server: Server) -> Server:
    """The toy table (600 rows) and the linear model toy/1."""
    register(server.ws, toy_world(server.ws, 600))
    return server


def _score(server: Server, role: str | None, body: Any) -> Any:
    return server.client.post("/api/v1/predictions", headers=server.as_role(role), json=body)


def test_the_one_route_needs_the_developer_role(toy: Server) -> None:
    routes = {(m, re.sub(r"\{[^}]+\}", "x", r.path), permission_of(r))
              for r in api_routes(toy.client.app.fastapi) if "predictions" in (r.tags or []) for m in r.methods}
    assert routes == {("POST", "/api/v1/predictions", "write")}
    body = {"model": "toy/1", "input": "toy", "output": "scored"}
    _error(_score(toy, None, body), 401, "Unauthenticated")
    _error(_score(toy, "viewer", body), 403, "PermissionDenied")
    assert not toy.ws.tables.exists("scored")


def test_a_table_is_scored_as_the_tokens_user(toy: Server) -> None:
    made = _score(toy, "developer", {"model": "toy@latest", "input": "toy@0", "output": "scored", "chunk_rows": 250,
                                     "keep": ["id", "y"], "reason": "nightly"})
    assert made.status_code == 201, made.text
    result = made.json()
    assert (result["model"], result["input"], result["output"], result["rows"], result["chunks"]) == (
        "toy/1", "table:toy@0", "table:scored@0", 600, 3)
    assert result["columns"] == ["id", "y", "input_row_id", "prediction", "model", "scored_at"]
    assert result["mode"] == "append" and result["scored_at"].endswith("+00:00")
    assert toy.ws.data.read_arrow("scored").num_rows == 600
    entry = toy.ws.audit.list(action="predictions.score", limit=1)[0]
    assert (entry.actor, entry.reason, entry.target) == ("developer-user", "nightly", "table:scored@0")
    assert "table:toy@0" in toy.ws.lineage.upstream("table:scored@0", 1).refs()
    again = _score(toy, "developer", {"model": "toy/1", "input": "toy", "output": "scored", "keep": ["id"],
                                      "mode": "overwrite"})
    assert again.status_code == 201 and again.json()["output"] == "table:scored@1"


def test_bad_requests_are_structured_4xx_and_write_nothing(toy: Server) -> None:
    ws = toy.ws
    ws.data.ingest(toy_frame(5)[["id", "x1"]], "partial")
    ws.models.register(RaisingModel(), "raiser", flavor="python", input_example=toy_frame(5)[FEATURES])
    good = {"model": "toy/1", "input": "toy", "output": "out"}
    cases = [
        ({**good, "model": "nope"}, 404, "NotFound"),
        ({**good, "model": "toy/9"}, 404, "NotFound"),
        ({**good, "input": "nope"}, 404, "NotFound"),
        ({**good, "input": "toy@9"}, 404, "NotFound"),
        ({**good, "input": "partial"}, 422, "SignatureMismatch"),
        ({**good, "output": "../escape"}, 400, "InvalidRef"),
        ({**good, "output": "toy"}, 400, "InvalidInput"),
        ({**good, "chunk_rows": 0}, 400, "InvalidInput"),
        ({**good, "chunk_rows": 2**40}, 400, "InvalidInput"),
        ({**good, "chunk_rows": "100"}, 400, "InvalidInput"),
        ({**good, "mode": "replace"}, 400, "InvalidInput"),
        ({**good, "keep": ["id", "nope"]}, 400, "InvalidInput"),
        ({**good, "keep": "id"}, 400, "InvalidInput"),
        ({**good, "trusted": True}, 400, "InvalidInput"),  # not a field: the server never trusts
        ({**good, "model": "raiser/1"}, 403, "UntrustedModel"),
        ({"model": "toy/1", "input": "toy"}, 400, "InvalidInput"),
        ({**good, "model": ""}, 400, "InvalidInput"),
    ]
    for body, status, kind in cases:
        error = _error(_score(toy, "developer", body), status, kind)
        if kind == "UntrustedModel":
            assert "never loads a model that needs trust" in error["message"]
        if kind == "SignatureMismatch":
            assert "x2, cat" in error["message"] and error["details"]["missing"] == ["x2", "cat"]
    assert [t.name for t in ws.data.tables()] == ["partial", "toy"]
    assert ws.audit.list(action="predictions.score") == []
