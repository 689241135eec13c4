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

__all__ = ["baseline_of", "training_part"]


def training_part(models: Any, runs: Any, data: Any, ref: str, columns: list[str] | None = None
                  ) -> tuple[Any, str, str | None]:
    """(frame of ``columns`` of the train part, the data ref, the label column) of model version ``ref``'s stored
    training data (its run's ``fit.data`` / ``fit.label``): what the baseline and a monitor's reference come
    from. The whole table when the data is not a split."""
    version = models.version(ref)
    tags = runs.get(version.run_id).tags if version.run_id else {}
    source, label = tags.get("fit.data"), tags.get("fit.label")
    if not source or source == "frames":
        raise InvalidInput(f"{version.name} records no stored training data (its run has no fit.data), so keel "
                           "cannot tell what it was trained on")
    try:
        frame = data.read_split(source, "train", columns=columns)
    except (NotFound, InvalidInput):
        frame = data.read(source, columns=columns)
    return frame, source, label


def baseline_of(models: Any, runs: Any, data: Any, ref: str) -> dict[str, Any]:
    """``{"of": version, "value": constant, "from": data ref, "label": column, "task": ...}`` for model ``ref``."""
    version = models.version(ref)
    tags = runs.get(version.run_id).tags if version.run_id else {}
    if not tags.get("fit.data") or tags.get("fit.data") == "frames" or not tags.get("fit.label"):
        raise InvalidInput(f"{version.name} records no stored training data (its run has no fit.data / fit.label), "
                           "so keel cannot compute a baseline for it; choose a model version as the fallback")
    frame, source, label = training_part(models, runs, data, ref, [tags["fit.label"]])
    labels = frame[label].dropna()
    if labels.empty:
        raise InvalidInput(f"the training data {source} has no {label} values to compute a baseline from")
    task = check_task(None, labels, tags.get("fit.task"))  # the labels decide: a class label or a number
    if task == "classification":
        value: Any = labels.value_counts().idxmax()
        value = value.item() if hasattr(value, "item") else value
    else:
        value = float(labels.astype("float64").mean())
    return {"of": version.name, "value": value, "from": source, "label": label, "task": task}
