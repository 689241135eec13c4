"""Smoke test: random real rows and synthetic rows from the data's profile all predict, sanely.

Synthetic rows draw each input independently from what the data holds (numbers uniform between its
minimum and maximum, categories uniformly among those seen, missing values at the observed rate), so rare
combinations the real rows never show are exercised too. Each set is predicted in one call; only when a
call raises are the failing rows found, by halving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from keel.gates.context import GateContext
from keel.gates.model import EVIDENCE_ROWS, GateOutcome
from keel.gates.spec import SmokeTest

__all__ = ["run_smoke", "synthetic_rows"]


def run_smoke(ctx: GateContext, test: SmokeTest) -> GateOutcome:
    rng = np.random.default_rng(test.seed)
    data = pd.concat(list(ctx.frames.values()), ignore_index=True)
    sets = {}
    if test.rows:
        sets["data"] = data.sample(n=min(test.rows, len(data)), random_state=test.seed, replace=False)
    if test.synthetic:
        sets["synthetic"] = synthetic_rows(data, ctx.features, test.synthetic, rng)
    evidence: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    classes = _classes(ctx)
    for name, frame in sets.items():
        frame = frame.reset_index(drop=True)
        try:
            output = np.asarray(ctx.predict(frame))
        except Exception as exc:  # the model raised: find the rows that make it raise
            failing = _failing_rows(ctx.predict, frame)
            evidence += [{"set": name, "problem": f"{type(exc).__name__}: {exc}"[:300],
                          **frame.iloc[i][ctx.features].to_dict()} for i in failing]
            details[name] = {"rows": len(frame), "error": f"{type(exc).__name__}: {exc}"[:500]}
            continue
        problems = _problems(output, len(frame), ctx.task, test.range, classes)
        details[name] = {"rows": len(frame), "dtype": str(output.dtype), "shape": list(output.shape),
                         "bad": int(sum(1 for p in problems if p is not None))}
        if isinstance(problems, str):
            evidence.append({"set": name, "problem": problems})
            continue
        evidence += [{"set": name, "problem": p, "prediction": output[i], **frame.iloc[i][ctx.features].to_dict()}
                     for i, p in enumerate(problems) if p is not None][:EVIDENCE_ROWS]
    bad = len(evidence)
    total = sum(len(f) for f in sets.values())
    return GateOutcome(bad == 0, value=bad, threshold=0, evidence=evidence, details=details,
                       message=f"{total} row(s) predicted ({', '.join(f'{len(f)} {n}' for n, f in sets.items())}); "
                               + ("all finite, right shape" + (f" and within {list(test.range)}" if test.range else "")
                                  if bad == 0 else f"{bad} problem(s)"))


def synthetic_rows(data: pd.DataFrame, columns: list[str], n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` rows whose columns are drawn independently from the profile of ``data``."""
    out = {}
    for column in columns:
        values = data[column]
        present = values.dropna()
        kind = values.dtype
        if present.empty:
            out[column] = pd.Series([None] * n, dtype=kind)
            continue
        if pd.api.types.is_bool_dtype(kind):
            drawn = pd.Series(rng.random(n) < 0.5)
        elif pd.api.types.is_integer_dtype(kind):
            drawn = pd.Series(rng.integers(int(present.min()), int(present.max()) + 1, n)).astype(kind)
        elif pd.api.types.is_float_dtype(kind):
            drawn = pd.Series(rng.uniform(float(present.min()), float(present.max()), n)).astype(kind)
        elif pd.api.types.is_datetime64_any_dtype(kind):
            low, high = present.min().value, present.max().value
            drawn = pd.Series(pd.to_datetime(rng.integers(low, high + 1, n), utc=kind.tz is not None)).astype(kind)
        else:
            seen = present.unique()
            drawn = pd.Series(seen[rng.integers(0, len(seen), n)]).astype(kind)
        missing = values.isna().mean()
        if missing:
            drawn = drawn.mask(rng.random(n) < missing)
        out[column] = drawn.to_numpy()
    return pd.DataFrame(out)


def _classes(ctx: GateContext) -> np.ndarray | None:
    if ctx.task != "classification":
        return None
    known = getattr(ctx.model.model, "classes_", None)
    if known is not None:
        return np.asarray(known)
    labels = [f[ctx.label] for f in ctx.frames.values() if ctx.label in f]
    return pd.concat(labels).unique() if labels else None


def _problems(output: np.ndarray, rows: int, task: str, bounds: tuple[float, float] | None,
              classes: np.ndarray | None) -> list[str | None] | str:
    """Per row, what is wrong with its output (None: nothing); a string when the whole output is wrong."""
    flat = output.ravel() if output.ndim == 2 and output.shape[1] == 1 else output
    if flat.ndim != 1 or len(flat) != rows:
        return f"output has shape {list(output.shape)}, expected [{rows}]"
    problems: list[str | None] = [None] * rows
    if task == "regression":
        if not np.issubdtype(flat.dtype, np.number):
            return f"output dtype {flat.dtype} is not numeric"
        values = flat.astype(float)
        for i in np.flatnonzero(~np.isfinite(values)):
            problems[i] = "not finite"
        if bounds is not None:
            for i in np.flatnonzero(np.isfinite(values) & ((values < bounds[0]) | (values > bounds[1]))):
                problems[i] = f"outside {list(bounds)}"
    elif classes is not None:
        for i in np.flatnonzero(~pd.Series(flat).isin(classes).to_numpy()):
            problems[i] = "not a known class"
    return problems


def _failing_rows(predict: Callable[[pd.DataFrame], Any], frame: pd.DataFrame) -> list[int]:
    """Positions of rows whose prediction raises, found by halving (at most EVIDENCE_ROWS of them)."""
    found: list[int] = []
    pending = [np.arange(len(frame))]
    while pending and len(found) < EVIDENCE_ROWS:
        rows = pending.pop()
        try:
            predict(frame.iloc[rows])
            continue
        except Exception:  # the rows that raise are what is being looked for
            pass
        if len(rows) == 1:
            found.append(int(rows[0]))
        else:
            half = len(rows) // 2
            pending += [rows[half:], rows[:half]]
    return sorted(found)
