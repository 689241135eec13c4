"""A window of the prediction log as a table of what the model saw and said: one row per predicted row.

The log keeps each request's rows and outputs as JSON text (one schema for every model); DuckDB parses them with
the model's signature as the structure and unnests rows and outputs side by side (vectorised, no Python per
row). Values that do not parse as the signature's type become missing, which the drift report counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from keel.errors import InvalidInput
from keel.serving.report import parse_since
from keel.storage.tables import query_arrow

__all__ = ["LABEL", "PREDICTION", "ROW", "duckdb_type", "parse_window", "window_rows"]

PREDICTION = "prediction"  # the column a window's model outputs are in
LABEL = "label"  # the column the labels that arrived later are in (and the training labels, in a baseline)
ROW = "_row"  # a row's position in its request: what a list of labels for the request lines up with
_TYPES = {"integer": "BIGINT", "float": "DOUBLE", "boolean": "BOOLEAN", "string": "VARCHAR"}  # datetime: not watched


def duckdb_type(kind: str) -> str | None:
    """The DuckDB type a signature type is read as; None for types drift is not computed on."""
    return _TYPES.get(kind)


def parse_window(window: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``1h`` / ``7d`` (back from now) or ``START..END`` (ISO times; naive means UTC) as [start, end]."""
    now = now or datetime.now(UTC)
    text = window.strip()
    if ".." in text:
        first, _, second = text.partition("..")
        start, end = _time(first, window), _time(second, window)
    else:
        start, end = parse_since(text, now), now
    if end <= start:
        raise InvalidInput(f"window {window!r} ends before it starts; give START..END with START earlier")
    if end - start > timedelta(days=3660):
        raise InvalidInput(f"window {window!r} spans more than ten years; give a shorter one")
    return start, end


def _time(text: str, window: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"window {window!r}: {text.strip()!r} is not an ISO time (2024-05-01T00:00Z)") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def window_rows(log: pa.Table, columns: dict[str, str], prediction: str | None) -> pa.Table:
    """One row per predicted row of the log's primary rows: ``columns`` ({name: signature type}) from the inputs,
    ``prediction`` (a signature type, None: not read) from the outputs, and each row's ``at``, ``served_by``,
    ``arm`` and ``request_id``."""
    read = {name: duckdb_type(kind) for name, kind in columns.items() if duckdb_type(kind)}
    structure = "[{" + ", ".join(f'{_quote(n)}: "{t}"' for n, t in read.items()) + "}]"
    parts = [f"unnest(from_json(inputs, '{_literal(structure)}'), recursive := true)",
             f"unnest(range(json_array_length(inputs)::BIGINT)) AS {ROW}"]
    if prediction and duckdb_type(prediction):
        parts.append(f"unnest(from_json(output, '[\"{duckdb_type(prediction)}\"]')) AS {PREDICTION}")
    if log.num_rows == 0 or not read:
        return _empty(read, prediction)
    sql = f"SELECT request_id, \"at\", served_by, arm, {', '.join(parts)} FROM log"
    return _run(sql, log)


def _run(sql: str, log: pa.Table) -> pa.Table:
    return query_arrow(sql, log=log)  # file access off, as for every query keel runs


def _empty(read: dict[str, str], prediction: str | None) -> pa.Table:
    types = {"BIGINT": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "VARCHAR": pa.string()}
    fields = [("request_id", pa.string()), ("at", pa.timestamp("us", tz="UTC")), ("served_by", pa.string()),
              ("arm", pa.string()), *[(n, types[t]) for n, t in read.items()], (ROW, pa.int64())]
    if prediction and duckdb_type(prediction):
        fields.append((PREDICTION, types[duckdb_type(prediction) or "DOUBLE"]))
    return pa.schema(fields).empty_table()


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(text: str) -> str:
    return text.replace("'", "''")
