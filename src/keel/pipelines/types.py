"""What a step takes and returns: keel refs of a declared kind, or plain JSON values.

A step's return annotation says what it makes (``-> Split``); keel checks what it returned against it and stores
the ref (``split:listings-split@2``), so the next step, the cache and lineage all see an immutable version.
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Union, get_args, get_origin

import orjson

from keel.errors import InvalidInput

__all__ = ["REF_TYPES", "VALUE_TYPES", "Deployment", "FeatureView", "GateReport", "Model", "MonitorReport",
           "RefType", "Run", "Split", "Table", "TrainingSet", "check_output", "type_name"]


class RefType(str):
    """A ref to a keel object of one ``kind``: a str subclass, so a step can use it wherever a ref is taken."""

    kind = ""


class Table(RefType):
    kind = "table"


class Split(RefType):
    kind = "split"


class TrainingSet(RefType):
    kind = "trainingset"


class FeatureView(RefType):
    kind = "features"


class Run(RefType):
    kind = "run"


class Model(RefType):
    kind = "model"


class GateReport(RefType):
    kind = "gate"


class MonitorReport(RefType):
    kind = "monitor_report"


class Deployment(RefType):
    kind = "deployment"


REF_TYPES: dict[str, type[RefType]] = {t.__name__: t for t in (Table, Split, TrainingSet, FeatureView, Run, Model,
                                                                   GateReport, MonitorReport, Deployment)}
VALUE_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (float, int), "bool": (bool,),
                                            "dict": (dict,), "list": (list,), "Any": (object,)}


def type_name(annotation: Any) -> str:
    """The stored name of an annotation: a ref type's class name, a JSON type's name, or ``Any``."""
    if annotation is None or annotation is Any or annotation == "Any":
        return "Any"
    if get_origin(annotation) in (Union, UnionType):  # Optional[X] / X | None: an optional X
        kept = [a for a in get_args(annotation) if a is not type(None)]
        if len(kept) == 1:
            return type_name(kept[0])
    if isinstance(annotation, str):
        text = annotation.replace(" ", "").removesuffix("|None").removeprefix("None|")
        name = text.rsplit(".", 1)[-1]
    else:
        name = getattr(annotation, "__name__", None) or str(annotation)
    if name not in REF_TYPES and name not in VALUE_TYPES:
        raise InvalidInput(f"{name!r} is not a type a step can take or return; use one of "
                           f"{', '.join([*REF_TYPES, *VALUE_TYPES])}")
    return name


def check_output(step: str, declared: str, value: Any) -> Any:
    """``value`` as stored (a ref's text, or the JSON value), or InvalidInput naming the step, what it returned and
    what it declared. An object with a ``ref`` (a ModelVersion, a SplitInfo, ...) counts as its ref."""
    if declared in REF_TYPES:
        text = getattr(value, "ref", value)
        kind = REF_TYPES[declared].kind
        if not isinstance(text, str) or not text.startswith(f"{kind}:"):
            raise InvalidInput(f"step {step!r} returned {_show(value)}, not a {declared} ({kind}:... ref) as it "
                               "declares")
        return text
    if declared == "Any":
        return _json_value(step, value)
    allowed = VALUE_TYPES[declared]
    if not isinstance(value, allowed) or (declared in ("int", "float") and isinstance(value, bool)):
        raise InvalidInput(f"step {step!r} returned {_show(value)}, not a {declared} as it declares")
    return _json_value(step, value)


def _json_value(step: str, value: Any) -> Any:
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:
        raise InvalidInput(f"step {step!r} returned {_show(value)}: outputs are refs or JSON values") from None


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}" if len(text) <= 80 else f"{type(value).__name__} {text[:77]}..."
