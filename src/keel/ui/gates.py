"""Gate report pages: one page per report (its verdict, each test with its plot and evidence), the override
form for approvers, and the self-contained HTML file of the report to download.

The plots are the SVG that ``keel.gates.plots`` draws for the HTML report: only presentation attributes, so
they render under the pages' Content-Security-Policy. The override form is shown only to approvers; the POST
declares the approve permission, checks the CSRF token, and ``ws.gates.override`` checks the role again.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from keel.gates.html import format_value, verdict
from keel.gates.model import TestResult
from keel.gates.plots import figure
from keel.server.security import APPROVE, READ
from keel.ui.csrf import CSRF
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter()
# the downloaded report is a document, not a page of this site: it may style itself, but run and fetch nothing
_DOWNLOAD_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"


def _report_url(report_id: str, done: str | None = None) -> str:
    url = f"/gates/{quote(report_id, safe='')}"
    return f"{url}?done={done}" if done else url


@router.get("/gates/{report_id}", response_class=HTMLResponse)
def report_page(request: Request, report_id: str, ws: Workspace = READ, done: str | None = None) -> HTMLResponse:
    """The verdict, what was compared with what, and each test with its plot and evidence rows."""
    report = ws.gates.report(report_id)
    tests = [{"i": i, "result": r, "plot": _plot(r),
              "columns": list(dict.fromkeys(k for row in r.evidence for k in row))}
             for i, r in enumerate(report.results)]
    return page(request, "gate_report.html", ws, title=f"Gate report {report.id}", report=report,
                verdict=verdict(report), tests=tests, value=format_value, done=done)


def _plot(result: TestResult) -> Markup | None:
    """The report's own SVG figure; ``keel.gates.plots`` escapes every string it places in it."""
    svg = figure(result)
    return Markup(svg) if svg else None


@router.get("/gates/{report_id}/report.html")
def report_file(request: Request, report_id: str, ws: Workspace = READ) -> Response:
    """The self-contained HTML report (inline CSS and plots), as a file to keep or attach to a review."""
    report = ws.gates.report(report_id)
    return Response(ws.gates.html(report.id), media_type="text/html; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="gate-{report.id}.html"', "Content-Security-Policy":
        _DOWNLOAD_CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


@router.post("/gates/{report_id}/override")
def override(request: Request, report_id: str, _csrf: None = CSRF, ws: Workspace = APPROVE,
             reason: str = Form("")) -> RedirectResponse:
    """An approver releases a version despite failed required tests; the reason goes to the audit log."""
    report = ws.gates.override(report_id, reason=reason.strip())
    return RedirectResponse(_report_url(report.id, "overridden"), status_code=303)
