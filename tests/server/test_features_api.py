"""/api/v1/features (issue 5): what ``ws.features`` does, over REST, with the right permission per route, bad
input as a structured 4xx (never a 500), online values with their statuses, a materialise + online + skew
round trip, and consumers that appear once a model is trained on a training set.

``add_driver_features`` builds the scenario every feature test uses (the remote and browser tests too): a
driver_stats table with UTC timestamps, an Entity and a FeatureView applied through the embedded workspace
(applying is never done over HTTP), a table of labelled entity rows, and optionally a training set with a
model trained on it in a run whose inputs name the training set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sklearn.linear_model import LinearRegression

import keel
from keel.features.model import Entity, Feature, FeatureView, OnDemandFeatureView, RequestField
from keel.server.app import create_app
from keel.server.routers.features import MAX_ENTITY_ROWS, MAX_FEATURES
from keel.server.security import PERMISSIONS, SESSION_COOKIE, api_routes, permission_of
from keel.users import ROLES

from .api_helpers import api_error as _error
from .api_helpers import call as _call
from .conftest import Server

VIEW = "driver_stats"
FEATURES = [f"{VIEW}:trips_today", f"{VIEW}:rating"]  # what the training set asks for; acc_rate: nobody


@dataclass
class Features:
    now: datetime
    training_set: Any = None  # keel TrainingSet (embedded)
    run_id: str | None = None
    model: str | None = None  # "model:eta/1"


def add_driver_features(ws: keel.Workspace, *, train: bool = True) -> Features:
    """driver 1: events 3 days and 1 day ago; driver 2: 2 days and 1 hour ago; driver 3: 20 days ago (older
    than the 7-day ttl: expired online, null offline). Labels 12 hours ago for drivers 1-4."""
    now = datetime.now(UTC).replace(microsecond=0)
    stats = pd.DataFrame({
        "driver_id": [1, 1, 2, 2, 3],
        "event_ts": [now - timedelta(days=3), now - timedelta(days=1), now - timedelta(days=2),
                     now - timedelta(hours=1), now - timedelta(days=20)],
        "trips_today": [5, 7, 3, 4, 9],
        "rating": [4.5, 4.6, 3.9, 4.0, 4.9],
        "acc_rate": [0.9, 0.8, 0.7, 0.75, 0.5],
    })
    ws.data.ingest(stats, VIEW)
    driver = Entity("driver", ["driver_id"], description="a driver")
    view = FeatureView(VIEW, [driver], VIEW, "event_ts",
                       [Feature("trips_today", "int64", "trips completed today"),
                        Feature("rating", "float64", "average rating <b>so far</b>"),
                        Feature("acc_rate", "float64", "share of offers accepted")],
                       ttl=timedelta(days=7), owner="rides-team", description="driver activity")
    ws.features.apply([driver, view])
    labels = pd.DataFrame({"driver_id": [1, 2, 3, 4], "event_timestamp": [now - timedelta(hours=12)] * 4,
                           "eta_minutes": [11.0, 14.0, 9.0, 20.0]})
    ws.data.ingest(labels, "driver_labels")
    found = Features(now)
    if train:
        found.training_set = ws.features.training_set("driver_labels", FEATURES, label="eta_minutes",
                                                      name="drivers_training")
        found.run_id, found.model = train_on(ws, found.training_set.ref)
    return found


def train_on(ws: Any, training_set_ref: str) -> tuple[str, str]:
    """Train and register a model in a run whose inputs name the training set: it becomes a consumer."""
    frame = ws.features.reproduce(training_set_ref).to_pandas()
    x = frame[["trips_today", "rating"]].fillna(0.0)
    with ws.runs.start("eta", inputs=[training_set_ref]) as run:
        version = run.log_model(LinearRegression().fit(x, frame["eta_minutes"]), "eta", input_example=x)
    return run.id, f"model:{version.model}/{version.version}"


@pytest.fixture
def featured(server: Server) -> tuple[Server, Features]:
    return server, add_driver_features(server.ws)


# -- every route, with the right role ------------------------------------------------------------------------

def _requests() -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(method, path, body, permission) of every features route, on the scenario's objects."""
    online = {"features": FEATURES, "entity_rows": [{"driver_id": 1}]}
    return [
        ("GET", "/features", None, "read"),
        ("GET", "/features/entities", None, "read"),
        ("GET", "/features/training-sets", None, "read"),
        ("POST", "/features/training-sets", {"entities": "driver_labels", "features": FEATURES,
                                             "label": "eta_minutes", "name": "drivers_training"}, "write"),
        ("GET", "/features/training-sets/drivers_training", None, "read"),
        ("GET", "/features/training-sets/drivers_training@0/info", None, "read"),
        ("POST", "/features/materialize", {"views": [VIEW]}, "write"),
        ("POST", "/features/online", online, "read"),
        ("GET", f"/features/{VIEW}", None, "read"),
        ("GET", f"/features/{VIEW}/info", None, "read"),
        ("GET", f"/features/{VIEW}/versions", None, "read"),
        ("GET", f"/features/{VIEW}/consumers", None, "read"),
        ("GET", f"/features/{VIEW}/materializations", None, "read"),
        ("GET", f"/features/{VIEW}/skew", None, "read"),
    ]


def test_the_table_covers_every_features_route(server: Server) -> None:
    routes = {(m, re.sub(r"\{[^}]+\}", "x", r.path.removeprefix("/api/v1")), permission_of(r))
              for r in api_routes(server.client.app.fastapi) if "features" in (r.tags or [])
              for m in r.methods - {"HEAD"}}
    listed = {(m, re.sub(r"drivers_training(@0)?|driver_stats", "x", p), perm) for m, p, _, perm in _requests()}
    assert routes == listed
    assert not [r for r in api_routes(server.client.app.fastapi) if "apply" in r.path]  # never over HTTP
    refused = _call(server, "POST", "/features/apply", "admin", {"definitions": "features.py"})
    assert _error(refused, 405)["type"] == "MethodNotAllowed"


def test_every_route_works_with_its_role_and_refuses_the_one_below(featured: tuple[Server, Features]) -> None:
    server, _ = featured
    for method, path, body, permission in _requests():
        needed = PERMISSIONS[permission]
        assert _call(server, method, path, None, body).status_code == 401, path
        if ROLES.index(needed) > 0:
            below = ROLES[ROLES.index(needed) - 1]
            assert _error(_call(server, method, path, below, body), 403)["type"] == "PermissionDenied"
        allowed = _call(server, method, path, needed, body)
        assert 200 <= allowed.status_code < 300, (method, path, allowed.text)
    audit = {e.action: e.actor for e in server.ws.audit.list(action="features.materialize")}
    assert audit == {"features.materialize": "developer-user"}  # changes are made as the token's user


# -- views, training sets -----------------------------------------------------------------------------------

def test_views_entities_show_and_versions(featured: tuple[Server, Features]) -> None:
    server, _ = featured
    listed = _call(server, "GET", "/features", "viewer").json()
    assert [(v["name"], v["version"], v["kind"]) for v in listed] == [(VIEW, 1, "batch")]
    assert _call(server, "GET", "/features/entities", "viewer").json() == [
        {"name": "driver", "join_keys": ["driver_id"], "description": "a driver"}]
    shown = _call(server, "GET", f"/features/{VIEW}", "viewer").json()
    embedded = server.ws.features.show(VIEW)
    assert shown["ref"] == embedded["ref"] == f"features:{VIEW}@1"
    assert [(f["name"], f["dtype"], f["owner"]) for f in shown["features"]] == [
        ("trips_today", "int64", "rides-team"), ("rating", "float64", "rides-team"),
        ("acc_rate", "float64", "rides-team")]
    assert shown["sources"] == {VIEW: 0} and shown["freshness"]["materialized_until"] is None
    assert datetime.fromisoformat(shown["freshness"]["latest_event"]) == embedded["freshness"]["latest_event"]
    assert datetime.fromisoformat(shown["created_at"]) == embedded["created_at"]
    info = _call(server, "GET", f"/features/{VIEW}/info", "viewer", version=1).json()
    assert info["fingerprint"] == server.ws.features.get(VIEW).fingerprint
    assert _call(server, "GET", f"/features/{VIEW}@1/info", "viewer").json() == info
    versions = _call(server, "GET", f"/features/{VIEW}/versions", "viewer").json()
    assert [v["version"] for v in versions] == [1]


def test_a_training_set_posted_equals_the_embedded_one_and_is_listed(featured: tuple[Server, Features]) -> None:
    server, scenario = featured
    body = {"entities": "driver_labels", "features": FEATURES, "label": "eta_minutes", "name": "drivers_training"}
    created = _call(server, "POST", "/features/training-sets", "developer", body)
    assert created.status_code == 201, created.text
    info = created.json()
    assert (info["name"], info["version"], info["rows"], info["created_by"]) == ("drivers_training", 1, 4,
                                                                                 "developer-user")
    assert info["view_versions"] == {VIEW: 1} and info["entity_source"] == "table:driver_labels@0"
    rows = _call(server, "GET", f"/tables/{info['table']}@{info['version']}/rows", "viewer").json()["records"]
    by_driver = {r["driver_id"]: (r["trips_today"], r["rating"]) for r in rows}
    assert by_driver == {1: (7, 4.6), 2: (3, 3.9), 3: (None, None), 4: (None, None)}  # 3: older than the ttl
    expected = scenario.training_set.to_pandas()
    assert [(r["driver_id"], r["trips_today"]) for r in rows] == \
        [(d, None if pd.isna(t) else t) for d, t in zip(expected["driver_id"], expected["trips_today"], strict=True)]
    listed = _call(server, "GET", "/features/training-sets", "viewer").json()
    assert [(t["name"], t["version"]) for t in listed] == [("drivers_training", 1), ("drivers_training", 0)]
    assert len(_call(server, "GET", "/features/training-sets", "viewer", name="drivers_training").json()) == 2
    assert [t["version"] for t in _call(server, "GET", "/features/training-sets/drivers_training", "viewer").json()] \
        == [1, 0]
    for ref, version in (("drivers_training", 1), ("drivers_training@0", 0), ("trainingset:drivers_training@1", 1)):
        assert _call(server, "GET", f"/features/training-sets/{ref}/info", "viewer").json()["version"] == version


def test_consumers_appear_once_a_model_is_trained_on_the_training_set(server: Server) -> None:
    scenario = add_driver_features(server.ws, train=False)
    ts = server.ws.features.training_set("driver_labels", FEATURES, label="eta_minutes", name="drivers_training")
    before = _call(server, "GET", f"/features/{VIEW}/consumers", "viewer").json()
    assert before["trips_today"]["trainingset"] == [ts.ref] and before["trips_today"]["model"] == []
    _, model = train_on(server.ws, ts.ref)
    assert model == "model:eta/1" and scenario.now
    after = _call(server, "GET", f"/features/{VIEW}/consumers", "viewer").json()
    for feature in ("trips_today", "rating"):
        assert after[feature]["model"] == ["model:eta/1"] and len(after[feature]["run"]) == 1
    assert after["acc_rate"] == {k: [] for k in after["acc_rate"]}
    shown = {f["name"]: f for f in _call(server, "GET", f"/features/{VIEW}", "viewer").json()["features"]}
    assert shown["trips_today"]["consumers"]["model"] == ["model:eta/1"] and not shown["trips_today"][
        "removal_candidate"]
    assert shown["acc_rate"]["removal_candidate"] and shown["acc_rate"]["counts"]["model"] == 0


# -- online ---------------------------------------------------------------------------------------------------

def test_online_values_come_in_the_order_asked_with_a_status_each(featured: tuple[Server, Features]) -> None:
    server, scenario = featured
    before = _call(server, "POST", "/features/online", "viewer",
                   {"features": FEATURES, "entity_rows": [{"driver_id": 1}]}).json()
    assert before["rows"][0]["features"]["trips_today"]["status"] == "missing"  # nothing materialised yet
    done = _call(server, "POST", "/features/materialize", "developer", {}).json()
    assert [(m["view"], m["rows"], m["written"]) for m in done] == [(VIEW, 3, 3)]
    asked = [f"{VIEW}:rating", "trips_today"]  # a bare name works when one view has it; the order is kept
    rows = [{"driver_id": 2}, {"driver_id": 3}, {"driver_id": 404}, {"driver_id": 1}]
    answer = _call(server, "POST", "/features/online", "viewer", {"features": asked, "entity_rows": rows}).json()
    assert answer["features"] == ["rating", "trips_today"]
    assert [r["entity"] for r in answer["rows"]] == rows
    got = [{f: (v["value"], v["status"]) for f, v in r["features"].items()} for r in answer["rows"]]
    assert got == [{"rating": (4.0, "present"), "trips_today": (4, "present")},
                   {"rating": (None, "expired"), "trips_today": (None, "expired")},
                   {"rating": (None, "missing"), "trips_today": (None, "missing")},
                   {"rating": (4.6, "present"), "trips_today": (7, "present")}]
    stamp = answer["rows"][0]["features"]["rating"]["event_timestamp"]
    assert datetime.fromisoformat(stamp) == scenario.now - timedelta(hours=1)
    assert answer["rows"][2]["features"]["rating"]["event_timestamp"] is None
    full = _call(server, "POST", "/features/online", "viewer",
                 {"features": FEATURES, "entity_rows": rows[:1], "full_names": True}).json()
    assert full["features"] == [f"{VIEW}__trips_today", f"{VIEW}__rating"]
    assert answer == server.ws.features.online(asked, rows).to_json()  # the service's own answer, as JSON


def test_materialize_online_and_skew_round_trip_with_zero_mismatches(featured: tuple[Server, Features]) -> None:
    server, scenario = featured
    start = (scenario.now - timedelta(days=30)).isoformat()
    done = _call(server, "POST", "/features/materialize", "developer", {"views": [VIEW], "start": start}).json()
    assert done[0]["start_ts"] is not None and done[0]["by"] == "developer-user"
    again = _call(server, "POST", "/features/materialize", "developer", {"incremental": True}).json()
    assert again[0]["incremental"] and datetime.fromisoformat(again[0]["start_ts"]) == \
        datetime.fromisoformat(done[0]["end_ts"])
    history = _call(server, "GET", f"/features/{VIEW}/materializations", "viewer").json()
    assert len(history) == 2 and history[0]["incremental"]
    report = _call(server, "GET", f"/features/{VIEW}/skew", "viewer", sample=100).json()
    assert report["ok"] and report["mismatches"] == [] and report["checked"] >= 3
    assert (report["view"], report["version"]) == (VIEW, 1) and report["materialized_until"]
    # online equals offline: the point-in-time join at the materialisation's end, entity by entity
    until = datetime.fromisoformat(history[0]["end_ts"])
    probe = pd.DataFrame({"driver_id": [1, 2, 3], "event_timestamp": [until - timedelta(microseconds=1)] * 3})
    offline = server.ws.features.training_set(probe, FEATURES, store=False).to_pandas()
    online = _call(server, "POST", "/features/online", "viewer",
                   {"features": FEATURES, "entity_rows": [{"driver_id": d} for d in (1, 2, 3)]}).json()
    for i, row in enumerate(online["rows"]):
        for feature in ("trips_today", "rating"):
            value, want = row["features"][feature]["value"], offline[feature][i]
            assert (value is None and pd.isna(want)) or value == want, (i, feature, value, want)
    shown = _call(server, "GET", f"/features/{VIEW}", "viewer").json()
    assert datetime.fromisoformat(shown["freshness"]["materialized_until"]) == until


# -- bad input: a structured 4xx, never a 500 ------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/features/nope", "/features/nope/info", "/features/nope/versions",
                                  "/features/nope/consumers", "/features/nope/materializations",
                                  "/features/nope/skew", f"/features/{VIEW}@9/info", "/features/training-sets/nope",
                                  "/features/training-sets/nope/info",
                                  "/features/training-sets/drivers_training@7/info"])
def test_unknown_things_are_404(featured: tuple[Server, Features], path: str) -> None:
    server, _ = featured
    assert _error(_call(server, "GET", path, "viewer"), 404)["type"] == "NotFound"


def _online(**changes: Any) -> dict[str, Any]:
    return {"features": FEATURES, "entity_rows": [{"driver_id": 1}]} | changes


@pytest.mark.parametrize(("body", "status"), [
    (_online(features=["nope:trips_today"]), 404),  # unknown view
    (_online(features=[f"{VIEW}:nope"]), 404),  # unknown feature
    (_online(features=["nope"]), 404),
    (_online(features=[]), 400),
    (_online(features="driver_stats:trips_today"), 400),  # a string, not a list
    (_online(features=[1, 2]), 400),
    (_online(entity_rows=[{"driver": 1}]), 400),  # lacks the join key
    (_online(entity_rows=[{"driver_id": 1.5}]), 400),  # a float key
    (_online(entity_rows=[{"driver_id": True}]), 400),
    (_online(entity_rows=[{"driver_id": None}]), 400),
    (_online(entity_rows=[{"driver_id": {"nested": 1}}]), 400),
    (_online(entity_rows=[{"driver_id": [1]}]), 400),
    (_online(entity_rows={"driver_id": 1}), 400),  # an object, not a list
    (_online(entity_rows=[1, 2]), 400),
    (_online(entity_rows=[{"driver_id": 1}] * (MAX_ENTITY_ROWS + 1)), 400),
    (_online(features=[f"{VIEW}:rating"] * (MAX_FEATURES + 1)), 400),
    (_online(full_names="maybe"), 400),
    (_online(entities=[{"driver_id": 1}]), 400),  # a misspelt field
    ({"entity_rows": [{"driver_id": 1}]}, 400),
    ([], 400),
])
def test_bad_online_requests_are_4xx(featured: tuple[Server, Features], body: Any, status: int) -> None:
    server, _ = featured
    _error(_call(server, "POST", "/features/online", "viewer", body), status)


def test_the_largest_online_request_is_answered(featured: tuple[Server, Features]) -> None:
    server, _ = featured
    server.ws.features.materialize()
    rows = [{"driver_id": i % 5} for i in range(MAX_ENTITY_ROWS)]
    answer = _call(server, "POST", "/features/online", "viewer", {"features": FEATURES, "entity_rows": rows})
    assert answer.status_code == 200, answer.text
    statuses = [r["features"]["trips_today"]["status"] for r in answer.json()["rows"]]
    assert statuses[:5] == ["missing", "present", "present", "expired", "missing"] and len(statuses) == MAX_ENTITY_ROWS


def test_bad_online_text_and_media_types_are_4xx(featured: tuple[Server, Features]) -> None:
    server, _ = featured
    for content in (b"", b"{", b"null", b"\xff\xfe", b'{"features": ["x"]' * 1000):
        response = server.client.post("/api/v1/features/online", content=content,
                                      headers={**server.as_role("viewer"), "content-type": "application/json"})
        _error(response, 400)
    for key in (2**63, -(2**63) - 1, 10**40):  # no store holds a key past 64 bits
        _error(_call(server, "POST", "/features/online", "viewer", _online(entity_rows=[{"driver_id": key}])), 400)
    edge = _call(server, "POST", "/features/online", "viewer",
                 _online(entity_rows=[{"driver_id": 2**63 - 1}, {"driver_id": "1"}]))
    assert edge.status_code == 200  # keys nobody has: missing, not a crash
    assert {r["features"]["trips_today"]["status"] for r in edge.json()["rows"]} == {"missing"}


def _training(**changes: Any) -> dict[str, Any]:
    return {"entities": "driver_labels", "features": FEATURES, "label": "eta_minutes"} | changes


@pytest.mark.parametrize(("body", "status"), [
    (_training(entities="nope"), 404),
    (_training(entities="driver_labels@9"), 404),
    (_training(entities="driver_labels@99999999999999999999999"), (400, 404)),
    (_training(entities="../../etc/passwd"), 400),
    (_training(features=["nope:x"]), 404),
    (_training(features=[]), 400),
    (_training(label="nope"), 400),
    (_training(timestamp="nope"), 400),
    (_training(timestamp="eta_minutes"), 400),  # not a timestamp column
    (_training(name="bad name!"), 400),
    (_training(name="x" * 200), 400),
    (_training(entities=["driver_labels"]), 400),
    (_training(entities={"driver_id": [1]}), 400),  # a frame cannot be posted: a table ref only
    (_training(full_names=[]), 400),
    ({"features": FEATURES}, 400),
])
def test_bad_training_set_requests_are_4xx(featured: tuple[Server, Features], body: Any,
                                           status: int | tuple[int, ...]) -> None:
    server, _ = featured
    _error(_call(server, "POST", "/features/training-sets", "developer", body), status)


@pytest.mark.parametrize("body", [
    {"views": ["nope"]}, {"views": "driver_stats"}, {"start": "yesterday"}, {"start": "2024-01-01T00:00:00"},
    {"end": "2024-01-01"}, {"start": "9999-12-31T23:59:59+00:00"}, {"end": "0001-01-01T00:00:00+01:00"},
    {"incremental": True, "start": "2024-01-01T00:00:00Z"}, {"incremental": "yes"}, {"view": [VIEW]},
    {"start": 17}, {"views": [VIEW] * (MAX_FEATURES + 1)},
])
def test_bad_materialize_requests_are_4xx(featured: tuple[Server, Features], body: dict[str, Any]) -> None:
    server, _ = featured
    _error(_call(server, "POST", "/features/materialize", "developer", body), (400, 404))


def test_bad_skew_requests_are_4xx(featured: tuple[Server, Features]) -> None:
    server, _ = featured
    never = _error(_call(server, "GET", f"/features/{VIEW}/skew", "viewer"), 400)
    assert "never materialised" in never["message"]
    _call(server, "POST", "/features/materialize", "developer", {})
    for params in ({"sample": 0}, {"sample": -1}, {"sample": "many"}, {"sample": 10**30}, {"seed": -1},
                   {"seed": 2**40}):
        _error(_call(server, "GET", f"/features/{VIEW}/skew", "viewer", **params), 400)
    assert _call(server, "GET", f"/features/{VIEW}/skew", "viewer", sample=1, seed=7).json()["ok"]


# -- generated requests: schemathesis on the features routes, on the scenario's objects ------------------------

EXAMPLES = 15
HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture]
PINS = {"name": VIEW, "ref": "drivers_training@0"}  # a view's name; a training set's under training-sets/


def _features_schema(server: Server) -> Any:
    app = create_app(server.ws, allowed_hosts=["testserver"])  # schemathesis' ASGI client sends Host: testserver
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app).include(tag="features")


def _send(server: Server, case: Any, failures: list[str]) -> None:
    try:
        response = case.call(headers=server.as_role("admin"))
    except Exception as exc:  # the in-process client re-raises what the app let out (after its 500)
        failures.append(f"{case.as_curl_command()} -> the app raised {exc!r}")
        return
    if response.status_code >= 500:
        failures.append(f"{case.as_curl_command()} -> {response.status_code} {response.text[:300]}")


def test_no_generated_features_request_makes_a_5xx(featured: tuple[Server, Features]) -> None:
    """Random requests (valid and schema-violating) and every boundary case, with path parameters pinned to
    the real view and training set so the bodies reach the code behind the lookups."""
    server, _ = featured
    schema = _features_schema(server)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(_requests())
    failures: list[str] = []
    sent = 0
    for operation in operations:
        pins = {p.name: PINS[p.name] for p in operation.path_parameters}
        if operation.path.startswith("/api/v1/features/training-sets/{name}"):
            pins["name"] = "drivers_training"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pins or None))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=HEALTH)
            def run(case: Any) -> None:
                nonlocal sent
                sent += 1
                _send(server, case, failures)

            try:
                run()
            except Unsatisfiable:  # nothing in this operation can be made schema-violating
                assert mode is GenerationMode.NEGATIVE
        config = schema.config.generation_for(operation=operation)
        for case in schema.iter_coverage_cases(operation, generation_config=config,
                                               generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE]):
            if case.path_parameters is not None:
                case.path_parameters.update(pins)
            sent += 1
            _send(server, case, failures)
    assert sent > 300
    assert failures == [], "\n".join(failures[:20])


# -- on-demand features ----------------------------------------------------------------------------------------

def trips_per_hour(frame: pd.DataFrame) -> pd.DataFrame:
    """An on-demand feature: computed per request, by the same function offline and online."""
    return pd.DataFrame({"trips_per_hour": frame["trips_today"] / frame["hours_online"]})


def test_on_demand_features_are_computed_per_request(featured: tuple[Server, Features]) -> None:
    server, _ = featured
    server.ws.features.apply([OnDemandFeatureView(
        "driver_pace", sources=[f"{VIEW}:trips_today"], function=trips_per_hour,
        features=[Feature("trips_per_hour", "float64", "trips per hour online")],
        request=[RequestField("hours_online", "float64")], owner="pricing")])
    server.ws.features.materialize()
    rows = [{"driver_id": 1, "hours_online": 2.0}, {"driver_id": 2, "hours_online": 4.0}]
    answer = _call(server, "POST", "/features/online", "viewer",
                   {"features": ["driver_pace:trips_per_hour", f"{VIEW}:trips_today"], "entity_rows": rows}).json()
    assert [r["features"]["trips_per_hour"]["value"] for r in answer["rows"]] == [3.5, 1.0]
    assert [r["features"]["trips_today"]["value"] for r in answer["rows"]] == [7, 4]
    missing_field = _call(server, "POST", "/features/online", "viewer",
                          {"features": ["driver_pace:trips_per_hour"], "entity_rows": [{"driver_id": 1}]})
    assert "hours_online" in _error(missing_field, 400)["message"]
    assert "on-demand" in _error(_call(server, "POST", "/features/materialize", "developer",
                                       {"views": ["driver_pace"]}), 400)["message"]
    assert _error(_call(server, "GET", "/features/driver_pace/skew", "viewer"), 400)
    shown = _call(server, "GET", "/features/driver_pace", "viewer").json()
    assert shown["kind"] == "on_demand" and "freshness" not in shown
    client = TestClient(server.client.app, base_url="http://127.0.0.1",
                        cookies={SESSION_COOKIE: server.tokens["viewer"]})
    page = client.get("/features/driver_pace", headers={"accept": "text/html"})
    assert page.status_code == 200 and "trips_per_hour" in page.text and "hours_online" in page.text
    assert "on-demand" in client.get("/features", headers={"accept": "text/html"}).text


# -- the pages ------------------------------------------------------------------------------------------------

def test_the_feature_pages_show_types_consumers_and_removal_candidates(featured: tuple[Server, Features]) -> None:
    server, scenario = featured
    server.ws.features.materialize()
    client = TestClient(server.client.app, base_url="http://127.0.0.1", follow_redirects=False,
                        cookies={SESSION_COOKIE: server.tokens["viewer"]})
    listing = client.get("/features", headers={"accept": "text/html"})
    assert listing.status_code == 200, listing.text
    assert f'href="/features/{VIEW}"' in listing.text and "rides-team" in listing.text
    assert "drivers_training@0" in listing.text and 'aria-current="page">Features' in listing.text
    page = client.get(f"/features/{VIEW}", headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    text = page.text
    assert 'href="/models/eta/versions/1"' in text  # the consumer model links to its version page
    assert "average rating &lt;b&gt;so far&lt;/b&gt;" in text  # escaped
    rows = re.findall(r'<tr class="feature( removal)?" data-feature="(\w+)">', text)
    assert rows == [("", "trips_today"), ("", "rating"), (" removal", "acc_rate")]
    assert "removal candidate" in text and "7 days" in text and "float64" in text
    assert f'href="/data/{VIEW}/versions/0"' in text  # the source table version
    assert client.get("/features/nope", headers={"accept": "text/html"}).status_code == 404
    anonymous = TestClient(server.client.app, base_url="http://127.0.0.1", follow_redirects=False)
    assert anonymous.get(f"/features/{VIEW}", headers={"accept": "text/html"}).status_code == 303
    assert scenario.model == "model:eta/1"
