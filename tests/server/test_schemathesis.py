"""A request the server cannot understand is a 4xx, never a 500: schemathesis against the OpenAPI document,
and the 500s it (and a hand search around them) found, one test each.

The read routes and the data/runs write routes are fuzzed in process (ASGI), as an admin, on a workspace
that holds one of each thing (a table, a split, a running and a finished run with a metric and an artifact,
two model versions). Each operation is fuzzed twice: with generated path parameters (mostly 404s) and with
its path parameters pinned to the real objects, so generated queries and bodies reach the code behind the
lookups; operations with typed queries or bodies also get schemathesis' negative (schema-violating) cases.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sklearn.dummy import DummyRegressor

import keel
from keel.server.app import create_app

from .conftest import Server

EXAMPLES = 12  # per operation and mode: ~40 operations x 3 runs in ~20 s
HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture]


@dataclass
class Target:
    ws: keel.Workspace
    schema: schemathesis.BaseSchema  # the fuzzed routes only
    token: str  # an admin's
    run_id: str  # left running, so log/end/artifact uploads get past "the run has ended"

    def pins(self, operation: schemathesis.APIOperation) -> dict[str, str]:
        """Path parameters naming real objects."""
        path = operation.path
        known = {"run_id": self.run_id, "key": "rmse", "version": "1", "filename": "keel-model.yaml",
                 "name": "price" if path.startswith("/api/v1/models") else "listings",
                 "ref": "listings_split" if path.startswith("/api/v1/splits") else
                 "model:price/1" if path.startswith("/api/v1/lineage") else "listings"}
        if path.startswith("/api/v1/runs/{run_id}/artifacts"):
            known["name"] = "notes.txt"
        wanted = {p.name for p in operation.path_parameters}
        return {k: v for k, v in known.items() if k in wanted}


def _fuzzed(ctx: Any) -> bool:
    """The read routes (but the admin ones), and the data/runs write routes (users and tokens: not fuzzed)."""
    operation = ctx.operation
    tags = set(operation.tags or ())
    return ("admin" not in tags and operation.method.upper() == "GET") or bool(tags & {"data", "runs"})


def fuzz_target(root: Path) -> Target:
    """A workspace with one of each thing, and the schema of its app."""
    ws = keel.init(root / "ws", user="admin-user")
    ws.users.add("admin-user", "admin")
    token = ws.tokens.create("admin-user").token
    frame = pd.DataFrame({"id": range(20), "x": [float(i) for i in range(20)], "y": [2.0 * i for i in range(20)],
                          "at": pd.date_range("2024-01-01", periods=20, freq="D", tz="UTC")})
    ws.data.ingest(frame, "listings")
    ws.data.split("listings", target="y", time_column="at", name="listings_split")
    with ws.runs.start("price", inputs=["listings"]) as finished:
        finished.log_metrics({"rmse": 1.5}, step=1)
    x = frame[["x"]]
    for _ in range(2):
        ws.models.register(DummyRegressor().fit(x, frame["y"]), "price", run=finished.id, input_example=x)
    running = ws.runs.start("price")
    running.log_metrics({"rmse": 1.0}, step=1)
    running.log_artifact(b"hello", "notes.txt")
    ws.runs.flush()
    app = create_app(ws, allowed_hosts=["testserver"])  # schemathesis' ASGI client sends Host: testserver
    return Target(ws, schemathesis.openapi.from_asgi("/api/v1/openapi.json", app).include(_fuzzed), token, running.id)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    found = fuzz_target(tmp_path_factory.mktemp("fuzz"))
    yield found
    found.ws.close()


@schemathesis.check
def no_server_error(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """The one property checked: whatever the request, the answer is not a 5xx."""
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code} {response.text[:300]}")


def _send(target: Target, case: schemathesis.Case) -> int:
    try:
        response = case.call(headers={"Authorization": f"Bearer {target.token}"})
    except Exception as exc:  # the in-process client re-raises what the app let out (after its 500)
        raise AssertionError(f"{case.as_curl_command()} -> the app raised {exc!r}") from None
    try:
        case.validate_response(response, checks=[no_server_error])
    except Exception as exc:  # schemathesis' FailureGroup: report it with the request that caused it
        raise AssertionError(f"{case.as_curl_command()} -> {exc}") from None
    return response.status_code


def _fuzz(target: Target, operation: schemathesis.APIOperation, mode: GenerationMode, pinned: bool) -> int:
    """Up to EXAMPLES generated requests to one operation; an AssertionError on the first 5xx."""
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=target.pins(operation) if pinned else None))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=HEALTH)
    def run(case: schemathesis.Case) -> None:
        calls.append(_send(target, case))

    try:
        run()
    except Unsatisfiable:  # nothing in this operation can be made schema-violating (string path params only)
        assert mode is GenerationMode.NEGATIVE
    return len(calls)


def _operations(target: Target) -> list[schemathesis.APIOperation]:
    operations = [result.ok() for result in target.schema.get_all_operations()]
    assert len(operations) > 25
    return operations


@pytest.mark.slow
def test_no_generated_request_makes_a_5xx(target: Target) -> None:
    failures, requests = [], 0
    for operation in _operations(target):
        for mode, pinned in ((GenerationMode.POSITIVE, False), (GenerationMode.POSITIVE, True),
                             (GenerationMode.NEGATIVE, True)):
            try:
                requests += _fuzz(target, operation, mode, pinned)
            except AssertionError as exc:  # keep going: report every operation that fails
                failures.append(f"{operation.label} ({mode.value}, {'pinned' if pinned else 'generated'}): {exc}")
    assert requests > 500
    assert failures == [], "\n".join(failures)


OUT_OF_RANGE = (2**63, -(2**63) - 1, 10**30)


def _widen(value: Any, number: int) -> Any:
    """``value`` with every integer in it (and every all-digit string: query and path values) set to ``number``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
        return number if isinstance(value, int) else str(number)
    if isinstance(value, dict):
        return {k: _widen(v, number) for k, v in value.items()}
    if isinstance(value, list):
        return [_widen(v, number) for v in value]
    return value


def test_no_boundary_request_makes_a_5xx(target: Target) -> None:
    """schemathesis' coverage cases (each constraint's boundaries, valid and not), on the real objects, and each
    again with every number in it out of any column's range: deterministic, where random examples rarely go."""
    failures, requests = [], 0
    for operation in _operations(target):
        config = target.schema.config.generation_for(operation=operation)
        cases = target.schema.iter_coverage_cases(operation, generation_config=config,
                                                  generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
        for case in cases:
            if case.path_parameters is not None:
                case.path_parameters.update(target.pins(operation))
            variants = [case]
            for number in OUT_OF_RANGE:
                parts = {name: _widen(getattr(case, name), number) for name in ("path_parameters", "query", "body")}
                if any(parts[name] != getattr(case, name) for name in parts):
                    variants.append(operation.Case(**parts, headers=case.headers, media_type=case.media_type))
            for variant in variants:
                try:
                    _send(target, variant)
                except AssertionError as exc:
                    failures.append(f"{operation.label}: {exc}")
                requests += 1
    assert requests > 500
    assert failures == [], "\n".join(failures[:20])


# -- what the fuzzing found -----------------------------------------------------------------------------------

@pytest.fixture
def client(server: Server) -> TestClient:
    """The server's client, as an admin, answering 500s instead of raising them."""
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    server.ws.models.register(DummyRegressor().fit(x, [1.0, 2.0, 3.0]), "price", input_example=x)
    return TestClient(server.client.app, base_url="http://127.0.0.1", raise_server_exceptions=False,
                      headers=server.as_role("admin"))


HUGE = "99999999999999999999999"


@pytest.mark.parametrize("path", [f"/api/v1/models/price/card?version={HUGE}",
                                  f"/api/v1/models/price/approvals?version={HUGE}",
                                  f"/api/v1/splits/listings@{HUGE}", f"/api/v1/tables/listings@{HUGE}/rows",
                                  f"/api/v1/models/price/versions/{HUGE}", f"/api/v1/lineage/model:price/{HUGE}"])
def test_a_number_too_large_for_the_database_is_a_400(client: TestClient, path: str) -> None:
    """SQLite raised OverflowError binding it, which came back as a 500."""
    response = client.get(path)
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()["error"]) == {"type", "message", "details"}


@pytest.mark.parametrize("expires_in", ["99999999999999999999d", "999999999w"])
def test_a_token_lifetime_too_long_for_the_clock_is_a_400(client: TestClient, expires_in: str) -> None:
    response = client.post("/api/v1/tokens", json={"user": "viewer-user", "expires_in": expires_in})
    assert response.status_code == 400 and "out of range" in response.json()["error"]["message"], response.text


def test_a_step_too_large_is_refused_and_does_not_poison_later_metrics(client: TestClient) -> None:
    """The point used to be queued, fail every flush after it (it is kept for the next attempt), and so fail
    every later metric of every run on the server."""
    run_id = client.post("/api/v1/runs", json={"experiment": "price"}).json()["id"]
    for step in (2**63, -(2**63) - 1, 10**30):
        bad = client.post(f"/api/v1/runs/{run_id}/log", json={"metrics": [{"key": "m", "value": 1.0, "step": step}]})
        assert bad.status_code == 400, bad.text
    edge = client.post(f"/api/v1/runs/{run_id}/log", json={"metrics": [{"key": "m", "value": 2.0, "step": 2**63 - 1}]})
    assert edge.status_code == 200, edge.text
    assert client.post(f"/api/v1/runs/{run_id}/end", json={}).status_code == 200
    points = client.get(f"/api/v1/runs/{run_id}/metrics/m").json()["points"]
    assert points == [{"step": 2**63 - 1, "value": 2.0}]


def test_an_unexpected_error_is_a_structured_500_logged_as_one_json_event(
        client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The handler logged through structlog's default console renderer, which drew the traceback with every
    local variable: ~8 s per 500, on the event loop. keel's logger writes one JSON line."""
    from keel.users import UserService

    def broken(self: Any, name: str) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(UserService, "get", broken)
    with caplog.at_level(logging.ERROR, logger="keel.server"):
        response = client.get("/api/v1/me")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "InternalError" and "secret internals" not in response.text
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "keel.server"]
    assert [e["event"] for e in events] == ["server.unexpected_error"]
    assert "RuntimeError: secret internals" in events[0]["exception"] and events[0]["path"] == "/api/v1/me"


@pytest.mark.parametrize("fields", [{"reason": "x"}, {"name": "other"}, {"purpose": "p", "reason": "r"}, {"evil": 1}])
def test_card_fields_that_clash_with_the_call_are_a_400(client: TestClient, fields: dict[str, Any]) -> None:
    """``reason`` or ``name`` in the body collided with update_card's own arguments: a TypeError, a 500."""
    response = client.put("/api/v1/models/price/card", json=fields)
    assert response.status_code == 400 and "unknown model card field" in response.json()["error"]["message"]
    assert client.put("/api/v1/models/price/card", json={"purpose": "p"}, params={"reason": "r"}).status_code == 200
