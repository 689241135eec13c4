"""Labels keyed by entity and time (``keel labels ingest FILE --key entity+time --entity listing_id --time at``):
each label belongs to the deployment's latest primary prediction for its entity made at or before the label's
time, at most ``tolerance`` earlier: an as-of join (DuckDB ``ASOF JOIN``) of the labels with the log's rows,
unnested from the logged inputs' JSON. The matches become feedback rows exactly as request-id labels do (a
request's labels as one list aligned by row, nulls for rows without one); no Python runs per row."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import InvalidInput
from keel.storage.tables import query_arrow
from keel.tokens import parse_duration

__all__ = ["DEFAULT_TOLERANCE", "label_window", "match_labels", "parse_tolerance", "prepare_labels"]

DEFAULT_TOLERANCE = timedelta(days=30)  # how far back a label looks for its prediction unless told
MAX_TOLERANCE = timedelta(days=3660)
_TIME = pa.timestamp("us", tz="UTC")


def parse_tolerance(tolerance: str | timedelta | None) -> timedelta:
    """``1d`` / ``6h`` / ``2w`` (or a timedelta) as a positive look-back; None: the default, 30 days."""
    if tolerance is None:
        return DEFAULT_TOLERANCE
    found = tolerance if isinstance(tolerance, timedelta) else parse_duration(str(tolerance))
    if not timedelta(0) < found <= MAX_TOLERANCE:
        raise InvalidInput(f"tolerance {tolerance!r} must be more than 0 and at most ten years (e.g. 1d, 12h)")
    return found


def prepare_labels(source: pa.Table, entities: list[str], time: str, label: str) -> pa.Table:
    """The labels as columns ``e0..en`` (the entity columns), ``_t`` (UTC times), ``_v`` (the label) and ``_i``
    (the row's position in the file), after checking them; rows without a label are kept (counted as skipped)."""
    if not entities:
        raise InvalidInput("--key entity+time needs the entity column(s): --entity listing_id [--entity ...]")
    if len(set(entities)) != len(entities):
        raise InvalidInput(f"an entity column is given twice: {', '.join(entities)}")
    if time in entities or label in (*entities, time):
        raise InvalidInput("the entity, time and label columns must be different columns")
    for needed in (*entities, time, label):
        if needed not in source.column_names:
            raise InvalidInput(f"the labels have no column {needed!r}; they have {', '.join(source.column_names)}")
    for name in entities:
        if _duck_type(source.schema.field(name).type) is None:
            raise InvalidInput(f"entity column {name!r} is {source.schema.field(name).type}; an entity is a number, "
                               "a text or a boolean")
    columns = {f"e{i}": _decoded(source[name]) for i, name in enumerate(entities)}
    columns.update(_t=_utc_times(source[time], time), _v=source[label],
                   _i=pa.array(np.arange(source.num_rows, dtype=np.int64)))
    return pa.table(columns)


def match_labels(labels: pa.Table, log: pa.Table, entities: list[str], tolerance: timedelta
                 ) -> tuple[pa.Table, dict[str, int]]:
    """(``request_id`` and ``output`` of one feedback row per labelled request, counts): each label with a value
    joined as of its time to the latest of ``log``'s primary rows (``request_id``, ``at``, ``inputs``) for its
    entity, no more than ``tolerance`` before. When two labels land on the same row the later one is kept
    (``superseded`` counts the others)."""
    given = labels.filter(pc.is_valid(labels["_v"]))
    counts = {"matched": 0, "unmatched": given.num_rows, "skipped_missing": labels.num_rows - given.num_rows,
              "superseded": 0}
    empty = pa.table({"request_id": pa.array([], pa.string()), "output": pa.array([], pa.string())})
    if given.num_rows == 0 or log.num_rows == 0:
        return empty, counts
    _check_keys(log, entities)
    structure = "[{" + ", ".join(f'{_json_key(n)}: "{_duck_type(labels.schema.field(f"e{i}").type)}"'
                                 for i, n in enumerate(entities)) + "}]"
    keys = [f"e{i}" for i in range(len(entities))]
    picked = ", ".join(f"struct_extract(_r, '{_sql_text(n)}') AS e{i}" for i, n in enumerate(entities))
    on = " AND ".join(f"l.{k} = p.{k}" for k in keys)
    micros = int(tolerance / timedelta(microseconds=1))
    found = query_arrow(f"""
        WITH rows AS (
            SELECT request_id AS _rid, "at" AS _at, json_array_length(inputs)::BIGINT AS _n,
                   unnest(from_json(inputs, '{_sql_text(structure)}')) AS _r,
                   unnest(range(json_array_length(inputs)::BIGINT)) AS _row
            FROM log WHERE inputs IS NOT NULL AND json_type(inputs) = 'ARRAY'),
        preds AS (
            SELECT _rid, _at, _n, _row, {picked} FROM rows
            QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)}, _at ORDER BY _rid DESC, _row DESC) = 1),
        joined AS (
            SELECT l._v, l._t, l._i, p._rid, p._row, p._n FROM given l ASOF JOIN preds p ON {on} AND l._t >= p._at
            WHERE p._at >= l._t - to_microseconds({micros})),
        cells AS (
            SELECT _rid, _row, _n, _v FROM joined
            QUALIFY row_number() OVER (PARTITION BY _rid, _row ORDER BY _t DESC, _i DESC) = 1),
        sizes AS (SELECT _rid, any_value(_n) AS _n FROM cells GROUP BY _rid),
        grid AS (SELECT _rid, unnest(range(_n)) AS _row FROM sizes)
        SELECT g._rid AS request_id, to_json({{'label': list(c._v ORDER BY g._row)}})::VARCHAR AS output,
               (SELECT count(*) FROM joined) AS matched, (SELECT count(*) FROM cells) AS cells
        FROM grid g LEFT JOIN cells c ON g._rid = c._rid AND g._row = c._row
        GROUP BY g._rid ORDER BY g._rid""", given=given, log=log)
    if found.num_rows == 0:
        return empty, counts
    matched, cells = found["matched"][0].as_py(), found["cells"][0].as_py()
    counts.update(matched=matched, unmatched=given.num_rows - matched, superseded=matched - cells)
    return found.select(["request_id", "output"]), counts


def label_window(labels: pa.Table, tolerance: timedelta) -> tuple[datetime, datetime]:
    """The span of the log the labels can match: [earliest label - tolerance, latest label]."""
    low, high = pc.min_max(labels["_t"]).values()
    try:
        return low.as_py() - tolerance, high.as_py()
    except OverflowError:
        raise InvalidInput(f"the labels' earliest time {low.as_py()} is too early to look {tolerance} back from; "
                           "check the time column") from None


def _check_keys(log: pa.Table, entities: list[str]) -> None:
    """Refuse an entity column no logged request carries, naming the ones they do."""
    keys = query_arrow("""SELECT DISTINCT unnest(json_keys(inputs, '$[0]')) AS k FROM log
                          WHERE inputs IS NOT NULL AND json_type(inputs) = 'ARRAY' ORDER BY k""", log=log)
    have = keys["k"].to_pylist()
    missing = [n for n in entities if n not in have]
    if missing:
        raise InvalidInput(f"the deployment's logged requests have no input {', '.join(map(repr, missing))}; "
                           f"their inputs are {', '.join(have) or '(none)'}")


def _utc_times(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """A column of times (timestamps, dates or ISO text; naive is UTC) as UTC timestamps; unparseable or missing
    times are refused."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        out = pc.cast(column, pa.timestamp("us", tz=kind.tz), safe=False)
        out = out.cast(_TIME) if kind.tz else pc.assume_timezone(out, "UTC")
    elif pa.types.is_date(kind):
        out = pc.assume_timezone(column.cast(pa.timestamp("us")), "UTC")
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        parsed = pd.to_datetime(column.to_pandas(), utc=True, format="ISO8601", errors="coerce")
        out = pa.chunked_array([pa.array(parsed, type=_TIME)])
        bad = pc.and_(pc.is_valid(column.combine_chunks()), pc.is_null(out.combine_chunks()))
        if pc.any(bad).as_py():
            first = column.filter(pa.chunked_array([bad]))[0].as_py()
            raise InvalidInput(f"time column {name!r} has {pc.sum(bad).as_py()} value(s) that are not ISO times, "
                               f"e.g. {first!r}; give times such as 2024-05-01T12:00Z")
    else:
        raise InvalidInput(f"time column {name!r} is {kind}; give timestamps or ISO times (2024-05-01T12:00Z)")
    if out.null_count:
        raise InvalidInput(f"time column {name!r} is empty on {out.null_count} row(s); every label needs its time")
    return out.cast(_TIME)


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    return column.cast(kind.value_type) if pa.types.is_dictionary(kind) else column


def _duck_type(kind: pa.DataType) -> str | None:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "VARCHAR"
    return "BOOLEAN" if pa.types.is_boolean(kind) else None


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _json_key(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
