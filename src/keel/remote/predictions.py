"""``ws.predictions`` over HTTP: the embedded ``PredictionService.score``, run by the server, returning the same
``ScoringResult``.

The server reads the input table, loads the model (never one that needs trust) and writes the output table in
its own stores, as the token's user; nothing but the request and the result crosses the network. A job takes as
long as the table takes to score, so the answer is awaited without a read timeout.
"""

from __future__ import annotations

from typing import Literal

import httpx

from keel.errors import InvalidInput
from keel.remote.client import Client
from keel.remote.decode import decode
from keel.serving.batch import ScoringResult

__all__ = ["RemotePredictionService"]

JOB_TIMEOUT = httpx.Timeout(None, connect=10.0)


class RemotePredictionService:
    """Batch scoring on a keel server: the embedded ``PredictionService`` methods, over HTTP."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def score(self, model: str, *, input: str, output: str, chunk_rows: int = 50_000,
              keep: list[str] | None = None, mode: Literal["append", "overwrite"] = "append",
              trusted: bool = False, reason: str | None = None) -> ScoringResult:
        """Score the table version ``input`` names with ``model`` into a new version of table ``output``."""
        if trusted:
            raise InvalidInput("a server never loads a model that needs trust (trusted=True); score where its code "
                               "is trusted: keel.open(path).predictions.score(..., trusted=True)")
        if keep is not None and (isinstance(keep, str) or not all(isinstance(c, str) for c in keep)):
            raise InvalidInput("keep is a list of column names, e.g. ['listing_id', 'price']")
        body = {"model": str(model), "input": str(input), "output": str(output), "chunk_rows": chunk_rows,
                "keep": None if keep is None else list(keep), "mode": mode, "reason": reason}
        return decode(ScoringResult, self._client.request("POST", "/predictions", json=body, timeout=JOB_TIMEOUT))
