"""The real ``keel`` command line, run as a subprocess in temporary folders (issue 2)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml

import keel
from keel.demo.generator import COLUMNS, LISTINGS_CONTRACT, generate_listings, write_listings

ROWS = 150


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def keel_cli(*args: object, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run ``python -m keel.cli.main ARGS`` with no KEEL_* setting but those in ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    full_env.update({"COLUMNS": "250", "NO_COLOR": "1"}, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "keel.cli.main", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=180)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def cmd(*args: object, cwd: Path, env: dict[str, str] | None = None) -> Callable[[], Run]:
    """A command to run later, e.g. with ``concurrently``."""
    return partial(keel_cli, *args, cwd=cwd, env=env)


def concurrently(*commands: Callable[[], Run]) -> list[Run]:
    """Run independent commands side by side: each spends most of a second importing keel."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(lambda command: command(), commands))


def ok(run: Run) -> Run:
    assert run.code == 0, f"exit {run.code}\nstdout:\n{run.out}\nstderr:\n{run.err}"
    return run


def user_error(run: Run, *fragments: str) -> str:
    """Exit 2, exactly one stderr line, starting with 'error: ', no traceback; returns the line."""
    assert run.code == 2, f"exit {run.code}\nstdout:\n{run.out}\nstderr:\n{run.err}"
    assert len(run.err_lines) == 1, run.err
    line = run.err_lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in run.err and "internal error" not in run.err
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def clean(months) -> pd.DataFrame:
    return generate_listings(months, rows_per_month=ROWS, bad_fraction=0.0, duplicate_fraction=0.0,
                             repost_fraction=0.0)


def dirty(months) -> pd.DataFrame:
    return generate_listings(months, rows_per_month=ROWS, bad_fraction=0.04, duplicate_fraction=0.02)


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A workspace made with the SDK: listings@0 (CSV, contract, quarantine) and listings@1 (Parquet)."""
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        ws.data.ingest(write_listings(dirty([1]), tmp_path / "m1.csv"), "listings", contract=LISTINGS_CONTRACT,
                       on_bad_rows="quarantine", time_column="listed_at")
        time.sleep(0.05)
        ws.data.ingest(write_listings(dirty([2]), tmp_path / "m2.parquet"), "listings", on_bad_rows="quarantine")
    return root


# -- workspace: init and discovery ----------------------------------------------------------------


def test_init_and_workspace_discovery(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    created, created_here = concurrently(cmd("init", "proj", cwd=tmp_path), cmd("init", cwd=here))
    proj = tmp_path / "proj"
    assert "initialised" in ok(created).out and str(proj) in created.out
    assert (proj / "keel.toml").is_file() and (proj / ".keel").is_dir() and (proj / ".keel" / "keel.db").is_file()
    ok(created_here)  # PATH defaults to the current folder
    assert (here / "keel.toml").is_file()
    for root, table in ((proj, "in_proj"), (here, "in_here")):
        with keel.open(root) as ws:
            ws.data.ingest(clean([1]).head(10), table)
    nested = proj / "a" / "b" / "c"
    nested.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()

    def tables(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Callable[[], Run]:
        return cmd(*args, "data", "tables", cwd=cwd, env=env)

    again, walked, lost, short_flag, env_beats_walk, flag_beats_env = concurrently(
        cmd("init", "proj", cwd=tmp_path),
        tables(cwd=nested),
        tables(cwd=outside),
        tables("-w", str(here), cwd=nested),
        tables(cwd=nested, env={"KEEL_WORKSPACE": str(here)}),
        tables("--workspace", str(proj), cwd=outside, env={"KEEL_WORKSPACE": str(here)}),
    )
    user_error(again, "already")
    assert "in_proj" in ok(walked).out  # walks up like git
    user_error(lost, "no keel workspace")
    assert "in_here" in ok(short_flag).out and "in_proj" not in short_flag.out
    assert "in_here" in ok(env_beats_walk).out and "in_proj" not in env_beats_walk.out  # env beats walking up
    assert "in_proj" in ok(flag_beats_env).out and "in_here" not in flag_beats_env.out  # the flag beats env


# -- ingest with every option ---------------------------------------------------------------------


def test_ingest_with_every_option(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    keel.init(root).close()
    m12, m3, m4, m5 = dirty([1, 2]), dirty([3]), dirty([4]).assign(review_score=4.0), dirty([5])
    f12 = write_listings(m12, tmp_path / "m12.csv")
    f3 = write_listings(m3, tmp_path / "m3.parquet").rename(tmp_path / "m3.data")  # needs --format
    f4 = write_listings(m4, tmp_path / "m4.parquet")
    f5 = write_listings(m5, tmp_path / "m5.parquet")

    def ingest(*args: object) -> Callable[[], Run]:
        return cmd("data", "ingest", *args, cwd=root)

    out = ok(ingest(f12, "--table", "listings", "--mode", "append", "--partition-by", "room_type",
                    "--time-column", "listed_at", "--key", "listing_id", "--contract", LISTINGS_CONTRACT,
                    "--on-bad-rows", "quarantine")()).out
    assert "table:listings@0" in out and "quarantined" in out and "listings__quarantine@0" in out
    no_format, appended = concurrently(
        ingest(f3, "--table", "listings"),
        ingest(f3, "--format", "parquet", "-t", "listings", "--on-bad-rows", "quarantine"),
    )
    user_error(no_format, "extension", "--format")
    ok(appended)
    rejected, new_column = concurrently(
        ingest(f5, "--table", "listings", "--on-bad-rows", "reject"),  # the stored contract applies
        ingest(f4, "--table", "listings", "--on-bad-rows", "quarantine"),
    )
    assert rejected.code == 2 and "Traceback" not in rejected.err
    errors = [line for line in rejected.err_lines if line.startswith("error: ")]
    assert len(errors) == 1 and rejected.err_lines[-1] == errors[0] and "nothing was written" in errors[0]
    assert "not_null" in rejected.err and "unique_key" in rejected.err  # the report, check by check
    user_error(new_column, "review_score", "add-columns")
    ok(ingest(f4, "--table", "listings", "--schema-change", "add-columns", "--on-bad-rows", "quarantine",
              "--reason", "scores arrive")())
    ok(ingest(f5, "--table", "listings", "--mode", "overwrite", "--schema-change", "overwrite",
              "--on-bad-rows", "quarantine", "--reason", "scores withdrawn")())

    with keel.open(root) as ws:
        (info,) = [t for t in ws.data.tables() if t.name == "listings"]
        assert info.partition_by == ["room_type"] and info.time_column == "listed_at"
        assert info.key_columns == ["listing_id"]
        history = sorted(ws.data.history("listings"), key=lambda v: v.version)
        assert [(v.version, v.operation) for v in history] == [
            (0, "append"), (1, "append"), (2, "append-add-columns"), (3, "overwrite")]
        assert [v.source_name for v in history] == ["m12.csv", "m3.data", "m4.parquet", "m5.parquet"]
        assert all(v.contract_version == 1 for v in history)
        assert "review_score" in history[2].schema and "review_score" not in history[3].schema
        assert history[3].row_count == history[3].rows_added
        assert history[0].schema["listed_at"] == "timestamp[us, tz=UTC]"
        quarantined = ws.data.read("listings__quarantine")
        assert len(quarantined) > 0 and quarantined["_keel_reason"].str.len().gt(0).all()
        reasons = {e.target: e.reason for e in ws.audit.list() if e.action.startswith("data.schema_change")}
        assert reasons == {"table:listings@2": "scores arrive", "table:listings@3": "scores withdrawn"}
        assert {p.name.split("=")[0] for p in (root / ".keel" / "data" / "listings").iterdir()
                if p.is_dir() and p.name != "_delta_log"} == {"room_type"}


# -- reading: history, show, export, profile, validate --------------------------------------------


def test_history_and_show(built: Path) -> None:
    with keel.open(built) as ws:
        v0, v1 = sorted(ws.data.history("listings"), key=lambda v: v.version)
        latest = ws.data.read("listings")
    between = v0.committed_at + (v1.committed_at - v0.committed_at) / 2
    history, three, old, travelled, csv, table, subset = concurrently(
        cmd("data", "history", "listings", cwd=built),
        cmd("data", "show", "listings", "--limit", "3", "--format", "json", cwd=built),
        cmd("data", "show", "listings@0", "-n", "0", "--format", "json", cwd=built),
        cmd("data", "show", f"listings@{between.isoformat()}", "-n", "0", "--format", "json", cwd=built),
        cmd("data", "show", "listings", "--limit", "5", "--format", "csv", cwd=built),
        cmd("data", "show", "listings", "--limit", "2", cwd=built),
        cmd("data", "show", "listings", "-c", "listing_id", "-c", "price", "--where", "room_type = 'Private room'",
            "-n", "0", "--format", "json", cwd=built),
    )
    out = ok(history).out
    assert "history of listings" in out and "m1.csv" in out and "m2.parquet" in out
    assert str(v0.row_count) in out and str(v1.row_count) in out
    rows = json.loads(ok(three).out)
    assert len(rows) == 3 and list(rows[0]) == list(COLUMNS)
    assert {r["listing_id"] for r in rows} <= set(latest["listing_id"])
    assert len(json.loads(ok(old).out)) == v0.row_count
    assert len(json.loads(ok(travelled).out)) == v0.row_count
    frame = pd.read_csv(io.StringIO(ok(csv).out))
    assert len(frame) == 5 and list(frame.columns) == list(COLUMNS)
    assert f"2 of {v1.row_count} rows" in ok(table).out and "listing_id" in table.out
    chosen = json.loads(ok(subset).out)
    assert chosen and all(set(r) == {"listing_id", "price"} for r in chosen)
    assert len(chosen) == int((latest["room_type"] == "Private room").sum())


def test_export_round_trip(built: Path, tmp_path: Path) -> None:
    with keel.open(built) as ws:
        original = ws.data.read("listings").sort_values("listing_id").reset_index(drop=True)
        original_hash = ws.data.version("listings").content_hash
    formats = ("csv", "parquet", "jsonl")
    paths = {fmt: tmp_path / f"out.{fmt}" for fmt in formats}
    exported = concurrently(*(cmd("data", "export", "listings", paths[f], cwd=built) for f in formats))
    for fmt, run in zip(formats, exported, strict=True):
        assert str(paths[fmt]) in ok(run).out
    with keel.open(built) as ws:
        for fmt in formats:
            ws.data.ingest(paths[fmt], f"copy_{fmt}")
            copy = ws.data.read(f"copy_{fmt}").sort_values("listing_id").reset_index(drop=True)
            assert list(copy.columns) == list(original.columns) and len(copy) == len(original), fmt
            for column in ("listed_at", "first_review", "last_review"):
                copy[column] = pd.to_datetime(copy[column], utc=True, format="ISO8601")
            pd.testing.assert_frame_equal(copy, original, check_dtype=False, obj=fmt)
        assert ws.data.version("copy_parquet").content_hash == original_hash


def test_profile_and_validate(built: Path, tmp_path: Path) -> None:
    table, as_json, passing = concurrently(
        cmd("data", "profile", "listings", cwd=built),
        cmd("data", "profile", "listings@0", "--format", "json", cwd=built),
        cmd("data", "validate", "listings", cwd=built),
    )
    out = ok(table).out
    assert "profile of listings" in out and "price" in out and "room_type" in out and "Entire home/apt" in out
    profile = json.loads(ok(as_json).out)
    with keel.open(built) as ws:
        assert profile == json.loads(json.dumps(ws.data.profile("listings@0"), default=str))
    assert {"count", "nulls", "distinct", "min", "max", "mean", "std", "quantiles"} <= set(profile["columns"]["price"])
    assert "pass" in ok(passing).out and "error" not in passing.err


def test_validate_exits_1_when_the_contract_given_is_violated(built: Path, tmp_path: Path) -> None:
    strict = yaml.safe_load(LISTINGS_CONTRACT.read_text())
    strict["columns"]["price"]["max"] = 50
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(strict))
    failing = keel_cli("data", "validate", "listings@0", "--contract", path, cwd=built)
    assert "max" in failing.out and "price" in failing.out and "fail" in failing.out
    assert failing.code == 1


# -- splits, contracts, vacuum, lineage, audit ----------------------------------------------------


def test_split_contract_vacuum_lineage_audit(built: Path, tmp_path: Path) -> None:
    strict = yaml.safe_load(LISTINGS_CONTRACT.read_text())
    strict["columns"]["price"]["max"] = 5000
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(strict))
    time_split = ("data", "split", "listings", "--target", "price", "--time-column", "listed_at", "--name", "by-time")

    refused, by_host, contract_set = concurrently(
        # re-posts are duplicates on the feature columns: a time split refuses them unless told
        cmd(*time_split, cwd=built),
        cmd("data", "split", "listings@0", "--target", "price", "--group", "host_id", "--fractions", "0.8,0.2",
            "--name", "by-host", "--seed", "5", cwd=built),
        cmd("data", "contract", "set", "listings", path, cwd=built),
    )
    user_error(refused, "duplicates", "--dedupe")
    assert "split:by-host@1" in ok(by_host).out and "group" in by_host.out
    assert "contract:listings@2" in ok(contract_set).out

    files = sorted((built / ".keel" / "data" / "listings").rglob("*"))
    allowed, contract_again, dry_run = concurrently(
        cmd(*time_split, "--allow-duplicates", "--reason", "re-posts are known", cwd=built),
        cmd("data", "contract", "set", "listings", path, cwd=built),
        cmd("data", "vacuum", "listings", "--dry-run", "--retention-hours", "0", cwd=built),
    )
    out = ok(allowed).out
    assert "split:by-time@1" in out and "table:listings@1" in out and "time" in out
    assert "contract:listings@2" in ok(contract_again).out  # unchanged: same version
    out = ok(dry_run).out
    assert "would remove 0 file(s) of listings" in out
    assert "kept versions" in out and "latest version" in out and "referenced by lineage" in out
    assert sorted((built / ".keel" / "data" / "listings").rglob("*")) == files

    second, now, before = concurrently(
        cmd("data", "split", "listings@1", "--target", "price", "--time-column", "listed_at", "--fractions",
            "0.6,0.2,0.2", "--gap", "1h", "--name", "by-time", "--seed", "3", "--dedupe", cwd=built),
        cmd("data", "contract", "show", "listings", cwd=built),
        cmd("data", "contract", "show", "listings", "--version", "1", cwd=built),
    )
    out = ok(second).out
    assert "split:by-time@2" in out and "train" in out and "validation" in out and "test" in out
    now_doc = yaml.safe_load(ok(now).out)
    assert now_doc["columns"]["price"]["max"] == 5000 and now_doc["key"] == ["listing_id"]
    assert yaml.safe_load(ok(before).out)["columns"]["price"]["max"] == 100000

    shown, first, by_host_shown, tree, audit, test_part = concurrently(
        cmd("data", "split-show", "by-time", cwd=built),
        cmd("data", "split-show", "by-time@1", cwd=built),
        cmd("data", "split-show", "split:by-host@1", cwd=built),
        cmd("lineage", "listings@1", cwd=built),
        cmd("audit", cwd=built),
        cmd("data", "show", "split:by-time@2", "--part", "test", "-n", "0", "--format", "json", cwd=built),
    )
    info = json.loads(ok(shown).out)
    assert info["ref"] == "split:by-time@2" and info["source"] == "table:listings@1"
    assert info["method"] == "time" and info["params"]["fractions"] == [0.6, 0.2, 0.2]
    assert info["params"]["gap_seconds"] == 3600 and info["params"]["dedupe"] is True
    assert info["params"]["seed"] == 3 and info["counts"]["dropped_duplicates"] > 0
    test_rows = json.loads(ok(test_part).out)
    assert len(test_rows) == info["counts"]["test"] > 0
    assert min(r["listed_at"] for r in test_rows) >= info["params"]["boundaries"]["test"][0]
    host_info = json.loads(ok(by_host_shown).out)
    assert host_info["method"] == "group" and set(host_info["counts"]) >= {"train", "test"}
    first_info = json.loads(ok(first).out)
    assert first_info["params"]["allow_duplicates"] is True and first_info["counts"]["cross_part_duplicates"] > 0

    out = ok(tree).out
    assert "table:listings@1" in out and "upstream" in out and "downstream" in out
    assert "file:m2.parquet@sha256:" in out and "table:listings@0" in out
    assert "split:by-time@1" in out and "split:by-time@2" in out and "split_into" in out
    assert "file:m1.csv@sha256:" in out  # recursively: listings@0 came from m1.csv
    out = ok(audit).out
    assert "data.contract.set" in out and "override.allow_duplicates" in out and "re-posts are known" in out


def test_vacuum_removes_files_but_keeps_referenced_versions(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        for m in range(3):
            ws.data.ingest(clean([m + 1]), "listings", mode="overwrite")
        ws.data.split("listings@0", target="price", name="keep-me")
    out = ok(keel_cli("data", "vacuum", "listings", "--retention-hours", "0", "--reason", "space", cwd=root)).out
    assert "removed 1 file(s) of listings" in out and "referenced by lineage" in out
    assert "versions no longer readable: 1" in out
    user_error(keel_cli("data", "show", "listings@1", cwd=root), "vacuum")
    with keel.open(root) as ws:
        assert len(ws.data.read("listings@0")) == ROWS and len(ws.data.read("listings@2")) == ROWS
        assert [e.reason for e in ws.audit.list(action="data.vacuum")] == ["space"]


# -- the error convention -------------------------------------------------------------------------


def test_user_errors_are_one_line_and_debug_shows_the_traceback(built: Path) -> None:
    plain, debug = concurrently(cmd("data", "history", "nope", cwd=built),
                                cmd("--debug", "data", "history", "nope", cwd=built))
    line = user_error(plain, "nope")
    assert line.startswith("error: unknown table")
    assert debug.code == 2 and "Traceback" in debug.err and "NotFound" in debug.err
    assert debug.err_lines[-1] == line


@pytest.mark.parametrize("argv, fragment", [
    (["data", "ingest", "x.csv"], "--table"),
    (["frobnicate"], "frobnicate"),
], ids=["missing-option", "unknown-command"])
def test_usage_errors_are_user_errors(built: Path, argv: list[str], fragment: str) -> None:
    user_error(keel_cli(*argv, cwd=built), fragment)


def test_group_without_arguments_shows_help_without_an_internal_error(built: Path) -> None:
    run = keel_cli("data", cwd=built)
    assert "ingest" in run.out + run.err
    assert "internal error" not in run.err and run.code in (0, 2)


def test_reading_commands_exit_cleanly(built: Path) -> None:
    """deltalake can abort the interpreter at teardown after a successful read (delta-io/delta-rs#2184):
    "terminate called without an active exception", exit 134. The command's exit code must win."""
    show = partial(keel_cli, "data", "show", "listings", "-n", "1", "--format", "json", cwd=built)
    runs = concurrently(*([show] * 4))
    assert [r.code for r in runs] == [0] * 4, [r.err for r in runs if r.code]


def strict_json(text: str) -> object:
    """RFC 8259 JSON: NaN and Infinity are not JSON (jq, browsers and most parsers reject them)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_show_json_is_strict_json_with_nan(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        ws.data.ingest(pa.table({"id": [1, 2, 3], "x": pa.array([1.0, float("nan"), None], pa.float64())}), "nans")
    rows = strict_json(ok(keel_cli("data", "show", "nans", "--format", "json", cwd=root)).out)
    assert [r["id"] for r in rows] == [1, 2, 3] and rows[0]["x"] == 1.0 and rows[2]["x"] is None
