"""Trace pages: one prediction's story (``ws.monitors.trace``, keel.monitoring.trace) as a page — when, which
deployment and policy version, how it was routed and who answered (and why a fallback did), the request's rows
with their answers, the features looked up, the version that answered with its run, data and lineage, the
shadows, the feedback that came later and the log version it was read from; and a form to look a request up.

Read-only, like the monitor pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from keel.server.security import READ
from keel.serving.feedback import MAX_ID
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["request_rows", "router", "trace_url"]

router = APIRouter()
MAX_ROWS = 500  # the request rows drawn in the table; the rest are counted


def trace_url(request_id: str) -> str:
    """The page of one request's trace (any character of the client's id survives the trip)."""
    return "/traces/" + quote(request_id, safe="")


@router.get("/traces", response_class=HTMLResponse)
def trace_lookup(request: Request, ws: Workspace = READ,
                 request_id: str | None = Query(None, max_length=MAX_ID)) -> Response:
    """The lookup form; with a request id, the way to its trace."""
    wanted = (request_id or "").strip()
    if wanted:
        return RedirectResponse(trace_url(wanted), status_code=303)
    return page(request, "trace.html", ws, title="Trace a request", trace=None, request_id="")


@router.get("/traces/{request_id:path}", response_class=HTMLResponse)
def trace_page(request: Request, request_id: str, ws: Workspace = READ) -> HTMLResponse:
    """One request's trace (a 404 page when the log has no answer with that id)."""
    story = ws.monitors.trace(request_id)
    model = story.get("model") or {}
    return page(request, "trace.html", ws, title=f"Trace {request_id}", trace=story, request_id=request_id,
                rows=request_rows(story.get("request"), story.get("output")), features=_features(story),
                model=model, upstream=_upstream(model), version=story.get("deployment_version") or {},
                feedback=[_feedback(f) for f in story.get("feedback") or []],
                shadows=[{**s, "text": _text(s.get("output"))} for s in story.get("shadows") or []],
                output_text=_text(story.get("output")))


def request_rows(inputs: Any, output: Any) -> dict[str, Any]:
    """The request's records as a table (their fields in order of appearance), each row beside its answer when
    the output has one per row; anything else (a ranking, a bare value) stays text."""
    records = inputs if isinstance(inputs, list) else [inputs] if isinstance(inputs, Mapping) else None
    if not records or not all(isinstance(r, Mapping) for r in records):
        return {"columns": [], "rows": [], "text": _text(inputs) if inputs is not None else None, "more": 0,
                "answers": False}
    columns = list(dict.fromkeys(k for r in records for k in r))
    answers = isinstance(output, list) and len(output) == len(records)
    shown = records[:MAX_ROWS]
    rows = [{"cells": [_cell(r.get(c)) for c in columns], "answer": _cell(output[i]) if answers else None}
            for i, r in enumerate(shown)]
    return {"columns": columns, "rows": rows, "text": None, "more": len(records) - len(shown), "answers": answers}


def _features(story: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the data plane looked up for an entities request: per model column, the feature, the view version
    it was read at, and each row's value and status (``present``, ``missing``, ``stale``...)."""
    found = story.get("features")
    if not isinstance(found, Mapping):
        return None
    columns = []
    for column, info in (found.get("columns") or {}).items():
        info = info if isinstance(info, Mapping) else {}
        feature = str(info.get("feature") or "")
        view = feature.split(":")[0]
        version = info.get("version")
        values, statuses = info.get("values") or [], info.get("statuses") or []
        columns.append({"column": column, "feature": feature, "version": version,
                        "ref": f"features:{view}" + (f"@{version}" if version is not None else ""),
                        "cells": [{"value": _cell(v), "status": statuses[i] if i < len(statuses) else None}
                                  for i, v in enumerate(values)]})
    return {"columns": columns, "incomplete": found.get("incomplete") or [],
            "training_sets": found.get("training_sets") or {}}


def _upstream(model: Mapping[str, Any]) -> list[str]:
    return [r for r in model.get("upstream") or [] if isinstance(r, str)]


def _feedback(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"at": item.get("at"), "pairs": [(k, _text(v)) for k, v in item.items() if k != "at"]}


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    return _text(value) or ""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
