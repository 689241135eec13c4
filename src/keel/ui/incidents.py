"""Incident pages: the incidents recorded (``ws.incidents``), one incident with its notes and the timeline stored
with it, and a deployment's live timeline between two times (nothing stored) with the form that asks for it.

Each event's subject is a link: a ref to its page (a policy version, a model version, a table or feature view
version), a monitor to its page, anything else to the lineage graph. Read-only: incidents are recorded and noted
through the CLI, the SDK and the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from keel.errors import InvalidInput, KeelError
from keel.server.security import READ
from keel.ui.render import page, ref_url
from keel.workspace import Workspace

__all__ = ["events", "router", "subject_url"]

router = APIRouter()
KIND_WORDS = {  # one per keel.monitoring.timeline.KINDS (a test checks)
    "deployment": "a version of the routing policy", "registry": "a model or gate event in the registry",
    "data": "a table version committed", "features": "a feature view version",
    "alert": "a monitor's alert firing or resolving", "fallbacks": "a spike of fallback answers",
    "latency": "a spike of p99 latency"}


def subject_url(ref: str | None) -> str:
    """Where an event's subject is shown: a monitor's page, a monitor report, else the ref's own page."""
    kind, _, rest = (ref or "").partition(":")
    if kind == "monitor" and rest:
        return "/monitors/" + quote(rest, safe="")
    if kind == "monitor_report" and "/" in rest:
        name, _, number = rest.rpartition("/")
        return "/monitors/" + quote(name, safe="") + (f"?report={number}" if number.isdigit() else "")
    return ref_url(ref)


def events(timeline: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A timeline's events (``Timeline.to_dict()``) as table rows: their particulars that fit on a line."""
    rows = []
    for e in timeline.get("events") or []:
        details = e.get("details") or {}
        shown = [(k, v) for k, v in details.items() if v is not None and not isinstance(v, Mapping | list)]
        report = details.get("report") if e.get("kind") == "alert" else None
        rows.append({**e, "url": subject_url(e.get("subject")), "shown": shown,
                     "report": report, "report_url": subject_url(report) if report else None})
    return rows


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request, ws: Workspace = READ,
                   deployment: str | None = Query(None, max_length=512)) -> HTMLResponse:
    """Every incident, newest first (of one deployment when asked), and the form for a live timeline."""
    return page(request, "incidents.html", ws, title="Incidents", incidents=ws.incidents.list(deployment or None),
                deployment=deployment or "", deployments=_deployments(ws))


@router.get("/incidents/timeline", response_class=HTMLResponse)
def timeline_page(request: Request, ws: Workspace = READ, deployment: str | None = Query(None, max_length=512),
                  start: str | None = Query(None, alias="from", max_length=64),
                  end: str | None = Query(None, alias="to", max_length=64)) -> HTMLResponse:
    """A deployment's timeline read now: the form, and the events when a deployment and a start are given. A
    range or deployment that cannot be read is said above the form, with its 4xx status."""
    asked = {"deployment": deployment or "", "start": start or "", "end": end or ""}
    context = {"incident": None, "asked": asked, "deployments": _deployments(ws), "timeline": None, "error": None}
    if not (deployment or start or end):
        return page(request, "incident.html", ws, title="Timeline", **context)
    try:
        if not deployment or not start:
            raise InvalidInput("a timeline needs a deployment and a start (an ISO time or a duration such as 6h)")
        found = ws.incidents.timeline(deployment, start, end or None).to_dict()
    except KeelError as exc:
        if exc.http_status >= 500:
            raise
        return page(request, "incident.html", ws, title="Timeline", status_code=exc.http_status,
                    **{**context, "error": exc.message})
    return page(request, "incident.html", ws, title=f"Timeline of {found['deployment']}",
                **{**context, "timeline": found, "events": events(found), "words": KIND_WORDS})


@router.get("/incidents/{id}", response_class=HTMLResponse)
def incident_page(request: Request, id: str, ws: Workspace = READ) -> HTMLResponse:
    """One incident: what, how bad, over which range, its notes, and the timeline stored when it was recorded."""
    incident = ws.incidents.get(id)  # "seven" is a 400 page, an unknown number a 404 page
    timeline = incident.timeline or {}
    live = "/incidents/timeline?" + urlencode({"deployment": incident.deployment,
                                               "from": incident.window_start.isoformat(),
                                               "to": incident.window_end.isoformat()})
    return page(request, "incident.html", ws, title=f"Incident {incident.id}: {incident.title}", incident=incident,
                timeline=timeline, events=events(timeline), words=KIND_WORDS, live_url=live, asked=None,
                deployments=[], error=None)


def _deployments(ws: Workspace) -> list[str]:
    return [d.name for d in ws.deployments.list()]

