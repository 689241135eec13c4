"""Business KPIs and service health of a window.

A KPI is the user's function of the window's rows (inputs, ``prediction``, and ``label`` where one arrived) to a
number, stored by module, name and source hash (keel.code) so any later process runs the very same code. A KPI
that raises is reported with its error and the others go on. Service health comes from the prediction log
itself: requests, rows, latency percentiles and the share answered by a fallback from the primary rows; CPU,
memory, uptime, restarts and errors of the serving processes from their heartbeats (keel.monitoring.infra).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keel.code import function_json, resolve_function
from keel.errors import InvalidInput
from keel.monitoring.infra import infrastructure
from keel.numbers import finite_or_none

__all__ = ["kpi_specs", "run_kpis", "service_health"]

_KNOWN: dict[str, Callable[..., Any]] = {}  # functions resolved in this process, by module:name (and hash)


def kpi_specs(kpis: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """{name: function or "module:function"} as stored specs ({module, name, file, sha256})."""
    specs = {}
    for name, given in (kpis or {}).items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("a KPI needs a name")
        function = _import(given, name) if isinstance(given, str) else given
        if not callable(function):
            raise InvalidInput(f"KPI {name!r}: give a function or 'module:function', not {type(given).__name__}")
        spec = function_json(function, f"KPI {name!r}")
        _KNOWN[f"{spec['module']}:{spec['name']}"] = function
        specs[name] = spec
    return specs


def run_kpis(specs: dict[str, dict[str, Any]], rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each KPI's value on ``rows``, or the error it raised (reported; the others go on)."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in specs.items():
        try:
            function = resolve_function(spec, f"KPI {name!r}", _KNOWN,
                                        changed="create the monitor again to use the new code")
            value = float(function(rows.copy()))
            out[name] = {"value": value if math.isfinite(value) else None}
        except Exception as exc:  # the user's code: whatever it raised is its report, not the run's failure
            out[name] = {"value": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
    return out


def service_health(log: pa.Table, start: Any, end: Any, health: pa.Table | None = None,
                   deployment: str | None = None) -> dict[str, Any]:
    """Requests, latency percentiles (ms), fallback share and throughput of the window's primary answers; with
    ``health`` (the heartbeats logged in the window and the LOOKBACK before it), the ``infrastructure`` of the
    processes serving ``deployment`` (None for a window without a heartbeat)."""
    requests = log.num_rows
    seconds = max((end - start).total_seconds(), 1e-9)
    infra = {} if health is None else {"infrastructure": infrastructure(health, start, end, deployment)}
    if requests == 0:
        return {"requests": 0, "requests_per_s": 0.0, "latency_ms": None, "fallback_rate": None, **infra}
    latency = log["latency_ms"].to_numpy(zero_copy_only=False).astype(float)
    latency = latency[np.isfinite(latency)]
    quantiles = np.percentile(latency, [50, 95, 99]) if len(latency) else [math.nan] * 3
    fallbacks = requests - log["reason"].null_count
    by_version = pc.value_counts(log["served_by"]).to_pylist()
    return {"requests": requests, "requests_per_s": requests / seconds,
            "latency_ms": {"p50": finite_or_none(quantiles[0]), "p95": finite_or_none(quantiles[1]),
                           "p99": finite_or_none(quantiles[2]),
                           "max": finite_or_none(latency.max()) if len(latency) else None},
            "fallback_rate": fallbacks / requests,
            "served_by": {str(v["values"]): int(v["counts"]) for v in by_version}, **infra}


def _import(text: str, name: str) -> Callable[..., Any]:
    module_name, _, function_name = text.partition(":")
    if not module_name or not function_name:
        raise InvalidInput(f"KPI {name!r}: write module:function, not {text!r}")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"KPI {name!r}: cannot import {module_name!r} ({exc}); run from where it is importable"
                           ) from None
    function = module
    for part in function_name.split("."):
        function = getattr(function, part, None)
    if not callable(function):
        raise InvalidInput(f"KPI {name!r}: {module_name} has no function {function_name!r}")
    return function
