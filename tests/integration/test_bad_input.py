"""Issue 2's "Bad input" list: each gives a clear error and leaves the tables and the metadata unchanged.

Every case runs through the SDK (exception class and message) and through the CLI (exit 2 and one
``error:`` line), each against a snapshot of the workspace taken before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import keel
from keel.demo.generator import LISTINGS_CONTRACT, generate_listings, write_listings
from keel.errors import ContractError, InvalidInput, InvalidRef, KeelError, NotFound, UnreadableFile, UserError
from keel.storage import schema

ROWS = 150
SQLITE_FILES = ("keel.db", "keel.db-wal", "keel.db-shm", "keel.db-journal")


# -- the workspace and its snapshot ---------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """One file per way an input can be bad, plus a good one."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    good = write_listings(generate_listings([3], rows_per_month=ROWS, bad_fraction=0.0, duplicate_fraction=0.0),
                          folder / "good.csv")
    lines = good.read_text().splitlines()
    lines[5] += ",surplus"  # one row with a field too many
    (folder / "ragged.csv").write_text("\n".join(lines) + "\n")
    short = good.read_text().splitlines()
    short[7] = ",".join(short[7].split(",")[:-3])  # one row with fields missing
    (folder / "short.csv").write_text("\n".join(short) + "\n")
    (folder / "garbage.parquet").write_bytes(os.urandom(4096))
    (folder / "broken.jsonl").write_text('{"listing_id": 1, "price": 10.0}\n{"listing_id": 2, "price": \n')
    (folder / "latin1.csv").write_bytes("listing_id,neighbourhood\n1,Caf\xe9 Quarter\n".encode("latin-1"))
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header.csv").write_text(lines[0] + "\n")
    (folder / "bad.yaml").write_text("columns:\n  price: {dtype: float64\n  listing_id: [\n")
    (folder / "wrong.yaml").write_text("columns:\n  - listing_id\n  - price\n")
    (folder / "typo.yaml").write_text("tagret: price\ncolumns:\n  price: {dtype: float64}\n")
    (folder / "dtype.yaml").write_text("columns:\n  price: {dtype: money}\n")
    (folder / "undeclared.yaml").write_text("key: [listing_id]\ncolumns:\n  price: {dtype: float64}\n")
    return {p.stem if p.suffix != ".parquet" else "garbage": p for p in folder.iterdir()} | {
        "missing": folder / "missing.csv"}


@pytest.fixture
def seeded(ws: keel.Workspace, tmp_path: Path) -> keel.Workspace:
    """listings@0 (contract, quarantine), listings@1, a split: every data metadata table has rows."""
    dirty = generate_listings([1], rows_per_month=ROWS, bad_fraction=0.04, duplicate_fraction=0.02)
    ws.data.ingest(write_listings(dirty, tmp_path / "m1.csv"), "listings", contract=LISTINGS_CONTRACT,
                   on_bad_rows="quarantine", time_column="listed_at")
    time.sleep(0.02)
    month2 = generate_listings([2], rows_per_month=ROWS, bad_fraction=0.0, duplicate_fraction=0.0,
                               repost_fraction=0.0)
    ws.data.ingest(write_listings(month2, tmp_path / "m2.parquet"), "listings")
    ws.data.split("listings", target="price", name="s", dedupe=True)
    ws.data.profile("listings")
    return ws


def snapshot(ws: keel.Workspace) -> dict[str, Any]:
    """Everything a bad input must leave alone: versions, Delta logs, data and artifact files, DB rows."""
    state_dir = ws.root / ".keel"
    with ws.db.read() as conn:
        counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                  for t in schema.metadata.sorted_tables}
        edges = conn.execute(sa.select(schema.lineage_edges.c.src, schema.lineage_edges.c.dst,
                                       schema.lineage_edges.c.relation)).all()
    return {
        "tables": [t.name for t in ws.data.tables()],
        "history": {t.name: ws.data.history(t.name) for t in ws.data.tables()},
        "delta_logs": sorted(str(p.relative_to(state_dir)) for p in state_dir.rglob("_delta_log/*")),
        "files": sorted((str(p.relative_to(state_dir)), p.stat().st_size) for p in state_dir.rglob("*")
                        if p.is_file() and p.name not in SQLITE_FILES),
        "row_counts": counts,
        "lineage_edges": sorted(map(tuple, edges)),
    }


def test_snapshot_sees_every_kind_of_state(seeded: keel.Workspace) -> None:
    state = snapshot(seeded)
    assert state["tables"] == ["listings", "listings__quarantine"]
    assert [v.version for v in state["history"]["listings"]] == [1, 0]
    assert any("listings/_delta_log/" in f for f in state["delta_logs"])
    seeded_tables = ("lineage_edges", "audit_log", "datasets", "table_versions", "profiles", "contracts", "splits")
    assert all(state["row_counts"][t] > 0 for t in seeded_tables), state["row_counts"]
    assert len(state["lineage_edges"]) == state["row_counts"]["lineage_edges"] > 0


# -- the cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    sdk: Callable[[keel.Workspace, dict[str, Path]], object]
    error: type[KeelError]
    fragments: tuple[str, ...]
    cli: Callable[[dict[str, Path]], list[str]] | None = None


CASES = [
    Case("missing-file", lambda ws, f: ws.data.ingest(f["missing"], "listings"), UnreadableFile,
         ("missing.csv", "does not exist"), lambda f: ["data", "ingest", f["missing"], "--table", "listings"]),
    Case("missing-file-new-table", lambda ws, f: ws.data.ingest(f["missing"], "fresh"), UnreadableFile,
         ("missing.csv",)),
    Case("garbage-parquet", lambda ws, f: ws.data.ingest(f["garbage"], "listings"), UnreadableFile,
         ("garbage.parquet", "parquet"), lambda f: ["data", "ingest", f["garbage"], "--table", "listings"]),
    Case("empty-file", lambda ws, f: ws.data.ingest(f["empty"], "listings"), UnreadableFile,
         ("empty.csv", "empty"), lambda f: ["data", "ingest", f["empty"], "--table", "listings"]),
    Case("header-only-csv", lambda ws, f: ws.data.ingest(f["header"], "listings"), UnreadableFile,
         ("header.csv", "no rows"), lambda f: ["data", "ingest", f["header"], "--table", "listings"]),
    Case("ragged-csv-long-row", lambda ws, f: ws.data.ingest(f["ragged"], "listings"), UnreadableFile,
         ("ragged.csv", "columns"), lambda f: ["data", "ingest", f["ragged"], "--table", "listings"]),
    Case("ragged-csv-short-row", lambda ws, f: ws.data.ingest(f["short"], "listings"), UnreadableFile,
         ("short.csv", "columns")),
    Case("jsonl-malformed", lambda ws, f: ws.data.ingest(f["broken"], "listings"), UnreadableFile,
         ("broken.jsonl",), lambda f: ["data", "ingest", f["broken"], "--table", "listings"]),
    Case("csv-not-utf8", lambda ws, f: ws.data.ingest(f["latin1"], "fresh"), UnreadableFile, ("latin1.csv",)),
    Case("unknown-format", lambda ws, f: ws.data.ingest(f["good"], "listings", format="xlsx"), InvalidInput,
         ("xlsx",)),
    Case("unknown-table", lambda ws, f: ws.data.read("nope"), NotFound, ("nope",),
         lambda f: ["data", "show", "nope"]),
    Case("unknown-table-history", lambda ws, f: ws.data.history("nope"), NotFound, ("nope",),
         lambda f: ["data", "history", "nope"]),
    Case("unknown-version", lambda ws, f: ws.data.read("listings@99"), NotFound, ("listings", "99"),
         lambda f: ["data", "show", "listings@99"]),
    Case("unknown-version-export", lambda ws, f: ws.data.export("listings@99", f["missing"].with_name("out.csv")),
         NotFound, ("99",), lambda f: ["data", "export", "listings@99", f["missing"].with_name("out.csv")]),
    Case("timestamp-before-first-version", lambda ws, f: ws.data.read("listings@2000-01-01T00:00:00Z"), NotFound,
         ("listings", "2000-01-01", "first version"), lambda f: ["data", "show", "listings@2000-01-01T00:00:00Z"]),
    Case("malformed-ref", lambda ws, f: ws.data.read("listings@@3"), InvalidRef, ("listings@@3", "malformed"),
         lambda f: ["data", "show", "listings@@3"]),
    Case("malformed-ref-version", lambda ws, f: ws.data.read("listings@3x"), InvalidRef, ("3x",),
         lambda f: ["data", "history", "listings@3x"]),
    Case("malformed-timestamp", lambda ws, f: ws.data.read("listings@2024-13-45"), InvalidRef, ("2024-13-45",),
         lambda f: ["data", "show", "listings@2024-13-45"]),
    Case("contract-bad-yaml", lambda ws, f: ws.data.ingest(f["good"], "listings", contract=f["bad"]), ContractError,
         ("bad.yaml", "YAML"), lambda f: ["data", "ingest", f["good"], "--table", "listings", "--contract", f["bad"]]),
    Case("contract-wrong-structure", lambda ws, f: ws.data.ingest(f["good"], "listings", contract=f["wrong"]),
         ContractError, ("wrong.yaml", "columns"), lambda f: ["data", "contract", "set", "listings", f["wrong"]]),
    Case("contract-unknown-section", lambda ws, f: ws.data.set_contract("listings", f["typo"]), ContractError,
         ("typo.yaml", "tagret"), lambda f: ["data", "ingest", f["good"], "--table", "listings", "--contract",
                                             f["typo"]]),
    Case("contract-unknown-dtype", lambda ws, f: ws.data.set_contract("listings", f["dtype"]), ContractError,
         ("dtype.yaml", "price")),
    Case("contract-undeclared-key", lambda ws, f: ws.data.set_contract("listings", f["undeclared"]), ContractError,
         ("listing_id",)),
    Case("contract-file-missing", lambda ws, f: ws.data.ingest(f["good"], "listings", contract=f["missing"]),
         ContractError, ("missing.csv", "does not exist")),
    Case("contract-validate-bad-yaml", lambda ws, f: ws.data.validate("listings", f["bad"]), ContractError,
         ("bad.yaml",), lambda f: ["data", "validate", "listings", "--contract", f["bad"]]),
    Case("partition-column-missing-new-table",
         lambda ws, f: ws.data.ingest(f["good"], "fresh", partition_by=["nope"]), InvalidInput, ("nope",),
         lambda f: ["data", "ingest", f["good"], "--table", "fresh", "--partition-by", "nope"]),
    Case("partition-column-missing-existing-table",
         lambda ws, f: ws.data.ingest(f["good"], "listings", partition_by=["nope"]), InvalidInput, ("nope",),
         lambda f: ["data", "ingest", f["good"], "--table", "listings", "--partition-by", "nope"]),
    Case("time-column-missing", lambda ws, f: ws.data.ingest(f["good"], "fresh", time_column="nope"),
         InvalidInput, ("nope",), lambda f: ["data", "ingest", f["good"], "--table", "fresh", "--time-column", "nope"]),
    Case("key-column-missing", lambda ws, f: ws.data.ingest(f["good"], "fresh", key=["nope"]), InvalidInput,
         ("nope",)),
    Case("read-unknown-column", lambda ws, f: ws.data.read("listings", columns=["nope"]), InvalidInput, ("nope",)),
    Case("read-invalid-filter", lambda ws, f: ws.data.read("listings", where="nope = 1"), InvalidInput, ("nope",),
         lambda f: ["data", "show", "listings", "--where", "nope = 1"]),
    Case("read-filter-type-mismatch", lambda ws, f: ws.data.read("listings", where="listing_id = 'abc'"),
         InvalidInput, ("abc",)),
    Case("read-filter-reads-a-file",
         lambda ws, f: ws.data.read("listings", where="listing_id IN (SELECT 1 FROM read_text('/etc/hostname'))"),
         InvalidInput, ("/etc/hostname",)),
    Case("unknown-split", lambda ws, f: ws.data.read_split("nope"), NotFound, ("nope",)),
    Case("split-invalid-gap",
         lambda ws, f: ws.data.split("listings", target="price", time_column="listed_at", gap="7x"), InvalidInput,
         ("7x",)),
    Case("split-target-missing", lambda ws, f: ws.data.split("listings", target="nope"), InvalidInput,
         ("target", "nope"), lambda f: ["data", "split", "listings", "--target", "nope"]),
    Case("split-fractions-do-not-sum-to-1",
         lambda ws, f: ws.data.split("listings", target="price", fractions="0.5,0.2,0.2"), InvalidInput,
         ("0.9", "1"), lambda f: ["data", "split", "listings", "--target", "price", "--fractions", "0.5,0.2,0.2"]),
    Case("split-fractions-over-1",
         lambda ws, f: ws.data.split("listings", target="price", fractions=(0.7, 0.4)), InvalidInput, ("1.1",),
         lambda f: ["data", "split", "listings", "--target", "price", "--fractions", "0.7,0.4"]),
    Case("split-fractions-not-numbers",
         lambda ws, f: ws.data.split("listings", target="price", fractions="a,b"), InvalidInput, ("a,b",)),
]


KNOWN_BUGS: dict[str, str] = {}  # case id -> "BUG: ..." for a known, not yet fixed defect (strict xfail)


def _params(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c.id])]
                         if c.id in KNOWN_BUGS else []) for c in cases]


@pytest.mark.parametrize("case", _params(CASES))
def test_sdk_bad_input_is_refused_and_changes_nothing(seeded: keel.Workspace, files: dict[str, Path],
                                                      case: Case) -> None:
    before = snapshot(seeded)
    with pytest.raises(case.error) as err:
        case.sdk(seeded, files)
    assert isinstance(err.value, UserError | NotFound)
    message = str(err.value)
    assert message and "\n" not in message and "Traceback" not in message
    for fragment in case.fragments:
        assert fragment in message, (fragment, message)
    assert snapshot(seeded) == before
    assert not files["missing"].with_name("out.csv").exists()


# -- the same through the CLI ---------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str


def keel_cli(args: list[object], cwd: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")} | {"COLUMNS": "250"}
    proc = subprocess.run([sys.executable, "-m", "keel.cli.main", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)
    return Run(proc.returncode, proc.stdout, proc.stderr)


# the list, one CLI run each (every run costs most of a second of imports)
CLI_IDS = ("missing-file", "garbage-parquet", "empty-file", "header-only-csv", "ragged-csv-long-row", "unknown-table",
           "unknown-version", "timestamp-before-first-version", "malformed-ref", "contract-bad-yaml",
           "contract-wrong-structure", "partition-column-missing-new-table", "split-target-missing",
           "split-fractions-do-not-sum-to-1")
CLI_CASES = [c for c in CASES if c.id in CLI_IDS]


def test_cli_bad_input_is_one_error_line_and_changes_nothing(seeded: keel.Workspace,
                                                             files: dict[str, Path]) -> None:
    """All cases side by side (none of them may write), each checked on its own."""
    before = snapshot(seeded)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        runs = list(pool.map(lambda c: keel_cli(c.cli(files), seeded.root), CLI_CASES))
    assert len(CLI_CASES) == len(CLI_IDS)
    problems = []
    for case, run in zip(CLI_CASES, runs, strict=True):
        lines = [line for line in run.err.splitlines() if line.strip()]
        line = lines[0] if lines else ""
        checks = {
            "exit code 2": run.code == 2,
            "one stderr line": len(lines) == 1,
            "starts with 'error: '": line.startswith("error: "),
            "no traceback": "Traceback" not in run.err and "internal error" not in run.err,
            **{f"mentions {f!r}": f in line for f in case.fragments},
        }
        failed = [name for name, passed in checks.items() if not passed]
        if failed:
            problems.append(f"{case.id}: {failed}; exit {run.code}; stderr: {run.err.strip()[:300]}")
    assert not problems, "\n".join(problems)
    assert snapshot(seeded) == before
    assert not files["missing"].with_name("out.csv").exists()


def test_cli_filter_that_fails_at_run_time_is_a_user_error(seeded: keel.Workspace) -> None:
    before = snapshot(seeded)
    run = keel_cli(["data", "show", "listings", "--where", "listing_id = 'abc'"], seeded.root)
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert snapshot(seeded) == before
    assert "internal error" not in run.err
    assert run.code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "abc" in lines[0]
