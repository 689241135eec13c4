"""Large JSON answers written straight from keel's records.

FastAPI validates a route's return value against its annotation before serialising it; for a listing of
hundreds of runs that is a second pass over every value, for nothing (the records are keel's own). A route
that returns ``json_response(records)`` is serialised once, by orjson (dataclasses and datetimes natively,
four times faster than pydantic's inference here; NaN and infinities as null, as pydantic writes them),
and keeps its ``response_model`` for the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

import orjson
import pydantic_core
from fastapi.responses import Response

__all__ = ["json_response"]


def json_response(records: Any, status_code: int = 200) -> Response:
    body = orjson.dumps(records, default=pydantic_core.to_jsonable_python, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status_code, media_type="application/json")
