"""JSON back into keel's records: the remote SDK returns the very dataclasses the embedded one does.

One converter per type, built once from the dataclass's type hints and cached: a listing of 500 runs is
decoded without looking at a type hint per value. Datetimes come back timezone-aware (the server sends
ISO 8601 with an offset); nested records (an IngestResult's TableVersion and ValidationReport) are rebuilt.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from keel.data.model import ValidationReport

__all__ = ["decode", "decode_list", "validation_report"]

T = TypeVar("T")
_PLAIN = (str, int, float, bool, type(None), Any, object)


def decode(cls: type[T], data: Any) -> T:
    """``data`` (decoded JSON) as an instance of the dataclass ``cls``."""
    return _converter(cls)(data)


def decode_list(cls: type[T], data: list[Any]) -> list[T]:
    convert = _converter(cls)
    return [convert(item) for item in data]


def validation_report(details: dict[str, Any]) -> ValidationReport | None:
    """The report a ValidationFailed carried, from the ``details`` the server sent with it."""
    if not details or "failures" not in details:
        return None
    return decode(ValidationReport, details)


def _identity(value: Any) -> Any:
    return value


@functools.cache
def _converter(tp: Any) -> Callable[[Any], Any]:
    """A function turning decoded JSON into ``tp``; the identity where JSON already is ``tp``."""
    if tp in _PLAIN:
        return _identity
    if tp is datetime:
        return datetime.fromisoformat
    if tp is date:
        return date.fromisoformat
    if dataclasses.is_dataclass(tp):
        return _record(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            convert = _converter(inner[0])
            return _identity if convert is _identity else (lambda v: None if v is None else convert(v))
        return _identity
    if origin in (list, tuple):
        convert = _converter(args[0]) if args else _identity
        return _identity if convert is _identity and origin is list else (
            lambda v: origin(convert(x) for x in v))
    if origin is dict:
        convert = _converter(args[1]) if len(args) == 2 else _identity
        return _identity if convert is _identity else (lambda v: {k: convert(x) for k, x in v.items()})
    return _identity


def _record(cls: type) -> Callable[[Any], Any]:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls) if f.init]
    # keys the record does not have (from a newer server) are ignored
    plain = [name for name, convert in fields if convert is _identity]
    typed = [(name, convert) for name, convert in fields if convert is not _identity]

    def build(data: Any) -> Any:
        if data is None:
            return None
        kwargs = {name: data[name] for name in plain if name in data}
        for name, convert in typed:
            if name in data:
                value = data[name]
                kwargs[name] = None if value is None else convert(value)
        return cls(**kwargs)

    return build

