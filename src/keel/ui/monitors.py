"""Monitor pages: every monitor with its latest verdict, drifted columns and firing alerts; one monitor's reports,
with the report's content (columns and distributions, drift over time, slices, performance, alerts) that
``keel.monitoring.html`` renders for the self-contained file, and that file to download.

The report's plots are SVG with presentation attributes only and its markup uses the stylesheet's classes, so
the fragment renders under the pages' Content-Security-Policy. Read-only: monitors are created and run through
the CLI, the SDK and the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from keel.monitoring.html import firing, render_monitor_report, report_body, verdict, verdict_class
from keel.monitoring.model import DriftReport
from keel.server.security import READ
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["REPORTS_SHOWN", "router"]

router = APIRouter()
REPORTS_SHOWN = 50  # the newest reports drawn in the plots and listed; an older one is shown when asked for
_DOWNLOAD_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"


@router.get("/monitors", response_class=HTMLResponse)
def monitors_page(request: Request, ws: Workspace = READ) -> HTMLResponse:
    """Every monitor: its deployment, the latest report's verdict, what drifted and which alerts fire."""
    rows = []
    for monitor in ws.monitors.list():
        latest = next(iter(ws.monitors.reports(monitor.name, limit=1)), None) if monitor.latest_report else None
        rows.append({"m": monitor, "latest": latest, **_verdict(latest)})
    return page(request, "monitors.html", ws, title="Monitors", rows=rows)


@router.get("/monitors/{name}", response_class=HTMLResponse)
def monitor_page(request: Request, name: str, ws: Workspace = READ,
                 report: int | None = Query(None, ge=1)) -> HTMLResponse:
    """The monitor's settings, its reports, and one report (default: the latest) in full."""
    monitor = ws.monitors.get(name)
    reports = _reports(ws, name, report)
    focus = _focus(reports, report)
    # keel.monitoring.html escapes every string it places in the fragment
    body = Markup(report_body(monitor, reports, ws.monitors.alerts(name), number=report))
    listed = [{"r": r, **_verdict(r)} for r in reports]
    return page(request, "monitor.html", ws, title=f"Monitor {monitor.name}", monitor=monitor, focus=focus,
                reports=listed, body=body, **_verdict(focus))


@router.get("/monitors/{name}/report.html")
def report_file(request: Request, name: str, ws: Workspace = READ,
                report: int | None = Query(None, ge=1)) -> Response:
    """The report as one self-contained HTML file (inline CSS and plots), to keep or attach to a ticket."""
    monitor = ws.monitors.get(name)
    reports = _reports(ws, name, report)
    html = render_monitor_report(monitor, reports, ws.monitors.alerts(name), number=report)
    number = _focus(reports, report)
    filename = f"monitor-{monitor.name}" + (f"-{number.number}" if number else "") + ".html"
    return Response(html, media_type="text/html; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Content-Security-Policy": _DOWNLOAD_CSP,
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


def _reports(ws: Workspace, name: str, number: int | None) -> list[DriftReport]:
    """The newest reports, newest first, and the one asked for when it is older (NotFound when it is not there)."""
    reports = ws.monitors.reports(name, limit=REPORTS_SHOWN)
    if number is not None and all(r.number != number for r in reports):
        reports.append(ws.monitors.report(name, number))
    return reports


def _focus(reports: list[DriftReport], number: int | None) -> DriftReport | None:
    found = [r for r in reports if number is None or r.number == number]
    return max(found, key=lambda r: r.number) if found else None


def _verdict(report: DriftReport | None) -> dict[str, Any]:
    text = verdict(report)
    drifted = report.drifted_columns() if report is not None and report.status == "ok" else []
    if report is not None and report.status == "ok" and (report.results.get("prediction") or {}).get("drifted"):
        drifted.append("prediction")
    return {"verdict": text, "verdict_css": verdict_class(text), "drifted": drifted, "firing": firing(report)}
