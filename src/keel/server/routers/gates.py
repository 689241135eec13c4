"""/api/v1/gates: release-gate checklists, gate runs and their reports, and overrides, over ``ws.gates``.

Two things never happen for a request. A checklist's custom tests name Python code (``module:function`` or
``checks.py:function``), and storing one imports it: they are refused here and set where the code lives
(``ws.gates.set_checklist`` or ``keel gates set`` on the workspace's machine). And a gate run loads the model
with ``trusted=False``: a package that needs trust (a pickle) is run through the gates next to its code.
YAML is parsed here, never read as a path, so a request cannot make the server open one of its files.
"""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from keel.errors import InvalidInput, UntrustedModel
from keel.gates.spec import Checklist, CustomTest
from keel.server.responses import json_response
from keel.server.security import APPROVE, READ, WRITE
from keel.workspace import Workspace

__all__ = ["MAX_CHECKLIST_NODES", "MAX_YAML_CHARS", "router"]

router = APIRouter(tags=["gates"])
MAX_YAML_CHARS = 1_000_000  # a checklist is a page of YAML; this is a thousand of them
MAX_CHECKLIST_NODES = 100_000  # values in a checklist, counted as expanded (a YAML alias counts every time)
MAX_INT = 2**31 - 1  # versions and limits fit every database's integer

Text = Annotated[str, Field(min_length=1, max_length=512)]
Reason = Annotated[str, Field(max_length=4096)]
CUSTOM_REFUSED = ("custom tests name Python code; set them from Python or the CLI on the workspace's machine "
                  "(ws.gates.set_checklist or `keel gates set`), not through the server")


def _report(report: Any, status_code: int = 200) -> Response:
    return json_response(report.to_dict(), status_code=status_code)


# -- checklists -------------------------------------------------------------------------------------------

class ChecklistBody(BaseModel):
    """The checklist itself (``tests``, ``data``, ``part``, ``label``, ``against``, as in gates.yaml), or its
    YAML text in ``yaml``; ``reason`` goes to the audit log."""

    model_config = ConfigDict(extra="allow")
    yaml_text: Annotated[str, Field(max_length=MAX_YAML_CHARS)] | None = Field(None, alias="yaml")
    reason: Reason | None = None


@router.put("/gates/checklists/{model}", response_model=dict[str, Any])
def set_checklist(model: str, body: ChecklistBody, ws: Workspace = WRITE) -> Response:
    """Store the checklist as the model's next version (the same checklist again: the stored version)."""
    raw = _checklist_of(body)
    return json_response(ws.gates.set_checklist(model, raw, reason=body.reason).to_dict())


@router.get("/gates/checklists/{model}", response_model=dict[str, Any])
def checklist(model: str, ws: Workspace = READ, version: int | None = Query(None, ge=1, le=MAX_INT)) -> Response:
    """A stored checklist version (default: the latest)."""
    return json_response(ws.gates.checklist(model, version).to_dict())


@router.get("/gates/checklists/{model}/versions", response_model=list[Any])
def checklist_versions(model: str, ws: Workspace = READ) -> Response:
    found = ws.gates.checklists(model)
    if not found:
        ws.models.get(model)  # an unknown model is a 404; a known one without a checklist has no versions
    return json_response([c.to_dict() for c in found])


def _checklist_of(body: ChecklistBody) -> dict[str, Any]:
    """The checklist as a mapping, bounded, with no custom test in it."""
    fields = dict(body.model_extra or {})
    if body.yaml_text is not None:
        if fields:
            raise InvalidInput(f"send the checklist as JSON or as {{\"yaml\": text}}, not both (also got "
                               f"{', '.join(sorted(fields))})")
        try:
            raw = yaml.safe_load(body.yaml_text)
        except Exception as exc:  # PyYAML raises ValueError, AttributeError, RecursionError too (a bad !!timestamp)
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InvalidInput(f"the checklist is not valid YAML: {first}") from None
        if not isinstance(raw, dict):
            raise InvalidInput("a checklist is a YAML mapping with a 'tests' list")
    elif fields:
        raw = fields
    else:
        raise InvalidInput('the body is the checklist ({"tests": [...]}) or its YAML text ({"yaml": "..."})')
    _bounded(raw)
    tests = raw.get("tests")
    if isinstance(tests, list) and any(isinstance(t, dict) and t.get("kind") == "custom" for t in tests):
        raise InvalidInput(CUSTOM_REFUSED)
    try:
        parsed = Checklist.model_validate(raw)  # validating imports nothing; storing imports custom functions
    except ValidationError:
        return raw  # the service says what is wrong, in its words, before it imports anything
    if any(isinstance(test, CustomTest) for test in parsed.tests):  # however the kind was spelt (!!binary)
        raise InvalidInput(CUSTOM_REFUSED)
    return raw


def _bounded(raw: Any) -> None:
    """Refuse a checklist of more than MAX_CHECKLIST_NODES values (YAML aliases can multiply a small text)."""
    stack, seen = [raw], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_CHECKLIST_NODES:
            raise InvalidInput(f"the checklist holds more than {MAX_CHECKLIST_NODES:,} values; a checklist is a "
                               "list of tests, not data")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple | set):
            stack.extend(value)


# -- runs and reports -------------------------------------------------------------------------------------

class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored
    model: Text = Field(description="The version to test: price/3, price@challenger")
    against: Text | None = Field(None, description="The alias whose version is the champion (default: the "
                                                   "checklist's, production)")
    force: StrictBool = Field(False, description="Run again even when an identical run's report exists")


@router.post("/gates/run", status_code=201, response_model=dict[str, Any])
def run(body: RunRequest, ws: Workspace = WRITE) -> Response:
    """Run the model's latest checklist on a version and store the report (201); an earlier identical run's
    report comes back instead (200, ``reused``) unless ``force``."""
    try:
        report = ws.gates.run(body.model, against=body.against, force=body.force, trusted=False)
    except UntrustedModel as exc:
        raise UntrustedModel(f"the server never loads a model that needs trust: {exc.message} Run its gates where "
                             "its code is trusted (`keel gates run REF --trusted` on the workspace's machine)",
                             details=exc.details) from None
    return _report(report, 200 if report.reused else 201)


@router.get("/gates/reports", response_model=list[Any])
def reports(ws: Workspace = READ, model: str | None = Query(None, min_length=1, max_length=512),
            version: int | None = Query(None, ge=1, le=MAX_INT),
            limit: int = Query(100, ge=1, le=1000)) -> Response:
    """Stored gate reports, newest first (of ``model``, and its ``version``)."""
    return json_response([r.to_dict() for r in ws.gates.reports(model, version, limit=limit)])


@router.get("/gates/reports/{report_id}", response_model=dict[str, Any])
def report(report_id: str, ws: Workspace = READ) -> Response:
    return _report(ws.gates.report(report_id))


_HTML_HEADERS = {  # the page is self-contained: no script, nothing fetched, never framed
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "frame-ancestors 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


@router.get("/gates/reports/{report_id}/html", response_class=Response,
            responses={200: {"content": {"text/html": {}}}})
def report_html(report_id: str, ws: Workspace = READ) -> Response:
    """The report as one self-contained HTML page (plots inline)."""
    return Response(ws.gates.html(report_id), media_type="text/html; charset=utf-8", headers=_HTML_HEADERS)


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason = Field(description="Why the failed required tests are acceptable (kept in the audit log)")


@router.post("/gates/reports/{report_id}/override", response_model=dict[str, Any])
def override(report_id: str, body: OverrideRequest, ws: Workspace = APPROVE) -> Response:
    """An approver releases a version despite failed required tests, with a reason."""
    return _report(ws.gates.override(report_id, reason=body.reason))


@router.get("/gates/latest/{model}/{version}", response_model=dict[str, Any] | None)
def latest(model: str, version: str, ws: Workspace = READ) -> Response:
    """The newest report of a version (``3``, or an alias) against its model's latest checklist; null when the
    version has not been through it."""
    found = ws.gates.latest(f"{model}/{version}" if version.isdigit() else f"{model}@{version}")  # 404: unknown
    return json_response(None if found is None else found.to_dict())
