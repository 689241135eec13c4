"""The monitor report's plots as inline SVG: a column's reference and current distributions, a series across
reports (a column's drift, a metric) with its threshold or training value, and the slice heat map.

Drawn as SVG text, as ``keel.gates.plots`` does, so the same figure sits in the self-contained HTML report and
in the UI page under its Content-Security-Policy: presentation attributes only (no ``style``), no ids, no
script, no namespace URL, nothing fetched. Every string that came from data (column names, categories, slice
values) is escaped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from itertools import pairwise
from typing import Any

from keel.gates.plots import BLUE, GREEN, INK, MUTED, RED, nice_ticks
from keel.monitoring.drift import DISTANCES

__all__ = ["MAX_BARS", "Point", "distribution", "fmt", "heat_map", "line_plot", "measured", "pct", "score"]

MAX_BARS = 30  # categories drawn per column; the new ones and the largest shares are kept
REFERENCE = "#9aa3af"
NO_DATA = "#eef0f3"


# -- numbers -----------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """Numbers as people read them: 3 significant digits, integers whole, nothing said plainly."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value.is_integer() and abs(value) < 1e6:
            return f"{int(value):,}"
        return f"{value:.3g}"
    return str(value)


def pct(share: float | None) -> str:
    """A share as a percentage (``12.5%``)."""
    if share is None or not math.isfinite(share):
        return "—"
    return f"{100 * share:.3g}%"


def measured(column: dict[str, Any]) -> tuple[str, float | None]:
    """What a column's verdict compares with its threshold: the distance itself, or a test's p-value."""
    method = column.get("method") or "drift"
    if method in DISTANCES:
        return method, _number(column.get("statistic"))
    return f"{method} p-value", _number(column.get("p_value"))


def score(column: dict[str, Any]) -> float | None:
    """How far a column is towards drift, 1 at its threshold: statistic / threshold for a distance, log p / log
    threshold for a test (whose statistic is not on the threshold's scale). None when there is no verdict."""
    if column.get("no_data") or column.get("status") == "new_value":
        return None
    threshold = _number(column.get("threshold"))
    _, value = measured(column)
    if threshold is None or value is None:
        return None
    if column.get("method") in DISTANCES:
        return value / threshold if threshold > 0 else (math.inf if value > 0 else 0.0)
    if value <= 0:
        return math.inf
    if not 0 < threshold < 1:
        return 0.0 if threshold <= 0 else math.inf
    return math.log(value) / math.log(threshold)


# -- distributions -------------------------------------------------------------------------------------------


def distribution(column: dict[str, Any]) -> str | None:
    """Reference and current shares side by side: on the numeric bins, or per category (new ones marked)."""
    hist = column.get("histogram") or {}
    ref, cur = hist.get("reference") or [], hist.get("current") or []
    if not ref or len(ref) != len(cur):
        return None
    name = str(column.get("column"))
    colour = RED if column.get("drifted") else BLUE
    if hist.get("categories") is not None and len(hist["categories"]) == len(ref):
        return _category_bars(name, list(map(str, hist["categories"])), ref, cur, colour,
                              set(map(str, column.get("new_categories") or [])))
    edges = hist.get("edges") or []
    if len(edges) == len(ref) + 1:
        return _bin_bars(name, edges, ref, cur, colour)
    return None


def _bin_bars(name: str, edges: list[float], ref: list[float], cur: list[float], colour: str) -> str:
    left, width, top, plot_h = 8, 300, 22, 84
    step = width / len(ref)
    tallest = max(max(ref), max(cur), 1e-12)
    parts = _legend(left, colour)
    for i, (r, c) in enumerate(zip(ref, cur, strict=True)):
        x = left + i * step
        closing = "]" if i == len(ref) - 1 else ")"
        tip = f"{name} in [{fmt(edges[i])}, {fmt(edges[i + 1])}{closing}: reference {pct(r)}, current {pct(c)}"
        bars = [_rect(x + 0.5, top + plot_h * (1 - r / tallest), step / 2 - 0.5, plot_h * r / tallest, REFERENCE),
                _rect(x + step / 2, top + plot_h * (1 - c / tallest), step / 2 - 0.5, plot_h * c / tallest, colour)]
        parts.append(f'<g class="bin"><title>{escape(tip)}</title>{"".join(bars)}</g>')
    bottom = top + plot_h
    parts.append(_line(left, bottom, left + width, bottom, MUTED))
    for i in sorted({0, len(edges) // 2, len(edges) - 1}):
        anchor = "start" if i == 0 else "end" if i == len(edges) - 1 else "middle"
        parts.append(_text(left + i * step, bottom + 13, fmt(edges[i]), anchor=anchor, fill=MUTED, size=10))
    return _svg(left + width + 8, bottom + 18, f"{name}: reference and current distribution", parts,
                kind="distribution", column=name)


def _category_bars(name: str, categories: list[str], ref: list[float], cur: list[float], colour: str,
                   new: set[str]) -> str:
    rows = list(range(len(categories)))
    hidden = max(len(rows) - MAX_BARS, 0)
    if hidden:  # the new categories first, then the largest shares; drawn in their own order
        rows = sorted(sorted(rows, key=lambda i: (categories[i] not in new, -max(ref[i], cur[i])))[:MAX_BARS])
    label_w, width, top, row_h = 96, 200, 22, 17
    tallest = max(max(ref), max(cur), 1e-12)
    parts = _legend(label_w, colour)
    for n, i in enumerate(rows):
        y = top + n * row_h
        is_new = categories[i] in new
        label = _short(categories[i], 13) + (" (new)" if is_new else "")
        tip = (f"{name} = {categories[i]}: reference {pct(ref[i])}, current {pct(cur[i])}"
               + (" — not in the baseline" if is_new else ""))
        parts.append(f'<g class="category{" new" if is_new else ""}"><title>{escape(tip)}</title>'
                     + _text(label_w - 5, y + 12, label, anchor="end", fill=RED if is_new else INK, size=10.5)
                     + _rect(label_w, y + 1, width * ref[i] / tallest, 7, REFERENCE)
                     + _rect(label_w, y + 8, width * cur[i] / tallest, 7, colour)
                     + _text(label_w + width * max(ref[i], cur[i]) / tallest + 4, y + 12, pct(cur[i]),
                             fill=MUTED, size=9.5) + "</g>")
    bottom = top + len(rows) * row_h
    if hidden:
        parts.append(_text(label_w, bottom + 12, f"{hidden} more categories not drawn", fill=MUTED, size=10))
    return _svg(label_w + width + 44, bottom + (18 if hidden else 6), f"{name}: reference and current shares",
                parts, kind="distribution", column=name)


def _legend(x: float, colour: str) -> list[str]:
    return [_rect(x, 5, 9, 9, REFERENCE), _text(x + 13, 13, "reference", fill=MUTED, size=10),
            _rect(x + 78, 5, 9, 9, colour), _text(x + 91, 13, "current", fill=MUTED, size=10)]


# -- a series across reports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One report's value of a series; ``value`` None draws a gap (no data, not measured, no labels)."""

    label: str  # the report: "#3"
    value: float | None
    bad: bool = False  # drawn red: the column drifted
    note: str = ""  # the tooltip


def line_plot(title: str, points: list[Point], *, line: float | None, line_label: str, column: str,
              kind: str, zero: bool = True) -> str:
    """A series oldest to newest, broken where a report has no value (marked at the bottom), with a dashed
    reference line (a threshold, a training metric)."""
    left, width, top, plot_h = 42, 250, 24, 78
    values = [p.value for p in points if p.value is not None] + ([line] if line is not None else [])
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    lo = min(lo, 0.0) if zero else lo
    if hi <= lo:  # one value: give it room
        room = abs(lo) * 0.1 or 1.0
        lo, hi = (lo, hi + room) if zero else (lo - room, hi + room)
    span = hi - lo
    lo, hi = (lo if zero else lo - span * 0.08), hi + span * 0.08
    step = width / max(len(points), 1)

    def x(i: int) -> float:
        return left + (i + 0.5) * step

    def y(v: float) -> float:
        return top + plot_h - (v - lo) / (hi - lo) * plot_h

    bottom = top + plot_h
    parts = [_text(4, 13, title, weight="600", fill=INK), _line(left, bottom, left + width, bottom, MUTED),
             _line(left, top, left, bottom, MUTED)]
    parts += [_text(left - 4, y(v) + 3.5, fmt(v), anchor="end", fill=MUTED, size=9.5) for v in nice_ticks(lo, hi, 3)]
    if line is not None:
        parts.append(_line(left, y(line), left + width, y(line), RED if kind == "drift" else GREEN, dash=True))
        parts.append(_text(left + width, y(line) - 3, f"{line_label} {fmt(line)}", anchor="end",
                           fill=RED if kind == "drift" else GREEN, size=9.5))
    run: list[str] = []
    for i, p in enumerate([*points, Point("", None)]):  # a sentinel closes the last run
        if p.value is not None:
            run.append(f"{x(i):.1f},{y(p.value):.1f}")
            continue
        if len(run) > 1:
            parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{BLUE}" stroke-width="1.6"/>')
        run = []
    for i, p in enumerate(points):
        tip = f"{p.label}: {p.note}" if p.note else p.label
        if p.value is None:
            parts.append(f'<g class="point gap"><title>{escape(tip)}</title>'
                         + _text(x(i), bottom - 3, "×", anchor="middle", fill=MUTED, size=11) + "</g>")
        else:
            parts.append(f'<circle class="point{" bad" if p.bad else ""}" cx="{x(i):.1f}" cy="{y(p.value):.1f}" '
                         f'r="3" fill="{RED if p.bad else BLUE}"><title>{escape(tip)}</title></circle>')
    shown = sorted({0, len(points) - 1, *range(0, len(points), max(1, math.ceil(len(points) / 6)))})
    parts += [_text(x(i), bottom + 13, points[i].label, anchor="middle", fill=MUTED, size=9.5)
              for i in shown if 0 <= i < len(points)]
    return _svg(left + width + 10, bottom + 18, title, parts, kind=kind, column=column)


# -- the slice heat map ------------------------------------------------------------------------------------------


def heat_map(rows: list[dict[str, Any]], columns: list[str]) -> str | None:
    """Slices (rows: ``label``, ``rows``, ``new``, ``reason``, ``cells``: column -> its drift dict) by columns,
    each cell coloured by its score (1 = the threshold) with the measured value; drifted cells outlined and
    marked; a slice value the baseline never had is one row of its own."""
    if not rows or not columns:
        return None
    label_w, cell_w, cell_h, top = 150, 82, 24, 30
    parts = [_text(label_w + i * cell_w + cell_w / 2, top - 8, _short(c, 11), anchor="middle", fill=INK,
                   size=10.5, weight="600") for i, c in enumerate(columns)]
    for n, row in enumerate(rows):
        y = top + n * cell_h
        slice_label = str(row["label"])
        parts.append(_text(label_w - 6, y + 16, f"{_short(slice_label, 17)} ({fmt(row.get('rows'))})",
                           anchor="end", fill=INK, size=10.5))
        if row.get("new") or row.get("reason"):
            text = "new value: not in the baseline" if row.get("new") else f"no data: {row['reason']}"
            parts.append(f'<g class="cell{" new-value drifted" if row.get("new") else " no-data"}" '
                         f'data-slice="{escape(slice_label)}"><title>{escape(f"{slice_label}: {text}")}</title>'
                         + _rect(label_w + 1, y + 1, cell_w * len(columns) - 2, cell_h - 2,
                                 "#f3ecf9" if row.get("new") else NO_DATA, stroke=INK if row.get("new") else None)
                         + _text(label_w + 8, y + 16, _short(text, 60), fill=INK, size=10.5) + "</g>")
            continue
        for i, column in enumerate(columns):
            parts.append(_cell(label_w + i * cell_w, y, cell_w, cell_h, slice_label, column,
                               row["cells"].get(column)))
    return _svg(label_w + cell_w * len(columns) + 8, top + cell_h * len(rows) + 6, "drift per slice and column",
                parts, kind="heat-map")


def _cell(x: float, y: float, w: float, h: float, slice_label: str, column: str, found: dict[str, Any] | None) -> str:
    data = f'data-slice="{escape(slice_label)}" data-column="{escape(column)}"'
    if found is None or found.get("no_data"):
        why = (found or {}).get("reason") or "not measured"
        return (f'<g class="cell no-data" {data}><title>{escape(f"{slice_label} · {column}: no data ({why})")}</title>'
                + _rect(x + 1, y + 1, w - 2, h - 2, NO_DATA) + _text(x + w / 2, y + 16, "no data", anchor="middle",
                                                                     fill=MUTED, size=10) + "</g>")
    name, value = measured(found)
    s = score(found)
    drifted = bool(found.get("drifted"))
    comparison = ("≥ " if found.get("method") in DISTANCES else "≤ ") + fmt(found.get("threshold"))
    tip = (f"{slice_label} · {column}: {name} {fmt(value)} (threshold {comparison}) — "
           f"{'drifted' if drifted else 'no drift'}")
    fill = _heat(s)
    ink = "#fff" if s is not None and s >= 1.6 else INK
    mark = "● " if drifted else ""
    return (f'<g class="cell{" drifted" if drifted else ""}" {data}><title>{escape(tip)}</title>'
            + _rect(x + 1, y + 1, w - 2, h - 2, fill, stroke=INK if drifted else None)
            + _text(x + w / 2, y + 16, mark + fmt(value), anchor="middle", fill=ink, size=10.5,
                    weight="600" if drifted else None) + "</g>")


def _heat(s: float | None) -> str:
    """Green far below the threshold, yellow at it, red at twice it and beyond."""
    if s is None:
        return NO_DATA
    t = min(max(s, 0.0), 2.0) / 2.0
    stops = [(0.0, (0xE6, 0xF4, 0xEA)), (0.5, (0xFF, 0xE8, 0x9C)), (1.0, (0xD6, 0x3A, 0x3C))]
    for (a, ca), (b, cb) in pairwise(stops):
        if t <= b:
            k = (t - a) / (b - a)
            return "#" + "".join(f"{round(u + (v - u) * k):02x}" for u, v in zip(ca, cb, strict=True))
    return "#d63a3c"


# -- SVG pieces ----------------------------------------------------------------------------------------------------


def _svg(width: float, height: float, label: str, parts: list[str], *, kind: str, column: str | None = None) -> str:
    data = f' data-column="{escape(column)}"' if column is not None else ""
    return (f'<svg class="monitor-plot {kind}"{data} role="img" aria-label="{escape(label)}" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="system-ui, sans-serif" '
            f'font-size="11"><title>{escape(label)}</title>{"".join(parts)}</svg>')


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = INK, size: float | None = None,
          weight: str | None = None) -> str:
    extra = (f' font-size="{size}"' if size else "") + (f' font-weight="{weight}"' if weight else "")
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}"{extra}>{escape(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, *, dash: bool = False) -> str:
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" stroke-width="1"'
            + (' stroke-dasharray="5 3"' if dash else "") + "/>")


def _rect(x: float, y: float, w: float, h: float, fill: str, *, stroke: str | None = None) -> str:
    edge = f' stroke="{stroke}" stroke-width="2"' if stroke else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" height="{max(h, 0.0):.1f}" fill="{fill}"{edge}/>'


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

