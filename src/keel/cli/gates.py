"""``keel gates``: declare a model's release checklist, run it on a version, read and override the reports.

``keel gates run`` exits 0 when the report passed and 1 when a required test failed, so a CI step can gate a
release on it; bad input exits 2 like every other command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from keel.cli.context import console, print_json, print_table, state
from keel.errors import InvalidInput, NotFound
from keel.gates.model import GateReport, TestResult
from keel.gates.spec import Checklist

app = typer.Typer(no_args_is_help=True, help="Release gates: checklists, gate runs and their reports.")

_FORMATS = ("table", "json")
_SUMMARY_SKIP = ("name", "kind", "required", "description")  # shown in their own columns


@app.command("set")
def set_checklist(ctx: typer.Context, model: str = typer.Argument(..., help="Registered model name."),
                  file: Path = typer.Argument(..., help="The checklist (gates.yaml)."),
                  reason: str = typer.Option(None, "--reason", help="Why (kept in the audit log).")) -> None:
    """Store a checklist as the model's next version (the same checklist again changes nothing)."""
    gates = state(ctx).workspace().gates
    try:
        before: int | None = gates.checklist(model).version
    except NotFound:
        before = None
    info = gates.set_checklist(model, _read_yaml(file), reason=reason)
    tests = info.spec.get("tests", [])
    verb = "unchanged" if info.version == before else "stored"
    console.print(f"{verb}: {info.model} checklist v{info.version} ({len(tests)} tests, "
                  f"{sum(t.get('required', True) for t in tests)} required; fingerprint {info.fingerprint[:12]})",
                  markup=False)


@app.command()
def checklist(ctx: typer.Context, model: str = typer.Argument(..., help="Registered model name."),
              version: int = typer.Option(None, "--version", min=1, help="A stored version (default: the latest)."),
              fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """A stored checklist: its tests, each required or nice-to-have, and what it checks."""
    _check_format(fmt)
    info = state(ctx).workspace().gates.checklist(model, version)
    if fmt == "json":
        print_json(info.to_dict())
        return
    spec = info.spec
    console.print(f"{info.model} checklist v{info.version} by {info.created_by} at {info.created_at:%Y-%m-%d %H:%M:%S}"
                  f" UTC; data {spec.get('data') or 'the training split'}, part {spec.get('part') or 'test'}, "
                  f"against {spec.get('against', 'production')}", markup=False)
    names = Checklist.model_validate(spec).names()
    print_table(f"{len(names)} test(s)", ["test", "kind", "level", "checks"],
                [(name, test["kind"], _level(test.get("required", True)),
                  ", ".join(f"{k}={_compact(v)}" for k, v in test.items() if k not in _SUMMARY_SKIP))
                 for name, test in zip(names, spec["tests"], strict=True)])


@app.command()
def run(ctx: typer.Context, ref: str = typer.Argument(..., help="The version to test: price/3, price@challenger."),
        against: str = typer.Option(None, "--against", help="The champion's alias (default: the checklist's)."),
        force: bool = typer.Option(False, "--force", help="Run again even if an identical run's report exists."),
        trusted: bool = typer.Option(False, "--trusted", help="Load a model that needs trust (a pickle)."),
        fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Run the model's checklist on a version and store the report; exit 1 when a required test failed."""
    _check_format(fmt)
    report = state(ctx).workspace().gates.run(ref, against=against, force=force, trusted=trusted)
    _print_report(report, fmt)
    raise typer.Exit(0 if report.status == "passed" else 1)


@app.command()
def show(ctx: typer.Context, report_id: str = typer.Argument(..., metavar="REPORT", help="A report id (gate:ID)."),
         html: Path = typer.Option(None, "--html", help="Also write the report as an HTML page to this file."),
         fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """A stored gate report: one line per test (status, value, threshold, message)."""
    _check_format(fmt)
    gates = state(ctx).workspace().gates
    report = gates.report(report_id)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(gates.html(report.id), encoding="utf-8")
    _print_report(report, fmt)
    if html is not None and fmt != "json":
        console.print(f"wrote {html}", markup=False)


@app.command("list")
def list_reports(ctx: typer.Context, model: str = typer.Argument(None, help="Only this model (or MODEL/VERSION)."),
                 version: int = typer.Option(None, "--version", min=1, help="Only this version of the model."),
                 limit: int = typer.Option(100, "--limit", min=1, max=1000, help="At most this many, newest first."),
                 fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Stored gate reports, newest first."""
    _check_format(fmt)
    if model and "/" in model:
        name, _, number = model.rpartition("/")
        if not number.isdigit() or (version is not None and version != int(number)):
            raise InvalidInput(f"{model!r}: write MODEL or MODEL/VERSION (e.g. price/3), and --version only once")
        model, version = name, int(number)
    if version is not None and not model:
        raise InvalidInput("--version needs a MODEL")
    found = state(ctx).workspace().gates.reports(model, version, limit=limit)
    if fmt == "json":
        print_json([r.to_dict() for r in found])
        return
    print_table(f"{len(found)} gate report(s)", ["report", "model", "checklist", "status", "failed", "against",
                                                 "created (UTC)", "by", "override"],
                [(r.ref, r.model_ref, f"v{r.checklist_version}", r.status, ", ".join(t.name for t in r.blocking),
                  f"{r.against}/{r.against_version}" if r.against_version else "-",
                  f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.created_by,
                  f"{r.override['by']}: {r.override['reason']}" if r.override else "") for r in found])


@app.command()
def override(ctx: typer.Context, report_id: str = typer.Argument(..., metavar="REPORT", help="A failed report."),
             reason: str = typer.Option(..., "--reason", help="Why the failures are acceptable (audited).")) -> None:
    """Release a version despite failed required tests (needs the approver role)."""
    report = state(ctx).workspace().gates.override(report_id, reason=reason)
    failed = ", ".join(r.name for r in report.blocking)
    console.print(f"{report.ref} ({report.model_ref}, failed {failed}) overridden by {report.override['by']}: "
                  f"{report.override['reason']}", markup=False, soft_wrap=True)


def _read_yaml(file: Path) -> str:
    """The file's YAML text, read here: a remote workspace sends the text to the server, never a path."""
    path = file.expanduser()
    if not path.is_file():
        raise InvalidInput(f"no checklist file at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the checklist {path}: {exc}") from None
    return text if "\n" in text else text + "\n"  # one line ending in .yaml would be taken for a file name


# -- printing -------------------------------------------------------------------------------------------------

def _check_format(fmt: str) -> None:
    if fmt not in _FORMATS:
        raise InvalidInput(f"--format {fmt!r}: use table or json")


def _print_report(report: GateReport, fmt: str) -> None:
    if fmt == "json":
        print_json(report.to_dict())
        return
    counts = ", ".join(f"{n} {status}" for status, n in report.counts().items() if n)
    against = f"{report.against} v{report.against_version}" if report.against_version else \
        f"{report.against} (none)"
    console.print(f"{report.ref} {report.model_ref} {report.status.upper()}: {counts} (checklist "
                  f"v{report.checklist_version}, against {against}, data {report.data or '-'}, "
                  f"{report.duration_s:.2f} s{', reused' if report.reused else ''})", markup=False, soft_wrap=True)
    _print_lines(report.results)
    if report.blocking:
        console.print(f"blocking: {', '.join(r.name for r in report.blocking)}", markup=False, soft_wrap=True)
    if report.override:
        console.print(f"overridden by {report.override['by']} at {report.override['at']}: "
                      f"{report.override['reason']}", markup=False, soft_wrap=True)


def _print_lines(results: list[TestResult]) -> None:
    """One line per test, never wrapped, so a CI log shows each test's verdict on its own line."""
    rows = [("test", "level", "status", "value", "threshold", "message")]
    rows += [(r.name, _level(r.required), r.status, _compact(r.value), _compact(r.threshold),
              " ".join(r.message.split())) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        console.print(f"{line}  {row[5]}".rstrip(), markup=False, soft_wrap=True, highlight=False)


def _level(required: bool) -> str:
    return "required" if required else "nice-to-have"


def _compact(value: Any) -> str:
    """A value in a few characters: numbers to 4 significant digits, lists and mappings as compact JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, separators=(",", ":"))
    return " ".join(str(value).split())
