"""Flavors: how each kind of model is written to a package and read back, safely.

Listed explicitly, tried in order (no import-time plugin registration): a flavor's ``handles`` decides.
The generic ``python`` flavor is never chosen automatically: it stores a pickle, which runs code on load,
so a user asks for it by name and loading it needs ``trusted=True``.
"""

from __future__ import annotations

from typing import Any

from keel.errors import InvalidInput, UnsupportedModel
from keel.models.flavors.base import Flavor
from keel.models.flavors.lightgbm import LightGBMFlavor
from keel.models.flavors.python import PythonFlavor
from keel.models.flavors.sklearn import SklearnFlavor
from keel.models.flavors.xgboost import XGBoostFlavor

__all__ = ["FLAVORS", "Flavor", "flavor_for", "flavor_named"]

# order matters: LightGBM and XGBoost models are also scikit-learn estimators, and native beats skops
FLAVORS: tuple[Flavor, ...] = (LightGBMFlavor(), XGBoostFlavor(), SklearnFlavor(), PythonFlavor())


def flavor_named(name: str) -> Flavor:
    for flavor in FLAVORS:
        if flavor.name == name:
            return flavor
    raise InvalidInput(f"unknown flavor {name!r}; known: {', '.join(f.name for f in FLAVORS)}")


def flavor_for(model: Any, name: str | None = None) -> Flavor:
    """The flavor that packages ``model``: the one named, else the first automatic one that handles it."""
    if name is not None:
        flavor = flavor_named(name)
        if not flavor.handles(model):
            raise UnsupportedModel(f"the {name} flavor cannot package a {_class_name(model)}")
        return flavor
    for flavor in FLAVORS:
        if flavor.automatic and flavor.handles(model):
            return flavor
    raise UnsupportedModel(
        f"no flavor knows how to package a {_class_name(model)} (known: scikit-learn, LightGBM, XGBoost); "
        "pass flavor='python' to store any object with a predict method as a pickle (loading it then "
        "needs trusted=True)")


def _class_name(model: Any) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"
