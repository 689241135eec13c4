"""/api/v1/deployments (issue 7): what ``ws.deployments`` does, over REST, with the right permission per route;
a create → shadow → canary → promote → rollback walk, and bad input as a structured 4xx, never a 500.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from gates_helpers import register, toy_world  # tests/ is on sys.path
from keel.server.security import PERMISSIONS, api_routes, permission_of
from keel.serving.feedback import LOG_SCHEMA, LOG_TABLE
from keel.users import ROLES

from .api_helpers import api_error as _error
from .api_helpers import call as _call
from .conftest import Server


@pytest.fixture
def toy(server: Server) -> Server:
    """Two releasable versions of the toy model (no checklist: nothing to pass yet)."""
    split = toy_world(server.ws, 600)
    register(server.ws, split)
    register(server.ws, split)
    return server


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


def _requests() -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(method, path, body, permission) of every deployments route, in an order that works."""
    return [
        ("POST", "/deployments", {"name": "api", "model": "toy/1", "fallbacks": ["baseline"]}, "write"),
        ("GET", "/deployments", None, "read"),
        ("GET", "/deployments/api", None, "read"),
        ("POST", "/deployments/api/holdout", {"share": 0.1, "reason": "unbiased labels"}, "write"),
        ("POST", "/deployments/api/shadow", {"candidate": "toy/2", "sample": 0.5}, "write"),
        ("POST", "/deployments/api/promote", {"reason": "agrees"}, "write"),
        ("POST", "/deployments/api/ab", {"variants": {"a": {"model": "toy/1", "weight": 50},
                                                      "b": {"model": "toy/2", "weight": 50}}}, "write"),
        ("POST", "/deployments/api/interleave", {"variants": {"a": "toy/1", "b": "toy/2"}}, "write"),
        ("POST", "/deployments/api/canary", {"candidate": "toy/2", "steps": [5, 50, 100], "interval_s": 60}, "write"),
        ("POST", "/deployments/api/check-canary", None, "write"),
        ("POST", "/canary-checks", None, "write"),
        ("POST", "/deployments/api/feedback", {"items": [{"request_id": "r1", "outcome": 1}]}, "write"),
        ("GET", "/deployments/api/report", None, "read"),
        ("POST", "/deployments/api/rollback", {}, "write"),
        ("POST", "/deployments/api/pause", {"reason": "incident"}, "write"),
        ("POST", "/deployments/api/resume", None, "write"),
        ("GET", "/deployments/api/history", None, "read"),
        ("DELETE", "/deployments/api", None, "write"),
    ]


def test_the_table_covers_every_deployments_route(server: Server) -> None:
    routes = {(m, re.sub(r"\{[^}]+\}", "x", r.path.removeprefix("/api/v1")), permission_of(r))
              for r in api_routes(server.client.app.fastapi) if "deployments" in (r.tags or [])
              for m in r.methods - {"HEAD"}}
    listed = {(m, re.sub(r"/api\b", "/x", p), perm) for m, p, _, perm in _requests()}
    assert routes == listed


def test_every_route_works_with_its_role_and_refuses_the_one_below(toy: Server) -> None:
    for method, path, body, permission in _requests():
        needed = PERMISSIONS[permission]
        assert _call(toy, method, path, None, body).status_code == 401, path
        if ROLES.index(needed) > 0:
            _error(_call(toy, method, path, ROLES[ROLES.index(needed) - 1], body), 403, "PermissionDenied")
        allowed = _call(toy, method, path, needed, body)
        assert 200 <= allowed.status_code < 300, (method, path, allowed.text)
    audit = toy.ws.audit.list(target="deployment:api", limit=50)
    assert {e.actor for e in audit} == {"developer-user"}  # changes are made as the token's user


def test_create_shadow_canary_promote_and_rollback(toy: Server) -> None:
    made = _ok(_call(toy, "POST", "/deployments", "developer",
                     {"name": "price-api", "model": "toy@latest", "fallbacks": ["baseline"], "reason": "first"}), 201)
    assert (made["name"], made["kind"], made["state"], made["models"]) == ("price-api", "single", "active", ["toy/2"])
    assert made["current"]["version"] == 1 and made["current"]["by"] == "developer-user"
    assert made["ref"] == "deployment:price-api@1" and made["created_at"].endswith("+00:00")
    shadowed = _ok(_call(toy, "POST", "/deployments/price-api/shadow", "developer", {"candidate": "toy/1"}))
    assert shadowed["kind"] == "shadow" and shadowed["current"]["policy"]["shadows"] == ["toy/1"]
    canary = _ok(_call(toy, "POST", "/deployments/price-api/canary", "developer",
                       {"candidate": "toy/1", "steps": [5, 25, 50, 100], "interval_s": 600,
                        "guardrails": ["error_rate < 0.01"]}))
    policy = canary["current"]["policy"]
    assert (policy["step"], policy["guardrails"], [a["model"] for a in policy["arms"]]) == (
        0.05, ["error_rate < 0.01"], ["toy/2", "toy/1"])
    promoted = _ok(_call(toy, "POST", "/deployments/price-api/promote", "developer", {"reason": "held"}))
    assert promoted["current"]["policy"]["arms"][0]["model"] == "toy/1"
    assert promoted["current"]["policy"]["fallbacks"] == ["toy/2", "baseline"]
    back = _ok(_call(toy, "POST", "/deployments/price-api/rollback", "developer", {"reason": "undo"}))
    assert (back["kind"], back["current"]["action"], back["current"]["reason"]) == ("canary", "rollback", "undo")
    history = _ok(_call(toy, "GET", "/deployments/price-api/history", "viewer"))
    assert [v["action"] for v in history] == ["create", "shadow", "canary", "promote", "rollback"]
    assert _ok(_call(toy, "GET", "/deployments/price-api", "viewer")) == back
    assert [d["name"] for d in _ok(_call(toy, "GET", "/deployments", "viewer"))] == ["price-api"]
    assert toy.ws.deployments.get("price-api").to_dict()["current"]["version"] == 5
    assert _call(toy, "DELETE", "/deployments/price-api", "developer", reason="retired").status_code == 204
    assert toy.ws.audit.list(action="deployment.delete", limit=1)[0].reason == "retired"
    assert _ok(_call(toy, "GET", "/deployments", "viewer")) == []


def test_bad_requests_are_structured_4xx(toy: Server) -> None:
    _ok(_call(toy, "POST", "/deployments", "developer", {"name": "api", "model": "toy/1"}), 201)
    for path in ("/deployments/nope", "/deployments/nope/history"):
        _error(_call(toy, "GET", path, "viewer"), 404, "NotFound")
    _error(_call(toy, "POST", "/deployments/nope/promote", "developer", {}), 404, "NotFound")
    _error(_call(toy, "DELETE", "/deployments/nope", "developer"), 404, "NotFound")
    _error(_call(toy, "POST", "/deployments", "developer", {"name": "api-2", "model": "toy/9"}), 404, "NotFound")
    _error(_call(toy, "POST", "/deployments", "developer", {"name": "api", "model": "toy/1"}), 409, "Conflict")
    for steps in ([], [50, 25], [0, 10], [5, 120]):
        error = _error(_call(toy, "POST", "/deployments/api/canary", "developer",
                             {"candidate": "toy/2", "steps": steps, "interval_s": 60}), 400, "InvalidInput")
        assert "rising percentages" in error["message"]
    _error(_call(toy, "POST", "/deployments/api/canary", "developer",
                 {"candidate": "toy/2", "steps": [5], "interval_s": 0}), 400, "InvalidInput")
    _error(_call(toy, "POST", "/deployments/api/promote", "developer"), 400, "InvalidInput")
    _error(_call(toy, "POST", "/deployments/api/interleave", "developer", {"variants": {"a": "toy/1"}}), 400)
    _error(_call(toy, "POST", "/deployments/api/ab", "developer",
                 {"variants": {"a": {"model": "toy/1", "weight": 0}, "b": {"model": "toy/2", "weight": 1}}}), 400)
    for body in ({"candidate": "toy/2", "sample": 2}, {"candidate": "toy/2", "samples": 1}, {"sample": 0.5}):
        assert _call(toy, "POST", "/deployments/api/shadow", "developer", body).status_code in (400, 422)
    assert _call(toy, "POST", "/deployments", "developer", {"name": "bad name!", "model": "toy/1"}).status_code \
        in (400, 422)
    assert len(toy.ws.deployments.history("api")) == 1  # nothing refused was written


def test_production_needs_an_approval_or_an_approvers_override(toy: Server) -> None:
    body = {"name": "prod", "model": "toy/1", "production": True}
    assert "no production approval" in _error(_call(toy, "POST", "/deployments", "developer", body), 403)["message"]
    refused = _call(toy, "POST", "/deployments", "developer", {**body, "override": True, "reason": "hotfix"})
    assert "approver" in _error(refused, 403, "PermissionDenied")["message"]
    _error(_call(toy, "POST", "/deployments", "approver", {**body, "override": True}), 400, "InvalidInput")
    made = _ok(_call(toy, "POST", "/deployments", "approver", {**body, "override": True, "reason": "hotfix"}), 201)
    assert made["production"] and made["current"]["by"] == "approver-user"
    assert toy.ws.audit.list(action="deployment.create", limit=1)[0].actor == "approver-user"


def test_feedback_and_the_report(toy: Server) -> None:
    _ok(_call(toy, "POST", "/deployments", "developer", {"name": "api", "model": "toy/1"}), 201)
    now = datetime.now(UTC)
    rows = [{"request_id": f"r{i}", "at": now, "kind": "primary", "deployment": "api", "arm": "primary",
             "model": "toy/1", "served_by": "toy/1", "output": json.dumps([10.0 * i]), "latency_ms": 1.0,
             "status": "ok"} for i in range(4)]
    toy.ws.data.write_batches([pa.Table.from_pylist(rows, schema=LOG_SCHEMA)], LOG_TABLE)
    items = [{"request_id": "r0", "label": 1}, {"request_id": "r1", "label": 12.5}, {"request_id": "r2",
                                                                                     "outcome": 4}]
    assert _ok(_call(toy, "POST", "/deployments/api/feedback", "developer", {"items": items})) == {
        "deployment": "api", "accepted": 3}
    found = _ok(_call(toy, "GET", "/deployments/api/report", "viewer"))
    assert found == toy.ws.deployments.report("api") | {"until": found["until"]}
    arm = found["arms"][0]
    assert (arm["requests"], arm["metric"]["name"], arm["metric"]["value"]) == (4, "outcome", 4.0)
    assert next(m for m in arm["metrics"] if m["name"] == "mae")["value"] == pytest.approx(1.75)
    assert _ok(_call(toy, "GET", "/deployments/api/report", "viewer", since="1h"))["requests"] == 4
    for body in ({"items": []}, {"items": [{"request_id": "r0"}]}, {"items": [{"request_id": "r0", "outcome": "x"}]},
                 {"items": ["r0"]}, {"items": [{"request_id": "r0", "label": 1}], "extra": 1}, {},
                 {"items": [{"request_id": "r0", "label": 1, "outcome": 1}]}):
        _error(_call(toy, "POST", "/deployments/api/feedback", "developer", body), 400, "InvalidInput")
    message = _error(_call(toy, "POST", "/deployments/api/feedback", "developer",
                           {"items": [{"request_id": "r0", "label": 1}, {"request_id": "", "label": 1}]}), 400)
    assert message["message"].startswith("feedback item 1: request_id")
    _error(_call(toy, "POST", "/deployments/nope/feedback", "developer", {"items": items}), 404, "NotFound")
    for since in ("yesterday", "2999-01-01", "x" * 65):
        _error(_call(toy, "GET", "/deployments/api/report", "viewer", since=since), 400, "InvalidInput")
    _error(_call(toy, "GET", "/deployments/nope/report", "viewer"), 404, "NotFound")
    assert toy.ws.deployments.report("api")["feedback"]["rows"] == 3  # nothing refused was written
