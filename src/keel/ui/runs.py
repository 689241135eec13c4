"""Run pages: the searchable list, one run (params, step charts, artifacts, environment, lineage), and a
comparison of 2–10 runs. Every page reads through ``ws.runs`` exactly as the API and CLI do."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from keel.errors import InvalidInput, NotFound
from keel.server.security import READ
from keel.storage.artifacts import CHUNK_SIZE
from keel.tracking.model import RUN_STATUSES, RunInfo
from keel.ui.charts import lineage_graph, parallel_coordinates
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter()

DEFAULT_COLUMNS = 5  # metric columns of the run list when none are chosen
MAX_CHARTS = 24  # step charts on a run page (each is one query and one chart)
MAX_COMPARED = 10
MAX_OVERLAY_KEYS = 12  # metrics looked at for training curves on the compare page
LINEAGE_DEPTH = 3  # a page shows the near lineage; the lineage page walks all of it
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}  # never SVG: it can carry script
TEXT_SUFFIXES = (".json", ".txt", ".csv", ".yaml", ".yml", ".md", ".log")


def _metric_rank(key: str) -> tuple[int, str]:
    """Which metrics to show first: held-out ones, then the rest; keel's own baselines and row counts last."""
    if key.startswith("baseline.") or key.endswith(".rows") or key.startswith("fit."):
        return 3, key
    return (0 if key.startswith("validation.") else 1 if key.startswith("test.") else 2), key


def metric_columns(runs: list[RunInfo], chosen: str) -> list[str]:
    if chosen.strip():
        return [c.strip() for c in chosen.split(",") if c.strip()]
    keys = {k for r in runs for k in r.metrics}
    return sorted(keys, key=_metric_rank)[:DEFAULT_COLUMNS]


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, ws: Workspace = READ, filter: str = "", sort: str = "", experiment: str = "",
              status: str = "", columns: str = "", limit: int = Query(100, ge=1, le=1000)) -> HTMLResponse:
    """The run list with the API's filter and sort language; a bad filter is explained on the page."""
    error = None
    try:
        runs = ws.runs.list(experiment=experiment or None, filter=filter or None, sort=sort or None,
                            status=status or None, limit=limit)
    except InvalidInput as exc:
        runs, error = [], exc.message
    return page(request, "runs.html", ws, title="Runs", runs=runs, columns=metric_columns(runs, columns),
                filter=filter, sort=sort, experiment=experiment, status=status, statuses=RUN_STATUSES,
                chosen_columns=columns, limit=limit, error=error)


def _histories(ws: Workspace, run_id: str, keys: list[str]) -> dict[str, list[list[Any]]]:
    """Per metric with more than one point: [steps, values] (steps default to the point's position)."""
    out = {}
    for key in keys[:MAX_CHARTS]:
        points = ws.runs.metric_history(run_id, key)
        if len(points) > 1:
            steps = [i if s is None else s for i, (s, _) in enumerate(points)]
            out[key] = [steps, [v for _, v in points]]
    return out


@router.get("/runs/compare", response_class=HTMLResponse)
def compare_page(request: Request, ws: Workspace = READ, ids: list[str] = Query(default_factory=list),
                 metrics: list[str] = Query(default_factory=list), all: bool = False) -> HTMLResponse:
    """Params side by side with the differing rows marked, and the metrics as parallel coordinates."""
    ids = list(dict.fromkeys(i for i in ids if i))
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise InvalidInput(f"compare 2 to {MAX_COMPARED} runs: tick them in the run list (got {len(ids)})")
    infos = [ws.runs.get(i) for i in ids]
    table = ws.runs.compare([i.id for i in infos])
    differing = [k for k in table["metrics_differ"]]
    chosen = [m for m in metrics if m in table["metrics"]] or sorted(differing, key=_metric_rank)[:8]
    labels = [r.name or r.id[:8] for r in infos]
    chart = parallel_coordinates(labels, [i.id for i in infos], {k: table["metrics"][k] for k in chosen})
    step_keys = sorted({k for i in infos for k in i.metrics}, key=_metric_rank)
    steps = {}
    for key in step_keys[:MAX_OVERLAY_KEYS]:  # one query per run and key: look at the first few keys only
        series = {i.id: _histories(ws, i.id, [key]).get(key) for i in infos}
        if any(series.values()):
            steps[key] = {"runs": [labels[n] for n, i in enumerate(infos)],
                          "series": [series[i.id] for i in infos]}
        if len(steps) >= 6:
            break
    return page(request, "compare.html", ws, title="Compare runs", runs=infos, labels=labels, table=table,
                chart=chart, chosen=chosen, show_all=all, steps=steps)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, ws: Workspace = READ) -> HTMLResponse:
    info = ws.runs.get(run_id)
    keys = sorted(info.metrics, key=_metric_rank)
    images = [n for n in info.artifacts if PurePosixPath(n).suffix.lower() in IMAGE_TYPES]
    up, down = ws.lineage.upstream(info.ref, LINEAGE_DEPTH), ws.lineage.downstream(info.ref, LINEAGE_DEPTH)
    return page(request, "run.html", ws, title=info.name or info.id, run=info, metric_keys=keys,
                histories=_histories(ws, info.id, keys), images=images, graph=lineage_graph(info.ref, up, down),
                environment=info.environment or {})


@router.get("/runs/{run_id}/files/{name:path}")
def run_file(run_id: str, name: str, ws: Workspace = READ) -> StreamingResponse:
    """An artifact to show in the page: images and text inline (with a type that cannot run script),
    anything else as a download."""
    info = ws.runs.get(run_id)
    if name not in info.artifacts:
        raise NotFound(f"run {info.id} has no artifact {name!r}")
    suffix = PurePosixPath(name).suffix.lower()
    media = IMAGE_TYPES.get(suffix) or ("text/plain; charset=utf-8" if suffix in TEXT_SUFFIXES else None)
    handle = ws.artifacts.open(f"runs/{info.id}/artifacts/{name}")

    def chunks() -> Any:
        with handle:
            while chunk := handle.read(CHUNK_SIZE):
                yield chunk

    filename = PurePosixPath(name).name.replace('"', "")
    disposition = "inline" if media else "attachment"
    headers = {"Content-Disposition": f'{disposition}; filename="{filename}"', "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private, max-age=300"}
    return StreamingResponse(chunks(), media_type=media or "application/octet-stream", headers=headers)
