"""The demo's retraining chapter: the loop closed. drift -> retrain -> gates -> a person approves -> canary ->
production.

Before month 7 is replayed, the price model's retraining pipeline is applied (window -> point-in-time features ->
split -> train -> gates) and a policy attached to endpoint price: retrain when the neighbourhood mix drifts two
months running, on the rows that arrived since the drift began, from scratch. The policy also holds a fifth of the
hosts out of price suggestions (the baseline answers them): their booked prices are outcomes the model did not
influence, and the feedback-loop guard checks that the retrain's window is not made only of outcomes the model
caused. After each month the scheduler ticks: month 9 fires the retrain, once; months 10 does not fire it again.
The candidate passes its gates and waits; an approver reads the review and approves; the canary goes to
production, stepped by the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rich.console import Console

from keel.demo.features import FEATURE_COLUMNS, REQUESTED
from keel.demo.modelling import CATEGORICAL, NUMERIC, candidates
from keel.demo.release import ensure_approver
from keel.demo.serving import Traffic, data_plane
from keel.pipelines import Pipeline, Split, StepContext, Table, TrainingSet, step
from keel.pipelines.builtin import gates, train, window
from keel.pipelines.scheduler import Scheduler
from keel.workspace import Workspace

__all__ = ["POLICY", "Retraining", "boosting", "linear", "price_retraining", "split_by_time", "training_set"]

POLICY = "price-drift"
WHEN = ["drift(neighbourhood, windows=2)"]  # drifted, by the monitor's own test, two months running
FEATURES = [*CATEGORICAL, *NUMERIC, *FEATURE_COLUMNS]


def boosting() -> Any:
    """The demo's gradient boosting, unfitted (a retraining pipeline's ``estimator``)."""
    return candidates([*NUMERIC, *FEATURE_COLUMNS])["boosting"]


def linear() -> Any:
    """The demo's linear model, unfitted."""
    return candidates([*NUMERIC, *FEATURE_COLUMNS])["linear"]


@step(inputs={"rows": "window"})
def training_set(ctx: StepContext, rows: Table) -> TrainingSet:
    """The window's listings with what the feature views knew at each listing's time."""
    made = ctx.ws.features.training_set(rows, REQUESTED, label="price", timestamp="listed_at",
                                        name="price_retraining", full_names=True)
    ctx.log(f"{made.ref}: {made.num_rows} rows")
    return made.ref


@step(name="split", inputs={"training": "training_set"})
def split_by_time(ctx: StepContext, training: TrainingSet) -> Split:
    """Train, validation and test parts by listing time, re-posted listings dropped."""
    info = ctx.ws.features.get_training_set(training)
    table = f"{info.table}@{info.version}"
    made = ctx.ws.data.split(table, target="price", time_column="listed_at", dedupe=True, gap=timedelta(days=1),
                             name="price-retraining-split", ignore_for_duplicates=FEATURE_COLUMNS)
    ctx.log(f"{made.ref}: " + ", ".join(f"{p} {made.counts[p]}" for p in ("train", "validation", "test")))
    return made.ref


price_retraining = Pipeline(
    "price-retraining", [window, training_set, split_by_time, train, gates],
    params={"source": "listings", "where": "TRUE", "window_table": "listings_retraining_window",
            "estimator": "keel.demo.retraining:boosting", "model_name": "price", "features": FEATURES,
            "experiment": "price-retraining"},
    description="the price model, trained again on a window of listings")


class Retraining:
    """The chapter in three parts: ``attach`` (before month 7), ``after_month`` (a scheduler tick after each
    month's monitor run) and ``close_the_loop`` (review, approval, canary)."""

    def __init__(self, ws: Workspace, console: Console, step: Callable[[str], Any], table: Callable[..., None],
                 best: str) -> None:
        self.ws, self.console, self.step, self.table = ws, console, step, table
        self.scheduler = Scheduler(ws, holder="demo-scheduler", interval_s=1, executor="process")
        self.fired: dict[int, list[str]] = {}
        self.estimator = f"keel.demo.retraining:{best}"  # the architecture production serves

    def attach(self, monitor: str) -> None:
        with self.step(f"Retraining: apply pipeline {price_retraining.name}; attach policy {POLICY} to endpoint "
                       f"price (when {WHEN[0]})"):
            pipeline = Pipeline(price_retraining.name, price_retraining.steps, description=price_retraining.description,
                                params={**price_retraining.params, "estimator": self.estimator})
            applied = self.ws.pipelines.apply([pipeline], reason="the price model's retraining")
            policy = self.ws.retraining.create_policy(
                POLICY, "price", price_retraining.name, when=WHEN, data="since_drift_start", how="from_scratch",
                source="listings", time_column="listed_at", monitor=monitor, holdout=0.2, max_influenced=0.9,
                canary={"steps": [50.0, 100.0], "interval_s": 1.0,
                        "guardrails": ["error_rate < 0.01"]},  # latency: judged by the serving chapter's canary
                reason="retrain when the neighbourhood mix moves; a person approves")
        console, steps = self.console, " -> ".join(s["name"] for s in applied[0].steps)
        console.print(f"  {applied[0].ref}: {steps}; {policy.ref}: data since the drift began, from scratch (a new "
                      "neighbourhood changes the category codes: continuing the old trees would misread them)")
        console.print("  a fifth of the hosts get no suggested price (holdout, answered by the baseline): their "
                      "booked prices are outcomes the model did not influence")

    def after_month(self, month: int) -> None:
        tick = self.scheduler.tick(wait=True)
        self.fired[month] = [f"retrain:{f['retrain']}" for f in tick.fired if "retrain" in f]
        for made in self.fired[month]:
            found = self.ws.retraining.get(made)
            self.console.print(f"  [bold]scheduler:[/bold] {made} fired ({found.trigger.get('why')}); pipeline run "
                               f"{found.pipeline_run} queued and run")
        for open_one in self.ws.retraining.list(POLICY, status="running"):
            self.ws.retraining.progress(open_one.id)

    def close_the_loop(self) -> dict[str, Any]:
        ws, console = self.ws, self.console
        made = ws.retraining.list(POLICY, limit=1)
        if not made:  # small data (--rows-per-month) may not drift two months running
            console.print(f"  no retrain fired: the drift did not hold for two windows ({self.fired})")
            return {"retrain": None, "status": None, "fired": self.fired}
        found = made[0]
        with self.step(f"keel retrain review {found.id}: why, which data, the gates, the comparison"):
            review = ws.retraining.review(found.id)
        self._print_review(review)
        ensure_approver(ws)
        if review["status"] != "pending_review":
            console.print(f"  [yellow]{found.ref} is {review['status']}[/yellow]: {review['evidence']}")
            return {"retrain": found.ref, "status": review["status"], "fired": self.fired}
        report = ws.gates.report(review["gate_report"]["id"])
        override = not report.releasable  # small data (--rows-per-month) can fail a required test: a person decides
        with self.step(f"An approver approves {found.ref}: the candidate goes out as a canary"):
            approved = ws.retraining.approve(found.id, reason="drift explained by the new neighbourhood; gates "
                                             "passed; better than production on the new months", override=override)
        console.print(f"  {approved.ref}: {approved.status} by {approved.decision['by']}; canary "
                      f"{approved.decision['canary']}")
        actions = self._canary(found.candidate or "")
        serving = ws.deployments.get("price").current.policy["arms"][0]["model"]
        if actions and actions[-1] == "promote":
            ws.models.promote(found.candidate or "", "production", reason=f"{found.ref}: its canary completed")
        console.print(f"  endpoint price now serves {serving}: drift -> retrain -> gates -> approval -> canary -> "
                      "production, each step in the lineage graph")
        return {"retrain": found.ref, "status": ws.retraining.get(found.id).status, "fired": self.fired,
                "candidate": found.candidate, "serving_after": serving, "retrain_canary": actions,
                "window": review["window"]}

    def _canary(self, candidate: str) -> list[str]:
        test = self.ws.data.read_split("listings-split", "test")
        actions: list[str] = []
        with self.step(f"The scheduler steps the canary of {candidate} while hosts list"), data_plane(self.ws) as url:
            traffic = Traffic(url, test[FEATURES].to_dict(orient="records"), test["listing_id"].tolist())
            for _ in range(8):
                traffic.send(120)
                traffic.settle(self.ws)
                tick = self.scheduler.tick()
                action = tick.canaries.get("price")
                if action and action != "wait":
                    actions.append(action)
                if action in ("promote", "rollback"):
                    break
        self.table("canary controller (keel scheduler)", ["check", "decision"], enumerate(actions, 1))
        return actions

    def _print_review(self, review: dict[str, Any]) -> None:
        trigger, window = review["trigger"], review.get("window") or {}
        guard = window.get("guard", {})
        self.console.print(f"  why: {trigger.get('why')}")
        self.console.print(f"  data: {window.get('kind')} -> {window.get('where')} on {window.get('version')}: "
                           f"{window.get('rows')} rows; guard: {guard.get('influenced')} of {guard.get('labelled')} "
                           f"labelled requests answered by the model (max {guard.get('max_influenced')})")
        gates_info = review.get("evidence", {}).get("gates", {})
        self.console.print(f"  candidate {review.get('candidate')} ({(review.get('how') or {}).get('used')}); gates "
                           f"{gates_info.get('status')} {gates_info.get('counts')}")
        comparison = review.get("evidence", {}).get("comparison", {})
        rows = [(m["metric"], _fmt(m["candidate"]), _fmt(m["serving"])) for m in comparison.get("metrics", [])]
        self.table(f"candidate vs serving model, both on {comparison.get('on')}", ["metric", "candidate", "serving"],
                   rows)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}"
