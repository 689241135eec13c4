"""Geometry of the charts drawn as SVG on the server: column histograms, parallel coordinates of run
metrics, and the lineage graph. The templates only place what these return (Jinja escapes every label).

Drawn here rather than in the browser because each is a handful of shapes computed from data the page
already has: no script needed to read them, nothing to fetch, and tests can check the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keel.lineage import LineageNode

__all__ = ["PALETTE", "category_bars", "lineage_graph", "parallel_coordinates", "percent", "quantile_histogram",
           "split_bars"]

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")  # Tableau 10: distinguishable, and ten is the most runs a comparison shows
KIND_COLORS = {"table": "#dbe9f6", "split": "#e3f1e0", "file": "#eeeeee", "contract": "#f6ecd9", "run": "#fde6d2",
               "model": "#eadcf2", "deployment": "#f9d9de", "trainingset": "#e3f1e0", "features": "#e3f1e0",
               "gate": "#fff3c4"}


def quantile_histogram(stats: Mapping[str, Any], width: int = 320, height: int = 110) -> dict[str, Any] | None:
    """Bars whose *areas* are the shares of rows between the profile's cut points (min, its quantiles,
    max): a density histogram from what the profile stores, with no second pass over the data.

    Cut points that coincide (a discrete column: half the rows have 2 bedrooms) have no width to draw a
    density on, so their share joins the next bar.
    """
    quantiles, low, high = stats.get("quantiles"), stats.get("min"), stats.get("max")
    if not quantiles or low is None or high is None:
        return None
    levels = sorted(quantiles, key=float)
    edges = np.maximum.accumulate(np.array([low, *(quantiles[k] for k in levels), high], dtype=float))
    if not np.isfinite(edges).all():
        return None
    masses = np.diff([0.0, *(float(k) for k in levels), 1.0])
    bins: list[list[float]] = []
    pending = 0.0
    for lo, hi, mass in zip(edges[:-1], edges[1:], masses, strict=True):
        if hi <= lo:
            pending += mass
            continue
        bins.append([lo, hi, mass + pending])
        pending = 0.0
    if not bins:  # a constant column: one bar holding every row
        return {"width": width, "height": height, "constant": float(low),
                "bars": [{"x": 0, "y": 0, "w": width, "h": height, "clipped": False,
                          "label": f"all rows = {low:g}"}],
                "ticks": [{"x": width / 2, "text": f"{low:g}"}]}
    bins[-1][2] += pending
    span = high - low
    widths = np.array([hi - lo for lo, hi, _ in bins])
    density = np.array([m for _, _, m in bins]) / widths
    # the scale comes from bars at least 2% of the range wide: a sliver holding 5% of the rows (ids that
    # start at 1,000,000) would otherwise flatten every other bar; taller slivers are cut at the top
    wide = widths >= 0.02 * span
    scale = height / (density[wide].max() if wide.any() else density.max())
    bars = []
    for (lo, hi, mass), d in zip(bins, density, strict=True):
        x, w = (lo - low) / span * width, max((hi - lo) / span * width, 1.5)
        h = min(max(d * scale, 1.0), height)
        bars.append({"x": round(x, 2), "w": round(w, 2), "y": round(height - h, 2), "h": round(h, 2),
                     "clipped": d * scale > height, "label": f"{mass:.0%} of rows between {lo:g} and {hi:g}"})
    median = quantiles.get("0.5")
    ticks = [{"x": 0, "text": f"{low:g}", "anchor": "start"}, {"x": width, "text": f"{high:g}", "anchor": "end"}]
    middle = None if median is None else (median - low) / span * width
    if middle is not None and 70 < middle < width - 70:  # else it would print over the min or max
        ticks.insert(1, {"x": round(middle, 2), "text": f"median {median:g}", "anchor": "middle"})
    return {"width": width, "height": height, "bars": bars, "ticks": ticks, "constant": None}


def category_bars(stats: Mapping[str, Any], rows: int) -> list[dict[str, Any]]:
    """The most frequent values with their counts, share of rows, and a bar length in percent."""
    top = stats.get("top_values") or []
    most = max((t["count"] for t in top), default=0)
    return [{"value": t["value"], "count": t["count"], "share": t["count"] / rows if rows else 0.0,
             "length": round(100 * t["count"] / most, 1) if most else 0} for t in top]


def parallel_coordinates(labels: Sequence[str], ids: Sequence[str], metrics: Mapping[str, Sequence[Any]],
                         spacing: int = 130, height: int = 260) -> dict[str, Any]:
    """One vertical axis per metric (its own min to max across the runs, higher at the top), one line
    per run: runs that do well together show as lines that run together."""
    keys = list(metrics)
    values = np.array([[_finite(v) for v in metrics[k]] for k in keys], dtype=float).reshape(len(keys), len(ids))
    top, bottom, left = 34, height - 30, 70
    axes, lines = [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        lo, hi = np.nanmin(values, axis=1, initial=np.inf, where=~np.isnan(values)), \
            np.nanmax(values, axis=1, initial=-np.inf, where=~np.isnan(values))
        spread = np.where(hi > lo, hi - lo, 1.0)
        position = np.where((hi > lo)[:, None], (values - lo[:, None]) / spread[:, None], 0.5)
    ys = bottom - position * (bottom - top)
    for i, key in enumerate(keys):
        known = bool(np.isfinite(lo[i]))
        axes.append({"x": left + i * spacing, "key": key, "label": key if len(key) <= 20 else "…" + key[-19:],
                     "lo": float(lo[i]) if known else None, "hi": float(hi[i]) if known else None})
    for j, label in enumerate(labels):
        segments, current = [], []
        for i in range(len(keys)):
            if np.isnan(values[i, j]):
                if len(current) > 1:
                    segments.append(current)
                current = []
                continue
            current.append(f"{left + i * spacing},{ys[i, j]:.1f}")
        if current:
            segments.append(current)
        dots = [{"x": left + i * spacing, "y": round(float(ys[i, j]), 1), "value": float(values[i, j]),
                 "key": keys[i]} for i in range(len(keys)) if not np.isnan(values[i, j])]
        lines.append({"label": label, "id": ids[j], "color": PALETTE[j % len(PALETTE)],
                      "segments": [" ".join(s) for s in segments], "dots": dots})
    return {"width": left * 2 + max(len(keys) - 1, 0) * spacing, "height": height, "top": top, "bottom": bottom,
            "axes": axes, "lines": lines}


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


# -- lineage ---------------------------------------------------------------------------------------

NODE_W, NODE_H, COLUMN, ROW = 200, 38, 290, 50
FIT_WIDTH = 1800  # a graph up to this wide shrinks to fit the page; a wider one scrolls (text stays readable)


def lineage_graph(root: str, upstream: LineageNode, downstream: LineageNode, max_nodes: int = 200) -> dict[str, Any]:
    """A layered drawing of what ``root`` was made from (left) and what was made from it (right).

    The walks are trees in which a shared ancestor appears once per path; here each ref is one box, in
    the column of its longest path to the root, so every arrow points right.
    """
    edges: dict[tuple[str, str], str] = {}
    order: dict[str, int] = {root: 0}
    side: dict[str, int] = {root: 0}
    for tree, sign in ((upstream, -1), (downstream, 1)):
        stack = [tree]
        while stack:
            node = stack.pop()
            for child in node.children:
                pair = (child.ref, node.ref) if sign < 0 else (node.ref, child.ref)
                edges.setdefault(pair, child.relation or "")
                order.setdefault(child.ref, len(order))
                side.setdefault(child.ref, sign)
                stack.append(child)
    layer = {ref: 0 for ref in order}
    for _ in range(len(order)):  # longest-path layering: push sources left and products right
        moved = False
        for src, dst in edges:
            if layer[src] > layer[dst] - 1:
                if side[dst] > 0:
                    layer[dst] = layer[src] + 1
                else:
                    layer[src] = layer[dst] - 1
                moved = True
        if not moved:
            break
    kept = sorted(order, key=lambda r: (abs(layer[r]), order[r]))[:max_nodes]
    keep = set(kept)
    columns: dict[int, list[str]] = {}
    for ref in sorted(kept, key=order.__getitem__):
        columns.setdefault(layer[ref], []).append(ref)
    _untangle(columns, [e for e in edges if e[0] in keep and e[1] in keep])
    first = min(columns)
    tallest = max(len(c) for c in columns.values())
    height = tallest * ROW + 20
    place: dict[str, tuple[float, float]] = {}
    nodes = []
    for number, refs in columns.items():
        offset = (height - len(refs) * ROW) / 2 + (ROW - NODE_H) / 2
        for row, ref in enumerate(refs):
            x, y = 10 + (number - first) * COLUMN, offset + row * ROW
            place[ref] = (x, y)
            kind, _, name = ref.partition(":") if ":" in ref else ("", "", ref)
            nodes.append({"ref": ref, "x": x, "y": round(y, 1), "kind": kind,
                          "name": name if len(name) <= 26 else name[:25] + "…", "root": ref == root,
                          "fill": KIND_COLORS.get(kind, "#f4f4f4")})
    arrows = []
    for (src, dst), relation in edges.items():
        if src not in place or dst not in place:
            continue
        (x1, y1), (x2, y2) = place[src], place[dst]
        x1, y1, x2, y2 = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
        bend = max((x2 - x1) / 2, 30)
        # a label only where it sits in the gap between two columns: a longer arrow's middle is under a box
        labelled = x2 - x1 <= COLUMN - NODE_W + 1
        arrows.append({"d": f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}",
                       "relation": relation, "label": relation if labelled else "", "lx": round((x1 + x2) / 2, 1),
                       "ly": round((y1 + y2) / 2 - 4, 1), "src": src, "dst": dst})
    width = 20 + (max(columns) - first) * COLUMN + NODE_W
    return {"width": width, "height": height, "nodes": nodes, "fit": width <= FIT_WIDTH,
            "arrows": arrows, "node_w": NODE_W, "node_h": NODE_H, "truncated": len(order) > max_nodes,
            "total": len(order)}


def _untangle(columns: dict[int, list[str]], edges: list[tuple[str, str]]) -> None:
    """Order each column by the mean row of its neighbours in the column nearer the root (one sweep
    outwards each way): fewer crossing arrows, at the cost of a sort per column."""
    neighbours: dict[str, list[str]] = {}
    for src, dst in edges:
        neighbours.setdefault(src, []).append(dst)
        neighbours.setdefault(dst, []).append(src)
    for direction in (-1, 1):
        number = direction
        while number in columns:
            inner = {ref: i for i, ref in enumerate(columns[number - direction])}
            current = columns[number]

            def centre(ref: str, inner: dict[str, int] = inner, current: list[str] = current) -> float:
                rows = [inner[n] for n in neighbours.get(ref, []) if n in inner]
                return sum(rows) / len(rows) if rows else current.index(ref)

            current.sort(key=centre)
            number += direction


# -- deployments -----------------------------------------------------------------------------------

SPLIT_LABEL_W, SPLIT_BAR_H, SPLIT_ROW = 64, 26, 36


def percent(share: float | None) -> str:
    """A share of traffic as people say it: 5%, 12.5%, 0.3%; None as a dash."""
    if share is None:
        return "—"
    value = 100 * float(share)
    if 0 < abs(value) < 0.1:  # a rare error is not 0%
        return f"{value:.1g}%"
    return f"{value:.0f}%" if abs(value - round(value)) < 0.05 else f"{value:.1f}%"


def split_bars(rows: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], width: int = 720) -> dict[str, Any]:
    """Stacked horizontal bars, one per ``(label, segments)`` row, each segment ``{"arm", "model", "share",
    "color"}`` taking its share of the bar's width: a deployment's target split above its live one, the same
    colour per arm in both. A row whose shares are all zero is drawn empty (no traffic yet)."""
    span = width - SPLIT_LABEL_W
    drawn = []
    for i, (label, segments) in enumerate(rows):
        y = 4 + i * SPLIT_ROW
        total = sum(max(float(s["share"] or 0.0), 0.0) for s in segments)
        x, parts = float(SPLIT_LABEL_W), []
        for s in segments:
            share = max(float(s["share"] or 0.0), 0.0) / total if total else 0.0
            if share <= 0:
                continue
            w = share * span
            text = next((t for t in (f"{s['arm']} · {percent(share)}", percent(share)) if len(t) * 7 + 10 <= w), "")
            parts.append({"x": round(x, 2), "w": round(w, 2), "color": s["color"], "ink": _ink(s["color"]),
                          "text": text, "tx": round(x + w / 2, 2), "arm": s["arm"],
                          "title": f"{s['arm']} ({s['model']}): {percent(share)}"})
            x += w
        drawn.append({"label": label, "y": y, "ty": y + SPLIT_BAR_H / 2 + 4, "segments": parts, "empty": not parts})
    return {"width": width, "height": 8 + len(rows) * SPLIT_ROW - (SPLIT_ROW - SPLIT_BAR_H), "x0": SPLIT_LABEL_W,
            "span": span, "bar_h": SPLIT_BAR_H, "rows": drawn}


def _ink(color: str) -> str:
    """Dark text on a light fill, white on a dark one (relative luminance, WCAG's formula)."""
    channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return "#1d2430" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.22 else "#ffffff"
