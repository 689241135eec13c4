"""The demo's release chapter: "deployment = test + release". The price model's checklist
(``listings_gates.yaml``) runs before every promotion: the first model passes it and is approved into
production; then a weaker challenger is blocked by the comparison with that champion, and a retuned one
(a gamma loss, whose log link cannot predict a negative price) passes and waits in staging for a person
to approve it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from sklearn.base import clone

from keel.errors import GatesFailed
from keel.gates.model import GateReport
from keel.workspace import Workspace

__all__ = ["GATES_FILE", "challengers", "gate", "gates_table"]

GATES_FILE = Path(__file__).with_name("listings_gates.yaml")


def gate(ws: Workspace, ref: str, console: Console, table: Callable[..., None]) -> GateReport:
    """Run the checklist on ``ref`` and show one line per test."""
    report = ws.gates.run(ref)
    table(f"release gates for {report.model_ref} ({report.ref}, against {report.against}"
          f"{'/' + str(report.against_version) if report.against_version else ': no champion yet'}): {report.status}",
          ["test", "level", "status", "value", "threshold"], gates_table(report))
    return report


def gates_table(report: GateReport) -> list[tuple[str, ...]]:
    return [(r.name, "required" if r.required else "nice-to-have", r.status, _short(r.value), _short(r.threshold))
            for r in report.results]


def ensure_approver(ws: Workspace) -> None:
    if ws.users.get(ws.user).role not in ("approver", "admin"):
        ws.users.add(ws.user, "approver", reason="the demo's user reviews its own model")


def challengers(ws: Workspace, split_ref: str, features: list[str], results: dict[str, Any], runner_up: str,
                console: Console, step: Callable[[str], Any], table: Callable[..., None]) -> dict[str, Any]:
    """Month 7: the runner-up architecture and a retuned boosting model challenge the champion."""
    with step(f"A weaker challenger (the {runner_up} model) goes through the gates"):
        example = ws.data.read_split(split_ref, "train", columns=features).head(5)
        weak = ws.models.register(results[runner_up]["model"], "price", run=results[runner_up]["run"],
                                  input_example=example, description=f"{runner_up} on {split_ref}: a challenger")
        report = gate(ws, weak.name, console, table)
        try:
            ws.models.promote(weak.name, "staging", reason="challenger")
            blocked = None
        except GatesFailed as exc:
            blocked = exc.message
            console.print(f"  [yellow]promotion refused:[/yellow] {exc.message}")
    with step("A retuned challenger (boosting, gamma loss: prices are positive and skewed) meets the gates"):
        tuned = clone(results["boosting"]["model"]).set_params(gbm__loss="gamma")
        with ws.runs.start("price", name="boosting-retuned", inputs=[split_ref], tags={"demo": "month 7"}) as run:
            model = ws.runs.fit(tuned, split_ref, features=features, run=run)
            ws.runs.evaluate(model, split_ref, features=features, slices=["room_type"], run=run)
        strong = ws.models.register(model, "price", run=run.id, input_example=example,
                                    description=f"boosting with a gamma loss on {split_ref}: a challenger")
        passed = gate(ws, strong.name, console, table)
        if passed.releasable:
            ws.models.promote(strong.name, "staging", reason="passed its gates; waits for an approver")
            console.print(f"  {strong.name} is in staging and waits for an approval before production "
                          f"(`keel models approve {strong.name} --reason ...`)")
    return {"blocked": weak.ref, "blocked_report": report.ref, "blocked_reason": blocked,
            "challenger": strong.ref, "challenger_report": passed.ref, "challenger_status": passed.status}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
