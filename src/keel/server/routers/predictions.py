"""/api/v1/predictions: batch scoring, over ``ws.predictions``.

Scoring writes a table version, so it is a developer's, made as the token's user. The job runs in the request
(a chunk in memory at a time) and answers 201 with what it wrote. The server never loads a model that needs
trust (a pickle): score such a model where its code is trusted.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from keel.errors import UntrustedModel
from keel.server.responses import json_response
from keel.server.security import WRITE
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter(tags=["predictions"])

Text = Annotated[str, Field(min_length=1, max_length=512)]
Column = Annotated[str, Field(min_length=1, max_length=1024)]
MAX_KEEP = 10_000


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored
    model: Text = Field(description="The version that scores: price/4, price@production")
    input: Text = Field(description="The table version to score: listings@3, listings (its latest version)")
    output: Text = Field(description="The table the predictions are written to, as one new version")
    chunk_rows: Annotated[StrictInt, Field(le=2**31 - 1)] = Field(
        50_000, description="Rows scored (and held in memory) at a time")
    keep: Annotated[list[Column], Field(max_length=MAX_KEEP)] | None = Field(
        None, description="Input columns carried over (default: every column the model does not read)")
    mode: Text = Field("append", description="append | overwrite")
    reason: Annotated[str, Field(max_length=4096)] | None = Field(None, description="Why (kept in the audit log)")


@router.post("/predictions", status_code=201, response_model=dict[str, Any])
def score(body: ScoreRequest, ws: Workspace = WRITE) -> Response:
    """Score a table version with a model version into a new version of the output table."""
    try:
        result = ws.predictions.score(body.model, input=body.input, output=body.output, chunk_rows=body.chunk_rows,
                                      keep=body.keep, mode=body.mode, trusted=False,  # type: ignore[arg-type]
                                      reason=body.reason)
    except UntrustedModel as exc:
        raise UntrustedModel(f"the server never loads a model that needs trust: {exc.message} Score it where its "
                             "code is trusted (`keel predict MODEL --trusted ...` on the workspace's machine)",
                             details=exc.details) from None
    return json_response(result.to_dict(), status_code=201)
