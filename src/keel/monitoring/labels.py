"""Labels from a file, in bulk: ``keel labels ingest FILE --deployment DEP``. Each label becomes a feedback row of
the prediction log keyed by request id (what ``feedback`` writes one at a time), built in one DuckDB query and
appended as one table version: a million labels are one commit, not a million. Labels keyed by entity and time
instead (``--key entity+time``) find their request ids by an as-of join first (keel.monitoring.asof)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from keel.errors import InvalidInput
from keel.serving.feedback import LOG_SCHEMA, MAX_ID
from keel.serving.predlog import SEGMENT_COLUMN
from keel.storage.tables import query_arrow

__all__ = ["KEYS", "feedback_log_rows", "label_rows"]

KEYS = ("request_id", "entity+time")  # how a labels file names the predictions its labels belong to


def label_rows(source: pa.Table, deployment: str, *, label: str = "label", row: str | None = None
               ) -> tuple[pa.Table, int]:
    """(feedback rows of the log for ``deployment``, labels skipped because missing). With ``row`` (a row's
    position in its request, from 0), a request's labels become one list in row order; without it each label
    is its request's only one."""
    for needed in ("request_id", label, *([row] if row else [])):
        if needed not in source.column_names:
            raise InvalidInput(f"the labels have no column {needed!r}; they have {', '.join(source.column_names)}")
    ids = source["request_id"]
    if ids.null_count or (not pa.types.is_string(ids.type) and not pa.types.is_large_string(ids.type)):
        raise InvalidInput("request_id must be text on every row (the request_id each prediction answered with)")
    value = '"' + label.replace('"', '""') + '"'
    position = '"' + row.replace('"', '""') + '"' if row else None
    ordered = f"list({value} ORDER BY {position})" if position else f"any_value({value})"
    aligned = f"min({position}) = 0 AND max({position}) = count(*) - 1 AND count(DISTINCT {position}) = count(*)" \
        if position else "count(*) = 1"
    grouped = query_arrow(f"""
        SELECT request_id, max(length(request_id)) AS longest, to_json({{'label': {ordered}}})::VARCHAR AS output
        FROM labels GROUP BY request_id HAVING count({value}) > 0""", labels=source)  # nulls keep rows aligned
    checks = query_arrow(f"SELECT count(*) AS bad FROM (SELECT request_id FROM labels GROUP BY request_id "
                         f"HAVING NOT ({aligned}))", labels=source)
    if grouped.num_rows and max(grouped["longest"].to_pylist()) > MAX_ID:
        raise InvalidInput(f"a request_id has more than {MAX_ID} characters: it cannot be one keel answered with")
    if checks["bad"][0].as_py():
        raise InvalidInput("a request_id appears on several rows; give --row COLUMN (each row's position in its "
                           "request) to send a list of labels per request" if not row else
                           f"each request's {row} must be its rows' positions 0, 1, ..., n-1, each once (leave the "
                           "label empty for a row without one)")
    return feedback_log_rows(grouped, deployment), source[label].null_count


def feedback_log_rows(grouped: pa.Table, deployment: str) -> pa.Table:
    """``request_id`` and ``output`` (``{"label": ...}`` JSON) of one feedback item per request as rows of the
    prediction log (its columns and types; the segment column null)."""
    n = grouped.num_rows
    now = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
    columns = {name: pa.nulls(n, LOG_SCHEMA.field(name).type) for name in LOG_SCHEMA.names}
    columns.update(request_id=grouped["request_id"].cast(pa.string()), at=pa.repeat(now, n),
                   kind=pa.repeat(pa.scalar("feedback"), n), deployment=pa.repeat(pa.scalar(deployment), n),
                   output=grouped["output"].cast(pa.string()), status=pa.repeat(pa.scalar("ok"), n))
    table = pa.table(columns, schema=LOG_SCHEMA)
    return table.append_column(SEGMENT_COLUMN, pa.nulls(n, pa.string()))
