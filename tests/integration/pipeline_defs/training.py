"""Test pipelines over real keel refs (loaded by file path: ``ws.pipelines.apply(TRAINING)``).

``train``: prepare (a Table parameter -> a Split made with ctx.ws) -> count (takes prepare's output through
``inputs=``) -> check (fails while the file ``fail_if`` exists) -> report; ``independent`` hangs off nothing.
``flaky``: one step with ``retries=1`` that fails on its first attempt. ``wrong``: a step returning a table ref
where it declares a Split. ``procs``: prepare beside a step that reports its process id (the process executor).
``chain``: prepare, then a step that takes its Split and makes another.
Every step appends its name to the file ``trace`` (when given): how a test sees which steps really executed.
"""

from __future__ import annotations

import os
from pathlib import Path

from keel.pipelines import Api, Manual, Pipeline, Split, Table, step


def _trace(trace: str, name: str) -> None:
    if trace:
        with open(trace, "a", encoding="utf-8") as out:
            out.write(name + "\n")


@step
def prepare(ctx, table: Table = "listings", trace: str = "") -> Split:
    """Split the table version the run pinned."""
    _trace(trace, "prepare")
    ctx.log(f"splitting {table}")
    return ctx.ws.data.split(table, target="y", name="toy-split")


@step(inputs={"split": "prepare"})
def count(ctx, split: Split, trace: str = "") -> dict:
    _trace(trace, "count")
    info = ctx.ws.data.split_info(split)
    ctx.log(f"counted {split}")
    return {"split": info.ref, "rows": int(info.table_version) + 100}


@step
def check(count: dict, fail_if: str = "", trace: str = "") -> int:
    _trace(trace, "check")
    if fail_if and Path(fail_if).exists():
        print("about to fail")
        raise RuntimeError(f"check refused: {fail_if} exists")
    return count["rows"]


@step
def report(check: int, trace: str = "") -> dict:
    _trace(trace, "report")
    return {"checked": check}


@step
def independent(trace: str = "") -> int:
    _trace(trace, "independent")
    return 7


@step(retries=1)
def flaky(counter: str = "") -> int:
    """Fails on its first attempt, succeeds on its second (the attempts are counted in the file ``counter``)."""
    path = Path(counter)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    if attempt == 1:
        raise ValueError("first attempt fails")
    return attempt


@step
def wrong() -> Split:
    return "table:listings@0"


@step
def resplit(ctx, prepare: Split) -> Split:
    """A Split made from another step's Split: lineage from step to step."""
    info = ctx.ws.data.split_info(prepare)
    return ctx.ws.data.split(f"table:{info.table}@{info.table_version}", target="y", name="second-split", seed=7)


@step
def where() -> dict:
    return {"pid": os.getpid()}


train = Pipeline("train", [prepare, count, check, report, independent], triggers=[Manual(), Api()],
                 description="split, count, check, report")
retried = Pipeline("flaky", [flaky])
mistyped = Pipeline("wrong", [wrong])
procs = Pipeline("procs", [prepare, where])
chain = Pipeline("chain", [prepare, resplit])
