"""What data a retrain uses, and whether it may: the data window and the feedback-loop guard.

The data window is a predicate on the source table's time column, handed to the model's pipeline as ``where``:

- ``since_drift_start``: the rows newer than anything the table held when the drift began: its version when the
  last quiet window (the report before the drift) closed, else when the first drifted window opened. What arrived
  since the world changed, including a batch ingested just before it was first served.
- ``last(30d)``: the rows within 30 days of the newest one (of the data's own time, not the wall clock, so a
  backfill or a replay means the same).
- ``all``: every row.
- anything else is a SQL predicate on the table (``query:`` may prefix it): ``listed_at >= '2024-08-01'``.

The guard reads the prediction log: of the labelled requests in the window's time, the share the model answered
(any arm but the deployment's ``holdout``, whose keys get the baseline) is the share of labels produced under the
model's influence. When it exceeds the policy's ``max_influenced``, the retrain is refused unless overridden
with a reason: a model trained mostly on outcomes it caused learns its own choices back (a degenerate loop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from keel.errors import InvalidInput
from keel.serving.routing import HOLDOUT
from keel.storage.tables import query_arrow
from keel.tokens import parse_duration

__all__ = ["Window", "influenced_share", "parse_data", "resolve_window"]

_LAST = re.compile(r"last\((?P<span>[^()]+)\)", re.IGNORECASE)


@dataclass(frozen=True)
class Window:
    """A resolved data window: its SQL predicate (None: every row), the rows it holds, and since when (wall
    clock) the guard reads the log."""

    kind: str
    where: str | None
    rows: int
    log_since: datetime | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "rows": self.rows,
                "log_since": self.log_since.isoformat() if self.log_since else None, **self.detail}


def parse_data(text: str) -> dict[str, Any]:
    """The policy's ``data`` as stored: ``{kind: since_drift_start | last | all | query, ...}``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("data is since_drift_start, last(30d), all, or a SQL predicate on the source table")
    value = text.strip()
    if value in ("since_drift_start", "all"):
        return {"kind": value}
    last = _LAST.fullmatch(value)
    if last:
        span = parse_duration(last["span"].strip())
        if span <= timedelta(0):
            raise InvalidInput(f"data {text!r}: the span must be positive")
        return {"kind": "last", "span": last["span"].strip(), "seconds": span.total_seconds()}
    where = value.removeprefix("query:").strip()
    if not where:
        raise InvalidInput("data query: give a SQL predicate, e.g. query:listed_at >= '2024-08-01'")
    return {"kind": "query", "where": where}


def resolve_window(spec: dict[str, Any], data: Any, source: str, time_column: str | None,
                   drift_start: datetime | None, now: datetime, quiet_until: datetime | None = None) -> Window:
    """The window ``spec`` means now, over the newest version of ``source``. ``drift_start``: when the first
    drifted window opened; ``quiet_until``: when the last window before it, without drift, closed (data that
    arrived after it is the drifted data, even when it was ingested before the drifted window opened)."""
    latest = data.version(source)
    kind = spec["kind"]
    if kind in ("since_drift_start", "last") and not time_column:
        raise InvalidInput(f"data {kind}: the policy needs the source table's time column (--time-column)")
    column = f'"{time_column}"' if time_column else None
    if kind == "all":
        where, since, detail = None, None, {}
    elif kind == "query":
        where, since, detail = spec["where"], None, {}
    elif kind == "last":
        newest = _scalar(data, latest.ref, time_column)
        if newest is None:
            return Window(kind, None, 0, None, {"version": latest.ref})
        start = newest - timedelta(seconds=spec["seconds"])
        where, since = f"{column} >= {_literal(start)}", now - timedelta(seconds=spec["seconds"])
        detail = {"from": start.isoformat(), "newest": newest.isoformat()}
    else:
        if drift_start is None:
            raise InvalidInput("data since_drift_start: no drift has been seen on this deployment's monitor; use "
                               "last(...) or all for a retrain without drift")
        cut = quiet_until or drift_start
        before = sorted((v for v in data.history(source) if v.committed_at <= cut), key=lambda v: v.version)
        detail = {"drift_start": drift_start.isoformat(), "quiet_until": quiet_until.isoformat() if quiet_until
                  else None, "table_then": before[-1].ref if before else None}
        held = _scalar(data, before[-1].ref, time_column) if before else None
        where = None if held is None else f"{column} > {_literal(held)}"
        detail["newest_then"] = held.isoformat() if held is not None else None
        since = drift_start
    try:
        rows = int(data.read_arrow(latest.ref, columns=[time_column] if time_column else None,
                                   where=where).num_rows)
    except InvalidInput as exc:
        raise InvalidInput(f"data window {where!r} on {latest.ref}: {exc.message}") from None
    return Window(kind, where, rows, since, {"version": latest.ref, **detail})


def influenced_share(log: pa.Table) -> dict[str, Any]:
    """Of the labelled primary requests in ``log`` (columns request_id, kind, arm, output), how many the model
    answered (any arm but the holdout): ``{labelled, influenced, holdout, share}``; share None with no labels."""
    if log.num_rows == 0:
        return {"labelled": 0, "influenced": 0, "holdout": 0, "share": None}
    counts = query_arrow(f"""
        WITH labelled AS (SELECT DISTINCT request_id FROM log WHERE kind = 'feedback'
                          AND json_valid(output) AND json_extract(output, '$.label') IS NOT NULL),
             served AS (SELECT request_id, any_value(arm) AS arm FROM log WHERE kind = 'primary' GROUP BY request_id)
        SELECT count(*) AS labelled, count(*) FILTER (WHERE coalesce(arm, '') <> '{HOLDOUT}') AS influenced
        FROM served JOIN labelled USING (request_id)""", log=log).to_pylist()[0]
    labelled, influenced = int(counts["labelled"] or 0), int(counts["influenced"] or 0)
    return {"labelled": labelled, "influenced": influenced, "holdout": labelled - influenced,
            "share": influenced / labelled if labelled else None}


def _scalar(data: Any, ref: str, column: str) -> Any:
    """The newest value of ``column`` in the table version ``ref``."""
    table = data.read_arrow(ref, columns=[column])
    value = query_arrow(f'SELECT max("{column}") AS v FROM t', t=table)["v"][0].as_py()
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _literal(at: Any) -> str:
    if isinstance(at, datetime):
        return f"TIMESTAMPTZ '{at.astimezone(UTC).isoformat(sep=' ')}'"
    return repr(at)
