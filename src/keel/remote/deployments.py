"""``ws.deployments`` over HTTP: the embedded ``DeploymentService`` methods, returning the same records
(``Deployment``, ``DeploymentVersion``, times timezone-aware).

The server decides what may be routed to (gates, approvals, an approver's override) as the token's user, so a
remote change obeys the same rules as an embedded one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from keel.errors import InvalidInput
from keel.refs import check_name
from keel.remote.client import Client, join
from keel.remote.decode import decode, decode_list
from keel.remote.monitors import query_remote_log
from keel.serving.canary import CanaryDecision
from keel.serving.model import Deployment, DeploymentVersion

__all__ = ["RemoteDeploymentService"]

MAX_LOG_ROWS = 100_000  # what GET /logs answers at most


class RemoteDeploymentService:
    """The deployments of a keel server: the embedded ``DeploymentService`` methods, over HTTP."""

    def __init__(self, client: Client) -> None:
        self._client = client

    # -- reading -------------------------------------------------------------------------------------------

    def get(self, name: str) -> Deployment:
        return _deployment(self._client.get(join("deployments", name)))

    def list(self) -> list[Deployment]:
        return decode_list(Deployment, self._client.get("/deployments"))

    def history(self, name: str) -> list[DeploymentVersion]:
        """Every version of the policy, oldest first."""
        return decode_list(DeploymentVersion, self._client.get(join("deployments", name, "history")))

    def report(self, name: str, since: datetime | str | None = None) -> dict[str, Any]:
        """The deployment's report, computed by the server (``since``: a time, ISO text or a duration)."""
        value = since.isoformat() if isinstance(since, datetime) else since
        return self._client.get(join("deployments", name, "report"), since=value)

    def log(self, name: str, since: datetime, until: datetime | None = None, *, columns: list[str] | None = None,
            kinds: tuple[str, ...] = ("primary",), version: int | None = None) -> Any:
        """The prediction log's rows of deployment ``name`` and ``kinds`` logged in [since, until], read by the
        server (at most 100,000 rows a call: narrow the window for more)."""
        check_name(name, "deployment name")  # the safe alphabet: no quote can end the literal below
        for kind in kinds:
            check_name(kind, "log row kind")
        where = [f"deployment = '{name}'", "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")",
                 f"\"at\" >= TIMESTAMPTZ '{_utc(since)}'"]
        if until is not None:
            where.append(f"\"at\" <= TIMESTAMPTZ '{_utc(until)}'")
        found = query_remote_log(self._client, " AND ".join(where), columns=columns, limit=MAX_LOG_ROWS,
                                 version=version)
        if found.num_rows >= MAX_LOG_ROWS:
            raise InvalidInput(f"more than {MAX_LOG_ROWS:,} log rows in that window: read a shorter one")
        return found.sort_by("at") if "at" in found.column_names else found

    # -- changing ------------------------------------------------------------------------------------------

    def feedback(self, name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Labels, outcomes or chosen items for answered requests; the server validates them as embedded does."""
        try:  # numpy values become plain JSON; a NaN becomes null, which the server refuses by name
            plain = orjson.loads(orjson.dumps(items, option=orjson.OPT_SERIALIZE_NUMPY))
        except TypeError as exc:
            raise InvalidInput(f"feedback items must be JSON values: {exc}") from None
        if not isinstance(plain, list):
            raise InvalidInput("feedback is a list of items such as {\"request_id\": \"...\", \"label\": 31.5}")
        return self._client.post(join("deployments", name, "feedback"), {"items": plain})


    def create(self, name: str, model: str, *, fallbacks: list[str] | None = None, production: bool = False,
               strict_requirements: bool = False, override: bool = False, reason: str | None = None) -> Deployment:
        body = {"name": name, "model": str(model), "fallbacks": [str(f) for f in fallbacks or []],
                "production": production, "strict_requirements": strict_requirements, "override": override,
                "reason": reason}
        return _deployment(self._client.post("/deployments", body))

    def shadow(self, name: str, candidate: str, *, sample: float = 1.0, reason: str | None = None) -> Deployment:
        return self._change(name, "shadow", {"candidate": str(candidate), "sample": sample, "reason": reason})

    def holdout(self, name: str, share: float, *, reason: str | None = None) -> Deployment:
        return self._change(name, "holdout", {"share": share, "reason": reason})

    def ab(self, name: str, variants: dict[str, tuple[str, float]], *, sticky_key: str | None = None,
           override: bool = False, reason: str | None = None) -> Deployment:
        """Split traffic between ``variants`` ({"a": ("price/4", 50), "b": ("price/5", 50)}), sticky per key."""
        arms = {}
        for arm, variant in variants.items():
            try:
                ref, weight = variant
            except (TypeError, ValueError):
                raise InvalidInput(f"variant {arm!r}: give (model, weight), e.g. ('price/4', 50)") from None
            arms[arm] = {"model": str(ref), "weight": weight}
        return self._change(name, "ab", {"variants": arms, "sticky_key": sticky_key, "override": override,
                                         "reason": reason})

    def interleave(self, name: str, variants: dict[str, str], *, item_key: str | None = None, override: bool = False,
                   reason: str | None = None) -> Deployment:
        body = {"variants": {arm: str(ref) for arm, ref in variants.items()}, "item_key": item_key,
                "override": override, "reason": reason}
        return self._change(name, "interleave", body)

    def canary(self, name: str, candidate: str, *, steps: list[float], interval_s: float,
               guardrails: list[str] | None = None, override: bool = False, reason: str | None = None) -> Deployment:
        body = {"candidate": str(candidate), "steps": list(steps), "interval_s": interval_s,
                "guardrails": list(guardrails or []), "override": override, "reason": reason}
        return self._change(name, "canary", body)

    def check_canary(self, name: str, *, now: Any = None, min_requests: int = 20) -> CanaryDecision:
        """One step of the canary controller, run by the server (``now`` is the server's clock)."""
        if now is not None:
            raise InvalidInput("check_canary over HTTP runs at the server's time; leave now unset")
        found = self._client.post(join("deployments", name, "check-canary"), None, min_requests=min_requests)
        return CanaryDecision(**found)

    def versions(self) -> dict[str, int]:
        """Every live deployment's current policy version."""
        return {d.name: d.current.version for d in self.list()}

    def check_canaries(self, *, now: Any = None, min_requests: int = 20) -> dict[str, CanaryDecision]:
        """One pass of the canary controller over every active canary, run by the server."""
        if now is not None:
            raise InvalidInput("check_canaries over HTTP runs at the server's time; leave now unset")
        found = self._client.post("/canary-checks", None, min_requests=min_requests)
        return {name: CanaryDecision(**decision) for name, decision in found.items()}

    def promote(self, name: str, *, reason: str | None = None) -> Deployment:
        return self._change(name, "promote", {"reason": reason})

    def rollback(self, name: str, *, reason: str | None = None) -> Deployment:
        return self._change(name, "rollback", {"reason": reason})

    def pause(self, name: str, *, reason: str | None = None) -> Deployment:
        return self._change(name, "pause", {"reason": reason})

    def resume(self, name: str, *, reason: str | None = None) -> Deployment:
        return self._change(name, "resume", {"reason": reason})

    def delete(self, name: str, *, reason: str | None = None) -> None:
        self._client.delete(join("deployments", name), reason=reason)

    def _change(self, name: str, action: str, body: dict[str, Any]) -> Deployment:
        return _deployment(self._client.post(join("deployments", name, action), body))


def _deployment(data: dict[str, Any]) -> Deployment:
    return decode(Deployment, data)


def _utc(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
