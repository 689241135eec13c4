"""Built-in steps: keel's capabilities as pipeline steps, to put in a Pipeline as they are.

Each takes its upstream step by name (``split`` takes the step ``window``, ``train`` takes ``split``, ``gates`` and
``canary`` take ``train``; ``window`` and ``validate`` read the table parameter ``source``); everything else is a
pipeline parameter. A pipeline with other step names wraps these in its own ``@step`` functions. A retraining
pipeline is typically::

    Pipeline("price-retrain", [window, split, train, gates],
             params={"source": "listings", "target": "price", "time_column": "listed_at",
                     "estimator": "mypkg.models:boosting", "model_name": "price"})

and a retraining policy hands it ``where`` (the data window), ``how`` and ``base_model`` per run.
"""

from __future__ import annotations

import importlib
from typing import Any

from keel.errors import InvalidInput, ValidationFailed
from keel.pipelines.definition import step
from keel.pipelines.execute import StepContext
from keel.pipelines.types import Deployment, GateReport, Model, Split, Table
from keel.pipelines.warm import PartialFit, warm_start

__all__ = ["canary", "gates", "ingest", "split", "train", "validate", "window"]


@step
def ingest(ctx: StepContext, path: str, table: str, on_bad_rows: str = "quarantine") -> Table:
    """A file as the next version of ``table`` (its stored contract applied)."""
    return ctx.ws.data.ingest(path, table, on_bad_rows=on_bad_rows).version.ref


@step
def validate(ctx: StepContext, source: Table) -> Table:
    """The table version, once it keeps its contract; the step fails with the report when not."""
    report = ctx.ws.data.validate(source)
    ctx.log(report.summary())
    if report.failed_rows:
        raise ValidationFailed(f"{source}: {report.summary()}", report=report)
    return source


@step
def window(ctx: StepContext, source: Table, where: str = "TRUE", window_table: str = "") -> Table:
    """The rows of ``source`` the predicate keeps (a retrain's data window), as a new version of their own table
    (``window_table``, default ``<source>_window``), with lineage back to the source version."""
    name = window_table or f"{source.removeprefix('table:').split('@')[0]}_window"
    rows = ctx.ws.data.read_arrow(source, where=None if where.strip().upper() == "TRUE" else where)
    if rows.num_rows == 0:
        raise InvalidInput(f"the window {where!r} keeps no row of {source}")
    ctx.log(f"{rows.num_rows} rows of {source} where {where}")
    return ctx.ws.data.ingest(rows, name, mode="overwrite", schema_change="overwrite",
                              reason=f"window of {source}: {where}").version.ref


@step(inputs={"data": "window"})
def split(ctx: StepContext, data: Table, target: str, time_column: str = "", split_name: str = "",
          dedupe: bool = True) -> Split:
    """Train, validation and test parts of the window, by time when it has a time column (leakage-checked)."""
    made = ctx.ws.data.split(data, target=target, time_column=time_column or None, dedupe=dedupe,
                             name=split_name or None)
    ctx.log(f"{made.ref}: " + ", ".join(f"{p} {made.counts[p]}" for p in ("train", "validation", "test")))
    return made.ref


@step
def train(ctx: StepContext, split: Split, estimator: str, model_name: str, features: list | None = None,
          how: str = "from_scratch", base_model: str = "", experiment: str = "retrain") -> Model:
    """Fit ``estimator`` (``module:function`` returning an unfitted model) on the train part, evaluate it, and
    register it as the next version of ``model_name``. ``how=warm_start`` continues ``base_model`` instead when
    it can (keel.pipelines.warm); what was done and why is in the run's tags ``retrain.how*``."""
    if how not in ("from_scratch", "warm_start"):
        raise InvalidInput(f"how {how!r}: use from_scratch or warm_start")
    factory = _factory(estimator)
    fresh = factory()
    used, detail = "from_scratch", "asked" if how == "from_scratch" else ""
    model: Any = fresh
    if how == "warm_start":
        if not base_model:
            used, detail = "from_scratch", "no base_model to continue from"
        else:
            model, used, detail = warm_start(ctx.ws.models.load(base_model).model, fresh)
    ctx.log(f"how: {used} ({detail})")
    with ctx.ws.runs.start(experiment, inputs=[split], tags={"retrain.how": used, "retrain.how_detail": detail,
                                                               "retrain.asked": how,
                                                               "retrain.base_model": base_model or "-"}) as run:
        fitted = ctx.ws.runs.fit(model, split, features=features, run=run)
        fitted = fitted.estimator if isinstance(fitted, PartialFit) else fitted
        report = ctx.ws.runs.evaluate(fitted, split, features=features, run=run)
    ctx.log("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in report.metrics.get("validation", {}).items()
                                       if isinstance(v, int | float)))
    columns = list(features) if features else None
    example = ctx.ws.data.read_split(split, "train", columns=columns).head(5)
    if not columns:
        example = example.drop(columns=[c for c in (ctx.ws.data.split_info(split).params.get("target"),)
                                        if c in example])
    version = ctx.ws.models.register(fitted, model_name, run=run.id, input_example=example,
                                     description=f"{used} on {split}")
    return version.ref


@step(inputs={"model": "train"})
def gates(ctx: StepContext, model: Model) -> GateReport:
    """The model's release gates (its checklist), against the version in production."""
    report = ctx.ws.gates.run(model)
    ctx.log(f"{report.ref}: {report.status}" + (f"; blocking: {', '.join(r.name for r in report.blocking)}"
                                                if report.blocking else ""))
    return report.ref


@step(inputs={"model": "train"})
def canary(ctx: StepContext, model: Model, deployment: str, steps: list | None = None, interval_s: float = 600.0,
           guardrails: list | None = None) -> Deployment:
    """Start a canary of ``model`` on ``deployment`` (release gates and approvals apply as anywhere)."""
    moved = ctx.ws.deployments.canary(deployment, model, steps=list(steps or [10, 50, 100]), interval_s=interval_s,
                                      guardrails=list(guardrails or []), reason=f"pipeline run {ctx.run}")
    return moved.ref


def _factory(text: str) -> Any:
    """The function ``module:function`` names (it returns an unfitted model)."""
    module, sep, name = (text or "").partition(":")
    if not sep or not module or not name:
        raise InvalidInput(f"estimator {text!r}: name a function that returns an unfitted model, module:function")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"estimator {text!r}: {exc}") from None
    if not callable(function):
        raise InvalidInput(f"estimator {text!r} is not a function")
    return function
