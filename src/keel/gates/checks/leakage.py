"""Leakage test: the stored split the model was fitted on, checked again from its parts.

No row of the test part may equal a train row on the split's duplicate columns (the rows are hashed
together, vectorised), no group may be in both when the split was by group, and the test part must be
strictly later than train when it was by time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keel.gates.context import GateContext
from keel.gates.model import GateOutcome
from keel.gates.spec import LeakageTest

__all__ = ["run_leakage"]


def run_leakage(ctx: GateContext, test: LeakageTest) -> GateOutcome:
    split = ctx.split
    if split is None:
        return GateOutcome(True, skipped=True, message="the model's data is not a stored split: nothing to re-check")
    if not split.counts.get(test.test_part):
        return GateOutcome(True, skipped=True, message=f"split {split.ref} has no {test.test_part} part")
    pinned = f"{split.name}@{split.version}"
    train = ctx.services.read_split(pinned, "train")
    held_out = ctx.services.read_split(pinned, test.test_part)
    checks: list[dict[str, Any]] = []
    evidence: list[pd.DataFrame] = []

    columns = [c for c in split.params.get("duplicate_columns", []) if c in train and c in held_out]
    if columns:
        seen = pd.util.hash_pandas_object(train[columns], index=False).to_numpy()
        mine = pd.util.hash_pandas_object(held_out[columns], index=False).to_numpy()
        dup = np.isin(mine, seen)
        checks.append({"check": "duplicate rows", "found": int(dup.sum()), "columns": len(columns)})
        evidence.append(held_out[dup].assign(**{"leak": "duplicate of a train row"}))
    if split.method == "group":
        group = split.params["group"]
        shared = np.isin(held_out[group].to_numpy(), train[group].unique())
        checks.append({"check": f"shared {group}", "found": int(shared.sum()),
                       "groups": int(held_out.loc[shared, group].nunique())})
        evidence.append(held_out[shared].assign(**{"leak": f"{group} also in train"}))
    if split.method == "time":
        column = split.params["time_column"]
        latest = pd.to_datetime(train[column], utc=True).max()
        times = pd.to_datetime(held_out[column], utc=True)
        early = (times <= latest).to_numpy()
        checks.append({"check": f"{test.test_part} after train in {column}", "found": int(early.sum()),
                       "train_ends": str(latest), f"{test.test_part}_starts": str(times.min())})
        evidence.append(held_out[early].assign(**{"leak": f"not after the last train {column} ({latest})"}))
    found = sum(c["found"] for c in checks)
    rows = pd.concat([e for e in evidence if len(e)], ignore_index=True) if any(len(e) for e in evidence) else None
    return GateOutcome(found == 0, value=found, threshold=0, evidence=rows,
                       details={"split": split.ref, "method": split.method, "checks": checks},
                       message=f"{split.ref} ({split.method}): " + ", ".join(f"{c['check']}: {c['found']}"
                                                                            for c in checks))
