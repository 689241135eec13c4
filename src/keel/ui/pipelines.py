"""Pipeline pages: the applied pipelines with their recent runs, one pipeline's DAG (its latest version, or the one
asked for) with its runs, and one run drawn as a graph of its steps, coloured by status, with each step's inputs,
output, duration, error and logs.

The graphs are inline SVG laid out here, in Python: a step's column is its depth in the DAG (the longest path from
a step without inputs), so every arrow points right; within a column, steps sit near the steps they take inputs
from. Only presentation attributes and the stylesheet's classes, so they render under the pages'
Content-Security-Policy, and nothing runs in the browser. Read-only: pipelines are applied, run and retried
through the CLI, the SDK and the API.
"""

from __future__ import annotations

import graphlib
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from keel.pipelines.model import PipelineRun
from keel.pipelines.types import REF_TYPES
from keel.server.security import READ
from keel.ui.incidents import subject_url
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["RUN_STATUSES", "STEP_COLORS", "dag", "definition_graph", "layers", "link", "router", "run_graph",
           "seconds_text", "shown", "step_counts", "trigger_text"]

router = APIRouter()
RUN_STATUSES = ("queued", "running", "succeeded", "failed")
STEP_STATUSES = ("pending", "running", "succeeded", "cached", "failed", "skipped")
# (fill, stroke, ink) of a step node by its status; None: a step of a definition, not of a run
STEP_COLORS: dict[str | None, tuple[str, str, str]] = {
    "succeeded": ("#e6f4ea", "#1e6b35", "#1e6b35"), "cached": ("#e7eef8", "#1f4e8c", "#1f4e8c"),
    "failed": ("#fdecea", "#b3261e", "#b3261e"), "skipped": ("#f2f4f7", "#8a8f98", "#5f6b7a"),
    "running": ("#fff3e0", "#9a5b00", "#9a5b00"), "pending": ("#ffffff", "#8a8f98", "#5f6b7a"),
    None: ("#ffffff", "#b9bec7", "#5f6b7a")}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 184, 50, 56, 16, 8
_REF_KINDS = {t.kind for t in REF_TYPES.values()} | {"pipeline", "pipeline_run", "retrain", "monitor", "contract"}
_SHOWN_CHARS = 400  # a JSON value longer than this is cut on the page (the API has it whole)


def link(ref: Any) -> str | None:
    """The page of a ref a step took or made (``table:toy@1``, ``model:toy/2``, ``pipeline_run:3``,
    ``retrain:1``), None when the value is not a ref."""
    if not isinstance(ref, str) or ":" not in ref:
        return None
    kind, _, rest = ref.partition(":")
    if kind not in _REF_KINDS or not rest:
        return None
    if kind == "pipeline_run" and rest.isdigit():
        return f"/pipelines/runs/{rest}"
    if kind == "retrain" and rest.isdigit():
        return f"/retraining/{rest}"
    if kind == "pipeline":
        return "/pipelines/" + quote(rest.split("@")[0], safe="")
    return subject_url(ref)


def shown(value: Any) -> dict[str, Any]:
    """A step's input or output as the page shows it: a ref with its link, else compact JSON (cut when long)."""
    url = link(value)
    if url is not None:
        return {"text": value, "url": url}
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    cut = len(text) > _SHOWN_CHARS
    return {"text": text[:_SHOWN_CHARS] + ("…" if cut else ""), "url": None, "cut": cut}


def trigger_text(trigger: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's trigger for a table cell: its kind, who, what, and the retrain it belongs to."""
    trigger = trigger or {}
    retrain = trigger.get("retrain")
    return {"kind": trigger.get("kind", "?"), "by": trigger.get("by"), "what": trigger.get("what"),
            "retrain": retrain if isinstance(retrain, int) else None}


def step_counts(run: PipelineRun) -> list[tuple[str, int]]:
    """How many of the run's steps are in each status, in a fixed order."""
    counts: dict[str, int] = {}
    for s in run.steps:
        counts[s.status] = counts.get(s.status, 0) + 1
    return [(status, counts[status]) for status in (*STEP_STATUSES, *sorted(set(counts) - set(STEP_STATUSES)))
            if counts.get(status)]


def layers(names: list[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each step's depth: 0 without inputs, else one more than the deepest step it takes an input from."""
    parents: dict[str, set[str]] = {n: set() for n in names}
    for src, dst in edges:
        if src in parents and dst in parents and src != dst:
            parents[dst].add(src)
    try:
        ordered = list(graphlib.TopologicalSorter(parents).static_order())
    except graphlib.CycleError:  # refused when applied; drawn in definition order if one is ever stored
        return {n: i for i, n in enumerate(names)}
    depth: dict[str, int] = {}
    for name in ordered:
        depth[name] = 1 + max((depth[p] for p in parents[name]), default=-1)
    return depth


def dag(names: list[str], edges: list[tuple[str, str]], steps: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The graph of ``names`` (in definition order) and ``edges`` (from step, to step) laid out left to right by
    depth. ``steps``: each step's StepRun (a run's graph: nodes coloured and labelled by status and duration);
    ``labels``: the second line of a node without a status (a definition's graph: the step's output type)."""
    depth = layers(names, edges)
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    parents: dict[str, list[str]] = {n: [] for n in names}
    for src, dst in edges:
        if src in parents and dst in parents:
            parents[dst].append(src)
    row: dict[str, float] = {}
    for number, column in enumerate(columns):
        members = [n for n in names if depth[n] == number]
        if number:  # near the steps it takes inputs from (the mean of their rows), ties in definition order
            members.sort(key=lambda n: sum(row[p] for p in parents[n]) / len(parents[n]) if parents[n] else 0.0)
        column.extend(members)
        for i, n in enumerate(members):
            row[n] = float(i)
    tallest = max((len(c) for c in columns), default=0)
    height = PAD * 2 + tallest * NODE_H + max(tallest - 1, 0) * GAP_Y
    width = PAD * 2 + len(columns) * NODE_W + max(len(columns) - 1, 0) * GAP_X
    at: dict[str, tuple[float, float]] = {}
    nodes = []
    for number, column in enumerate(columns):
        top = PAD + (height - 2 * PAD - (len(column) * NODE_H + (len(column) - 1) * GAP_Y)) / 2
        for i, name in enumerate(column):
            x, y = PAD + number * (NODE_W + GAP_X), top + i * (NODE_H + GAP_Y)
            at[name] = (x, y)
            run = (steps or {}).get(name)
            status = run.status if run is not None else None
            fill, stroke, ink = STEP_COLORS.get(status, STEP_COLORS[None])
            if run is not None:
                seconds = run.seconds
                detail = status + (f" · {seconds_text(seconds)}" if seconds is not None and status != "cached" else "")
                if status == "cached" and run.cached_from:
                    detail += f" from #{run.cached_from}"
                if run.attempts and run.attempts > 1:
                    detail += f" · {run.attempts} attempts"
            else:
                detail = (labels or {}).get(name, "")
            nodes.append({"name": name, "label": _cut(name, 24), "detail": _cut(detail, 30), "status": status,
                          "x": x, "y": y, "fill": fill, "stroke": stroke, "ink": ink, "depth": number,
                          "title": f"{name}: {detail}" if detail else name})
    arrows = []
    for src, dst in edges:
        if src not in at or dst not in at:
            continue
        (x1, y1), (x2, y2) = at[src], at[dst]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H / 2, y2 + NODE_H / 2
        middle = (x1 + x2) / 2
        status = getattr((steps or {}).get(dst), "status", None)
        arrows.append({"src": src, "dst": dst, "d": f"M{x1:.1f},{y1:.1f} C{middle:.1f},{y1:.1f} {middle:.1f},{y2:.1f} "
                                                   f"{x2 - 2:.1f},{y2:.1f}", "skipped": status == "skipped"})
    return {"width": width, "height": height, "node_w": NODE_W, "node_h": NODE_H, "nodes": nodes, "arrows": arrows,
            "columns": len(columns)}


def run_graph(run: PipelineRun) -> dict[str, Any]:
    """A run's steps as a graph coloured by status (``PipelineRun.edges`` are the definition's wiring)."""
    return dag([s.step for s in run.steps], list(run.edges), {s.step: s for s in run.steps})


def definition_graph(definition: Mapping[str, Any]) -> dict[str, Any]:
    steps = definition.get("steps") or []
    edges = [(src, s["name"]) for s in steps for src in (s.get("inputs") or {}).values()]
    return dag([s["name"] for s in steps], edges, labels={s["name"]: f"→ {s.get('output', 'Any')}" for s in steps})


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page(request: Request, ws: Workspace = READ,
                   status: str | None = Query(None, max_length=32)) -> HTMLResponse:
    """Every applied pipeline (its newest version: steps, triggers) and the newest runs of them all."""
    pipelines = ws.pipelines.list()
    runs = ws.pipelines.runs(status=status or None, limit=50)
    last: dict[str, PipelineRun] = {}
    for run in runs:
        last.setdefault(run.pipeline, run)
    rows = [{"p": p, "order": _ordered(p.definition), "last": last.get(p.name)} for p in pipelines]
    return page(request, "pipelines.html", ws, title="Pipelines", rows=rows, runs=_run_rows(runs),
                status=status or "", statuses=RUN_STATUSES, secs=seconds_text)


@router.get("/pipelines/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, ws: Workspace = READ) -> HTMLResponse:
    """One run: its graph coloured by status, and each step's status, duration, inputs, output, error and logs."""
    run = ws.pipelines.show(run_id)  # "seven" is a 400 page, an unknown number a 404 page
    steps = [{"s": s, "inputs": [(k, shown(v)) for k, v in (s.inputs or {}).items()],
              "output": shown(s.output) if s.output is not None else None,
              "upstream": [src for src, dst in run.edges if dst == s.step]} for s in run.steps]
    given = (run.params or {}).get("given") or {}
    return page(request, "pipelines_run.html", ws, title=f"Pipeline run {run.id} ({run.pipeline})", run=run,
                graph=run_graph(run), steps=steps, given=[(k, shown(v)) for k, v in given.items()],
                trigger=trigger_text(run.trigger), counts=step_counts(run), seconds=_run_seconds(run),
                secs=seconds_text)


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(request: Request, name: str, ws: Workspace = READ,
                  version: int | None = Query(None, ge=1)) -> HTMLResponse:
    """A pipeline's DAG (its newest version, or ``?version=N``), its steps and triggers, and its runs."""
    info = ws.pipelines.get(name, version)
    newest = ws.pipelines.get(name).version if version is not None else info.version
    steps = [{**s, "function": s.get("function") or {}, "params_shown": [(k, shown(v)) for k, v in
                                                                          (s.get("params") or {}).items()]}
             for s in info.steps]
    runs = ws.pipelines.runs(info.name, limit=50)
    return page(request, "pipelines_detail.html", ws, title=f"Pipeline {info.name}", p=info, steps=steps,
                graph=definition_graph(info.definition), runs=_run_rows(runs), newest=newest, secs=seconds_text)


def _run_rows(runs: list[PipelineRun]) -> list[dict[str, Any]]:
    return [{"r": r, "trigger": trigger_text(r.trigger), "counts": step_counts(r), "seconds": _run_seconds(r)}
            for r in runs]


def _run_seconds(run: PipelineRun) -> float | None:
    if run.started_at is None or run.ended_at is None:
        return None
    return (run.ended_at - run.started_at).total_seconds()


def _ordered(definition: Mapping[str, Any]) -> list[str]:
    """The steps by depth, then in definition order: how they run."""
    steps = definition.get("steps") or []
    names = [s["name"] for s in steps]
    depth = layers(names, [(src, s["name"]) for s in steps for src in (s.get("inputs") or {}).values()])
    return sorted(names, key=lambda n: (depth.get(n, 0), names.index(n)))


def seconds_text(value: float | None) -> str:
    """A step's or a run's duration as people read it: ms below a second, minutes above one."""
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s" if value < 60 else f"{value / 60:.1f} min"


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"
