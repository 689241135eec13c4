"""Feedback on answered requests, as prediction-log rows: what was true (``label``), what it was worth
(``outcome``) or what the user picked from an interleaved list (``chosen``). The report joins them to the
requests by request id.

One item is ``{"request_id": "...", "label": 31.5}`` (a number or a class, or a list of them matching the
request's rows), ``{"request_id": "...", "outcome": 1}`` (a finite number: a conversion, revenue) or
``{"request_id": "...", "chosen": ["item-7"]}`` (a non-empty list of item ids). Feedback for a request id the
log does not hold (yet) is accepted: a label may arrive before the log's batch commit; the report counts such
rows as unmatched.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from keel.errors import InvalidInput
from keel.refs import check_name
from keel.serving.predlog import SEGMENT_COLUMN

__all__ = ["FEEDBACK_KEYS", "LOG_SCHEMA", "LOG_TABLE", "committed_log", "feedback_records", "feedback_table"]

LOG_TABLE = "predictions"
LOG_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("at", pa.timestamp("us", tz="UTC")), ("kind", pa.string()),
    ("deployment", pa.string()), ("arm", pa.string()), ("model", pa.string()), ("served_by", pa.string()),
    ("reason", pa.string()), ("inputs", pa.string()), ("output", pa.string()), ("latency_ms", pa.float64()),
    ("status", pa.string()), ("features", pa.string()),
])  # one schema for primary, shadow and feedback rows; inputs, outputs and looked-up features as JSON text
FEEDBACK_KEYS = ("label", "outcome", "chosen")
MAX_ID = 256  # characters of a request id
MAX_LIST = 10_000  # elements of a label list or a chosen list


def committed_log(data: Any) -> Any:
    """The log table's newest committed version (``keel.data.TableVersion``), or None before its first commit:
    the table is registered, to allocate row ids, a moment before that commit lands, so "registered" is not
    "readable"."""
    return data.catalog.latest(LOG_TABLE) if data is not None else None


def feedback_records(deployment: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate ``items`` and return them as prediction-log records (kind ``feedback``); nothing is returned
    unless every item is valid, and the error names the first bad one by its index."""
    check_name(deployment, "deployment name")
    if isinstance(items, Mapping | str | bytes) or not hasattr(items, "__iter__"):
        raise InvalidInput("feedback is a list of items such as {\"request_id\": \"...\", \"label\": 31.5}")
    at = datetime.now(UTC).isoformat()
    records = []
    for index, item in enumerate(items):
        request_id, key, value = _item(index, item)
        records.append({"request_id": request_id, "at": at, "kind": "feedback", "deployment": deployment,
                        "output": orjson.dumps({key: value}).decode(), "status": "ok"})
    if not records:
        raise InvalidInput("no feedback items given")
    return records


def feedback_table(records: list[dict[str, Any]], columns: list[str] | None = None) -> pa.Table:
    """``records`` as rows of the log table (its columns and types; the segment column null): what the SDK
    appends to the table directly. ``columns``: the existing table's columns, when it has them."""
    rows = [{**r, "at": datetime.fromisoformat(r["at"])} for r in records]
    table = pa.Table.from_pylist(rows, schema=LOG_SCHEMA)
    table = table.append_column(SEGMENT_COLUMN, pa.nulls(table.num_rows, pa.string()))
    return table if columns is None else table.select([c for c in table.column_names if c in columns])


def _item(index: int, item: Any) -> tuple[str, str, Any]:
    where = f"feedback item {index}"
    if not isinstance(item, Mapping):
        raise InvalidInput(f"{where}: give an object such as {{\"request_id\": \"...\", \"label\": 31.5}}, "
                           f"not {type(item).__name__}")
    unknown = sorted(str(k) for k in item if k not in ("request_id", *FEEDBACK_KEYS))
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(unknown)}; give request_id and one of "
                           f"{', '.join(FEEDBACK_KEYS)}")
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip() or len(request_id) > MAX_ID:
        raise InvalidInput(f"{where}: request_id must be a non-empty string of at most {MAX_ID} characters "
                           "(the request_id the prediction answered with)")
    given = [k for k in FEEDBACK_KEYS if k in item]
    if len(given) != 1:
        raise InvalidInput(f"{where}: give exactly one of {', '.join(FEEDBACK_KEYS)}, not "
                           f"{', '.join(given) or 'none'}")
    key = given[0]
    value = item[key]
    if key == "outcome":
        number = _number(value)
        if number is None:
            raise InvalidInput(f"{where}: outcome must be a finite number (e.g. 1 for a conversion, 0 without)")
        return request_id, key, number
    if key == "chosen":
        chosen = _scalars(value, allow_bool=False)
        if not chosen:
            raise InvalidInput(f"{where}: chosen must be a non-empty list of item ids (strings or numbers), at most "
                               f"{MAX_LIST}")
        return request_id, key, chosen
    single = _scalar(value, allow_bool=True)
    if single is not None:
        return request_id, key, single
    many = _scalars(value, allow_bool=True)
    if not many:
        raise InvalidInput(f"{where}: label must be a number, a string or a boolean (or a non-empty list of them, "
                           "one per row of the request)")
    return request_id, key, many


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _scalar(value: Any, *, allow_bool: bool) -> Any:
    """A plain JSON scalar (numpy scalars become Python's), or None when ``value`` is not one."""
    if isinstance(value, bool):
        return value if allow_bool else None
    if isinstance(value, str):
        return value if value else None
    return _number(value)


def _scalars(value: Any, *, allow_bool: bool) -> list[Any] | None:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple) or not value:
        return None
    if len(value) > MAX_LIST:
        return None
    out = [_scalar(v, allow_bool=allow_bool) for v in value]
    return None if any(v is None for v in out) else out
