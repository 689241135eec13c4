"""Deployment reports from the prediction log: per arm, traffic, latency, fallbacks, the prediction distribution
and (with feedback) a metric with its confidence interval and a test against the control; the sample ratio
mismatch check; shadow agreement; the interleaving preference.

Pure functions of prediction-log rows (Arrow tables with the log's columns): DuckDB reads the JSON outputs and
aggregates, numpy and scipy do the statistics on per-request values, so nothing loops over rows in Python.

How feedback becomes a metric (the unit of analysis is the request, the unit that was randomised):

- ``label``: a scalar is compared with the request's first prediction, a list with its predictions position
  by position (extra positions on either side are ignored). When every compared pair is numeric and the
  predictions are floating-point numbers the metric is ``mae`` (per request, the mean absolute error over its
  compared positions; lower is better); otherwise it is ``accuracy`` (the share of positions equal; classes,
  integers, booleans).
- ``outcome``: the request's number (a conversion 1/0, revenue); the metric is its mean.
- Several feedback rows for one request: the latest label and the latest outcome count (a correction replaces
  the first); the items ``chosen`` in an interleaved list are the union of every row's.

Requests are counted per arm whoever answered them, the fallback included (intention to treat): the arm is
what was randomised. The first arm of the policy (the stable version of a canary, the first variant of an A/B
test) is the control; each other arm's metric is compared with it by Welch's t-test. Confidence intervals are
95 %: the mean ± t·se, and Welch's interval for a difference.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import InvalidInput
from keel.storage.tables import query_arrow

__all__ = ["ALPHA", "SRM_ALPHA", "build_report", "interleave_summary", "mean_interval", "metric_values",
           "parse_since", "shadow_summary", "srm_check", "target_shares", "welch"]

ALPHA = 0.05  # a difference or a preference is significant below this p-value
SRM_ALPHA = 0.001  # a sample ratio mismatch below this one (the usual, strict threshold: it means a broken split)
LOG_COLUMNS = ["request_id", "at", "kind", "arm", "model", "reason", "output", "latency_ms", "status"]
_NUMERIC = "('BIGINT', 'UBIGINT', 'DOUBLE')"
_JSON_LIST = "'[\"JSON\"]'"
_SINCE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(since: datetime | str, now: datetime) -> datetime:
    """A report window's start: a time (naive is UTC), an ISO 8601 text, or a duration back from ``now``
    (``30m``, ``6h``, ``7d``)."""
    try:
        if isinstance(since, datetime):
            start: datetime | None = since
        elif isinstance(since, str) and (match := _SINCE.fullmatch(since.strip().lower())):
            start = now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
        else:
            start = datetime.fromisoformat(since.strip()) if isinstance(since, str) else None
        if start is not None:
            start = (start if start.tzinfo else start.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        start = None
    if start is None:
        raise InvalidInput(f"since {since!r}: give an ISO time (2024-05-01T00:00Z) or a duration back from now "
                           "(30m, 6h, 7d)")
    if start > now:
        raise InvalidInput(f"since {start.isoformat()} is in the future; the report ends now ({now.isoformat()})")
    return start


def target_shares(policy: dict[str, Any]) -> dict[str, float]:
    """Each arm's intended share of requests: weights (A/B), the step (canary), one half each (interleave: who
    drafts first), all of it (single, shadow)."""
    arms = policy["arms"]
    if policy["kind"] == "canary":
        step = float(policy.get("step", 0.0))
        return {arms[0]["name"]: 1.0 - step, arms[1]["name"]: step}
    if policy["kind"] in ("single", "shadow"):
        return {arms[0]["name"]: 1.0}
    if policy["kind"] == "interleave":
        return {a["name"]: 1.0 / len(arms) for a in arms}
    total = sum(float(a.get("weight", 1.0)) for a in arms)
    return {a["name"]: float(a.get("weight", 1.0)) / total for a in arms}


def build_report(*, name: str, policy: dict[str, Any], version: int, rows: pa.Table, since: datetime,
                 until: datetime, policy_since: datetime, rel_tol: float = 0.01,
                 abs_tol: float = 1e-9) -> dict[str, Any]:
    """The report of deployment ``name`` (current ``policy``, its ``version``, in force since ``policy_since``)
    over the log ``rows`` of [since, until]: a JSON-able dict."""
    primary, shadow, feedback = (rows.filter(pc.equal(rows["kind"], kind)) for kind in ("primary", "shadow",
                                                                                          "feedback"))
    shares = target_shares(policy)
    arms = _arms(policy, primary, shares)
    _add_metrics(arms, metric_values(primary, feedback))
    srm = None
    if policy["kind"] in ("ab", "canary", "interleave") and since >= policy_since:  # targets fixed in the window
        srm = srm_check({a["arm"]: a["requests"] for a in arms if a["arm"] in shares}, shares)
    report: dict[str, Any] = {
        "deployment": name, "kind": policy["kind"], "version": version, "since": since.isoformat(),
        "until": until.isoformat(), "requests": primary.num_rows, "arms": arms, "srm": srm,
        "feedback": _feedback_summary(primary, feedback),
        "shadow": shadow_summary(primary, shadow, rel_tol=rel_tol, abs_tol=abs_tol) if shadow.num_rows else None,
        "interleave": None,
    }
    if report["shadow"] is not None and feedback.num_rows:
        _add_shadow_metrics(report["shadow"], shadow, feedback)
    if policy["kind"] == "interleave":
        report["interleave"] = interleave_summary(primary, feedback, [a["name"] for a in policy["arms"]])
    return report


# -- per arm ------------------------------------------------------------------------------------------------

def _arms(policy: dict[str, Any], primary: pa.Table, shares: dict[str, float]) -> list[dict[str, Any]]:
    found = {r["arm"]: r for r in query_arrow(
        "WITH base AS (SELECT arm, count(*) AS requests, mode(model) AS model, "
        "avg(CASE WHEN reason IS NOT NULL THEN 1.0 ELSE 0.0 END) AS error_rate, "
        "quantile_cont(latency_ms, 0.5) AS p50_ms, quantile_cont(latency_ms, 0.99) AS p99_ms FROM p GROUP BY arm), "
        f"items AS (SELECT arm, unnest(from_json(output, {_JSON_LIST})) AS v FROM p "
        "WHERE json_valid(output) AND json_type(output) = 'ARRAY'), "
        "preds AS (SELECT arm, avg(x) AS mean, stddev_samp(x) AS std, quantile_cont(x, 0.05) AS p05, "
        "quantile_cont(x, 0.5) AS p50, quantile_cont(x, 0.95) AS p95 FROM "
        f"(SELECT arm, CAST(v AS DOUBLE) AS x FROM items WHERE json_type(v) IN {_NUMERIC}) GROUP BY arm) "
        "SELECT base.*, preds.mean, preds.std, preds.p05, preds.p50, preds.p95 "
        "FROM base LEFT JOIN preds USING (arm)", p=primary.select(LOG_COLUMNS)).to_pylist()}
    models = {a["name"]: a["model"] for a in policy["arms"]}
    names = list(models) + sorted((a for a in found if a not in models), key=str)  # an earlier policy's last
    total = primary.num_rows
    out = []
    for arm in names:
        row = found.get(arm, {})
        requests = int(row.get("requests") or 0)
        prediction = None
        if row.get("mean") is not None:
            prediction = {k: _num(row[k]) for k in ("mean", "std", "p05", "p50", "p95")}
        out.append({"arm": arm, "model": models.get(arm, row.get("model")), "target_share": shares.get(arm),
                    "requests": requests, "share": requests / total if total else None,
                    "p50_ms": _num(row.get("p50_ms")), "p99_ms": _num(row.get("p99_ms")),
                    "error_rate": _num(row.get("error_rate")), "prediction": prediction,
                    "metric": None, "vs_control": None, "metrics": []})
    return out


def metric_values(primary: pa.Table, feedback: pa.Table, *,
                  outcomes: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per metric (``mae`` or ``accuracy`` from labels, ``outcome``): each matched request's arm and value."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if feedback.num_rows == 0 or primary.num_rows == 0:
        return out
    sources = {"p": primary.select(LOG_COLUMNS), "f": feedback.select(LOG_COLUMNS)}
    prim = "(SELECT request_id, arm, arg_max(output, \"at\") AS output FROM p GROUP BY request_id, arm)"
    latest = "(SELECT request_id, arg_max(v, \"at\") AS v FROM (SELECT request_id, \"at\", " \
             "json_extract(output, '$.{key}') AS v FROM f WHERE json_valid(output)) WHERE v IS NOT NULL " \
             "GROUP BY request_id)"
    labelled = query_arrow(
        f"WITH prim AS {prim}, labels AS {latest.format(key='label')}, "
        "pairs AS (SELECT prim.request_id, prim.arm, "
        f"unnest(from_json(CASE WHEN json_type(labels.v) = 'ARRAY' THEN labels.v ELSE json_array(labels.v) END, "
        f"{_JSON_LIST})) AS l, unnest(from_json(prim.output, {_JSON_LIST})) AS q "
        "FROM prim JOIN labels USING (request_id) WHERE json_valid(prim.output) AND json_type(prim.output) = 'ARRAY'), "
        f"scored AS (SELECT request_id, arm, l, q, json_type(l) IN {_NUMERIC} AND json_type(q) IN {_NUMERIC} "
        "AS numeric, json_type(q) = 'DOUBLE' AS floating FROM pairs WHERE l IS NOT NULL AND q IS NOT NULL) "
        "SELECT request_id, arm, avg(CASE WHEN numeric THEN abs(TRY_CAST(q AS DOUBLE) - TRY_CAST(l AS DOUBLE)) END) "
        "AS abs_error, avg(CASE WHEN (CASE WHEN numeric THEN TRY_CAST(q AS DOUBLE) = TRY_CAST(l AS DOUBLE) "
        "ELSE CAST(q AS VARCHAR) = CAST(l AS VARCHAR) END) THEN 1.0 ELSE 0.0 END) AS correct, "
        "bool_and(numeric) AS all_numeric, bool_or(floating) AS any_floating FROM scored GROUP BY request_id, arm "
        "ORDER BY request_id", **sources)
    if labelled.num_rows:
        regression = pc.all(labelled["all_numeric"]).as_py() and pc.any(labelled["any_floating"]).as_py()
        name, column = ("mae", "abs_error") if regression else ("accuracy", "correct")
        out[name] = (labelled["arm"].to_numpy(zero_copy_only=False),
                     labelled[column].to_numpy(zero_copy_only=False).astype(float))
    if not outcomes:
        return out
    valued = query_arrow(
        f"WITH prim AS {prim}, outcomes AS {latest.format(key='outcome')} "
        "SELECT prim.request_id, prim.arm, CAST(outcomes.v AS DOUBLE) AS value FROM prim JOIN outcomes "
        f"USING (request_id) WHERE json_type(outcomes.v) IN {_NUMERIC} ORDER BY prim.request_id", **sources)
    if valued.num_rows:
        out["outcome"] = (valued["arm"].to_numpy(zero_copy_only=False),
                          valued["value"].to_numpy(zero_copy_only=False).astype(float))
    return out


def _add_metrics(arms: list[dict[str, Any]], values: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Each arm's metrics (outcome first: the business number decides an experiment) and their test against
    the control (the first arm); ``metric`` and ``vs_control`` are the first of them."""
    control = arms[0]["arm"] if arms else None
    for name in sorted(values, key=lambda n: n != "outcome"):
        arm_of, value = values[name]
        base = value[arm_of == control]
        for arm in arms:
            mine = value[arm_of == arm["arm"]]
            if mine.size == 0:
                continue
            metric = {"name": name, **mean_interval(mine)}
            metric["vs_control"] = welch(mine, base) if arm["arm"] != control and base.size else None
            arm["metrics"].append(metric)
    for arm in arms:
        if arm["metrics"]:
            first = arm["metrics"][0]
            arm["metric"] = {k: v for k, v in first.items() if k != "vs_control"}
            arm["vs_control"] = first["vs_control"]


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """n, the mean and its t-interval (none from a single value)."""
    n = int(values.size)
    mean = float(np.mean(values)) if n else None
    if n < 2:
        return {"n": n, "value": mean, "ci_low": None, "ci_high": None}
    from scipy import stats  # on first use: importing scipy.stats costs a second at every CLI start
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * np.std(values, ddof=1) / math.sqrt(n))
    return {"n": n, "value": mean, "ci_low": mean - half, "ci_high": mean + half}


def welch(arm: np.ndarray, control: np.ndarray, confidence: float = 0.95) -> dict[str, Any] | None:
    """arm - control: the difference of means, Welch's interval and two-sided p-value."""
    if arm.size < 2 or control.size < 2:
        return None
    difference = float(np.mean(arm) - np.mean(control))
    if np.var(arm) == 0 and np.var(control) == 0:  # no spread: the test is undefined; the difference is exact
        return {"difference": difference, "ci_low": difference, "ci_high": difference,
                "p_value": 1.0 if difference == 0 else 0.0, "significant": difference != 0}
    from scipy import stats  # on first use: importing scipy.stats costs a second at every CLI start
    result = stats.ttest_ind(arm, control, equal_var=False)
    low, high = result.confidence_interval(confidence)
    p = _num(result.pvalue)
    return {"difference": difference, "ci_low": _num(low), "ci_high": _num(high), "p_value": p,
            "significant": p is not None and p < ALPHA}


# -- the split ----------------------------------------------------------------------------------------------

def srm_check(observed: dict[str, int], shares: dict[str, float]) -> dict[str, Any] | None:
    """Sample ratio mismatch: a chi-square test of the requests per arm against the policy's shares. A
    mismatch means the split (or the logging) is broken, and no metric difference can be trusted."""
    counts = {arm: int(observed.get(arm, 0)) for arm in shares}
    total = sum(counts.values())
    tested = {arm: share for arm, share in shares.items() if share > 0}
    if total == 0:
        return None
    expected = {arm: total * shares[arm] for arm in shares}
    if any(n for arm, n in counts.items() if arm not in tested):  # requests on an arm meant to get none
        return {"chi2": None, "p_value": 0.0, "mismatch": True, "expected": expected, "observed": counts}
    if len(tested) < 2:
        return None
    from scipy import stats  # on first use: importing scipy.stats costs a second at every CLI start
    chi2, p = stats.chisquare([counts[a] for a in tested], [expected[a] for a in tested])
    p_value = _num(p)
    return {"chi2": _num(chi2), "p_value": p_value, "mismatch": p_value is not None and p_value < SRM_ALPHA,
            "expected": expected, "observed": counts}


def _feedback_summary(primary: pa.Table, feedback: pa.Table) -> dict[str, int]:
    """Feedback rows in the window, and how many answered requests they name (matched) or not (unmatched: a
    request before the window, not logged yet, or a wrong id)."""
    if feedback.num_rows == 0:
        return {"rows": 0, "matched": 0, "unmatched": 0}
    row = query_arrow(
        "SELECT count(*) AS rows, count(DISTINCT CASE WHEN p.request_id IS NOT NULL THEN f.request_id END) AS matched, "
        "count(DISTINCT CASE WHEN p.request_id IS NULL THEN f.request_id END) AS unmatched FROM f "
        "LEFT JOIN (SELECT DISTINCT request_id FROM p) AS p ON f.request_id = p.request_id",
        p=primary.select(["request_id"]), f=feedback.select(["request_id"])).to_pylist()[0]
    return {k: int(v) for k, v in row.items()}


# -- shadow -------------------------------------------------------------------------------------------------

def shadow_summary(primary: pa.Table, shadow: pa.Table, *, rel_tol: float = 0.01,
                   abs_tol: float = 1e-9) -> dict[str, Any]:
    """Primary and shadow outputs of the same requests, position by position: the share that agree (classes
    equal; numbers within ``rel_tol`` of the primary's magnitude or ``abs_tol``), the distribution of shadow -
    primary, and the latency of each (a shadow's failures counted, never paired)."""
    sources = {"p": primary.select(LOG_COLUMNS), "s": shadow.select(LOG_COLUMNS)}
    compared = query_arrow(
        "WITH prim AS (SELECT request_id, arg_max(output, \"at\") AS output FROM p WHERE json_valid(output) "
        "GROUP BY request_id), "
        "sh AS (SELECT request_id, model, output FROM s WHERE status = 'ok' AND json_valid(output) "
        "AND json_type(output) = 'ARRAY'), "
        f"pairs AS (SELECT sh.model, sh.request_id, unnest(from_json(prim.output, {_JSON_LIST})) AS a, "
        f"unnest(from_json(sh.output, {_JSON_LIST})) AS b FROM sh JOIN prim USING (request_id) "
        "WHERE json_type(prim.output) = 'ARRAY'), "
        f"scored AS (SELECT model, request_id, json_type(a) IN {_NUMERIC} AND json_type(b) IN {_NUMERIC} AS numeric, "
        "TRY_CAST(a AS DOUBLE) AS x, TRY_CAST(b AS DOUBLE) AS y, "
        "a IS NOT NULL AND b IS NOT NULL AND CAST(a AS VARCHAR) = CAST(b AS VARCHAR) AS same FROM pairs), "
        "judged AS (SELECT *, CASE WHEN numeric THEN y - x END AS d, "
        f"CASE WHEN numeric THEN abs(y - x) <= greatest({float(rel_tol)!r} * abs(x), {float(abs_tol)!r}) "
        "ELSE same END AS agree FROM scored) "
        "SELECT model, GROUPING(model) AS overall, count(DISTINCT request_id) AS pairs, count(*) AS predictions, "
        "avg(CASE WHEN agree THEN 1.0 ELSE 0.0 END) AS agreement_rate, avg(d) AS mean, stddev_samp(d) AS std, "
        "quantile_cont(d, 0.05) AS p05, quantile_cont(d, 0.5) AS p50, quantile_cont(d, 0.95) AS p95, "
        "max(abs(d)) AS max_abs FROM judged GROUP BY GROUPING SETS ((model), ())", **sources).to_pylist()
    latency = query_arrow(
        "SELECT model, quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.99) AS p99, "
        "count(*) AS calls, sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) AS errors FROM s GROUP BY model "
        "ORDER BY model", **sources).to_pylist()
    primary_latency = query_arrow("SELECT quantile_cont(latency_ms, 0.5) AS p50, "
                                  "quantile_cont(latency_ms, 0.99) AS p99 FROM p", **sources).to_pylist()[0]
    by_model = {r["model"]: _agreement(r) for r in compared if not r["overall"]}
    overall = next((r for r in compared if r["overall"]), None)
    summary = _agreement(overall) if overall and overall["predictions"] else _agreement(None)
    del summary["metric"]  # a metric is each model's own
    return {**summary,
            "latency": {"primary": {k: _num(v) for k, v in primary_latency.items()},
                        "shadows": {r["model"]: {"p50": _num(r["p50"]), "p99": _num(r["p99"]), "calls": int(r["calls"]),
                                                 "errors": int(r["errors"])} for r in latency}},
            "models": {model: by_model.get(model, _agreement(None)) for model in (r["model"] for r in latency)}}


def _add_shadow_metrics(summary: dict[str, Any], shadow: pa.Table, feedback: pa.Table) -> None:
    """Each shadow model's label metric on the requests it shadowed (what it would have scored had it served;
    outcomes are left out: the client never saw its answer)."""
    answered = shadow.filter(pc.equal(shadow["status"], "ok"))
    as_arms = answered.set_column(answered.schema.get_field_index("arm"), "arm", answered["model"])
    for name, (model_of, value) in metric_values(as_arms, feedback, outcomes=False).items():
        for model, entry in summary["models"].items():
            mine = value[model_of == model]
            entry["metric"] = {"name": name, **mean_interval(mine)} if mine.size else None


def _agreement(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"pairs": 0, "predictions": 0, "agreement_rate": None, "difference": None, "metric": None}
    difference = None
    if row["mean"] is not None:
        difference = {k: _num(row[k]) for k in ("mean", "std", "p05", "p50", "p95", "max_abs")}
    return {"pairs": int(row["pairs"]), "predictions": int(row["predictions"]),
            "agreement_rate": _num(row["agreement_rate"]), "difference": difference, "metric": None}


# -- interleaving -------------------------------------------------------------------------------------------

def interleave_summary(primary: pa.Table, feedback: pa.Table, arms: list[str]) -> dict[str, Any]:
    """Team-draft credit: a request whose chosen items came more from one arm's picks is a win for it (equal
    credit, a tie); the preference for the first arm with a two-sided binomial test against one half.

    Outputs are ``{"items": [...], "teams": [...]}``; a team is named by its arm or by ``a``/``b`` (first/second
    arm)."""
    first, second = arms
    sides = {"a": 0, "b": 1, first: 0, second: 1}  # an arm's own name wins over the letters
    teams = pa.table({"team": list(sides), "side": list(sides.values())})
    impressions = query_arrow(
        "SELECT count(DISTINCT request_id) AS n FROM p WHERE json_valid(output) AND json_type(output) = 'OBJECT'",
        p=primary.select(LOG_COLUMNS)).to_pylist()[0]["n"]
    credited = query_arrow(
        "WITH prim AS (SELECT request_id, arg_max(output, \"at\") AS output FROM p WHERE json_valid(output) "
        "AND json_type(output) = 'OBJECT' GROUP BY request_id), "
        f"shown AS (SELECT request_id, unnest(from_json(json_extract(output, '$.items'), {_JSON_LIST})) AS item, "
        "unnest(from_json(json_extract(output, '$.teams'), '[\"VARCHAR\"]')) AS team FROM prim), "
        "picked AS (SELECT DISTINCT request_id, item FROM (SELECT request_id, "
        f"unnest(from_json(json_extract(output, '$.chosen'), {_JSON_LIST})) AS item FROM f WHERE json_valid(output) "
        "AND json_type(json_extract(output, '$.chosen')) = 'ARRAY')), "
        "credit AS (SELECT picked.request_id, t.side FROM picked LEFT JOIN shown "
        "ON picked.request_id = shown.request_id AND CAST(picked.item AS VARCHAR) = CAST(shown.item AS VARCHAR) "
        "LEFT JOIN t ON shown.team = t.team) "
        "SELECT request_id, count(*) FILTER (WHERE side = 0) AS a, count(*) FILTER (WHERE side = 1) AS b "
        "FROM credit WHERE request_id IN (SELECT request_id FROM prim) GROUP BY request_id",
        p=primary.select(LOG_COLUMNS), f=feedback.select(LOG_COLUMNS), t=teams)
    credit_a, credit_b = (credited[c].to_numpy(zero_copy_only=False) for c in ("a", "b"))
    wins_a, wins_b = int(np.sum(credit_a > credit_b)), int(np.sum(credit_b > credit_a))
    decided = wins_a + wins_b
    from scipy import stats  # on first use: importing scipy.stats costs a second at every CLI start
    p_value = float(stats.binomtest(wins_a, decided, 0.5).pvalue) if decided else None
    return {"impressions": int(impressions), "with_feedback": int(credited.num_rows),
            "wins": {first: wins_a, second: wins_b}, "ties": int(credited.num_rows) - decided,
            "preference_a": wins_a / decided if decided else None, "p_value": p_value,
            "significant": p_value is not None and p_value < ALPHA}


def _num(value: Any) -> float | None:
    """A JSON-able float (NaN and infinities, which JSON has no words for, become None)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
