"""Every route declares a permission, and each is enforced: no token 401, a role below it 403.

The routes are enumerated from the app at test time, so a route added without a declared permission,
or with one that is not enforced, fails here.
"""

from __future__ import annotations

import re

import pytest

from keel.server.app import create_app
from keel.server.security import PERMISSIONS, api_routes, permission_of
from keel.users import ROLES

from .conftest import Server


def _api_routes(app):
    """The app's routes under /api/v1 but FastAPI's own documents (the OpenAPI JSON and the docs page)."""
    return [r for r in api_routes(app.fastapi if hasattr(app, "fastapi") else app)
            if not r.path.startswith(("/api/v1/openapi", "/api/v1/docs"))]


def test_every_route_declares_exactly_one_permission(server: Server) -> None:
    app = create_app(server.ws)
    routes = _api_routes(app)
    assert len(routes) > 30
    undeclared = [f"{sorted(r.methods)} {r.path}" for r in routes if permission_of(r) is None]
    assert undeclared == []


def _calls(server: Server) -> list[tuple[str, str, str]]:
    out = []
    for route in _api_routes(server.client.app.fastapi):
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in sorted(route.methods - {"HEAD"}):
            out.append((method, path, permission_of(route)))
    return out


def test_each_route_refuses_no_token_and_a_role_below_its_permission(server: Server) -> None:
    checked = 0
    for method, path, permission in _calls(server):
        body = {"json": {}} if method in ("POST", "PUT") else {}
        anonymous = server.client.request(method, path, **body)
        if permission == "public":
            assert anonymous.status_code < 400, (method, path)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.json()["error"]["type"] == "Unauthenticated"
        needed = PERMISSIONS[permission]
        below = ROLES[ROLES.index(needed) - 1] if ROLES.index(needed) > 0 else None
        if below is not None:
            refused = server.client.request(method, path, headers=server.as_role(below), **body)
            assert refused.status_code == 403, (method, path, below, refused.text)
        allowed = server.client.request(method, path, headers=server.as_role(needed), **body)
        assert allowed.status_code not in (401, 403, 500), (method, path, needed, allowed.text)
        checked += 1
    assert checked > 30


@pytest.mark.parametrize("token", ["", "Bearer", "Basic abc", "Bearer keel_nothex_x", "Bearer " + "a" * 80])
def test_malformed_credentials_are_401(server: Server, token: str) -> None:
    response = server.client.get("/api/v1/runs", headers={"Authorization": token} if token else {})
    assert response.status_code == 401 and response.json()["error"]["type"] == "Unauthenticated"


def test_wrong_secret_revoked_and_expired_tokens_are_401(server: Server) -> None:
    good = server.tokens["viewer"]
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert server.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    token_id = good.split("_")[1]
    server.ws.tokens.revoke(token_id, reason="left the team")
    assert server.client.get("/api/v1/runs", headers=server.as_role("viewer")).status_code == 401
    from datetime import timedelta

    short = server.ws.tokens.create("developer-user", expires_in=timedelta(microseconds=1)).token
    assert server.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {short}"}).status_code == 401
    assert server.client.get("/api/v1/runs", headers=server.as_role("developer")).status_code == 200


@pytest.mark.parametrize("host", ["evil.example.com", "127.0.0.1.evil.com", "localhost.attacker.net", "[::2]:80"])
def test_foreign_host_headers_are_refused(server: Server, host: str) -> None:
    response = server.client.get("/api/v1/health", headers={"Host": host})
    assert response.status_code == 400 and "is not allowed" in response.json()["error"]["message"]


def test_changes_are_audited_as_the_authenticated_user(server: Server) -> None:
    created = server.client.post("/api/v1/runs", json={"experiment": "price"}, headers=server.as_role("developer"))
    assert created.status_code == 201 and created.json()["created_by"] == "developer-user"
    import pandas as pd
    from sklearn.dummy import DummyRegressor

    x = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    server.ws.models.register(DummyRegressor().fit(x, [1, 2, 3]), "price", input_example=x)
    approved = server.client.post("/api/v1/models/price/versions/1/approve", json={"reason": "checked"},
                                  headers=server.as_role("approver"))
    assert approved.status_code == 201, approved.text
    promoted = server.client.post("/api/v1/models/price/versions/1/promote", json={"environment": "production"},
                                  headers=server.as_role("approver"))
    assert promoted.status_code == 200, promoted.text
    actions = {e.action: e.actor for e in server.ws.audit.list(target="model:price/1")}
    assert actions["model.approve"] == "approver-user" and actions["model.promote"] == "approver-user"
    refused = server.client.post("/api/v1/models/price/versions/1/promote", json={"environment": "production"},
                                 headers=server.as_role("developer"))
    assert refused.status_code == 403
