"""Deployment pages: every endpoint with its routing at a glance, and one endpoint's status, its routing policy
drawn as a split bar (target shares above the live split observed in the prediction log), each arm's numbers
from ``ws.deployments.report``, and the history of its policy, newest first.

Read-only: deployments change through the CLI, the SDK and the API (``/api/v1/deployments``), which hold the
rules (gates, approvals, overrides); the pages show what those changes did and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from keel.errors import KeelError, NotFound
from keel.server.security import READ
from keel.serving.report import target_shares as report_shares
from keel.ui.charts import PALETTE, percent, split_bars
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["policy_models", "router", "routes_to", "target_shares"]

router = APIRouter()
STRAY = "#bab0ac"  # an arm the log has but the current policy does not
TARGET_WORDS = {"single": "The primary answers every request.",
                "shadow": "The primary answers every request; the shadows answer beside it for a sample of them.",
                "ab": "Each variant gets its weight's share of the request keys, sticky per key.",
                "canary": "The candidate gets the current step's share of the request keys, the stable version "
                          "the rest.",
                "interleave": "Each model picks first for half the requests; every response merges both rankings."}


def target_shares(policy: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each arm with the share of requests the policy sends it (the report's own reading of the policy: A/B
    weights normalised, a canary's candidate the step, interleaving's first pick half) and its colour."""
    shares = report_shares(dict(policy))
    return [{"arm": a["name"], "model": a["model"], "weight": a.get("weight"), "share": shares.get(a["name"], 0.0),
             "color": PALETTE[i % len(PALETTE)]} for i, a in enumerate(policy["arms"])]


def policy_models(policy: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every model a policy names and its role in it (an arm, a shadow, a fallback), in routing order."""
    out = [{"model": a["model"], "role": a["name"]} for a in policy["arms"]]
    out += [{"model": m, "role": "shadow"} for m in policy.get("shadows", [])]
    out += [{"model": m, "role": "fallback"} for m in policy.get("fallbacks", [])]
    return out


def routes_to(ws: Workspace, model_version: str) -> list[dict[str, Any]]:
    """The deployments whose current policy names ``model_version`` (``price/4``), with its role in each, then
    those whose earlier policies named it (from the lineage edges ``model:… -> deployment:NAME@N``)."""
    now = {d.name: d for d in ws.deployments.list()}
    before: dict[str, list[int]] = {}
    for child in ws.lineage.downstream(f"model:{model_version}", 1).children:
        if child.ref.startswith("deployment:") and "@" in child.ref:
            name, _, number = child.ref.removeprefix("deployment:").rpartition("@")
            if number.isdigit():
                before.setdefault(name, []).append(int(number))
    rows = []
    for name, d in now.items():
        roles = [m["role"] for m in policy_models(d.current.policy) if m["model"] == model_version]
        if roles:
            rows.append({"name": name, "current": True, "roles": roles, "deployment": d,
                         "versions": sorted(before.get(name, []))})
    for name in sorted(before):
        if not any(r["name"] == name for r in rows):
            rows.append({"name": name, "current": False, "roles": [], "deployment": now.get(name),
                         "versions": sorted(before[name])})
    return rows


@router.get("/deployments", response_class=HTMLResponse)
def deployments_page(request: Request, ws: Workspace = READ) -> HTMLResponse:
    """Every endpoint: its kind, state, production flag, the models it routes to, and its last change."""
    rows = [{"d": d, "models": policy_models(d.current.policy)} for d in ws.deployments.list()]
    return page(request, "deployments.html", ws, title="Deployments", rows=rows)


@router.get("/deployments/{name}", response_class=HTMLResponse)
def deployment_page(request: Request, name: str, ws: Workspace = READ) -> HTMLResponse:
    """Status, the routing policy as a split bar (target and live), each arm's numbers, and the history."""
    deployment = ws.deployments.get(name)
    policy = deployment.current.policy
    targets = target_shares(policy)
    report, report_error = _report(ws, deployment.name)
    live = _live(report, targets)
    rows = [("target", targets)]
    if report is not None:
        rows.append(("live", live["segments"]))
    return page(request, "deployment.html", ws, title=f"Deployment {deployment.name}", d=deployment, policy=policy,
                targets=targets, bars=split_bars(rows), report=report, report_error=report_error, live=live,
                shadow=_shadow(report), interleave=_interleave(report, targets), steps=_steps(policy),
                words=TARGET_WORDS.get(deployment.kind, ""), pct=percent,
                history=[{"v": v, "models": policy_models(v.policy)} for v in reversed(ws.deployments.history(name))])


def _report(ws: Workspace, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """The live numbers of the current policy; a report that cannot be made is said on the page, not a 500."""
    try:
        return ws.deployments.report(name), None
    except NotFound:
        raise
    except KeelError as exc:
        return None, exc.message


def _live(report: Mapping[str, Any] | None, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's arms, each with its colour and how far its observed share is from its target; arms the log
    has but the policy does not (an earlier policy's, in the window asked for) come last, in grey."""
    if not report:
        return {"rows": [], "segments": [], "srm": None, "requests": 0, "feedback": None}
    colors = {t["arm"]: t["color"] for t in targets}
    rows = []
    for i, arm in enumerate(report["arms"]):  # the policy's first arm first: the control
        target, share = arm.get("target_share"), arm.get("share")
        rows.append({**arm, "color": colors.get(arm["arm"], STRAY), "control": i == 0,
                     "off_by": share - target if share is not None and target is not None and len(targets) > 1
                     else None,
                     "metrics": arm.get("metrics") or ([{**arm["metric"], "vs_control": arm.get("vs_control")}]
                                                       if arm.get("metric") else [])})
    segments = [{"arm": r["arm"], "model": r["model"], "share": r["share"] or 0.0, "color": r["color"]}
                for r in rows]
    return {"rows": rows, "segments": segments, "srm": report.get("srm"), "requests": report.get("requests") or 0,
            "feedback": report.get("feedback")}


def _shadow(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Agreement and differences of each shadow with the primary, and the latency of each beside the primary's."""
    found = (report or {}).get("shadow")
    if not found:
        return None
    latency = found.get("latency") or {}
    models = found.get("models") or {}
    calls = latency.get("shadows") or {}
    rows = [{"model": model, **(models.get(model) or {}), "latency": calls.get(model) or {}}
            for model in dict.fromkeys([*models, *calls])]
    return {**found, "primary_latency": latency.get("primary") or {}, "rows": rows}


def _interleave(report: Mapping[str, Any] | None, targets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The clients' preference between the two rankings, drawn like the split: each arm's share of the decided
    requests (ties left out)."""
    found = (report or {}).get("interleave")
    if not found:
        return None
    wins = found.get("wins") or {}
    segments = [{"arm": t["arm"], "model": t["model"], "share": wins.get(t["arm"], 0), "color": t["color"]}
                for t in targets]
    return {**found, "bars": split_bars([("wins", segments)]), "decided": sum(wins.values())}


def _steps(policy: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A canary's steps, the one it is at marked current and the ones it passed marked done."""
    if policy.get("kind") != "canary":
        return []
    at = int(policy.get("step_index", 0))
    return [{"share": s, "current": i == at, "done": i < at} for i, s in enumerate(policy.get("steps", []))]
