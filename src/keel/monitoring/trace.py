"""One prediction's story, from the prediction log and the lineage graph: what was asked, what was looked up,
how it was routed, which version answered (and why, if a fallback did), that version's training run and data,
the shadows' answers and the feedback that came later. What a post-mortem needs about a single request."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from keel.errors import InvalidInput, NotFound
from keel.serving.feedback import LOG_TABLE, MAX_ID

__all__ = ["build_trace", "log_filter_for"]


def log_filter_for(request_id: str) -> str:
    """The log filter matching one request id (quotes doubled: the id is the client's text)."""
    if not request_id or len(request_id) > MAX_ID:
        raise InvalidInput(f"a request id has 1 to {MAX_ID} characters")
    return "request_id = '" + request_id.replace("'", "''") + "'"


def build_trace(request_id: str, rows: pa.Table, *, model: dict[str, Any] | None, deployment: dict[str, Any] | None,
                log_version: int | None) -> dict[str, Any]:
    """The trace of ``request_id`` from its log ``rows`` (primary, shadow and feedback), with what lineage knows
    of the version that answered (``model``) and the deployment's policy version then in effect."""
    records = sorted(rows.to_pylist(), key=lambda r: (r["at"], r["kind"]))
    primary = [r for r in records if r["kind"] == "primary"]
    if not primary:
        raise NotFound(f"no prediction with request id {request_id!r} is in the log"
                       + (" (its feedback is)" if records else "")
                       + "; logs are committed about a second after the answer")
    answer = primary[0]
    story = {
        "request_id": request_id,
        "at": answer["at"].isoformat(),
        "deployment": answer["deployment"],
        "request": _json(answer.get("inputs")),
        "features": _json(answer.get("features")),
        "route": {"arm": answer.get("arm"), "model": answer.get("model"), "served_by": answer.get("served_by"),
                  "fallback": answer.get("reason")},
        "output": _json(answer.get("output")),
        "latency_ms": answer.get("latency_ms"),
        "status": answer.get("status"),
        "model": model,
        "deployment_version": deployment,
        "shadows": [{"model": r["model"], "output": _json(r.get("output")), "latency_ms": r.get("latency_ms"),
                     "status": r.get("status"), "at": r["at"].isoformat()} for r in records if r["kind"] == "shadow"],
        "feedback": [{"at": r["at"].isoformat(), **(_json(r.get("output")) or {})}
                     for r in records if r["kind"] == "feedback"],
        "log": {"table": LOG_TABLE, "version": log_version, "rows": len(records)},
    }
    return orjson.loads(orjson.dumps(story, default=str))  # plain JSON values: the same over HTTP as embedded


def _json(text: Any) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
