"""Pipelines for the pipeline and retraining pages (loaded by file path: ``ws.pipelines.apply(DEFS)``).

``ui-demo``: load (a Table parameter) -> summarize (prints markup, which the run page must escape) -> explode
(fails while ``fail`` is true) -> after (skipped when explode fails); ``side`` hangs off load beside summarize.
So a run has every final status: succeeded, failed, skipped, and (run again) cached.

``toy-retrain`` and ``toy-retrain-bad``: keel's built-in window -> split -> train -> gates over the toy table of
tests/gates_helpers.py, as a retraining policy runs them (it hands ``where``, ``how`` and ``base_model``). The bad
one trains without x1, the feature that matters, so its candidate fails its required gates.
"""

from __future__ import annotations

from gates_helpers import FEATURES  # tests/ is on sys.path (tests/conftest.py)
from keel.pipelines import Manual, Pipeline, Table, step
from keel.pipelines.builtin import gates, split, train, window

MARKUP_LOG = "<script>alert('step')</script>"  # printed by summarize: shown as text, never run
BOOM = "boom: <b>explode</b> refused"  # explode's error: escaped too


@step
def load(ctx, table: Table = "toy") -> Table:
    """The pinned version of the table."""
    ctx.log(f"loading {table}")
    return table


@step
def summarize(ctx, load: Table) -> dict:
    rows = ctx.ws.data.version(load).row_count
    print(MARKUP_LOG)
    ctx.log(f"{rows} rows in {load}")
    return {"rows": rows}


@step
def side(load: Table) -> dict:
    return {"source": str(load)}


@step
def explode(summarize: dict, fail: bool = True) -> int:
    print("about to decide")
    if fail:
        raise RuntimeError(BOOM)
    return int(summarize["rows"])


@step
def after(explode: int) -> int:
    return explode + 1


ui_demo = Pipeline("ui-demo", [load, summarize, side, explode, after], triggers=[Manual()],
                   description="a small DAG with a step that fails on demand")

RETRAIN_PARAMS = {"source": "toy", "where": "TRUE", "window_table": "toy_window", "target": "y", "time_column": "ts",
                  "estimator": "gates_helpers:pipeline", "model_name": "toy", "features": FEATURES,
                  "experiment": "toy-retrain"}

toy_retrain = Pipeline("toy-retrain", [window, split, train, gates], params=RETRAIN_PARAMS,
                       description="the toy model trained again on a window of the toy table")
toy_retrain_bad = Pipeline("toy-retrain-bad", [window, split, train, gates],
                           params={**RETRAIN_PARAMS, "features": ["x2", "cat"], "window_table": "toy_window_bad"},
                           description="the toy model without x1: its gates fail")
