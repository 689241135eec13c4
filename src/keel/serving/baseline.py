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

__all__ = ["baseline_of"]


def baseline_of(models: Any, runs: Any, data: Any, ref: str) -> dict[str, Any]:
    """``{"of": version, "value": constant, "from": data ref, "label": column, "task": ...}`` for model ``ref``."""
    version = models.version(ref)
    tags = runs.get(version.run_id).tags if version.run_id else {}
    source, label = tags.get("fit.data"), tags.get("fit.label")
    if not source or source == "frames" or not label:
        raise InvalidInput(f"{version.name} records no stored training data (its run has no fit.data / fit.label), "
                           "so keel cannot compute a baseline for it; choose a model version as the fallback")
    try:
        labels = data.read_split(source, "train", columns=[label])[label]
    except (NotFound, InvalidInput):
        labels = data.read(source, columns=[label])[label]
    labels = labels.dropna()
    if labels.empty:
        raise InvalidInput(f"the training data {source} has no {label} values to compute a baseline from")
    task = check_task(None, labels, tags.get("fit.task"))  # the labels decide: a class label or a number
    if task == "classification":
        value: Any = labels.value_counts().idxmax()
        value = value.item() if hasattr(value, "item") else value
    else:
        value = float(labels.astype("float64").mean())
    return {"of": version.name, "value": value, "from": source, "label": label, "task": task}
