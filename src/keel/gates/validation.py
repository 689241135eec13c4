"""Before any test runs: every column, slice, metric and perturbation the checklist names must fit the model
and its data. Problems are gathered and refused together (InvalidInput), so nothing is run or stored."""

from __future__ import annotations

import pandas as pd

from keel.errors import InvalidInput
from keel.gates.checks.fairness import check_fairness
from keel.gates.conditions import check_metrics
from keel.gates.context import GateContext
from keel.gates.spec import (
    Checklist,
    DirectionalTest,
    FairnessTest,
    InvarianceTest,
    MetricTest,
    MinimumFunctionalityTest,
    SliceTest,
)

__all__ = ["check_checklist", "check_columns"]


def check_columns(checklist: Checklist, columns: list[str]) -> list[str]:
    """Problems with the columns the tests name, knowing the data's columns. A checklist serves every version
    of a model, so a column one version does not take is allowed (a test on it shows the version ignores it)."""
    problems = []
    known = set(columns)
    for name, test in zip(checklist.names(), checklist.tests, strict=True):
        named: list[str] = []
        if isinstance(test, SliceTest):
            named = test.by
        elif isinstance(test, InvarianceTest):
            named = [test.perturb.column] + ([test.perturb.within] if test.perturb.within else [])
        elif isinstance(test, DirectionalTest):
            named = [test.column]
        elif isinstance(test, FairnessTest):
            named = [test.sensitive]
        elif isinstance(test, MinimumFunctionalityTest):
            for i, case in enumerate(test.cases, start=1):
                unknown = [c for c in case.input if c not in known]
                if unknown:
                    problems.append(f"{name}: case {i} sets {', '.join(map(repr, unknown))}, not a column of the "
                                    f"data ({', '.join(sorted(known))})")
        for column in named:
            if column not in known:
                problems.append(f"{name}: unknown column {column!r}; the data has {', '.join(sorted(known))}")
    return problems


def check_checklist(ctx: GateContext, checklist: Checklist) -> None:
    """Refuse (InvalidInput) a checklist that does not fit ``ctx``'s model and data."""
    frame = ctx.frame
    missing = [c for c in ctx.features if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the data ({ctx.data}) lacks column(s) {', '.join(map(repr, missing))} that "
                           f"{ctx.version.name} needs", details={"missing": missing})
    if ctx.label not in frame.columns:
        raise InvalidInput(f"the data ({ctx.data}) has no label column {ctx.label!r}; name it in the checklist "
                           "(label: ...)")
    problems = check_columns(checklist, list(frame.columns))
    if ctx.champion is not None and any(c.reference == "champion" for t in checklist.tests
                                        if isinstance(t, MetricTest | SliceTest) for c in t.parsed()):
        lacking = [c for c in ctx.champion.signature.columns if c not in frame.columns]
        if lacking:
            problems.append(f"the champion {ctx.champion_version.name if ctx.champion_version else ''} needs "
                            f"column(s) {', '.join(map(repr, lacking))} the data ({ctx.data}) lacks")
    for name, test in zip(checklist.names(), checklist.tests, strict=True):
        try:
            if isinstance(test, MetricTest | SliceTest):
                check_metrics(test.parsed(), ctx.task, name)
            elif isinstance(test, FairnessTest):
                check_fairness(test, ctx.task)
            if isinstance(test, InvarianceTest) and test.perturb.column in frame.columns:
                _check_perturbation(name, test, frame)
            if isinstance(test, DirectionalTest) and test.column in frame.columns:
                _check_directional(name, test, frame)
        except InvalidInput as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidInput(f"the checklist does not fit {ctx.version.name}: {problems[0]}"
                           + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                           details={"problems": problems})


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _check_perturbation(name: str, test: InvarianceTest, frame: pd.DataFrame) -> None:
    how, column = test.perturb, frame[test.perturb.column]
    if how.how == "noise" and not _numeric(column):
        raise InvalidInput(f"{name}: noise needs a numeric column; {how.column!r} is {column.dtype} "
                           "(use swap or shuffle)")
    if how.how == "swap" and _numeric(column):
        raise InvalidInput(f"{name}: swap is for a categorical column; {how.column!r} is {column.dtype} "
                           "(use noise or shuffle)")
    if how.how == "set":
        try:
            pd.Series([how.value]).astype(column.dtype)
        except (TypeError, ValueError):
            raise InvalidInput(f"{name}: {how.value!r} does not fit {how.column!r} ({column.dtype})") from None
        if _numeric(column) and isinstance(how.value, str):
            raise InvalidInput(f"{name}: {how.value!r} does not fit the numeric column {how.column!r}")


def _check_directional(name: str, test: DirectionalTest, frame: pd.DataFrame) -> None:
    column = frame[test.column]
    if not _numeric(column):
        raise InvalidInput(f"{name}: directional needs a numeric column; {test.column!r} is {column.dtype}")
    if pd.api.types.is_integer_dtype(column.dtype) and float(test.delta) != int(test.delta):
        raise InvalidInput(f"{name}: {test.column!r} holds integers; delta {test.delta:g} must be whole")
