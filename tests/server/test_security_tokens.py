"""Tokens and Host headers, beyond what test_permissions.py covers (no token, malformed, wrong secret, revoked,
expired, foreign hosts).

A token is shown once, when it is created: no other answer (API or page), header or log line carries it or
its hash. A token of a user who no longer exists, or of an unknown id, is a 401; the secret is compared in
constant time; a role change applies to existing tokens at once. The Host check looks at exactly the Host
the app sees, and forwarded-host headers are not trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.dummy import DummyRegressor

import keel
from keel.server.app import create_app

from .conftest import Server
from .security_helpers import all_routes, asgi_call, fill, http_request, live_server, path_params, raw_http


def _secret(token: str) -> str:
    return token.split("_", 2)[2]


def _leaks(token: str) -> list[str]:
    """What must never be shown of a token after its creation: the secret, and the stored digest of it."""
    secret = _secret(token)
    return [secret, hashlib.sha256(secret.encode()).hexdigest()]


# -- who a token is ---------------------------------------------------------------------------------------------

def test_a_well_formed_token_with_an_unknown_id_is_401(server: Server) -> None:
    forged = "keel_" + "0" * 12 + "_" + _secret(server.tokens["admin"])
    response = server.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and response.json()["error"]["type"] == "Unauthenticated"


def test_the_token_of_a_user_who_no_longer_exists_is_401(server: Server) -> None:
    token = server.ws.tokens.create("developer-user").token
    assert server.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # keel has no "remove user" yet: what one would leave behind (sqlite3 itself: keel's engine enforces keys)
    with closing(sqlite3.connect(server.ws.root / ".keel" / "keel.db")) as conn, conn:
        conn.execute("DELETE FROM users WHERE name = 'developer-user'")
        assert conn.execute("SELECT id FROM api_tokens WHERE user_name = 'developer-user'").fetchall()
    time.sleep(server.ws.settings.token_cache_seconds)  # a change keel did not make: seen within this bound
    for path in ("/api/v1/me", "/api/v1/runs"):
        assert server.client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def _revoke_behind_keels_back(server: Server, token: str) -> None:
    """Revoke as another process would (the CLI, another server worker): nothing in this process hears of it."""
    with closing(sqlite3.connect(server.ws.root / ".keel" / "keel.db")) as conn, conn:
        conn.execute("UPDATE api_tokens SET revoked_at = '2026-01-01 00:00:00.000000' WHERE id = ?",
                     (token.split("_")[1],))


def test_a_revocation_made_elsewhere_takes_effect_within_token_cache_seconds(server: Server) -> None:
    token = server.ws.tokens.create("viewer-user").token
    headers = {"Authorization": f"Bearer {token}"}
    assert server.client.get("/api/v1/me", headers=headers).status_code == 200  # verified, and remembered
    _revoke_behind_keels_back(server, token)
    time.sleep(server.ws.settings.token_cache_seconds)
    assert server.client.get("/api/v1/me", headers=headers).status_code == 401


def test_with_token_cache_seconds_0_every_request_checks_the_database(tmp_path: Path) -> None:
    ws = keel.init(tmp_path / "ws", user="admin-user", token_cache_seconds=0)
    ws.users.add("viewer-user", "viewer")
    token = ws.tokens.create("viewer-user").token
    client = TestClient(create_app(ws), base_url="http://127.0.0.1")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    _revoke_behind_keels_back(Server(ws, client, {}), token)
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    ws.close()


def test_a_remembered_token_still_expires_on_time(server: Server) -> None:
    from datetime import timedelta

    assert server.client.get("/api/v1/me", headers=server.as_role("admin")).status_code == 200  # warm: a cold
    # first request on a loaded machine can take longer than the token lives
    token = server.ws.tokens.create("viewer-user", expires_in=timedelta(milliseconds=400)).token
    headers = {"Authorization": f"Bearer {token}"}
    assert server.client.get("/api/v1/me", headers=headers).status_code == 200
    time.sleep(0.45)  # well inside token_cache_seconds, past the expiry
    assert server.ws.settings.token_cache_seconds > 0.45
    assert server.client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_revocation_or_role_change_made_through_keel_applies_to_remembered_tokens_at_once(server: Server) -> None:
    token = server.ws.tokens.create("developer-user").token
    headers = {"Authorization": f"Bearer {token}"}
    assert server.client.post("/api/v1/runs", json={"experiment": "e"}, headers=headers).status_code == 201
    server.ws.users.set_role("developer-user", "viewer")
    assert server.client.post("/api/v1/runs", json={"experiment": "e"}, headers=headers).status_code == 403
    admin = server.as_role("admin")
    token_id = token.split("_")[1]
    assert server.client.delete(f"/api/v1/tokens/{token_id}", headers=admin).status_code == 200
    assert server.client.get("/api/v1/me", headers=headers).status_code == 401


def test_the_secret_is_compared_in_constant_time(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right id, wrong secret: refused, and the comparison that refused it was hmac.compare_digest."""
    compared: list[tuple[Any, Any]] = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    good = server.tokens["viewer"]
    wrong = good[: -len(_secret(good))] + ("A" * 43 if not _secret(good).startswith("A") else "B" * 43)
    response = server.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {wrong}"})
    assert response.status_code == 401
    assert (hashlib.sha256(_secret(good).encode()).hexdigest(), hashlib.sha256(b"A" * 43).hexdigest()) in compared \
        or (hashlib.sha256(_secret(good).encode()).hexdigest(), hashlib.sha256(b"B" * 43).hexdigest()) in compared
    source = Path(__import__("keel.tokens", fromlist=["x"]).__file__).read_text()
    assert "compare_digest" in source and not re.search(r"secret_sha256\s*[!=]=", source)


def test_a_role_change_applies_to_existing_tokens_at_once(server: Server) -> None:
    token = server.ws.tokens.create("approver-user").token
    headers = {"Authorization": f"Bearer {token}"}
    assert server.client.get("/api/v1/audit", headers=headers).status_code == 200
    assert server.client.get("/api/v1/users", headers=headers).status_code == 403
    server.ws.users.set_role("approver-user", "admin", reason="on call")
    assert server.client.get("/api/v1/users", headers=headers).status_code == 200
    server.ws.users.set_role("approver-user", "viewer", reason="off call")
    assert server.client.get("/api/v1/users", headers=headers).status_code == 403
    created = server.client.post("/api/v1/runs", json={"experiment": "price"}, headers=headers)
    assert created.status_code == 403


# -- a token is shown once ---------------------------------------------------------------------------------------

def _values(server: Server, run_id: str, token_id: str) -> dict[str, dict[str, str]]:
    """Real objects for each route's path parameters, by the route's first path segment after /api/v1."""
    common = {"run_id": run_id, "version": "1", "key": "rmse", "filename": "keel-model.yaml", "token_id": token_id,
              "alias": "champion", "ref": "listings"}
    return {"models": {**common, "name": "price", "ref": "price"}, "tables": {**common, "name": "listings"},
            "data": {**common, "name": "listings"}, "splits": {**common, "ref": "listings_split"},
            "runs": {**common, "name": "notes.txt"}, "lineage": {**common, "ref": "model:price/1"},
            "users": {**common, "name": "viewer-user"}, "gates": {**common, "model": "price", "report_id": "missing"},
            "deployments": {**common, "name": "price-api"}, "monitors": {**common, "name": "missing", "number": "1"},
            "traces": {**common, "request_id": "missing"}, "incidents": {**common, "id": "1"},
            "pipelines": {**common, "name": "missing"}, "pipeline-runs": {**common, "id": "1"},
            "retraining": {**common, "id": "1", "name": "missing"},
            "": {**common, "name": "price"}}


def _fill(path: str, values: dict[str, dict[str, str]]) -> str:
    section = path.removeprefix("/api/v1").strip("/").split("/")[0]
    return fill(path, values.get(section, values[""]))


@pytest.fixture
def populated(server: Server) -> Server:
    ws = server.ws
    frame = pd.DataFrame({"x": [float(i) for i in range(12)], "y": [2.0 * i for i in range(12)],
                          "at": pd.date_range("2024-01-01", periods=12, freq="D", tz="UTC")})
    ws.data.ingest(frame, "listings")
    ws.data.split("listings", target="y", time_column="at", name="listings_split")
    with ws.runs.start("price", inputs=["listings"]) as run:
        run.log_metrics({"rmse": 1.0}, step=1)
        run.log_artifact(b"notes", "notes.txt")
    ws.models.register(DummyRegressor().fit(frame[["x"]], frame["y"]), "price", run=run.id, input_example=frame[["x"]])
    server.run_id = run.id  # type: ignore[attr-defined]
    return server


def test_no_answer_but_the_creation_shows_a_token(populated: Server, caplog: pytest.LogCaptureFixture) -> None:
    server = populated
    admin = server.as_role("admin")
    with caplog.at_level(logging.DEBUG):
        created = server.client.post("/api/v1/tokens", json={"user": "viewer-user", "description": "ci"},
                                     headers=admin)
        assert created.status_code == 201
        token, info = created.json()["token"], created.json()["info"]
        assert token.startswith(f"keel_{info['id']}_") and "secret" not in str(info)
        secrets = [leak for t in [token, *server.tokens.values()] for leak in _leaks(t)]
        values = _values(server, server.run_id, info["id"])  # type: ignore[attr-defined]
        shown = 0
        for route in all_routes(server.client.app):
            if "GET" not in route.methods:
                continue
            path = _fill(route.path, values)
            response = server.client.get(path, headers=admin)
            assert response.status_code < 500, (path, response.text[:300])
            seen = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
            assert not [s for s in secrets if s in seen], f"GET {path} shows a token secret or its hash"
            shown += response.status_code == 200
        assert shown > 25  # the answers above were real pages and documents, not errors
        listed = server.client.get("/api/v1/tokens", headers=admin).json()
        assert {info["id"]} <= {t["id"] for t in listed}
        assert all(not {"token", "secret", "secret_sha256"} & set(t) for t in listed)
        refused = server.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}x"})
        assert refused.status_code == 401 and token not in refused.text  # a refusal does not echo it back
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not [s for s in secrets if s in logged], "a token secret was logged"


def test_the_token_list_never_holds_a_secret_even_in_the_service(server: Server) -> None:
    for info in server.ws.tokens.list():
        assert not {"secret", "secret_sha256", "token"} & set(vars(info) if hasattr(info, "__dict__") else
                                                               {f: None for f in info.__slots__})


# -- Host header ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", [b"127.0.0.1", b"127.0.0.1:8080", b"localhost", b"LOCALHOST:1", b"[::1]",
                                  b"[::1]:8080", b"::1"])
def test_loopback_hosts_with_any_port_are_served(server: Server, host: bytes) -> None:
    assert asgi_call(server.client.app, "GET", b"/api/v1/health", host=host).status == 200


@pytest.mark.parametrize("host", [b"", b"evil.com:127.0.0.1", b"[::1]evil.com", b"[::1].evil.com",
                                  b"[::ffff:7f00:1]:80", b"127.0.0.2", b"0.0.0.0", b"localhost:80@evil.com",
                                  b"evil.com#127.0.0.1", b"127.0.0.1 evil.com", b"localhost\tevil.com",
                                  b"evil.com/127.0.0.1", b"[fe80::1%25lo]", b"2130706433", b"0x7f000001"])
def test_hosts_that_are_not_ours_are_refused(server: Server, host: bytes) -> None:
    response = asgi_call(server.client.app, "GET", b"/api/v1/health", host=host)
    assert response.status == 400 and b"is not allowed" in response.body


def test_a_request_without_a_host_is_refused(server: Server) -> None:
    response = asgi_call(server.client.app, "GET", b"/api/v1/health", host=None)
    assert response.status == 400


def test_two_host_headers_are_refused(server: Server) -> None:
    """The guard read the last Host and the app (Starlette) the first: a foreign one slipped past it."""
    app = server.client.app
    for hosts in ([b"evil.com", b"127.0.0.1"], [b"127.0.0.1", b"evil.com"], [b"127.0.0.1", b"127.0.0.1"]):
        response = asgi_call(app, "GET", b"/api/v1/health", host=None, headers=[(b"host", h) for h in hosts])
        assert response.status == 400, hosts


@pytest.mark.parametrize("header", ["X-Forwarded-Host", "X-Host", "X-Original-Host", "Forwarded"])
def test_forwarded_host_headers_are_not_trusted(server: Server, header: str) -> None:
    value = "host=127.0.0.1" if header == "Forwarded" else "127.0.0.1"
    foreign = asgi_call(server.client.app, "GET", b"/api/v1/health", host=b"evil.com",
                        headers=[(header.lower().encode(), value.encode())])
    assert foreign.status == 400
    value = "host=evil.com" if header == "Forwarded" else "evil.com"
    ours = asgi_call(server.client.app, "GET", b"/", host=b"127.0.0.1", headers=[(header.lower().encode(),
                                                                                 value.encode())])
    assert "evil.com" not in ours.headers.get("location", "") and b"evil.com" not in ours.body


def test_host_attacks_against_a_real_uvicorn(server: Server) -> None:
    with live_server(server.client.app) as port:
        def status(request: bytes) -> int:
            return raw_http(port, request).status

        ours = f"127.0.0.1:{port}".encode()
        assert status(http_request("GET", b"/api/v1/health", host=ours)) == 200
        assert status(http_request("GET", b"/api/v1/health", host=f"localhost:{port}".encode())) == 200
        assert status(http_request("GET", b"/api/v1/health", host=b"evil.com")) == 400
        assert status(http_request("GET", b"/api/v1/health", host=b"evil.com",
                                   headers={"X-Forwarded-Host": "127.0.0.1"})) == 400
        assert status(b"GET /api/v1/health HTTP/1.0\r\n\r\n") == 400  # HTTP/1.0 needs no Host: still refused
        assert status(b"GET /api/v1/health HTTP/1.1\r\nConnection: close\r\n\r\n") == 400
        two = b"GET /api/v1/health HTTP/1.1\r\nHost: evil.com\r\nHost: " + ours + b"\r\nConnection: close\r\n\r\n"
        assert status(two) == 400
        # absolute-form: the URL names our host, the Host header another
        assert status(http_request("GET", b"http://" + ours + b"/api/v1/health", host=b"evil.com")) == 400


def test_host_refusals_precede_authentication(server: Server) -> None:
    """A rebound page learns nothing from our answers: even a valid token gets only the Host refusal."""
    for path in (b"/api/v1/runs", b"/api/v1/tokens", b"/"):
        response = asgi_call(server.client.app, "GET", path, host=b"evil.com",
                             headers=[(b"authorization", f"Bearer {server.tokens['admin']}".encode())])
        assert response.status == 400 and b"is not allowed" in response.body
    routes = [r for r in all_routes(server.client.app) if path_params(r.path) == []]
    assert routes  # the check is in front of every route: it wraps the whole app


def test_a_token_verified_lately_is_not_looked_up_again(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the cache: one database check per token per token_cache_seconds, not one per request."""
    from keel.tokens import TokenService

    looked_up: list[str] = []
    verify = TokenService.verify
    monkeypatch.setattr(TokenService, "verify", lambda self, token: looked_up.append(token) or verify(self, token))
    token = server.ws.tokens.create("viewer-user").token
    for _ in range(5):
        assert server.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert looked_up == [token]
