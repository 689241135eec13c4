"""Which features a caller asked for: ``view:feature`` (or a bare ``feature`` when one view has it), resolved
against the registry into one plan per view, with the output column names and the on-demand views to run."""

from __future__ import annotations

from dataclasses import dataclass, field

from keel.errors import InvalidInput, NotFound
from keel.features.model import FeatureViewInfo

__all__ = ["Requested", "resolve_features"]


@dataclass
class Requested:
    """Per batch view: [(feature, output column)]; on-demand views likewise, run after the batch ones."""

    batch: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    on_demand: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)  # columns fetched only for an on-demand view: dropped after
    order: list[str] = field(default_factory=list)  # output columns in the order asked

    @property
    def views(self) -> list[str]:
        return [*self.batch, *self.on_demand]

    def column_of(self, source: str) -> str:
        """The column a batch feature (``view:feature``) was fetched into."""
        view, _, feature = source.partition(":")
        return next(column for name, column in self.batch[view] if name == feature)


def resolve_features(features: list[str], views: dict[str, FeatureViewInfo], *, full_names: bool = False) -> Requested:
    if not features:
        raise InvalidInput("ask for at least one feature, e.g. features=['driver_stats:trips_today']")
    owners: dict[str, list[str]] = {}
    for info in views.values():
        for feature in info.features:
            owners.setdefault(feature["name"], []).append(info.name)
    plan = Requested()
    for text in features:
        view, feature = _split(text, views, owners)
        column = f"{view}__{feature}" if full_names else feature
        if column in plan.order:
            raise InvalidInput(f"two requested features would both be named {column!r}; ask for them as "
                               "view:feature with full_names=True")
        plan.order.append(column)
        kind = views[view].kind
        (plan.on_demand if kind == "on_demand" else plan.batch).setdefault(view, []).append((feature, column))
    for view in list(plan.on_demand):
        for source in views[view].definition["sources"]:
            src_view, src_feature = _split(source, views, owners)
            if views[src_view].kind == "on_demand":
                raise InvalidInput(f"on-demand view {view!r} reads {source}, another on-demand view; read batch "
                                   "views only")
            wanted = plan.batch.setdefault(src_view, [])
            if src_feature not in [f for f, _ in wanted]:
                hidden = f"__keel_src__{src_view}__{src_feature}"
                wanted.append((src_feature, hidden))
                plan.hidden.add(hidden)
    return plan


def _split(text: str, views: dict[str, FeatureViewInfo], owners: dict[str, list[str]]) -> tuple[str, str]:
    if not isinstance(text, str) or not text:
        raise InvalidInput(f"a feature is named 'view:feature', not {text!r}")
    if ":" in text:
        view, _, feature = text.partition(":")
        if view not in views:
            raise NotFound(f"unknown feature view {view!r} (in {text!r}); `keel features list` lists them")
        if feature not in [f["name"] for f in views[view].features]:
            have = ", ".join(f["name"] for f in views[view].features)
            raise NotFound(f"feature view {view!r} has no feature {feature!r}; it has {have}")
        return view, feature
    found = owners.get(text, [])
    if not found:
        raise NotFound(f"unknown feature {text!r}; name it as view:feature (`keel features list` lists them)")
    if len(found) > 1:
        raise InvalidInput(f"feature {text!r} is in several views ({', '.join(sorted(found))}); ask for it as "
                           f"{sorted(found)[0]}:{text}")
    return found[0], text
