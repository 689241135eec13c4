"""The talk's "dumb model" as the last fallback: what a deployment answers when every model of its chain fails.

``--fallback baseline`` is resolved when the policy is set, from the primary version's training data (its run's
``fit.data`` and ``fit.label``): the train part's mean label for a regressor, its most frequent class for a
classifier. The constant is stored in the policy, so the data plane needs no data to serve it and what it would
answer is visible in the deployment's history.
"""

from __future__ import annotations

from typing import Any

from keel.errors import InvalidInput, NotFound
from keel.tracking.frames import check_task

__all__ = ["baseline_of", "read_train_part", "training_source"]


def training_source(models: Any, runs: Any, ref: str, *, hint: str = "") -> dict[str, Any]:
    """What model version ``ref``'s run recorded of its training data, its tags read once: ``{"version",
    "data" (fit.data), "label" (fit.label), "task" (fit.task)}``; InvalidInput, ending with ``hint``, when the run
    recorded none (it was fitted on frames)."""
    version = models.version(ref)
    tags = runs.get(version.run_id).tags if version.run_id else {}
    source = tags.get("fit.data")
    if not source or source == "frames":
        raise InvalidInput(f"{version.name} records no stored training data (its run has no fit.data), so keel "
                           "cannot tell what it was trained on" + (f"; {hint}" if hint else ""))
    return {"version": version.name, "data": source, "label": tags.get("fit.label"), "task": tags.get("fit.task")}


def read_train_part(data: Any, source: str, columns: list[str] | None = None) -> Any:
    """The train part of split ``source`` as a frame of ``columns``; the whole table when it is not a split."""
    try:
        return data.read_split(source, "train", columns=columns)
    except (NotFound, InvalidInput):
        return data.read(source, columns=columns)


def baseline_of(models: Any, runs: Any, data: Any, ref: str) -> dict[str, Any]:
    """``{"of": version, "value": constant, "from": data ref, "label": column, "task": ...}`` for model ``ref``."""
    fallback = "choose a model version as the fallback"
    found = training_source(models, runs, ref, hint=fallback)
    source, label = found["data"], found["label"]
    if not label:
        raise InvalidInput(f"{found['version']} records no label column (its run has no fit.label), so keel cannot "
                           f"compute a baseline for it; {fallback}")
    labels = read_train_part(data, source, [label])[label].dropna()
    if labels.empty:
        raise InvalidInput(f"the training data {source} has no {label} values to compute a baseline from")
    task = check_task(None, labels, found["task"])  # the labels decide: a class label or a number
    if task == "classification":
        value: Any = labels.value_counts().idxmax()
        value = value.item() if hasattr(value, "item") else value
    else:
        value = float(labels.astype("float64").mean())
    return {"of": found["version"], "value": value, "from": source, "label": label, "task": task}
