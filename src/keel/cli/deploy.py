"""``keel deploy``: create endpoints and change how they route (shadow, A/B, canary, interleave), promote, roll
back, pause; read their status and history. Each change is a new policy version with who and why (audited).
"""

from __future__ import annotations

import re
from typing import Any

import typer

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
           override: bool = OVERRIDE, reason: str = REASON, fmt: str = FORMAT) -> None:
    """A new endpoint serving one model version, with its fallback chain."""
    _check_format(fmt)
    made = _deployments(ctx).create(name, model, fallbacks=list(fallback or []), production=production,
                                    override=override, reason=reason)
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
               override: bool = OVERRIDE, reason: str = REASON, fmt: str = FORMAT) -> None:
    """Merge two ranking models' results per request (team-draft interleaving)."""
    _check_format(fmt)
    variants = {arm: ref for arm, ref in (_arm(v) for v in variant)}
    _print(_deployments(ctx).interleave(name, variants, override=override, reason=reason), fmt)


@app.command()
def status(ctx: typer.Context, name: str = NAME, fmt: str = FORMAT) -> None:
    """The current policy: who serves what share of traffic, shadows and fallbacks."""
    _check_format(fmt)
    _print(_deployments(ctx).get(name), fmt)


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
def promote(ctx: typer.Context, name: str = NAME, reason: str = REASON, fmt: str = FORMAT) -> None:
    """The canary's or the shadow's candidate becomes the primary; the one it replaces, the first fallback."""
    _check_format(fmt)
    _print(_deployments(ctx).promote(name, reason=reason), fmt)


@app.command()
def rollback(ctx: typer.Context, name: str = NAME, reason: str = REASON, fmt: str = FORMAT) -> None:
    """Back to the policy before the current one."""
    _check_format(fmt)
    _print(_deployments(ctx).rollback(name, reason=reason), fmt)


@app.command()
def pause(ctx: typer.Context, name: str = NAME, reason: str = REASON, fmt: str = FORMAT) -> None:
    """Freeze the policy (a canary stops advancing); only resume, rollback change it then."""
    _check_format(fmt)
    _print(_deployments(ctx).pause(name, reason=reason), fmt)


@app.command()
def resume(ctx: typer.Context, name: str = NAME, reason: str = REASON, fmt: str = FORMAT) -> None:
    """Unfreeze a paused deployment."""
    _check_format(fmt)
    _print(_deployments(ctx).resume(name, reason=reason), fmt)


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
