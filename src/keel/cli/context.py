"""What every command shares: how to find the workspace and how to print."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from keel.data.model import ValidationReport
from keel.errors import InvalidInput
from keel.numbers import json_safe
from keel.workspace import Workspace, open_workspace

# piped or captured output is not cut to 80 columns: tables keep whole timestamps and refs
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


@dataclass
class CliState:
    """Set by the root callback from --workspace/--debug; opens the workspace only when needed."""

    workspace_path: str | None = None
    debug: bool = False
    _ws: Workspace | None = field(default=None, repr=False)

    def workspace(self) -> Workspace:
        if self._ws is None:
            self._ws = open_workspace(self.workspace_path)
        return self._ws


def state(ctx: typer.Context) -> CliState:
    return ctx.find_root().obj


def print_json(value: Any) -> None:
    """Strict JSON (jq, JSON.parse): NaN and ±inf, which JSON has no words for, print as null."""
    sys.stdout.write(json.dumps(json_safe(value), indent=2, default=str, allow_nan=False) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                out: Console | None = None) -> None:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    (out or console).print(table)


def print_report(report: ValidationReport, out: Console | None = None) -> None:
    """A validation report: the summary, then each failed check with its count and an example row."""
    out = out or console
    out.print(report.summary(), markup=False)
    if report.failures:
        print_table("failed checks", ["check", "column", "rows", "example row"],
                    [(f.check, f.column, f.failed, f.examples[0] if f.examples else "") for f in report.failures],
                    out)


def split_list(values: list[str] | None) -> list[str] | None:
    """--opt a,b --opt c → [a, b, c]: repeated options and comma lists both work."""
    if not values:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def output_format(fmt: str, as_json: bool) -> str:
    """``--format table|json`` and its ``--json`` shorthand as one answer; anything else is refused."""
    if fmt not in ("table", "json"):
        raise InvalidInput(f"--format {fmt!r}: use table or json")
    return "json" if as_json else fmt
