"""``keel deploy``: create endpoints and change how they route (shadow, A/B, canary, interleave), promote, roll
back, pause; read their status and history. Each change is a new policy version with who and why (audited).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.markup import escape

from keel.cli.context import console, print_json, print_table, state
from keel.errors import InvalidInput
from keel.serving.model import Deployment, DeploymentVersion

app = typer.Typer(no_args_is_help=True, help="Deployments: endpoints, their routing policies and their history.")

_FORMATS = ("table", "json")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")

NAME = typer.Argument(..., help="The deployment (endpoint) name.")
REASON = typer.Option(None, "--reason", help="Why (kept in the audit log and the history).")
OVERRIDE = typer.Option(False, "--override", help="As an approver, route an unapproved version to a production "
                                                 "endpoint (needs --reason).")
FORMAT = typer.Option("table", "--format", help="table | json")


@app.command()
def create(ctx: typer.Context, name: str = NAME,
           model: str = typer.Option(..., "--model", help="The version it serves: price/3, price@production."),
           fallback: list[str] = typer.Option(None, "--fallback", help="A version (or 'baseline') answering when "
                                              "the primary fails; repeat for a chain, in order."),
           production: bool = typer.Option(False, "--production", help="Serves production: approved versions only."),
           strict_requirements: bool = typer.Option(False, "--strict-requirements", help="keel serve refuses a model "
                                                    "packaged with another version of its library."),
           override: bool = OVERRIDE, reason: str = REASON, fmt: str = FORMAT) -> None:
    """A new endpoint serving one model version, with its fallback chain."""
    _check_format(fmt)
    made = _deployments(ctx).create(name, model, fallbacks=list(fallback or []), production=production,
                                    strict_requirements=strict_requirements, override=override, reason=reason)
    _print(made, fmt)


@app.command()
def shadow(ctx: typer.Context, name: str = NAME,
           candidate: str = typer.Option(..., "--candidate", help="The version called beside the primary."),
           sample: float = typer.Option(1.0, "--sample", min=0.0, max=1.0, help="Share of requests it also answers."),
           reason: str = REASON, fmt: str = FORMAT) -> None:
    """Call a candidate beside the primary; clients always get the primary's answer."""
    _check_format(fmt)
    _print(_deployments(ctx).shadow(name, candidate, sample=sample, reason=reason), fmt)


@app.command()
def ab(ctx: typer.Context, name: str = NAME,
       variant: list[str] = typer.Option(..., "--variant", help="ARM=MODEL:WEIGHT, e.g. a=price/4:50; repeat."),
       sticky_key: str = typer.Option(None, "--sticky-key", help="The request field keeping a caller on one arm."),
       override: bool = OVERRIDE, reason: str = REASON, fmt: str = FORMAT) -> None:
    """Split traffic between versions by weight, sticky per key."""
    _check_format(fmt)
    variants = _weighted(variant)
    _print(_deployments(ctx).ab(name, variants, sticky_key=sticky_key, override=override, reason=reason), fmt)


@app.command()
def canary(ctx: typer.Context, name: str = NAME,
           candidate: str = typer.Option(..., "--candidate", help="The version rolled out."),
           steps: str = typer.Option(..., "--steps", help="Rising percentages of traffic, e.g. 5,25,50,100."),
           interval: str = typer.Option(..., "--interval", help="Time per step: 30s, 10m, 1h, 2d."),
           guardrail: list[str] = typer.Option(None, "--guardrail", help='A condition that must hold to advance, '
                                               'e.g. "error_rate < 0.01"; repeat.'),
           override: bool = OVERRIDE, reason: str = REASON, fmt: str = FORMAT) -> None:
    """Roll a candidate out step by step while its guardrails hold; the stable version serves the rest."""
    _check_format(fmt)
    made = _deployments(ctx).canary(name, candidate, steps=_steps(steps), interval_s=parse_duration(interval),
                                    guardrails=list(guardrail or []), override=override, reason=reason)
    _print(made, fmt)


@app.command()
def interleave(ctx: typer.Context, name: str = NAME,
               variant: list[str] = typer.Option(..., "--variant", help="ARM=MODEL, e.g. a=rank/2; give two."),
               item_key: str = typer.Option(None, "--item-key", help="The column naming a request's items "
                                                                     "(default: their position)."),
               override: bool = OVERRIDE, reason: str = REASON, fmt: str = FORMAT) -> None:
    """Merge two ranking models' results per request (team-draft interleaving); a request's rows are the items."""
    _check_format(fmt)
    variants = {arm: ref for arm, ref in (_arm(v) for v in variant)}
    _print(_deployments(ctx).interleave(name, variants, item_key=item_key, override=override, reason=reason), fmt)


@app.command()
def status(ctx: typer.Context, name: str = NAME, fmt: str = FORMAT) -> None:
    """The current policy: who serves what share of traffic, shadows and fallbacks."""
    _check_format(fmt)
    _print(_deployments(ctx).get(name), fmt)


@app.command()
def holdout(ctx: typer.Context, name: str = NAME,
            share: float = typer.Option(..., "--share", help="Share of keys (0 to 0.5) the baseline answers instead "
                                                             "of any model; 0 ends the holdout."),
            reason: str = typer.Option(None, "--reason"), fmt: str = FORMAT) -> None:
    """Hold a share of traffic out of the model's influence (feedback-loop guard): the baseline answers it."""
    _check_format(fmt)
    _print(_deployments(ctx).holdout(name, share, reason=reason), fmt)


@app.command()
def history(ctx: typer.Context, name: str = NAME, fmt: str = FORMAT) -> None:
    """Every version of the policy, oldest first: what changed, who changed it and why."""
    _check_format(fmt)
    versions = _deployments(ctx).history(name)
    if fmt == "json":
        print_json([v.to_dict() for v in versions])
        return
    print_table(f"{name}: {len(versions)} version(s)", ["version", "action", "kind", "state", "serves", "at (UTC)",
                                                         "by", "reason"],
                [(v.version, v.action, v.policy["kind"], v.state, _serves(v), f"{v.at:%Y-%m-%d %H:%M:%S}", v.by,
                  v.reason or "") for v in versions])


@app.command()
def watch(ctx: typer.Context,
          every: str = typer.Option("30s", "--every", help="Time between passes (30s, 5m)."),
          once: bool = typer.Option(False, "--once", help="One pass, then exit (for cron)."),
          min_requests: int = typer.Option(20, "--min-requests", min=1, help="Canary requests needed to judge.")
          ) -> None:
    """The canary controller: every interval, judge each active canary's guardrails and advance, promote or roll
    back (each decision recorded in the deployment's history)."""
    seconds = parse_duration(every)
    while True:
        decisions = _deployments(ctx).check_canaries(min_requests=min_requests)
        for name, decision in decisions.items():
            console.print(f"{name}: {decision.action}: {decision.reason}", markup=False)
        if once:
            return
        time.sleep(seconds)


@app.command("check-canary")
def check_canary(ctx: typer.Context, name: str = NAME,
                 min_requests: int = typer.Option(20, "--min-requests", min=1, help="Canary requests needed to judge."),
                 fmt: str = FORMAT) -> None:
    """One step of the canary controller: advance, promote, roll back (recorded) or wait. Run it on a schedule."""
    _check_format(fmt)
    decision = _deployments(ctx).check_canary(name, min_requests=min_requests)
    if fmt == "json":
        print_json(decision.to_dict())
        return
    console.print(f"{decision.action}: {decision.reason}", markup=False)


@app.command()
def report(ctx: typer.Context, name: str = NAME,
           since: str = typer.Option(None, "--since", help="From when: an ISO time (2024-05-01T00:00Z) or a "
                                     "duration back from now (30m, 6h, 7d); default: since the current policy."),
           fmt: str = FORMAT) -> None:
    """Per arm: traffic, latency, fallbacks, predictions, and metrics from feedback with confidence intervals and
    a test against the control; the sample ratio check; shadow agreement; the interleaving preference."""
    _check_format(fmt)
    found = _deployments(ctx).report(name, since=since)
    if fmt == "json":
        print_json(found)
        return
    _print_report(found)


@app.command()
def feedback(ctx: typer.Context, name: str = NAME,
             request_id: str = typer.Option(None, "--request-id", help="The request_id the prediction answered with."),
             label: str = typer.Option(None, "--label", help="What was true: a number or a class."),
             outcome: str = typer.Option(None, "--outcome", help="What it was worth: 1/0 (a conversion), revenue."),
             chosen: list[str] = typer.Option(None, "--chosen", help="An item the user picked from an interleaved "
                                              "list; repeat."),
             file: Path = typer.Option(None, "--file", help="Many items: JSON lines (or a JSON list) of "
                                       '{"request_id": ..., "label"|"outcome"|"chosen": ...}.')) -> None:
    """Record feedback on answered requests (labels, outcomes, interleaving clicks); the report joins it.
    Values read as JSON when they parse (--label 3.5 is a number, --label '"3"' a string), else as text."""
    given = {k: v for k, v in (("label", label), ("outcome", outcome), ("chosen", chosen or None)) if v is not None}
    if file is not None:
        if request_id is not None or given:
            raise InvalidInput("give --file, or --request-id with one of --label, --outcome, --chosen; not both")
        items = _feedback_file(file)
    elif request_id is None or len(given) != 1:
        raise InvalidInput("give --request-id with exactly one of --label, --outcome, --chosen (or --file)")
    else:
        key, value = next(iter(given.items()))
        items = [{"request_id": request_id, key: [_value(v) for v in value] if key == "chosen" else _value(value)}]
    done = _deployments(ctx).feedback(name, items)
    console.print(f"recorded {done['accepted']} feedback item(s) for {name}", markup=False)


def _policy_change(action: str, summary: str) -> None:
    """Register ``keel deploy ACTION NAME [--reason] [--format]``: the policy changes that take nothing else."""

    def command(ctx: typer.Context, name: str = NAME, reason: str = REASON, fmt: str = FORMAT) -> None:
        _check_format(fmt)
        _print(getattr(_deployments(ctx), action)(name, reason=reason), fmt)

    command.__doc__ = summary
    app.command(action)(command)


_policy_change("promote", "The canary's or the shadow's candidate becomes the primary; the one it replaces, the "
                          "first fallback.")
_policy_change("rollback", "Back to the policy before the current one.")
_policy_change("pause", "Freeze the policy (a canary stops advancing); only resume, rollback change it then.")
_policy_change("resume", "Unfreeze a paused deployment.")


@app.command()
def delete(ctx: typer.Context, name: str = NAME, reason: str = REASON) -> None:
    """Stop serving the endpoint; its history stays, and its name stays taken."""
    _deployments(ctx).delete(name, reason=reason)
    console.print(f"deleted deployment {name}", markup=False)


@app.command("list")
def list_deployments(ctx: typer.Context, fmt: str = FORMAT) -> None:
    """Every live deployment and what it serves."""
    _check_format(fmt)
    found = _deployments(ctx).list()
    if fmt == "json":
        print_json([d.to_dict() for d in found])
        return
    print_table(f"{len(found)} deployment(s)", ["name", "version", "kind", "state", "production", "serves",
                                                "changed (UTC)", "by"],
                [(d.name, d.current.version, d.kind, d.state, "yes" if d.production else "no", _serves(d.current),
                  f"{d.current.at:%Y-%m-%d %H:%M:%S}", d.current.by) for d in found])


# -- parsing ------------------------------------------------------------------------------------------------

def parse_duration(text: str) -> float:
    """``30s``, ``10m``, ``1h``, ``2d`` (or plain seconds) in seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidInput(f"--interval {text!r}: write a duration such as 30s, 10m, 1h or 2d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _steps(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InvalidInput(f"--steps {text!r}: write rising percentages, e.g. 5,25,50,100") from None


def _arm(text: str) -> tuple[str, str]:
    arm, sep, ref = text.partition("=")
    if not sep or not arm.strip() or not ref.strip():
        raise InvalidInput(f"--variant {text!r}: write ARM=MODEL, e.g. a=price/4")
    return arm.strip(), ref.strip()


def _weighted(values: list[str]) -> dict[str, tuple[str, float]]:
    """``a=price/4:50`` -> {"a": ("price/4", 50.0)}; each arm once."""
    out: dict[str, tuple[str, float]] = {}
    for text in values:
        arm, rest = _arm(text)
        ref, sep, weight = rest.rpartition(":")
        if not sep or not ref:
            raise InvalidInput(f"--variant {text!r}: write ARM=MODEL:WEIGHT, e.g. a=price/4:50")
        try:
            share = float(weight)
        except ValueError:
            raise InvalidInput(f"--variant {text!r}: the weight {weight!r} is not a number") from None
        if arm in out:
            raise InvalidInput(f"--variant: arm {arm!r} given twice")
        out[arm] = (ref, share)
    return out


def _value(text: str) -> Any:
    """A command-line value as JSON when it parses as a scalar (3.5, true, "3"), else as the text itself."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def _feedback_file(path: Path) -> list[Any]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"--file {str(path)!r}: cannot read it ({exc.strerror})") from None
    if text.lstrip().startswith(b"["):
        try:
            return list(orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"--file {str(path)!r}: not JSON ({exc})") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                raise InvalidInput(f"--file {str(path)!r}: line {number} is not JSON") from None
    return items


# -- printing -----------------------------------------------------------------------------------------------

def _deployments(ctx: typer.Context) -> Any:
    return state(ctx).workspace().deployments


def _check_format(fmt: str) -> None:
    if fmt not in _FORMATS:
        raise InvalidInput(f"--format {fmt!r}: use table or json")


def _print(deployment: Deployment, fmt: str) -> None:
    if fmt == "json":
        print_json(deployment.to_dict())
        return
    v = deployment.current
    why = f": {v.reason}" if v.reason else ""
    console.print(f"{deployment.ref} {deployment.kind} {deployment.state}"
                  f"{' production' if deployment.production else ''} ({v.action} by {v.by} at "
                  f"{v.at:%Y-%m-%d %H:%M:%S} UTC{why})", markup=False, soft_wrap=True)
    policy = v.policy
    rows = [(a["name"], a["model"], share) for a, share in zip(policy["arms"], _shares(policy), strict=True)]
    rows += [("shadow", s, f"{policy.get('sample', 1.0):.0%} (not served)") for s in policy.get("shadows", [])]
    rows += [(f"fallback {i}", f, "on failure") for i, f in enumerate(policy.get("fallbacks", []), start=1)]
    if policy.get("holdout"):
        rows.append(("holdout", "baseline", f"{policy['holdout']:.0%} of keys (the model does not influence them)"))
    print_table(None, ["arm", "model", "traffic"], rows)
    if policy["kind"] == "canary":
        steps = ", ".join(f"{s:.0%}" for s in policy["steps"])
        console.print(f"canary steps {steps}, now step {policy['step_index'] + 1} ({policy['step']:.0%}), every "
                      f"{_duration(policy['interval_s'])}; guardrails: {'; '.join(policy['guardrails']) or 'none'}",
                      markup=False, soft_wrap=True)
    if policy.get("sticky_key"):
        console.print(f"sticky on {policy['sticky_key']}", markup=False)


def _shares(policy: dict[str, Any]) -> list[str]:
    """Each arm's share of traffic, as people read it."""
    arms, kind = policy["arms"], policy["kind"]
    if kind == "canary":
        return [f"{1 - policy['step']:.0%}", f"{policy['step']:.0%}"]
    if kind == "interleave":
        return ["interleaved"] * len(arms)
    total = sum(float(a.get("weight", 1.0)) for a in arms) or 1.0
    return [f"{float(a.get('weight', 1.0)) / total:.0%}" for a in arms]


def _serves(version: DeploymentVersion) -> str:
    policy = version.policy
    out = [f"{a['name']}={a['model']}" for a in policy["arms"]]
    out += [f"shadow={s}" for s in policy.get("shadows", [])]
    return " ".join(out)


def _duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _print_report(found: dict[str, Any]) -> None:
    since, until = (datetime.fromisoformat(found[k]) for k in ("since", "until"))
    console.print(f"deployment:{found['deployment']}@{found['version']} {found['kind']}: {found['requests']} "
                  f"request(s) from {since:%Y-%m-%d %H:%M:%S} to {until:%Y-%m-%d %H:%M:%S} UTC", markup=False,
                  soft_wrap=True)
    _table(None, ["arm", "model", "target", "share", "requests", "p50 ms", "p99 ms", "fallbacks",
                  "prediction mean [p05, p95]", "metric [95% CI] (n)", "vs control [95% CI] p"],
           [(a["arm"], a["model"], _pct(a["target_share"]), _pct(a["share"]), a["requests"], _g(a["p50_ms"]),
             _g(a["p99_ms"]), _pct(a["error_rate"]), _spread(a["prediction"]), _metric(a["metric"]),
             _versus(a["vs_control"])) for a in found["arms"]])
    srm = found["srm"]
    if srm is not None:
        observed = ", ".join(f"{arm} {n} (expected {srm['expected'][arm]:.0f})" for arm, n in srm["observed"].items())
        verdict = ("MISMATCH: the split or the logging is broken; do not trust the differences" if srm["mismatch"]
                   else "as targeted")
        console.print(f"sample ratio: {observed}; p={_g(srm['p_value'])}: {verdict}", markup=False, soft_wrap=True)
    fb = found["feedback"]
    if fb["rows"]:
        console.print(f"feedback: {fb['rows']} row(s) on {fb['matched']} request(s) in the window, {fb['unmatched']} "
                      "request id(s) unmatched", markup=False, soft_wrap=True)
    shadow = found["shadow"]
    if shadow is not None:
        latency = shadow["latency"]
        _table(f"shadow (primary p50 {_g(latency['primary']['p50'])} ms, p99 {_g(latency['primary']['p99'])} ms)",
                    ["model", "pairs", "agreement", "difference mean [p05, p95]", "max |difference|", "p50 ms",
                     "p99 ms", "errors", "metric [95% CI] (n)"],
                    [(model, m["pairs"], _pct(m["agreement_rate"]), _spread(m["difference"]),
                      _g((m["difference"] or {}).get("max_abs")), _g(latency["shadows"][model]["p50"]),
                      _g(latency["shadows"][model]["p99"]), latency["shadows"][model]["errors"], _metric(m["metric"]))
                     for model, m in shadow["models"].items()])
    inter = found["interleave"]
    if inter is not None:
        (first, wins_a), (second, wins_b) = inter["wins"].items()
        preference = "no decided request yet" if inter["preference_a"] is None else (
            f"preference for {first} {_pct(inter['preference_a'])} (p={_g(inter['p_value'])}"
            f"{', significant' if inter['significant'] else ''})")
        console.print(f"interleaving: {inter['impressions']} impression(s), {inter['with_feedback']} with feedback; "
                      f"wins {first} {wins_a}, {second} {wins_b}, ties {inter['ties']}; {preference}", markup=False,
                      soft_wrap=True)


def _table(title: str | None, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """A table whose headers and cells are text, never markup (brackets are printed as they are)."""
    print_table(title and escape(title), [escape(c) for c in columns],
                [tuple(escape(str(v)) for v in row) for row in rows])


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _spread(stats: dict[str, Any] | None) -> str:
    return "-" if not stats else f"{_g(stats['mean'])} [{_g(stats['p05'])}, {_g(stats['p95'])}]"


def _metric(metric: dict[str, Any] | None) -> str:
    if not metric:
        return "-"
    interval = f" [{_g(metric['ci_low'])}, {_g(metric['ci_high'])}]" if metric["ci_low"] is not None else ""
    return f"{metric['name']} {_g(metric['value'])}{interval} ({metric['n']})"


def _versus(test: dict[str, Any] | None) -> str:
    if not test:
        return "-"
    mark = " *" if test["significant"] else ""
    return f"{test['difference']:+.4g} [{_g(test['ci_low'])}, {_g(test['ci_high'])}] p={_g(test['p_value'])}{mark}"
