"""Turning service results into pages: the Jinja2 environment (autoescaped), its filters, and the
headers every page carries.

Pages are rendered on the server and need no script to be read; the only scripts are keel's own
(``static/keel.js``) and the vendored chart library, so the Content-Security-Policy can forbid every
inline script and every other origin.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader

from keel import __version__
from keel.refs import parse_ref
from keel.server.security import csrf_token
from keel.ui.csrf import ensure_csrf_secret, set_csrf_cookie
from keel.users import UserInfo, role_allows
from keel.workspace import Workspace

__all__ = ["PAGE_HEADERS", "TEMPLATES", "current_user", "page", "ref_url"]

TEMPLATES = Path(__file__).with_name("templates")
# no inline script, no other origin, no framing (the approve and promote forms must not be clickjacked)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def ref_url(ref: str | None) -> str:
    """The page that shows a lineage ref (``run:…``, ``model:price/3``, ``table:listings@2``), else its
    lineage graph: every ref on every page is a link."""
    if not ref:
        return "/lineage"
    kind, _, number = ref.partition(":")
    if kind in ("pipeline_run", "retrain") and number.isdigit():  # numbered records have their own pages
        return f"/pipelines/runs/{number}" if kind == "pipeline_run" else f"/retraining/{number}"
    try:
        parsed = parse_ref(ref)
    except Exception:  # a ref keel cannot parse is still shown, as a lineage query
        return "/lineage?" + urlencode({"ref": ref})
    name = quote(parsed.name, safe="")
    if parsed.kind == "run":
        return f"/runs/{name}"
    if parsed.kind == "model":
        return f"/models/{name}/versions/{parsed.version}" if parsed.version is not None else f"/models/{name}"
    if parsed.kind == "table" and parsed.version is not None:
        return f"/data/{name}/versions/{parsed.version}"
    if parsed.kind == "contract":
        return f"/data/{name}#contract"
    if parsed.kind == "features":
        return f"/features/{name}"
    if parsed.kind == "gate":
        return f"/gates/{name}"
    if parsed.kind == "deployment":  # a policy version: its row in the deployment's history
        return f"/deployments/{name}" + (f"#v{parsed.version}" if parsed.version is not None else "")
    if parsed.kind == "trainingset" and parsed.version is not None:  # stored as the table of its name
        return f"/data/{name}/versions/{parsed.version}"
    if parsed.kind == "pipeline":
        return f"/pipelines/{name}"
    return "/lineage?" + urlencode({"ref": ref})


def _number(value: Any, digits: int = 4) -> str:
    """Metrics as people read them: 4 significant digits, integers whole, NaN and None said plainly."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def _when(value: Any) -> str:
    """Times in UTC to the second (they are stored in UTC; a server has no idea of the reader's zone)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def _query(request: Request, **changes: Any) -> str:
    """The current URL's query with ``changes`` (None removes a key): sort links keep the filter."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    params += [(k, v) for k, v in changes.items() if v is not None]
    return "?" + urlencode(params)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(number=_number, when=_when, duration=_duration, size=_size, ref_url=ref_url)
    env.globals.update(ref_url=ref_url, keel_version=__version__)
    return env


_ENV = _environment()


def current_user(request: Request, ws: Workspace) -> UserInfo:
    """Who is looking: the token's user (auth on), else the workspace's own user (``--no-auth``)."""
    user = getattr(request.state, "user", None)
    return user if user is not None else ws.users.get(ws.user)


def page(request: Request, template: str, ws: Workspace | None, *, status_code: int = 200, title: str = "",
         **context: Any) -> HTMLResponse:
    """Render ``template`` with what every page needs (who is looking, the CSRF token for its forms)."""
    user = current_user(request, ws) if ws is not None else None
    secret, new_cookie = ensure_csrf_secret(request)
    html = _ENV.get_template(template).render(
        request=request, user=user, title=title, csrf_token=csrf_token(secret),
        can_write=bool(user and role_allows(user.role, "developer")),
        can_approve=bool(user and role_allows(user.role, "approver")),
        auth=request.app.state.keel.auth, query=lambda **c: _query(request, **c), **context)
    response = HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
    if new_cookie:
        set_csrf_cookie(request, response, secret)
    return response
