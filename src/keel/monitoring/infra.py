"""The infrastructure of a window: what the serving processes said about themselves in their heartbeats.

Every serving process (each uvicorn worker of ``keel serve``) appends a ``health`` row to the prediction log every
``heartbeat_every_s`` seconds and once more when it stops (``status = 'stopped'``); its ``output`` is JSON with
``host``, ``pid``, ``started_at`` (when it began serving), ``cpu_seconds``, ``rss_bytes``, ``requests``,
``errors``, ``every_s`` and ``deployments`` (the names it serves; null: every deployment). A process is one
(host, pid, started_at). From those rows, per window:

- ``processes``: the (host, pid) pairs that reported in the window, or whose heartbeats cover part of it.
- ``cpu``: each process's CPU seconds over its wall seconds between consecutive heartbeats, summed over the
  processes: cores in use, as a share of one core (2.0 is two cores busy).
- ``memory``: the highest resident memory one process reported (``peak_bytes``) and each process's latest,
  summed (``last_bytes``).
- ``uptime``: the share of the window at least one process covered. Consecutive heartbeats of a process cover
  the time between them unless more than two intervals apart (that gap counts as down); a process's last
  heartbeat covers one interval more unless it said it stopped.
- ``restarts``: processes that began serving in the window on a host where another process had stopped
  reporting before (in the window or the ten minutes before it, which are read for that).
- ``requests``, ``errors`` and ``error_rate``: from the processes' counters (errors: requests refused with a
  5xx, e.g. no model of the chain answered).

The JSON is parsed by DuckDB and everything after is numpy and pandas over whole columns: no Python per row.
A window without any heartbeat is ``None`` (nothing is known), never zeros.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from keel.numbers import finite_or_none
from keel.refs import check_name
from keel.storage.tables import query_arrow

__all__ = ["LOOKBACK", "infrastructure"]

LOOKBACK = timedelta(minutes=10)  # heartbeats read before a window: who was up at its start, who stopped before
_FIELDS = ('{"host": "VARCHAR", "pid": "BIGINT", "started_at": "VARCHAR", "cpu_seconds": "DOUBLE", '
           '"rss_bytes": "BIGINT", "requests": "BIGINT", "errors": "BIGINT", "every_s": "DOUBLE", '
           '"deployments": ["VARCHAR"]}')
_DEFAULT_EVERY_S = 15.0


def infrastructure(health: pa.Table, start: datetime, end: datetime, deployment: str | None = None
                   ) -> dict[str, Any] | None:
    """The window's infrastructure numbers from ``health`` rows (``at``, ``status``, ``output``) logged in
    [start - LOOKBACK, end] by processes serving ``deployment`` (None: every process); None without any."""
    beats = _beats(health, deployment)
    if beats.empty:
        return None
    lo, hi = start.timestamp(), end.timestamp()
    process = beats["host"] + "\x00" + beats["pid"].astype(str) + "\x00" + beats["started_at"]
    seg_start, seg_end, seg_process = _segments(beats, process.to_numpy(), lo, hi)
    inside = ((beats["t"] >= lo) & (beats["t"] <= hi)).to_numpy()
    if not inside.any() and not len(seg_start):
        return None
    seen = set(beats.loc[inside, "host"] + "\x00" + beats.loc[inside, "pid"].astype(str))
    seen |= {p.rsplit("\x00", 1)[0] for p in np.unique(seg_process)}  # a handful of processes, not rows
    up_seconds = _union_length(seg_start, seg_end)
    pairs = beats[inside & beats["prev_t"].notna().to_numpy()]
    dt = pairs["t"] - pairs["prev_t"]
    cpu_seconds = (pairs["cpu"] - pairs["prev_cpu"]).clip(lower=0)
    by_process = pd.DataFrame({"process": process[pairs.index], "cpu": cpu_seconds, "dt": dt}).groupby("process")
    sums = by_process.sum()
    rates = sums["cpu"][sums["dt"] > 0] / sums["dt"][sums["dt"] > 0]
    requests = int((pairs["requests"] - pairs["prev_requests"]).clip(lower=0).sum())
    errors = int((pairs["errors"] - pairs["prev_errors"]).clip(lower=0).sum())
    window = beats[inside]
    last = window.assign(process=process[inside]).sort_values("t").groupby("process")["rss"].last()
    return {"processes": len(seen), "heartbeats": int(inside.sum()),
            "cpu": finite_or_none(rates.sum()) if len(rates) else None,
            "cpu_seconds": finite_or_none(cpu_seconds.sum()),
            "memory": {"peak_bytes": _int(window["rss"].max()), "last_bytes": _int(last.sum(min_count=1))},
            "uptime": min(1.0, up_seconds / max(hi - lo, 1e-9)), "up_seconds": up_seconds,
            "restarts": _restarts(beats, process, lo, hi),
            "requests": requests, "errors": errors,
            "error_rate": errors / (requests + errors) if requests + errors else None}


def _beats(health: pa.Table, deployment: str | None) -> pd.DataFrame:
    """One row per heartbeat with its process's previous heartbeat beside it (DuckDB parses the JSON)."""
    if health.num_rows == 0:
        return pd.DataFrame()
    serves = "TRUE"
    if deployment is not None:
        check_name(deployment, "deployment name")  # the safe alphabet: no quote can end the literal below
        serves = f"h.deployments IS NULL OR list_contains(h.deployments, '{deployment}')"
    sql = f"""
        WITH parsed AS (SELECT epoch("at") AS t, coalesce(status = 'stopped', FALSE) AS final,
                               from_json(output, '{_FIELDS}') AS h FROM health),
        beats AS (SELECT t, final, h.host AS host, h.pid AS pid, h.started_at AS started_at,
                         epoch(h.started_at::TIMESTAMPTZ) AS started_s, h.cpu_seconds AS cpu, h.rss_bytes AS rss,
                         coalesce(h.requests, 0) AS requests, coalesce(h.errors, 0) AS errors,
                         coalesce(h.every_s, {_DEFAULT_EVERY_S}) AS every_s
                  FROM parsed WHERE h.host IS NOT NULL AND h.pid IS NOT NULL AND h.started_at IS NOT NULL
                                    AND ({serves}))
        SELECT *, lag(t) OVER w AS prev_t, lead(t) OVER w AS next_t, lag(cpu) OVER w AS prev_cpu,
               lag(requests) OVER w AS prev_requests, lag(errors) OVER w AS prev_errors
        FROM beats WINDOW w AS (PARTITION BY host, pid, started_at ORDER BY t) ORDER BY t"""
    return query_arrow(sql, health=health.select(["at", "status", "output"])).to_pandas()


def _segments(beats: pd.DataFrame, process: np.ndarray, lo: float, hi: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spans the heartbeats cover, clipped to [lo, hi]: between consecutive heartbeats of a process at most two
    intervals apart, and one interval after a process's last heartbeat unless it said it stopped."""
    t, prev_t, every = beats["t"].to_numpy(float), beats["prev_t"].to_numpy(float), beats["every_s"].to_numpy(float)
    between = ~np.isnan(prev_t) & (t - prev_t <= 2 * every)
    tail = np.isnan(beats["next_t"].to_numpy(float)) & ~beats["final"].to_numpy(bool)
    starts = np.concatenate([prev_t[between], t[tail]])
    ends = np.concatenate([t[between], t[tail] + every[tail]])
    owners = np.concatenate([process[between], process[tail]])
    starts, ends = np.maximum(starts, lo), np.minimum(ends, hi)
    keep = ends > starts
    return starts[keep], ends[keep], owners[keep]


def _union_length(starts: np.ndarray, ends: np.ndarray) -> float:
    """Seconds covered by the union of the spans (sorted, then merged where one reaches the next)."""
    if not len(starts):
        return 0.0
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    new = np.concatenate([[True], starts[1:] > reach[:-1]])  # a span starting past everything before it
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:] - 1, [len(starts) - 1]])
    return float((reach[last] - starts[first]).sum())


def _restarts(beats: pd.DataFrame, process: pd.Series, lo: float, hi: float) -> int:
    """Processes that began serving in [lo, hi] after another process on their host had stopped reporting."""
    spans = beats.assign(process=process).groupby("process").agg(host=("host", "first"), started=("started_s", "first"),
                                                                  last=("t", "max"))
    fresh = spans[(spans["started"] >= lo) & (spans["started"] <= hi)].reset_index()
    if fresh.empty:
        return 0
    pairs = fresh.merge(spans.reset_index(), on="host", suffixes=("", "_before"))
    replaced = pairs[(pairs["process"] != pairs["process_before"]) & (pairs["last_before"] <= pairs["started"])]
    return int(replaced["process"].nunique())


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)
