"""Who reads a feature: everything downstream of the view's versions in the lineage graph (training sets,
the runs that trained on them, the model versions they produced, and later deployments and jobs), per
feature. A feature nobody consumes is a removal candidate: the talk's "feature registry with consumers"."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from keel.features.model import FeatureViewInfo, TrainingSetInfo
from keel.lineage import LineageNode, LineageService

__all__ = ["CONSUMER_KINDS", "consumers_of", "summary"]

CONSUMER_KINDS = ("model", "deployment", "job", "pipeline", "run", "trainingset")
_SKIP = {"previous_version"}  # a later version of the view is not its consumer


def consumers_of(versions: list[FeatureViewInfo], training_sets: Iterable[TrainingSetInfo],
                 lineage: LineageService) -> dict[str, dict[str, list[str]]]:
    """feature -> {kind -> sorted refs}: what consumes each feature of the view (any of its versions)."""
    view = versions[0].name
    names = sorted({f["name"] for v in versions for f in v.features})
    per_feature: dict[str, dict[str, set[str]]] = {n: {k: set() for k in CONSUMER_KINDS} for n in names}
    whole_view: dict[str, set[str]] = {k: set() for k in CONSUMER_KINDS}
    by_ref = {t.ref: t for t in training_sets}
    for info in versions:
        for child in lineage.downstream(info.ref).children:
            if child.relation in _SKIP:
                continue
            reached = _refs(child)
            training = by_ref.get(child.ref)
            if training is not None:  # a training set consumes exactly the features it asked for
                wanted = {f.partition(":")[2] for f in training.features if f.partition(":")[0] == view}
                for name in wanted & set(names):
                    _add(per_feature[name], reached)
            else:  # a deployment or job reading the view consumes all of it
                _add(whole_view, reached)
    return {n: {k: sorted(per_feature[n][k] | whole_view[k]) for k in CONSUMER_KINDS} for n in names}


def _refs(node: LineageNode) -> list[str]:
    out = [node.ref]
    for child in node.children:
        if child.relation not in _SKIP:
            out.extend(_refs(child))
    return out


def _add(into: dict[str, set[str]], refs: list[str]) -> None:
    for ref in refs:
        kind = ref.partition(":")[0]
        if kind in into:
            into[kind].add(ref)


def summary(consumers: dict[str, list[str]]) -> dict[str, Any]:
    """Counts per kind, and whether anything at all consumes it."""
    counts = {k: len(v) for k, v in consumers.items()}
    return {"counts": counts, "removal_candidate": not any(counts.values())}
