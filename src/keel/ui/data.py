"""Data pages: the tables, one table (versions, quarantined rows per version and per reason, contract),
and one version's profile with a histogram per column."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from keel.data.model import QUARANTINE_SUFFIX, TableVersion
from keel.data.quarantine import REASON
from keel.server.security import READ
from keel.ui.charts import category_bars, lineage_graph, quantile_histogram
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter()


@router.get("/data", response_class=HTMLResponse)
def tables_page(request: Request, ws: Workspace = READ) -> HTMLResponse:
    """Tables with their latest version; a table's quarantine is shown as its count, not as a table."""
    infos = ws.data.tables()
    names = {t.name for t in infos}
    rows = []
    for info in infos:
        if info.name.endswith(QUARANTINE_SUFFIX) and info.name[: -len(QUARANTINE_SUFFIX)] in names:
            continue
        latest = ws.data.version(info.name) if info.latest_version is not None else None
        quarantine = info.name + QUARANTINE_SUFFIX
        held = ws.data.version(quarantine).row_count if quarantine in names else 0
        rows.append({"info": info, "latest": latest, "quarantined": held})
    return page(request, "tables.html", ws, title="Data", tables=rows)


def quarantine_counts(ws: Workspace, name: str) -> tuple[dict[int, int], list[dict[str, Any]]]:
    """Rows quarantined by each version's ingest, and all quarantined rows counted by reason (one
    group-by in Arrow, whatever the number of rows)."""
    quarantine = name + QUARANTINE_SUFFIX
    if ws.data.catalog.dataset(quarantine) is None:
        return {}, []
    per_version: dict[int, int] = {}
    for version in ws.data.history(quarantine):
        of = version.details.get("quarantine_of")
        if of is not None:
            per_version[int(of)] = per_version.get(int(of), 0) + version.rows_added
    reasons = ws.data.read_arrow(quarantine, columns=[REASON])
    counted = reasons.group_by(REASON).aggregate([(REASON, "count")])
    counted = counted.sort_by([(f"{REASON}_count", "descending")])
    return per_version, [{"reason": r or "—", "rows": n} for r, n in
                         zip(counted[REASON].to_pylist(), counted[f"{REASON}_count"].to_pylist(), strict=True)]


@router.get("/data/{name}", response_class=HTMLResponse)
def table_page(request: Request, name: str, ws: Workspace = READ) -> HTMLResponse:
    history = ws.data.history(name)
    per_version, reasons = quarantine_counts(ws, name)
    contract = ws.data.contract(name, missing_ok=True)
    return page(request, "table.html", ws, title=name, name=name, info=ws.data.catalog.dataset(name),
                history=history, quarantined=per_version, reasons=reasons,
                contract=contract.to_dict() if contract is not None else None)


def _column_views(profile: dict[str, Any]) -> list[dict[str, Any]]:
    rows = profile.get("rows", 0)
    return [{"name": name, "stats": stats, "histogram": quantile_histogram(stats),
             "categories": category_bars(stats, rows)} for name, stats in profile.get("columns", {}).items()]


@router.get("/data/{name}/versions/{version}", response_class=HTMLResponse)
def version_page(request: Request, name: str, version: int, ws: Workspace = READ) -> HTMLResponse:
    """One version: its profile per column (histograms, top values), schema, source and lineage."""
    found: TableVersion = ws.data.version(f"{name}@{version}")
    profile = ws.data.profile(found.ref.removeprefix("table:"))
    graph = lineage_graph(found.ref, ws.lineage.upstream(found.ref, 3), ws.lineage.downstream(found.ref, 3))
    return page(request, "table_version.html", ws, title=f"{name}@{version}", version=found, profile=profile,
                columns=_column_views(profile), graph=graph)

