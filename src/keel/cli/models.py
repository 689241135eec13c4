"""``keel models``: the registry — versions, aliases, environments, approvals, cards, show, diff, predict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import typer

from keel.cli.context import console, print_json, print_table, split_list, state
from keel.data.readers import read_source_file, write_file
from keel.errors import InvalidInput
from keel.models.model import CARD_FIELDS

app = typer.Typer(no_args_is_help=True, help="Registered models: versions, aliases, approvals, promotion, cards.")


@app.command("list")
def list_models(ctx: typer.Context, fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Registered models with their latest version and aliases."""
    found = state(ctx).workspace().models.list()
    if fmt == "json":
        print_json([m.__dict__ for m in found])
        return
    print_table(f"{len(found)} model(s)", ["model", "latest", "aliases", "created by"],
                [(m.name, m.latest_version, _aliases(m.aliases), m.created_by) for m in found])


@app.command()
def versions(ctx: typer.Context, name: str = typer.Argument(..., help="Registered model name."),
             fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Every version of a model: flavor, class, run, aliases."""
    found = state(ctx).workspace().models.versions(name)
    if fmt == "json":
        print_json([v.__dict__ for v in found])
        return
    print_table(f"{name}: {len(found)} version(s)", ["version", "flavor", "class", "run", "aliases", "created (UTC)"],
                [(v.version, v.flavor, v.model_class.rsplit(".", 1)[-1], (v.run_id or "")[:12], ", ".join(v.aliases),
                  f"{v.created_at:%Y-%m-%d %H:%M:%S}") for v in found])


@app.command()
def show(ctx: typer.Context, ref: str = typer.Argument(..., help="price/3, price@champion, price@production, price"),
         fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """A version end to end: run, params, metrics, training data, environment, package hashes, history."""
    info = state(ctx).workspace().models.show(ref)
    if fmt == "json":
        print_json(info)
        return
    console.print(f"[bold]{info['ref']}[/bold] {info['model_class']} ({info['flavor']}), "
                  f"by {info['created_by']} at {info['created_at']}")
    if info["description"]:
        console.print(f"  {info['description']}")
    console.print(f"  aliases: {', '.join(info['aliases']) or '-'}; environments: {_aliases(info['environments'])}")
    run = info["run"]
    if run:
        console.print(f"  run: run:{run['id']} ({run['experiment']}, {run['status']})")
        for title in ("params", "metrics"):
            if run[title]:
                print_table(title, ["key", "value"], sorted(run[title].items()))
    console.print("  training data: " + (", ".join(info["training_data"]) or "-"))
    env = info["environment"]
    git = env["git"] or {}
    console.print(f"  environment: python {env['python']}, keel {env['keel']}, {env['flavor_library']}, "
                  f"git {git.get('commit') or 'n/a'}{' (dirty)' if git.get('dirty') else ''}")
    console.print(f"  package: {info['package']['key']} ({info['package']['size']} bytes), "
                  f"manifest sha256 {info['package']['manifest_sha256']}")
    print_table("files (sha256)", ["file", "sha256"], sorted(info["package"]["files"].items()))
    print_table("signature", ["input", "type", "nullable"],
                [(c["name"], c["type"], c["nullable"]) for c in info["signature"]["inputs"]])
    if info["approvals"]:
        print_table("approvals", ["environment", "by", "role", "at", "reason"],
                    [(a["environment"], a["approved_by"], a["role"], a["at"], a["reason"]) for a in info["approvals"]])
    if info["history"]:
        print_table("alias and environment history", ["at", "alias", "from", "to", "by", "reason"],
                    [(e["at"], e["alias"], e["previous_version"], e["version"], e["actor"], e["reason"])
                     for e in info["history"]])
    if info["card"]:
        print_table("model card", ["field", "value"], [(k, v) for k, v in info["card"].items()])


@app.command()
def alias(ctx: typer.Context, ref: str = typer.Argument(..., help="The version (price/3), or the model with --remove."),
          name: str = typer.Argument(..., help="Alias: champion, challenger, any name."),
          remove: bool = typer.Option(False, "--remove", help="Remove the alias instead of moving it."),
          reason: str = typer.Option(None, "--reason", help="Why (kept in the audit log).")) -> None:
    """Point an alias at a version (or remove it)."""
    models = state(ctx).workspace().models
    if remove:
        models.remove_alias(ref, name, reason=reason)
        console.print(f"removed {ref}@{name}")
        return
    version = models.set_alias(ref, name, reason=reason)
    console.print(f"{version.model}@{name} → {version.name}")


@app.command()
def promote(ctx: typer.Context, ref: str = typer.Argument(..., help="The version to promote (price/3)."),
            environment: str = typer.Argument(..., help="staging | production"),
            reason: str = typer.Option(None, "--reason", help="Why (kept in the audit log)."),
            override: bool = typer.Option(False, "--override", help="Admin only: promote without approval.")) -> None:
    """Move an environment to a version; production needs an approval of that version."""
    version = state(ctx).workspace().models.promote(ref, environment, reason=reason, override=override)
    console.print(f"{version.model}@{environment} → {version.name}")


@app.command()
def approve(ctx: typer.Context, ref: str = typer.Argument(..., help="The version to approve (price/3)."),
            reason: str = typer.Option(..., "--reason", help="What was checked."),
            environment: str = typer.Option("production", "--environment", help="staging | production")) -> None:
    """Approve a version for an environment (needs the approver role)."""
    approval = state(ctx).workspace().models.approve(ref, reason=reason, environment=environment)
    console.print(f"approved {approval.model}/{approval.version} for {approval.environment} by {approval.approved_by}")


@app.command()
def history(ctx: typer.Context, name: str = typer.Argument(..., help="Registered model name."),
            alias: str = typer.Option(None, "--alias", help="Only this alias or environment.")) -> None:
    """Every move of the model's aliases and environments, with who and why."""
    events = state(ctx).workspace().models.alias_history(name, alias)
    print_table(f"{name}: {len(events)} move(s)", ["at (UTC)", "alias", "from", "to", "by", "reason"],
                [(f"{e.at:%Y-%m-%d %H:%M:%S}", e.alias, e.previous_version, e.version, e.actor, e.reason)
                 for e in events])


@app.command()
def diff(ctx: typer.Context, a: str = typer.Argument(..., help="First version (price/2)."),
         b: str = typer.Argument(..., help="Second version (price/3)."),
         fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """What changed between two versions: params, metrics, data, signature, packages."""
    result = state(ctx).workspace().models.diff(a, b)
    if fmt == "json":
        print_json(result)
        return
    classes = result["model_class"]
    console.print(f"[bold]{result['a']} → {result['b']}[/bold]: {classes[0]} → {classes[1]}")
    if result["params"]:
        print_table("params that differ", ["param", result["a"], result["b"]],
                    [(k, *v) for k, v in result["params"].items()])
    if result["metrics"]:
        print_table("metrics", ["metric", result["a"], result["b"], "delta"],
                    [(k, _num(v["a"]), _num(v["b"]), _num(v["delta"])) for k, v in result["metrics"].items()])
    sig = result["signature"]
    if any(sig.values()):
        console.print(f"signature: added {sig['added']}, removed {sig['removed']}, changed {sig['changed']}")
    if result["inputs"]["a"] != result["inputs"]["b"]:
        console.print(f"inputs: {result['inputs']['a']} → {result['inputs']['b']}")
    if result["packages"]:
        print_table("packages that differ", ["package", result["a"], result["b"]],
                    [(k, *v) for k, v in result["packages"].items()])


@app.command()
def card(ctx: typer.Context, name: str = typer.Argument(..., help="Registered model name."),
         set_: list[str] = typer.Option(None, "--set", help=f"FIELD=VALUE; fields: {', '.join(CARD_FIELDS)}."),
         reason: str = typer.Option(None, "--reason", help="Why the card changed."),
         history_: bool = typer.Option(False, "--history", help="Every version of the card."),
         fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Show or edit the model card (purpose, owner, consumers, intended use, latency, business metric)."""
    models = state(ctx).workspace().models
    if set_:
        fields = {}
        for item in set_:
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidInput(f"--set needs FIELD=VALUE, got {item!r}")
            fields[key.strip()] = value.strip() or None
        current = models.update_card(name, reason=reason, **fields)
        console.print(f"{name}: card version {current.version}")
    cards = models.card_history(name) if history_ else [c for c in [models.card(name)] if c is not None]
    if fmt == "json":
        print_json([c.__dict__ for c in cards])
        return
    if not cards:
        console.print(f"{name} has no card yet; write one with `keel models card {name} --set purpose=...`")
    for c in cards:
        print_table(f"{name} card v{c.version} ({c.created_by}, {c.created_at:%Y-%m-%d %H:%M})", ["field", "value"],
                    list(c.card.items()))


@app.command()
def predict(ctx: typer.Context, ref: str = typer.Argument(..., help="price/3, price@production, ..."),
            input: str = typer.Option(..., "--input", "-i", help="A CSV/Parquet/JSONL file or a table ref."),
            output: Path = typer.Option(None, "--output", "-o", help="Write rows + prediction here (else print)."),
            trusted: bool = typer.Option(False, "--trusted", help="Allow a python-flavor (pickle) package."),
            limit: int = typer.Option(20, "--limit", "-n", help="Rows to print when there is no --output.")) -> None:
    """Predict with a registered version, after checking the input against its signature."""
    ws = state(ctx).workspace()
    model = ws.models.load(ref, trusted=trusted)
    frame = read_source_file(input).table.to_pandas() if Path(input).is_file() else ws.data.read(input)
    result = frame.assign(prediction=model.predict(frame))
    if output is not None:
        write_file(pa.Table.from_pandas(result, preserve_index=False), output)
        console.print(f"{len(result)} prediction(s) by {model.ref} written to {output}")
        return
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        console.print(result.head(limit).to_string(index=False), markup=False)


@app.command()
def evaluate(ctx: typer.Context, ref: str = typer.Argument(..., help="price/3, price@production, ..."),
             data: str = typer.Option(..., "--data", "-d", help="A split ref (listings-split, listings-split@2)."),
             slice_: list[str] = typer.Option(None, "--slice", help="Column(s) to slice by (repeat or a,b)."),
             importance: bool = typer.Option(False, "--importance", help="Also rank features (permutation)."),
             trusted: bool = typer.Option(False, "--trusted", help="Allow a python-flavor (pickle) package."),
             fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Evaluate a registered version on a split, per part and slice, beside a dumb baseline."""
    ws = state(ctx).workspace()
    loaded = ws.models.load(ref, trusted=trusted)
    features = loaded.signature.columns
    report = ws.runs.evaluate(loaded.model, data, features=features, slices=split_list(slice_) or ())
    ranking = ws.runs.importance(loaded.model, data, features=features) if importance else None
    if fmt == "json":
        print_json({"model": loaded.ref, "evaluation": report.to_dict(),
                    "importance": ranking.to_dict() if ranking else None})
        return
    console.print(f"[bold]{loaded.ref}[/bold] on {data}")
    console.print(report.summary(), markup=False)
    if ranking is not None:
        console.print("")
        console.print(ranking.summary(), markup=False)


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}→{v}" for a, v in sorted(aliases.items())) or "-"


def _num(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else ("" if value is None else str(value))
