"""Request bodies of the data plane, read into one frame: keel's formats and, on ``/invocations``, MLflow's.

Every malformed body is an InvalidInput naming what was wrong (400); a body is read with orjson (no Python
recursion on deeply nested JSON: orjson refuses more than 1,024 levels itself).
"""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd

from keel.errors import InvalidInput

__all__ = ["frame_from_body", "parse_json"]

FORMATS = '{"records": [{...}, ...]} or {"columns": [...], "data": [[...], ...]}'
MLFLOW_FORMATS = "dataframe_split, dataframe_records, instances or inputs"


def parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidInput("the request body is empty; send JSON: " + FORMATS)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the request body is not valid JSON (UTF-8): {exc}") from None


def frame_from_body(payload: Any, *, mlflow: bool = False) -> pd.DataFrame:
    """The rows a body carries, as a frame; an empty batch is refused."""
    if not isinstance(payload, dict):
        raise InvalidInput(f"the body must be a JSON object: {MLFLOW_FORMATS if mlflow else FORMATS}")
    if mlflow:
        payload = _from_mlflow(payload)
    if "records" in payload:
        records = payload["records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise InvalidInput("records must be a list of objects, one per row: [{\"column\": value, ...}, ...]")
        frame = pd.DataFrame.from_records(records)
    elif "data" in payload:
        columns, data = payload.get("columns"), payload["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidInput("columns must be a list of column names with data")
        if not isinstance(data, list) or not all(isinstance(r, list) and len(r) == len(columns) for r in data):
            raise InvalidInput(f"data must be a list of rows, each a list of {len(columns)} values (one per column)")
        frame = pd.DataFrame(data, columns=columns)
    else:
        raise InvalidInput(f"the body has neither records nor data; send {MLFLOW_FORMATS if mlflow else FORMATS}")
    if frame.empty:
        raise InvalidInput("the batch is empty: send at least one row")
    return frame


def _from_mlflow(payload: dict[str, Any]) -> dict[str, Any]:
    """MLflow's scoring formats, as ``mlflow models serve`` takes them, in keel's shapes."""
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, dict):
            raise InvalidInput("dataframe_split must be an object with columns and data")
        return {"columns": split.get("columns"), "data": split.get("data")}
    if "dataframe_records" in payload:
        return {"records": payload["dataframe_records"]}
    for key in ("instances", "inputs"):
        if key in payload:
            value = payload[key]
            if isinstance(value, dict):  # columnar: {"column": [values...]}
                try:
                    return {"records": pd.DataFrame(value).to_dict(orient="records")}
                except ValueError as exc:
                    raise InvalidInput(f"{key} as columns need equal-length lists: {exc}") from None
            return {"records": value}
    raise InvalidInput(f"unknown body; MLflow's /invocations takes {MLFLOW_FORMATS}")
