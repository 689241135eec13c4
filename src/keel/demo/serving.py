"""The demo's serving chapter: "what about acceptable fallbacks? A dumb model or the last model?"

The champion is deployed behind an endpoint with the baseline as its last fallback, and the data plane is started
in the background (the same app ``keel serve`` runs); the demo replays test listings as one-row requests. The
retuned challenger first shadows the champion (its answers compared, never returned), then is approved and rolled
out as a canary that the controller advances step by step to production. Finally a broken retraining (it learned
one constant price) is pushed through its failed gates by an approver, and the canary's guardrails roll it back on
their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pandas as pd
import pyarrow.compute as pc
import uvicorn
from rich.console import Console
from sklearn.dummy import DummyRegressor

from keel.demo.release import ensure_approver
from keel.errors import KeelError
from keel.serving.app import create_predictor_app
from keel.workspace import Workspace

__all__ = ["Traffic", "data_plane", "serving_chapter"]

GUARDRAILS = ["error_rate < 0.01", "p99_ms < 500", "mean_shift(prediction) < 0.3"]


@contextmanager
def data_plane(ws: Workspace) -> Iterator[str]:
    """``keel serve`` in a background thread on a free local port; yields its base URL."""
    app = create_predictor_app(ws, commit_every_s=0.2, reload_every_s=0.2, grace_s=2, sidecar=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="keel-demo-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the demo's data plane did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


class Traffic:
    """Test-part listings replayed as one-row requests, keyed by listing (sticky routing)."""

    def __init__(self, url: str, rows: list[dict[str, Any]], keys: list[Any]) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)
        self.rows, self.keys, self.sent = rows, keys, 0
        self.started = datetime.now(UTC)

    def send(self, n: int) -> dict[str, int]:
        """``n`` requests; how many each arm answered."""
        arms: dict[str, int] = {}
        for _ in range(n):
            i = self.sent % len(self.rows)
            reply = self.client.post("/v1/endpoints/price/predict", content=orjson.dumps({"records": [self.rows[i]]}),
                                     headers={"x-keel-key": str(self.keys[i]), "content-type": "application/json"})
            reply.raise_for_status()
            arm = reply.json()["arm"]
            arms[arm] = arms.get(arm, 0) + 1
            self.sent += 1
        return arms

    def send_batches(self, frame: pd.DataFrame, keys: list[Any], *, size: int) -> dict[str, list[Any]]:
        """``frame`` in requests of ``size`` rows (keyed by their first row's key); per row, the request id it was
        answered under, its position in that request and the prediction."""
        out: dict[str, list[Any]] = {"request_id": [], "row": [], "prediction": [], "arm": []}
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        for start in range(0, len(records), size):
            batch = records[start:start + size]
            reply = self.client.post("/v1/endpoints/price/predict", content=orjson.dumps({"records": batch}),
                                     headers={"x-keel-key": str(keys[start]), "content-type": "application/json"})
            reply.raise_for_status()
            answer = reply.json()
            out["request_id"] += [answer["request_id"]] * len(batch)
            out["row"] += list(range(len(batch)))
            out["prediction"] += answer["predictions"]
            out["arm"] += [answer["arm"]] * len(batch)
            self.sent += 1
        return out

    def settle(self, ws: Workspace, *, shadows: int = 0, timeout_s: float = 180) -> None:
        """Wait until the prediction log holds every request sent, and up to ``timeout_s`` for ``shadows`` shadow
        answers: the data plane commits in the background, at a low priority, so a busy machine delays it but
        never loses a row (shadows that are late are reported as fewer pairs, not as a failure)."""
        deadline = time.monotonic() + timeout_s
        while True:
            kinds = ws.deployments.log("price", self.started, columns=["kind"], kinds=("primary", "shadow"))["kind"]
            primary = pc.sum(pc.equal(kinds, "primary")).as_py() or 0
            shadow = len(kinds) - primary
            if primary >= self.sent and (shadow >= shadows or time.monotonic() > deadline):
                return
            if time.monotonic() > deadline:
                raise KeelError(f"the data plane committed {primary} of the demo's {self.sent} requests in "
                                f"{timeout_s:.0f} s; is the machine overloaded?")
            time.sleep(0.2)


def serving_chapter(ws: Workspace, split_ref: str, features: list[str], refs: dict[str, Any], console: Console,
                    step: Callable[[str], Any], table: Callable[..., None]) -> dict[str, Any]:
    """Deploy, shadow, canary, roll back; returns what the tests check."""
    test = ws.data.read_split(split_ref, "test")
    rows = test[features].to_dict(orient="records")
    keys = test["listing_id"].tolist() if "listing_id" in test else list(range(len(test)))
    champion = ws.models.version("price@production").name
    challenger = refs["challenger"].removeprefix("model:")
    ensure_approver(ws)
    gates = ws.gates.report(refs["challenger_report"])
    if not gates.releasable:  # small data (--rows-per-month) can fail a required test: a person decides
        ws.gates.override(gates.id, reason="the demo's small data; accepted for the walkthrough, see the report")
    with step(f"Deploy the champion ({champion}) behind endpoint price, the baseline as its last fallback"):
        deployment = ws.deployments.create("price", champion, fallbacks=["baseline"], production=True,
                                           reason="the first production endpoint")
        baseline = deployment.current.policy["baseline"]
    console.print(f"  if {champion} fails or times out, the baseline answers {baseline['value']:.0f} "
                  f"(the mean price of {baseline['from']})")
    decisions: list[dict[str, Any]] = []
    with data_plane(ws) as url:
        traffic = Traffic(url, rows, keys)
        with step("Serve: the data plane answers, and logs every answer before it goes out"):
            traffic.send(150)
        with step(f"Shadow the challenger ({challenger}): called beside the champion, never returned"):
            ws.deployments.shadow("price", challenger, reason="compare before any user sees it")
            time.sleep(0.5)  # the data plane picks the change up while serving
            traffic.send(200)
            traffic.settle(ws, shadows=150)  # most of the 200: the change is picked up within 0.2 s
            shadow = ws.deployments.report("price")["shadow"]
        difference = shadow["difference"]
        console.print(f"  {shadow['pairs']} requests answered by both: agreement {shadow['agreement_rate']:.0%}, "
                      f"challenger - champion: mean {difference['mean']:+.1f}, p95 {difference['p95']:+.1f}")
        with step(f"Approve the challenger; roll it out as a canary guarded by {', '.join(GUARDRAILS)}"):
            ws.models.approve(challenger, reason="passed its gates; the shadow agreed with the champion")
            ws.deployments.canary("price", challenger, steps=[20, 50, 100], interval_s=1, guardrails=GUARDRAILS,
                                  reason="gradual rollout")
            decisions += _run_canary(ws, traffic, table)
            if decisions[-1]["action"] == "promote":  # the registry follows what production serves
                ws.models.promote(challenger, "production", reason="its canary on endpoint price completed")
        with step("A broken retraining (it learned one constant price) is pushed through its failed gates"):
            broken = _broken_candidate(ws, split_ref, features)
            ws.deployments.canary("price", broken, steps=[20, 50, 100], interval_s=1, guardrails=GUARDRAILS,
                                  reason="hotfix under pressure")
            decisions += _run_canary(ws, traffic, table)
    history = ws.deployments.history("price")
    table("keel deploy history price", ["version", "action", "routing", "reason"],
          [(v.version, v.action, v.policy["kind"], (v.reason or "")[:70]) for v in history])
    final = ws.deployments.get("price")
    console.print(f"  endpoint price serves {final.current.policy['arms'][0]['model']}; {traffic.sent} requests "
                  f"answered and logged (table predictions)")
    return {"deployment": final.ref, "serving": final.current.policy["arms"][0]["model"], "broken": broken,
            "canary_actions": [d["action"] for d in decisions]}


def _run_canary(ws: Workspace, traffic: Traffic, table: Callable[..., None]) -> list[dict[str, Any]]:
    """Traffic, then the controller's check, until the canary is promoted or rolled back."""
    decisions = []
    for _ in range(12):
        time.sleep(0.5)  # the data plane picks up the step
        split = traffic.send(150)
        started = ws.deployments.get("price").current.at
        time.sleep(max(0.0, 1.1 - (time.time() - started.timestamp())))  # the step's interval has passed
        traffic.settle(ws)
        decision = ws.deployments.check_canary("price")
        decisions.append({"action": decision.action, "step": decision.step, "reason": decision.reason,
                          "split": split})
        if decision.action in ("promote", "rollback"):
            break
    table("canary controller", ["check", "served (arm: requests)", "decision", "why"],
          [(i + 1, ", ".join(f"{a}: {n}" for a, n in sorted(d["split"].items())), d["action"], d["reason"][:80])
           for i, d in enumerate(decisions)])
    return decisions


def _broken_candidate(ws: Workspace, split_ref: str, features: list[str]) -> str:
    """A retraining gone wrong: it predicts the 90th percentile price for every listing. Its gates fail; an
    approver overrides them (audited), which only the canary can still catch."""
    with ws.runs.start("price", name="broken-retraining", inputs=[split_ref], tags={"demo": "month 8"}) as run:
        model = ws.runs.fit(DummyRegressor(strategy="quantile", quantile=0.9), split_ref, features=features, run=run)
    example = ws.data.read_split(split_ref, "train", columns=features).head(5)
    version = ws.models.register(model, "price", run=run.id, input_example=example,
                                 description="a retraining that degenerated to one constant")
    report = ws.gates.run(version.name)
    if not report.releasable:
        ws.gates.override(report.id, reason="hotfix under pressure: pushed through (the demo's bad decision)")
    ws.models.approve(version.name, reason="overridden gates (the demo's bad decision)")
    return version.name
