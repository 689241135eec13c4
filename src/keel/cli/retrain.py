"""``keel retrain``: retraining policies on deployments, the retrains they start, and the review an approver
reads before anything reaches a canary."""

from __future__ import annotations

from typing import Any

import typer

from keel.cli.context import console, output_format, print_json, print_table, state
from keel.cli.deploy import parse_duration
from keel.errors import InvalidInput
from keel.retraining.model import Retrain

app = typer.Typer(no_args_is_help=True, help="Retraining with human oversight: policies, retrains, reviews.")
policy_app = typer.Typer(no_args_is_help=True, help="Retraining policies: when, what data, how.")
app.add_typer(policy_app, name="policy")

FORMAT = typer.Option("table", "--format", help="table | json")
JSON = typer.Option(False, "--json", help="Same as --format json.")
RETRAIN = typer.Argument(..., help="The retrain's id (3 or retrain:3).")
REASON = typer.Option(..., "--reason", help="What was weighed (recorded).")


@policy_app.command("set")
def set_policy(ctx: typer.Context, name: str = typer.Argument(..., help="The policy's name."),
               deployment: str = typer.Option(..., "--deployment"),
               pipeline: str = typer.Option(..., "--pipeline", help="The model's retraining pipeline."),
               when: list[str] = typer.Option(..., "--when", help="A condition (repeatable): drift(COL, threshold=T, "
                                              "windows=N), performance(METRIC, degradation=D), volume(N), "
                                              "schedule('CRON'), manual()."),
               data: str = typer.Option("all", "--data", help="since_drift_start | last(30d) | all | a SQL predicate"),
               how: str = typer.Option("from_scratch", "--how", help="from_scratch | warm_start"),
               source: str = typer.Option(None, "--source", help="The table the window applies to."),
               time_column: str = typer.Option(None, "--time-column"),
               monitor: str = typer.Option(None, "--monitor", help="The monitor whose reports decide drift."),
               canary_steps: str = typer.Option("10,50,100", "--canary-steps", help="Percent, rising."),
               canary_interval: str = typer.Option("10m", "--canary-interval"),
               guardrail: list[str] = typer.Option(None, "--guardrail", help="Canary guardrail (repeatable)."),
               holdout: float = typer.Option(None, "--holdout", help="Share of traffic the model does not "
                                                                     "influence (answered by the baseline)."),
               max_influenced: float = typer.Option(0.8, "--max-influenced", help="Refuse a retrain whose labels "
                                                    "are more than this share model-influenced."),
               no_guard: bool = typer.Option(False, "--no-guard", help="Turn the feedback-loop guard off."),
               auto_approve: bool = typer.Option(False, "--auto-approve", help="Approve releasable candidates "
                                                 "automatically (non-production deployments)."),
               allow_production_auto: bool = typer.Option(False, "--allow-production-auto", help="Allow "
                                                          "--auto-approve on a production deployment."),
               reason: str = typer.Option(None, "--reason"), fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """Attach (or replace) a retraining policy."""
    fmt = output_format(fmt, as_json)
    try:
        steps = [float(s) for s in canary_steps.split(",") if s.strip()]
    except ValueError:
        raise InvalidInput(f"--canary-steps {canary_steps!r}: rising percentages, e.g. 10,50,100") from None
    made = _retraining(ctx).create_policy(
        name, deployment, pipeline, when=list(when), data=data, how=how, source=source, time_column=time_column,
        monitor=monitor, canary={"steps": steps, "interval_s": parse_duration(canary_interval),
                                 "guardrails": list(guardrail or ["error_rate < 0.01"])},
        auto_approve=auto_approve, allow_production_auto=allow_production_auto,
        max_influenced=None if no_guard else max_influenced, holdout=holdout, reason=reason)
    if fmt == "json":
        print_json(made.to_dict())
        return
    console.print(f"{made.ref} on deployment {made.deployment}: when {'; '.join(c['text'] for c in made.spec['when'])}"
                  f"; data {made.spec['data']['kind']}; {made.spec['how']}", markup=False, soft_wrap=True)


@policy_app.command("list")
def list_policies(ctx: typer.Context, deployment: str = typer.Option(None, "--deployment"), fmt: str = FORMAT,
                  as_json: bool = JSON) -> None:
    fmt = output_format(fmt, as_json)
    found = _retraining(ctx).policies(deployment)
    if fmt == "json":
        print_json([p.to_dict() for p in found])
        return
    print_table("retraining policies", ["name", "deployment", "pipeline", "when", "data", "how", "approval"],
                [(p.name, p.deployment, p.pipeline, "; ".join(c["text"] for c in p.spec["when"]),
                  p.spec["data"]["kind"], p.spec["how"], "automatic" if p.spec.get("auto_approve") else "a person")
                 for p in found])


@policy_app.command("show")
def show_policy(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    print_json(_retraining(ctx).policy(name).to_dict())


@policy_app.command("delete")
def delete_policy(ctx: typer.Context, name: str = typer.Argument(...),
                  reason: str = typer.Option(None, "--reason")) -> None:
    _retraining(ctx).delete_policy(name, reason=reason)
    console.print(f"retrain_policy:{name} deleted", markup=False)


@app.command()
def start(ctx: typer.Context, policy: str = typer.Argument(..., help="The policy."), reason: str = REASON,
          override_guard: str = typer.Option(None, "--override-guard", help="A reason to retrain although the "
                                             "feedback-loop guard refuses."),
          queue: bool = typer.Option(False, "--queue", help="Leave the pipeline run to the scheduler."),
          executor: str = typer.Option("process", "--executor"), fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """Retrain now (the manual trigger): window, guard, pipeline, gates; then it waits for review."""
    made = _retraining(ctx).start(policy, reason=reason, override_guard=override_guard, execute=not queue,
                                  executor=executor)
    _print_retrain(made, output_format(fmt, as_json))


@app.command("list")
def list_(ctx: typer.Context, policy: str = typer.Option(None, "--policy"),
          status: str = typer.Option(None, "--status"), limit: int = typer.Option(50, "--limit", min=1, max=10_000),
          fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """Retrains, newest first."""
    fmt = output_format(fmt, as_json)
    found = _retraining(ctx).list(policy, status=status, limit=limit)
    if fmt == "json":
        print_json([r.to_dict() for r in found])
        return
    print_table("retrains", ["id", "policy", "status", "trigger", "candidate", "gates", "created (UTC)"],
                [(r.id, r.policy, r.status, r.trigger.get("condition") or r.trigger.get("kind"), r.candidate or "-",
                  r.evidence.get("gates", {}).get("status", "-"),
                  f"{r.created_at:%Y-%m-%d %H:%M}" if r.created_at else "-") for r in found])


@app.command()
def show(ctx: typer.Context, retrain: str = RETRAIN, fmt: str = FORMAT, as_json: bool = JSON) -> None:
    _print_retrain(_retraining(ctx).get(retrain), output_format(fmt, as_json))


@app.command()
def review(ctx: typer.Context, retrain: str = RETRAIN, fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """What an approver weighs: why, which data, how, the gates and the comparison with the serving model."""
    found = _retraining(ctx).review(retrain)
    if output_format(fmt, as_json) == "json":
        print_json(found)
        return
    window = found.get("window") or {}
    guard = window.get("guard") or {}
    gates = found.get("evidence", {}).get("gates", {})
    lines = [f"{found['ref']} of policy {found['policy']} on deployment {found['deployment']}: {found['status']}",
             f"why: {found['trigger'].get('why')}",
             f"data: {window.get('kind')}: {window.get('where') or 'every row'} on {window.get('version')} "
             f"({window.get('rows')} rows)",
             f"guard: {guard.get('influenced')} of {guard.get('labelled')} labelled requests model-influenced "
             f"(max {guard.get('max_influenced')})" + (" - overridden" if guard.get("overridden") else ""),
             f"how: {(found.get('how') or {}).get('used')} ({(found.get('how') or {}).get('detail')})",
             f"candidate: {found.get('candidate')} vs serving {found.get('serving')}; gates {gates.get('status')} "
             f"{gates.get('counts')}" + (f", blocking {', '.join(gates['blocking'])}" if gates.get("blocking") else ""),
             f"on approve: {found.get('on_approve')}"]
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)
    metrics = found.get("evidence", {}).get("comparison", {}).get("metrics", [])
    print_table("candidate vs serving", ["metric", "candidate", "serving"],
                [(m["metric"], _num(m["candidate"]), _num(m["serving"])) for m in metrics])


@app.command()
def approve(ctx: typer.Context, retrain: str = RETRAIN, reason: str = REASON,
            override: bool = typer.Option(False, "--override", help="Release a candidate that failed a required "
                                                                    "gate (recorded on its report)."),
            fmt: str = FORMAT, as_json: bool = JSON) -> None:
    """Approve the candidate: it goes to a canary on the deployment."""
    _print_retrain(_retraining(ctx).approve(retrain, reason=reason, override=override), output_format(fmt, as_json))


@app.command()
def reject(ctx: typer.Context, retrain: str = RETRAIN, reason: str = REASON, fmt: str = FORMAT,
           as_json: bool = JSON) -> None:
    """Reject the candidate; production is not touched."""
    _print_retrain(_retraining(ctx).reject(retrain, reason=reason), output_format(fmt, as_json))


def _retraining(ctx: typer.Context) -> Any:
    return state(ctx).workspace().retraining


def _print_retrain(found: Retrain, fmt: str) -> None:
    if fmt == "json":
        print_json(found.to_dict())
        return
    detail = found.evidence.get("error") or found.evidence.get("message") or ""
    console.print(f"{found.ref} ({found.policy}): {found.status}" + (f" - {detail}" if detail else "")
                  + (f"; candidate {found.candidate}" if found.candidate else "")
                  + (f"; pipeline run {found.pipeline_run}" if found.pipeline_run else ""), markup=False,
                  soft_wrap=True)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"
