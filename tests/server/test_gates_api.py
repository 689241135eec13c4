"""/api/v1/gates (issue 6): what ``ws.gates`` does, over REST, with the right permission per route; a passing
and a failing run, overrides by approvers only, promotions refused (409) until the gates pass, and bad input as
a structured 4xx, never a 500. Custom tests name Python code, so the server refuses them without importing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gates_helpers import CHECKLIST, register, toy_world  # tests/ is on sys.path
from keel.server.security import PERMISSIONS, api_routes, permission_of
from keel.users import ROLES

from .api_helpers import api_error as _error
from .api_helpers import call as _call
from .conftest import Server

GOOD, BROKEN = "toy/1", "toy/2"  # a linear model, and the same with the x1 coefficient flipped


@dataclass
class Gated:
    server: Server
    failed: str  # the id of a failed report of BROKEN


@pytest.fixture
def toy(server: Server) -> Server:
    """The toy world with a good and a broken version, no checklist yet."""
    split = toy_world(server.ws, 600)
    register(server.ws, split)
    register(server.ws, split, broken="anti_monotone")
    return server


@pytest.fixture
def gated(toy: Server) -> Gated:
    """The checklist stored and the broken version run through it (embedded)."""
    toy.ws.gates.set_checklist("toy", CHECKLIST)
    return Gated(toy, toy.ws.gates.run(BROKEN).id)


# -- every route, with the right role ------------------------------------------------------------------------

def _requests(failed: str) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(method, path, body, permission) of every gates route, on the scenario's objects."""
    return [
        ("PUT", "/gates/checklists/toy", {"yaml": CHECKLIST, "reason": "first checklist"}, "write"),
        ("GET", "/gates/checklists/toy", None, "read"),
        ("GET", "/gates/checklists/toy/versions", None, "read"),
        ("POST", "/gates/run", {"model": GOOD}, "write"),
        ("GET", "/gates/reports", None, "read"),
        ("GET", f"/gates/reports/{failed}", None, "read"),
        ("GET", f"/gates/reports/{failed}/html", None, "read"),
        ("POST", f"/gates/reports/{failed}/override", {"reason": "the directional test is wrong for toys"},
         "approve"),
        ("GET", "/gates/latest/toy/2", None, "read"),
    ]


def test_the_table_covers_every_gates_route(server: Server) -> None:
    routes = {(m, re.sub(r"\{[^}]+\}", "x", r.path.removeprefix("/api/v1")), permission_of(r))
              for r in api_routes(server.client.app.fastapi) if "gates" in (r.tags or [])
              for m in r.methods - {"HEAD"}}
    listed = {(m, re.sub(r"/toy\b|/2$|/REPORT", "/x", p), perm) for m, p, _, perm in _requests("REPORT")}
    assert routes == listed


def test_every_route_works_with_its_role_and_refuses_the_one_below(gated: Gated) -> None:
    server = gated.server
    for method, path, body, permission in _requests(gated.failed):
        needed = PERMISSIONS[permission]
        assert _call(server, method, path, None, body).status_code == 401, path
        if ROLES.index(needed) > 0:
            below = ROLES[ROLES.index(needed) - 1]
            _error(_call(server, method, path, below, body), 403, "PermissionDenied")
        allowed = _call(server, method, path, needed, body)
        assert 200 <= allowed.status_code < 300, (method, path, allowed.text)
    actors = {e.action: e.actor for e in server.ws.audit.list(target="model:toy/2")}
    assert actors["gates.override"] == "approver-user"  # changes are made as the token's user
    assert {e.action: e.actor for e in server.ws.audit.list(target="model:toy/1")}["gates.run"] == "developer-user"


# -- checklists ---------------------------------------------------------------------------------------------

def test_a_checklist_as_yaml_or_json_is_stored_versioned_and_read_back(toy: Server) -> None:
    stored = _call(toy, "PUT", "/gates/checklists/toy", "developer", {"yaml": CHECKLIST, "reason": "v1"})
    assert stored.status_code == 200, stored.text
    first = stored.json()
    assert (first["model"], first["version"], first["created_by"]) == ("toy", 1, "developer-user")
    as_json = dict(toy.ws.gates.checklist("toy").spec)
    again = _call(toy, "PUT", "/gates/checklists/toy", "developer", as_json).json()
    assert (again["version"], again["fingerprint"]) == (1, first["fingerprint"])  # the same checklist: unchanged
    fewer = {**as_json, "tests": as_json["tests"][:2]}
    assert _call(toy, "PUT", "/gates/checklists/toy", "developer", {**fewer, "reason": "v2"}).json()["version"] == 2
    assert _call(toy, "GET", "/gates/checklists/toy", "viewer").json()["version"] == 2
    assert _call(toy, "GET", "/gates/checklists/toy", "viewer", version=1).json()["spec"] == as_json
    assert [c["version"] for c in _call(toy, "GET", "/gates/checklists/toy/versions", "viewer").json()] == [1, 2]
    reasons = [e.reason for e in toy.ws.audit.list(action="gates.checklist")]
    assert sorted(reasons) == ["v1", "v2"]
    _error(_call(toy, "GET", "/gates/checklists/toy", "viewer", version=3), 404, "NotFound")
    _error(_call(toy, "GET", "/gates/checklists/nope", "viewer"), 404, "NotFound")
    _error(_call(toy, "GET", "/gates/checklists/nope/versions", "viewer"), 404, "NotFound")
    _error(_call(toy, "PUT", "/gates/checklists/nope", "developer", {"yaml": CHECKLIST}), 404, "NotFound")


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "the body is the checklist"),
    ({"yaml": "tests: [unclosed"}, "not valid YAML"),
    ({"yaml": "- a list"}, "YAML mapping"),
    ({"yaml": "tests: []\nat: 2024-13-45"}, "not valid YAML"),  # PyYAML raises ValueError, not YAMLError
    ({"yaml": "[" * 5000 + "]" * 5000}, "not valid YAML"),  # and RecursionError
    ({"yaml": ""}, "YAML mapping"),
    ({"yaml": "tests: []", "tests": []}, "not both"),
    ({"tests": [{"kind": "vibes"}]}, "unknown kind 'vibes'"),
    ({"tests": [{"conditions": ["rmse <= 2"]}]}, "needs a kind"),
    ({"tests": [{"kind": "metric", "conditions": ["rmse <== 2"]}]}, "tests[0] (metric)"),
    ({"tests": [{"kind": "metric", "conditions": ["accuracy_of_vibes >= 2"]}]}, "tests[0] (metric)"),
    ({"tests": [{"kind": "directional", "column": "x9", "delta": 1}]}, "unknown column 'x9'"),
    ({"tests": [{"kind": "smoke", "surprise": 1}]}, "surprise"),
    ({"tests": "metric"}, "tests"),
    ({"yaml": 3}, "yaml"),
    ({"tests": [{"kind": "smoke"}], "reason": ["a", "list"]}, "reason"),
    ({"yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdef", "bcdefg", strict=True)) + "tests: *g"}, "more than 100,000 values"),
])
def test_a_malformed_checklist_is_a_400_and_stores_nothing(toy: Server, body: dict[str, Any], fragment: str) -> None:
    error = _error(_call(toy, "PUT", "/gates/checklists/toy", "developer", body), 400, "InvalidInput")
    assert fragment in error["message"], error
    assert toy.ws.gates.checklists("toy") == []


def test_yaml_text_is_never_read_as_a_path_on_the_server(toy: Server) -> None:
    (toy.ws.root / "gates.yaml").write_text(CHECKLIST)
    error = _error(_call(toy, "PUT", "/gates/checklists/toy", "developer", {"yaml": "gates.yaml"}), 400)
    assert "YAML mapping" in error["message"]
    assert toy.ws.gates.checklists("toy") == []


def test_custom_tests_are_refused_without_importing_anything(toy: Server, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    (toy.ws.root / "checks.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n\n"
        "import keel\n\n@keel.custom_gate\ndef check(ctx):\n    return keel.GateOutcome(passed=True)\n")
    tests = [{"kind": "smoke"}, {"kind": "custom", "name": "mine", "function": "checks.py:check"}]
    bodies = [{"tests": tests}, {"yaml": "tests:\n  - kind: smoke\n  - kind: custom\n    function: checks.py:check\n"},
              {"tests": [{"kind": "custom", "function": "keel_gates_never_imported_module:check"}]}]
    for body in bodies:
        error = _error(_call(toy, "PUT", "/gates/checklists/toy", "admin", body), 400, "InvalidInput")
        assert error["message"].startswith("custom tests name Python code; set them from Python or the CLI on the "
                                           "workspace's machine"), error
    assert not marker.exists()
    assert toy.ws.gates.checklists("toy") == []
    import sys

    assert "keel_gates_never_imported_module" not in sys.modules


# -- runs and reports -----------------------------------------------------------------------------------------

def test_a_passing_and_a_failing_run_and_their_reports(gated: Gated) -> None:
    server = gated.server
    created = _call(server, "POST", "/gates/run", "developer", {"model": GOOD})
    assert created.status_code == 201, created.text
    passed = created.json()
    assert (passed["model"], passed["version"], passed["status"], passed["releasable"]) == ("toy", 1, "passed", True)
    assert passed["ref"] == f"gate:{passed['id']}" and passed["created_by"] == "developer-user"
    assert passed["blocking"] == [] and not passed["reused"]
    assert [r["name"] for r in passed["results"]] == ["metric", "slice", "smoke", "invariance",
                                                      "minimum_functionality", "directional", "leakage", "fairness"]
    assert passed["counts"]["passed"] == 8 and passed["data"].startswith("split:toy")
    reused = _call(server, "POST", "/gates/run", "developer", {"model": GOOD})
    assert reused.status_code == 200 and reused.json()["reused"] and reused.json()["id"] == passed["id"]
    forced = _call(server, "POST", "/gates/run", "developer", {"model": GOOD, "force": True})
    assert forced.status_code == 201 and forced.json()["id"] != passed["id"]

    failed = _call(server, "POST", "/gates/run", "developer", {"model": BROKEN, "force": True}).json()
    assert failed["status"] == "failed" and not failed["releasable"]
    assert {"directional", "minimum_functionality"} <= set(failed["blocking"])
    directional = next(r for r in failed["results"] if r["name"] == "directional")
    assert directional["status"] == "failed" and directional["evidence"] and directional["evidence_rows"] > 0
    fairness = next(r for r in failed["results"] if r["name"] == "fairness")
    assert not fairness["required"] and fairness["name"] not in failed["blocking"]  # nice-to-have never blocks

    shown = _call(server, "GET", f"/gates/reports/{failed['id']}", "viewer").json()
    assert shown == {**failed, "duration_s": shown["duration_s"]}
    assert _call(server, "GET", f"/gates/reports/gate:{failed['id']}", "viewer").json()["id"] == failed["id"]
    listed = _call(server, "GET", "/gates/reports", "viewer", model="toy", version=2).json()
    assert [r["id"] for r in listed] == [failed["id"], gated.failed]
    assert len(_call(server, "GET", "/gates/reports", "viewer", limit=1).json()) == 1
    assert len(_call(server, "GET", "/gates/reports", "viewer").json()) == 4
    assert _call(server, "GET", "/gates/latest/toy/2", "viewer").json()["id"] == failed["id"]
    assert _call(server, "GET", "/gates/latest/toy/latest", "viewer").json()["id"] == failed["id"]

    page = _call(server, "GET", f"/gates/reports/{failed['id']}/html", "viewer")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert failed["id"] in page.text and "directional" in page.text
    assert "sandbox" in page.headers["content-security-policy"] and page.headers["x-content-type-options"] == "nosniff"


def test_latest_is_null_for_a_version_never_gated(toy: Server) -> None:
    assert _call(toy, "GET", "/gates/latest/toy/1", "viewer").json() is None
    _error(_call(toy, "GET", "/gates/latest/toy/9", "viewer"), 404, "NotFound")
    _error(_call(toy, "GET", "/gates/latest/nope/1", "viewer"), 404, "NotFound")


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({}, 400, "model"),
    ({"model": 3}, 400, "model"),
    ({"model": GOOD, "force": "yes"}, 400, "force"),
    ({"model": GOOD, "trusted": True}, 400, "trusted"),
    ({"model": "toy/9"}, 404, "toy"),
    ({"model": "nope/1"}, 404, "nope"),
    ({"model": "not a ref!"}, 400, ""),
])
def test_bad_run_requests_are_4xx(toy: Server, body: dict[str, Any], status: int, fragment: str) -> None:
    toy.ws.gates.set_checklist("toy", CHECKLIST)
    error = _error(_call(toy, "POST", "/gates/run", "developer", body), status)
    assert fragment in error["message"], error


def test_a_run_without_a_checklist_is_a_404_that_says_how_to_declare_one(toy: Server) -> None:
    error = _error(_call(toy, "POST", "/gates/run", "developer", {"model": GOOD}), 404, "NotFound")
    assert "keel gates set toy" in error["message"]


def test_unknown_reports_are_404(toy: Server) -> None:
    for method, path, role, body in (("GET", "/gates/reports/0123456789abcdef", "viewer", None),
                                     ("GET", "/gates/reports/nope/html", "viewer", None),
                                     ("POST", "/gates/reports/nope/override", "approver", {"reason": "why not"})):
        _error(_call(toy, method, path, role, body), 404, "NotFound")


def test_the_server_never_loads_a_model_that_needs_trust(toy: Server) -> None:
    from helpers_models import ToyModel

    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 0.1]})
    toy.ws.models.register(ToyModel(), "pyish", flavor="python", input_example=frame)
    toy.ws.gates.set_checklist("pyish", {"data": "toy-split", "label": "y", "tests": [{"kind": "smoke"}]})
    error = _error(_call(toy, "POST", "/gates/run", "developer", {"model": "pyish/1"}), 403, "UntrustedModel")
    assert "the server never loads a model that needs trust" in error["message"]
    assert toy.ws.gates.reports("pyish") == []


# -- overrides and promotion ----------------------------------------------------------------------------------

def test_only_an_approver_overrides_a_failed_report_with_a_reason(gated: Gated) -> None:
    server, path = gated.server, f"/gates/reports/{gated.failed}/override"
    _error(_call(server, "POST", path, "developer", {"reason": "ship it"}), 403, "PermissionDenied")
    _error(_call(server, "POST", path, "approver", {}), 400, "InvalidInput")
    _error(_call(server, "POST", path, "approver", {"reason": "  "}), 400, "InvalidInput")
    _error(_call(server, "POST", path, "approver", {"reason": "ok", "extra": 1}), 400, "InvalidInput")
    done = _call(server, "POST", path, "approver", {"reason": "toys need not be monotone"})
    assert done.status_code == 200, done.text
    report = done.json()
    assert report["status"] == "failed" and report["releasable"]
    assert (report["override"]["by"], report["override"]["reason"]) == ("approver-user", "toys need not be monotone")
    entry = server.ws.audit.list(action="gates.override")[0]
    assert (entry.actor, entry.reason, entry.target) == ("approver-user", "toys need not be monotone", "model:toy/2")
    passed = server.ws.gates.run(GOOD).id
    error = _error(_call(server, "POST", f"/gates/reports/{passed}/override", "approver", {"reason": "x"}), 400)
    assert "nothing to override" in error["message"]


def test_promotion_is_refused_with_409_until_the_gates_pass_or_are_overridden(toy: Server) -> None:
    def promote(version: int) -> Any:
        return _call(toy, "POST", f"/models/toy/versions/{version}/promote", "developer", {"environment": "staging"})

    assert promote(1).status_code == 200  # no checklist: nothing to enforce
    assert _call(toy, "PUT", "/gates/checklists/toy", "developer", {"yaml": CHECKLIST}).status_code == 200
    error = _error(promote(1), 409, "GatesFailed")
    assert "keel gates run toy/1" in error["message"]
    assert _call(toy, "POST", "/gates/run", "developer", {"model": GOOD}).json()["status"] == "passed"
    assert promote(1).status_code == 200

    failed = _call(toy, "POST", "/gates/run", "developer", {"model": BROKEN}).json()
    error = _error(promote(2), 409, "GatesFailed")
    assert "directional" in error["details"]["failed"] and error["details"]["report"] == failed["ref"]
    _call(toy, "POST", f"/gates/reports/{failed['id']}/override", "approver", {"reason": "accepted"})
    assert promote(2).status_code == 200


def test_a_run_against_another_alias_compares_with_its_version(gated: Gated) -> None:
    server = gated.server
    server.ws.models.set_alias(GOOD, "champion")
    body = {"model": BROKEN, "against": "champion"}
    report = _call(server, "POST", "/gates/run", "developer", body).json()
    assert (report["against"], report["against_version"], report["status"]) == ("champion", 1, "failed")
    assert report["id"] != gated.failed  # another champion: not the earlier report
    metric = next(r for r in report["results"] if r["name"] == "metric")
    assert "champion" in metric["message"] and "no champion" not in metric["message"]
