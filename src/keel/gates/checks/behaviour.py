"""Behavioural tests after CheckList (Ribeiro et al., 2020), for tabular models: invariance, minimum
functionality and directional expectation. Each predicts the whole evaluation frame (and its changed copy)
in one call per model; no per-row predict loop."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keel.errors import InvalidInput
from keel.gates.context import GateContext
from keel.gates.model import GateOutcome
from keel.gates.spec import DirectionalTest, InvarianceTest, MinimumFunctionalityTest, Perturbation

__all__ = ["perturbed", "run_directional", "run_invariance", "run_minimum_functionality", "score"]


def run_invariance(ctx: GateContext, test: InvarianceTest) -> GateOutcome:
    frame = ctx.frame
    changed_frame = perturbed(frame, test.perturb, np.random.default_rng(test.seed))
    if ctx.task == "classification" and (test.tolerance == 0 or not ctx.has_proba()):
        before, after = ctx.predict(frame), ctx.predict(changed_frame)
        moved = (before != after).astype(float)
        bad = moved > 0
    else:
        before, after = score(ctx, frame), score(ctx, changed_frame)
        moved = np.abs(after - before)
        moved = moved.max(axis=1) if moved.ndim == 2 else moved
        scale = np.maximum(np.abs(before).max(axis=1) if before.ndim == 2 else np.abs(before), 1.0)
        bad = moved > test.tolerance + 1e-9 * scale  # floating-point noise is not a change
    kept = 1.0 - float(bad.mean()) if len(bad) else 1.0
    column = test.perturb.column
    evidence = pd.DataFrame({f"{column} (before)": frame[column].to_numpy(),
                             f"{column} (after)": changed_frame[column].to_numpy(),
                             "output (before)": _shown(before), "output (after)": _shown(after), "change": moved},
                            index=frame.index)
    evidence = pd.concat([frame[[c for c in ctx.features if c != column]], evidence], axis=1)[bad]
    evidence = evidence.iloc[np.argsort(-moved[bad], kind="stable")]
    return GateOutcome(kept >= test.min_fraction, value=kept, threshold=test.min_fraction, evidence=evidence,
                       message=f"{kept:.1%} of {len(bad)} rows unchanged (tolerance {test.tolerance:g}) when "
                               f"{_describe(test.perturb)}; needs {test.min_fraction:.0%}",
                       details={"rows": len(bad), "changed": int(bad.sum()), "max_change": float(moved.max(initial=0))})


def run_minimum_functionality(ctx: GateContext, test: MinimumFunctionalityTest) -> GateOutcome:
    typical = ctx.typical_row()
    rows = [{**typical, **case.input} for case in test.cases]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys([*typical, *(k for r in rows for k in r)])))
    reference = ctx.train if ctx.train is not None else ctx.frame
    for column in ctx.features:  # the data's dtypes, so the signature sees what it was trained on
        if column in reference and frame[column].notna().all():
            try:
                frame[column] = frame[column].astype(reference[column].dtype)
            except (TypeError, ValueError):
                raise InvalidInput(f"minimum functionality: the value(s) given for {column!r} do not fit its "
                                   f"type {reference[column].dtype}") from None
    predictions = ctx.predict(frame)
    ok = np.ones(len(rows), dtype=bool)
    expected = []
    for i, case in enumerate(test.cases):
        value = predictions[i]
        wanted = []
        if case.expect is not None:
            if ctx.task == "regression" and isinstance(case.expect, int | float):
                ok[i] &= abs(float(value) - float(case.expect)) <= test.tolerance
                wanted.append(f"= {case.expect} ± {test.tolerance:g}")
            else:
                ok[i] &= value == case.expect or str(value) == str(case.expect)
                wanted.append(f"= {case.expect}")
        if case.min is not None:
            ok[i] &= float(value) >= case.min
            wanted.append(f">= {case.min:g}")
        if case.max is not None:
            ok[i] &= float(value) <= case.max
            wanted.append(f"<= {case.max:g}")
        expected.append(", ".join(wanted))
    share = float(ok.mean())
    evidence = [{"case": i + 1, **case.input, "prediction": predictions[i], "expected": expected[i]}
                for i, case in enumerate(test.cases) if not ok[i]]
    return GateOutcome(share >= test.min_fraction, value=share, threshold=test.min_fraction, evidence=evidence,
                       message=f"{int(ok.sum())} of {len(ok)} easy case(s) right; needs {test.min_fraction:.0%}",
                       details={"cases": [{"case": i + 1, **c.input, "prediction": predictions[i],
                                           "expected": expected[i], "passed": bool(ok[i])}
                                          for i, c in enumerate(test.cases)]})


def run_directional(ctx: GateContext, test: DirectionalTest) -> GateOutcome:
    """Predicts the frame at ``column + k * delta`` for k = 0..steps in one call; step 1 is judged, the
    rest draw the curve."""
    frame, column, n = ctx.frame, test.column, len(ctx.frame)
    steps = np.arange(test.steps + 1)
    stacked = pd.concat([frame] * len(steps), ignore_index=True)
    shift = np.repeat(steps * test.delta, n)
    stacked[column] = (stacked[column].to_numpy() + shift).astype(frame[column].dtype, copy=False)
    outputs = score(ctx, stacked).reshape(len(steps), n)
    change = outputs[1] - outputs[0]
    wrong = change < -test.tolerance if test.expect == "non_decreasing" else change > test.tolerance
    kept = 1.0 - float(wrong.mean()) if n else 1.0
    evidence = frame[ctx.features].assign(**{"output": outputs[0], f"output ({column} + {test.delta:g})": outputs[1],
                                             "change": change})[wrong]
    evidence = evidence.iloc[np.argsort(change[wrong] if test.expect == "non_decreasing" else -change[wrong],
                                        kind="stable")]
    curve = [[float(k * test.delta), float(np.mean(outputs[k]))] for k in steps]
    way = "decreased" if test.expect == "non_decreasing" else "increased"
    return GateOutcome(kept >= test.min_fraction, value=kept, threshold=test.min_fraction, evidence=evidence,
                       message=f"raising {column} by {test.delta:g} {way} the output for {int(wrong.sum())} of {n} "
                               f"rows ({kept:.1%} as expected; needs {test.min_fraction:.0%})",
                       details={"curve": curve, "violations": int(wrong.sum()), "rows": n, "column": column,
                                "delta": test.delta, "expect": test.expect})


def score(ctx: GateContext, frame: pd.DataFrame) -> np.ndarray:
    """A numeric output per row: the prediction (regression) or the positive class's probability."""
    if ctx.task == "regression":
        return np.asarray(ctx.predict(frame), dtype=float)
    if not ctx.has_proba():
        raise InvalidInput(f"{ctx.version.name} has no predict_proba: a classifier's output can only be compared "
                           "as classes here (tolerance 0)")
    proba = np.asarray(ctx.predict_proba(frame), dtype=float)
    return proba[:, -1] if proba.ndim == 2 and proba.shape[1] == 2 else proba


def perturbed(frame: pd.DataFrame, how: Perturbation, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``frame`` with one column changed as ``how`` says (types are checked before a run)."""
    out = frame.copy()
    values = frame[how.column]
    n = len(frame)
    if how.how == "noise":
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        std = float(np.nanstd(numbers)) or 1.0
        noisy = numbers + rng.normal(0.0, how.scale * std, n)
        out[how.column] = np.round(noisy).astype(values.dtype) if pd.api.types.is_integer_dtype(values.dtype) \
            and not np.isnan(noisy).any() else noisy
    elif how.how == "shuffle":
        out[how.column] = values.to_numpy()[rng.permutation(n)]
    elif how.how == "swap":
        groups = np.zeros(n, dtype=np.int64) if how.within is None else pd.factorize(frame[how.within])[0]
        by_group = np.argsort(groups, kind="stable")
        shuffled = np.lexsort((rng.random(n), groups))  # the same groups in the same order, members shuffled
        swapped = values.to_numpy().copy()
        swapped[by_group] = values.to_numpy()[shuffled]
        out[how.column] = swapped
    else:
        out[how.column] = pd.Series([how.value] * n, index=frame.index).astype(values.dtype, errors="ignore")
    return out


def _shown(values: np.ndarray) -> Any:
    return values if values.ndim == 1 else [list(v) for v in values]


def _describe(how: Perturbation) -> str:
    if how.how == "noise":
        return f"{how.column} gets noise ({how.scale:g} x its std)"
    if how.how == "swap":
        return f"{how.column} is swapped among rows" + (f" of the same {how.within}" if how.within else "")
    if how.how == "shuffle":
        return f"{how.column} is shuffled across rows"
    return f"{how.column} is set to {how.value!r}"
