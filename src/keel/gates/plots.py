"""The gate report's plots as inline SVG: a bar per slice, the directional curve, the latency histograms.

Drawn as SVG text rather than with matplotlib so the same figure sits in the self-contained HTML report and in
the UI page under its Content-Security-Policy: only presentation attributes (no ``style``), no ids, no script,
nothing fetched. Every string that came from data or a user (slice values, column and test names) is escaped.
"""

from __future__ import annotations

import math
import operator
from html import escape
from typing import Any

import numpy as np

from keel.gates.conditions import parse_condition
from keel.gates.model import TestResult

__all__ = ["MAX_SLICES", "directional_curve", "figure", "latency_histogram", "nice_ticks", "slice_bars"]

MAX_SLICES = 40  # bars drawn; the failing slices are kept first when there are more
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
BLUE, RED, GREEN, GREY, INK, MUTED = "#4e79a7", "#e15759", "#59a14f", "#c8cdd4", "#1d2430", "#5f6b7a"


def figure(result: TestResult) -> str | None:
    """The plot of a test, when its kind has one and its details hold what it needs."""
    draw = {"slice": slice_bars, "directional": directional_curve, "budget": latency_histogram}.get(result.kind)
    return draw(result) if draw else None


def slice_bars(result: TestResult) -> str | None:
    """One horizontal bar per slice (the metric of the first condition), the threshold as a dashed line and
    the failing slices in red; slices too small to be judged are grey."""
    slices = [s for s in (result.details or {}).get("slices") or [] if isinstance(s, dict)]
    metric, condition = _slice_condition(result, slices)
    if metric is None:
        return None
    min_rows = (result.details or {}).get("min_rows") or 0
    failed_in_evidence = set((result.details or {}).get("failing_slices") or ()) | \
        {r.get("slice") for r in result.evidence if r.get("status") == "failed"}
    bars = []
    for i, s in enumerate(slices):
        value = _number(s.get(metric))
        if value is None:
            continue
        label = f"{s.get('column')}={s.get('value')}"
        small = (s.get("rows") or 0) < min_rows
        failed = not small and (label in failed_in_evidence or (
            condition is not None and condition.reference is None and not _OPS[condition.op](value, condition.offset)))
        bars.append({"i": i, "label": label, "value": value, "rows": s.get("rows"), "failed": failed, "small": small})
    if not bars:
        return None
    hidden = max(len(bars) - MAX_SLICES, 0)
    if hidden:
        bars = sorted(sorted(bars, key=lambda b: not b["failed"])[:MAX_SLICES], key=lambda b: b["i"])
    threshold = condition.offset if condition is not None and condition.reference is None else _number(result.threshold)
    values = [b["value"] for b in bars] + ([threshold] if threshold is not None else [])
    lo, hi = _span(min(0.0, *values), max(0.0, *values))
    left, width, row, top = 190, 380, 18, 38
    height = top + row * len(bars) + 30
    x = _scale(lo, hi, left, left + width)
    parts = [_text(10, 14, f"{metric} per slice" + (f" ({hidden} more not drawn)" if hidden else ""),
                   weight="600", fill=INK)]
    for n, bar in enumerate(bars):
        y = top + n * row
        x0, x1 = sorted((x(0.0), x(bar["value"])))
        colour = GREY if bar["small"] else RED if bar["failed"] else BLUE
        state = "too few rows, not judged" if bar["small"] else "failed" if bar["failed"] else "passed"
        tip = f"{bar['label']}: {metric} {_fmt(bar['value'])} ({bar['rows']} rows) — {state}"
        parts.append(f'<g class="bar {"failed" if bar["failed"] else "small" if bar["small"] else "passed"}">'
                     f"<title>{escape(tip)}</title>"
                     f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 1):.1f}" height="{row - 5}" '
                     f'fill="{colour}"/></g>')
        parts.append(_text(left - 6, y + row - 5, _short(bar["label"], 30), anchor="end", fill=INK))
        parts.append(_text(max(x1, x0) + 4, y + row - 5, _fmt(bar["value"]), fill=MUTED, size=10))
    bottom = top + row * len(bars)
    parts.append(_line(x(0.0), top, x(0.0), bottom, MUTED))
    parts += _ticks(lo, hi, x, bottom)
    if threshold is not None:
        parts.append(_line(x(threshold), top - 6, x(threshold), bottom, "#b3261e", dash=True, width=1.5))
        parts.append(_text(x(threshold), top - 9, f"threshold {_fmt(threshold)}", anchor="middle", fill="#b3261e",
                           size=10))
    return _svg(left + width + 70, height, f"{result.name}: {metric} per slice", parts)


def directional_curve(result: TestResult) -> str | None:
    """The mean output as the column grows by k x delta; the judged step (k = 1) is the larger dot."""
    curve = [(_number(p[0]), _number(p[1])) for p in (result.details or {}).get("curve") or []
             if isinstance(p, list | tuple) and len(p) == 2]
    curve = [(a, b) for a, b in curve if a is not None and b is not None]
    if len(curve) < 2:
        return None
    column = (result.details or {}).get("column") or "the column"
    left, width, top, plot_h = 64, 380, 26, 170
    xs, ys = [p[0] for p in curve], [p[1] for p in curve]
    x = _scale(*_span(min(xs), max(xs)), left, left + width)
    ylo, yhi = _span(min(ys), max(ys))
    pad = (yhi - ylo) * 0.08
    y = _scale(ylo - pad, yhi + pad, top + plot_h, top)
    colour = RED if result.status in ("failed", "error") else GREEN
    points = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in curve)
    parts = [_text(left, 14, f"mean output as {column} grows", weight="600", fill=INK),
             _line(left, top + plot_h, left + width, top + plot_h, MUTED), _line(left, top, left, top + plot_h, MUTED),
             _line(left, y(curve[0][1]), left + width, y(curve[0][1]), GREY, dash=True),
             f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.2"/>']
    for k, (a, b) in enumerate(curve):
        tip = f"{column} + {_fmt(a)}: mean output {_fmt(b)}" + (" (the judged step)" if k == 1 else "")
        parts.append(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="{5 if k == 1 else 3.5}" fill="{colour}">'
                     f"<title>{escape(tip)}</title></circle>")
    parts += _ticks(min(xs), max(xs), x, top + plot_h)
    for v in nice_ticks(ylo - pad, yhi + pad, 4):
        parts.append(_text(left - 5, y(v) + 4, _fmt(v), anchor="end", fill=MUTED, size=10))
    parts.append(_text(left + width / 2, top + plot_h + 30, f"added to {column}", anchor="middle", fill=MUTED))
    return _svg(left + width + 20, top + plot_h + 40, f"{result.name}: directional curve of {column}", parts)


def latency_histogram(result: TestResult) -> str | None:
    """Histograms of the single-row and the batch latencies, each with its median and, when near, its limit."""
    samples = (result.details or {}).get("latency_ms") or {}
    limits = {r.get("measure"): _number(r.get("limit")) for r in result.evidence}
    panels = [("one row" if key == "single" else "a batch of 1,000 rows", values, limits.get(f"{key}_ms"))
              for key in ("single", "batch")
              if (values := [v for v in map(_number, samples.get(key) or []) if v is not None])]
    if not panels:
        return None
    panel_w, plot_h, top, gap = 300, 120, 50, 40
    parts: list[str] = []
    for n, (title, values, limit) in enumerate(panels):
        left = 14 + n * (panel_w + gap)
        median = float(np.median(values))
        lo, hi = _span(min(values), max(values))
        shown = limit is not None and limit <= hi + (hi - lo) * 0.5
        if shown:
            lo, hi = min(lo, limit), max(hi, limit)
        counts, edges = np.histogram(values, bins=min(12, max(len(values) // 2, 1)), range=(lo, hi))
        x = _scale(lo, hi, left, left + panel_w)
        tallest = max(int(counts.max()), 1)
        parts.append(_text(left, 14, f"{title} ({len(values)} calls)", weight="600", fill=INK))
        parts.append(_text(left, 29, f"median {_fmt(median)} ms" + (f", limit {_fmt(limit)} ms" if limit is not None
                                                                      else ", no limit"), fill=MUTED))
        for count, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
            h = count / tallest * plot_h
            parts.append(f'<rect x="{x(a):.1f}" y="{top + plot_h - h:.1f}" width="{max(x(b) - x(a) - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="{BLUE}"><title>{count} call(s) between {_fmt(a)} and '
                         f'{_fmt(b)} ms</title></rect>')
        parts.append(_line(left, top + plot_h, left + panel_w, top + plot_h, MUTED))
        parts.append(_line(x(median), top - 4, x(median), top + plot_h, INK, width=1.5))
        parts.append(_text(x(median), top - 7, "median", anchor="middle", fill=INK, size=10))
        if shown:
            parts.append(_line(x(limit), top - 4, x(limit), top + plot_h, "#b3261e", dash=True, width=1.5))
        parts += _ticks(lo, hi, x, top + plot_h, count=3)
        parts.append(_text(left + panel_w / 2, top + plot_h + 30, "ms per call", anchor="middle", fill=MUTED))
    width = 14 + len(panels) * panel_w + (len(panels) - 1) * gap + 20
    return _svg(width, top + plot_h + 40, f"{result.name}: predict latency", parts)


# -- SVG pieces ------------------------------------------------------------------------------------------


def _svg(width: float, height: float, label: str, parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="gate-plot" role="img" aria-label="{escape(label)}" '
            f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'font-family="system-ui, sans-serif" font-size="11"><title>{escape(label)}</title>{"".join(parts)}</svg>')


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = INK, size: float | None = None,
          weight: str | None = None) -> str:
    extra = (f' font-size="{size}"' if size else "") + (f' font-weight="{weight}"' if weight else "")
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}"{extra}>{escape(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, *, dash: bool = False, width: float = 1) -> str:
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" stroke-width="{width}"'
            + (' stroke-dasharray="5 3"' if dash else "") + "/>")


def _ticks(lo: float, hi: float, x: Any, y: float, count: int = 5) -> list[str]:
    return [_text(x(v), y + 14, _fmt(v), anchor="middle", fill=MUTED, size=10) for v in nice_ticks(lo, hi, count)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) inside ``[lo, hi]``."""
    raw = (hi - lo) / max(count, 1)
    if not raw > 0:
        return [lo]
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) + 0.0 for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _scale(lo: float, hi: float, a: float, b: float) -> Any:
    return lambda v: a + (v - lo) / (hi - lo) * (b - a)


def _span(lo: float, hi: float) -> tuple[float, float]:
    """A range to draw on: a single value gets some room around it."""
    if hi > lo:
        return lo, hi
    room = abs(lo) * 0.1 or 1.0
    return lo - room, hi + room


def _slice_condition(result: TestResult, slices: list[dict[str, Any]]) -> tuple[str | None, Any]:
    """The metric the slices were held to and its condition (the details name them; the evidence rows too)."""
    named = (result.details or {}).get("condition")
    for row in [{"condition": named}, *result.evidence]:
        try:
            condition = parse_condition(row.get("condition"))
        except (ValueError, TypeError):
            continue
        return condition.metric, condition
    numeric = [k for s in slices[:1] for k, v in s.items() if k != "rows" and _number(v) is not None]
    return (numeric[0] if numeric else None), None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
