"""A workspace for the deployment pages: a user and token per role, three versions of the toy model of
``tests/gates_helpers.py``, and one deployment of each kind with prediction-log rows written the way the data plane
writes them (as ``tests/integration/test_canary.py`` does):

- ``price-api``: a canary of toy/2 rolled back by the controller (its error rate broke a guardrail), then
  serving toy/1 again, with requests since;
- ``ab-api``: an A/B test, 70/30, with the logged split on target and labels for a metric per arm;
- ``canary-api``: a canary at 10 % whose log has far more canary requests than that (a sample ratio mismatch);
- ``shadow-api``: toy/1 with toy/3 in shadow, the shadow agreeing on most requests;
- ``rank-api``: an interleaving of toy/1 and toy/3 with clicks;
- ``odd-api``: paused, with a reason that holds markup (it must be shown escaped).

Shared by the page tests and the browser test; built in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

import keel
from gates_helpers import register, toy_world  # tests/ is on sys.path (tests/conftest.py)
from keel.serving.feedback import LOG_SCHEMA, LOG_TABLE
from keel.users import ROLES

GUARDRAILS = ["error_rate < 0.05", "p99_ms < 50"]
ODD_REASON = "<script>alert('owned')</script> & \"quotes\""


@dataclass
class DeploymentsWorkspace:
    ws: keel.Workspace
    tokens: dict[str, str]  # role -> token of "<role>-user"
    rollback_reason: str  # what the canary controller recorded on price-api


def log(ws: keel.Workspace, deployment: str, arm: str, n: int, *, model: str = "toy/1", latency: float = 5.0,
        output: float | Any = 20.0, failed: float = 0.0, kind: str = "primary", ids: str | None = None,
        first: int = 0) -> list[str]:
    """``n`` answered requests of ``arm`` in the prediction log (the first ``failed`` share answered by the
    fallback), numbered from ``first``; returns their request ids."""
    now = datetime.now(UTC)
    prefix = ids or f"{deployment}-{arm}-{now.timestamp()}"
    rows = [{"request_id": f"{prefix}-{i}", "at": now, "kind": kind, "deployment": deployment,
             "arm": None if kind == "shadow" else arm, "model": model, "served_by": model,
             "reason": "ValueError: boom" if i < failed * n else None, "inputs": "[]",
             "output": orjson.dumps(output if not isinstance(output, float | int) else [output + (i % 5) * 0.1])
             .decode(), "latency_ms": latency + (i % 10) * 0.3, "status": "ok"} for i in range(first, first + n)]
    ws.data.write_batches([pa.Table.from_pylist(rows, schema=LOG_SCHEMA)], LOG_TABLE)
    return [r["request_id"] for r in rows]


def build_deployments_workspace(path: Path) -> DeploymentsWorkspace:
    ws = keel.init(path, user="admin-user")
    tokens = {}
    for role in ROLES:
        ws.users.add(f"{role}-user", role)
        tokens[role] = ws.tokens.create(f"{role}-user").token
    split = toy_world(ws, n=600)
    one, two, three = (register(ws, split) for _ in range(3))
    deploy = ws.deployments

    # a canary the controller rolls back: the candidate's requests fail
    deploy.create("price-api", one.name, fallbacks=["baseline"], reason="first release")
    deploy.canary("price-api", two.name, steps=[10, 50, 100], interval_s=60, guardrails=GUARDRAILS,
                  reason="try toy/2")
    log(ws, "price-api", "stable", 90)
    log(ws, "price-api", "canary", 30, model=two.name, failed=0.3)
    later = deploy.get("price-api").current.at + timedelta(seconds=61)
    decision = deploy.check_canary("price-api", now=later)
    assert decision.action == "rollback", decision
    log(ws, "price-api", "primary", 25)

    deploy.create("ab-api", one.name)
    deploy.ab("ab-api", {"a": (one.name, 70), "b": (three.name, 30)}, sticky_key="host_id", reason="70/30 test")
    a_ids = log(ws, "ab-api", "a", 140)
    b_ids = log(ws, "ab-api", "b", 60, model=three.name, output=21.0)
    deploy.feedback("ab-api", [{"request_id": r, "label": 20.0 + (i % 3) * 0.5} for i, r in enumerate(a_ids[:40])] +
                    [{"request_id": r, "label": 20.5} for r in b_ids[:30]])

    deploy.create("canary-api", one.name)
    deploy.canary("canary-api", three.name, steps=[10, 100], interval_s=600, guardrails=GUARDRAILS)
    log(ws, "canary-api", "stable", 100)
    log(ws, "canary-api", "canary", 60, model=three.name)

    deploy.create("shadow-api", one.name, fallbacks=[two.name, "baseline"])
    deploy.shadow("shadow-api", three.name, sample=1.0, reason="compare toy/3 quietly")
    log(ws, "shadow-api", "primary", 50, ids="sh")
    log(ws, "shadow-api", "primary", 40, model=three.name, kind="shadow", ids="sh", latency=7.0)  # the same answers
    log(ws, "shadow-api", "primary", 10, model=three.name, kind="shadow", ids="sh", latency=7.0, first=40,
        output=25.0)  # a quarter higher

    deploy.create("rank-api", one.name)
    deploy.interleave("rank-api", {"a": one.name, "b": three.name})
    for i in range(12):
        arm = "a" if i % 2 else "b"
        merged = {"items": ["x", "y", "z", "w"], "teams": ["a", "b", "a", "b"] if arm == "a" else ["b", "a", "b", "a"]}
        log(ws, "rank-api", arm, 1, output=merged, ids=f"rank-{i}")
    # the clicks favour toy/1's picks (team a) 9 to 3
    picks = [("x" if i % 2 else "y") if i < 9 else ("y" if i % 2 else "x") for i in range(12)]
    deploy.feedback("rank-api", [{"request_id": f"rank-{i}-0", "chosen": [p]} for i, p in enumerate(picks)])

    deploy.create("odd-api", one.name)
    deploy.pause("odd-api", reason=ODD_REASON)
    return DeploymentsWorkspace(ws, tokens, deploy.get("price-api").current.reason)
