"""Benchmark for issue 2, "Foundation and versioned data": keel tables against deltalake and Parquet.

Measured side by side in one run, on the same data, in keel's own venv (deltalake and pyarrow are keel's
dependencies, so the peers are exactly the versions keel uses):

1. large write   1,000,000 rows x 20 columns, in-memory Arrow -> keel ``ws.data.ingest`` (fresh workspace)
                 vs ``deltalake.write_deltalake`` vs ``pyarrow.parquet.write_table``; also from a Parquet
                 file path (keel ingests the path; the deltalake peer is read_table + write_deltalake)
2. small appends 200 commits of 1,000 rows to one table (ms per commit: mean, p50, p95); deltalake both
                 as ``write_deltalake(path, ...)`` and through a kept DeltaTable (keel's floor)
3. read latest   the 200-commit table and the 1M-row table
4. time travel   version 0 of the 200-commit table

Targets (issue 2): keel's overhead over deltalake at most 1.2x on the large write, and at most 20 ms per
commit on the small appends (keel's mean minus deltalake's mean through a kept DeltaTable, the strictest
floor). A missed target is printed as FAIL; the exit code is 0 either way (this is a measurement).

    .venv/bin/python benchmarks/tables.py                      # full size (about a minute on 2 cores)
    .venv/bin/python benchmarks/tables.py --rows 20000 --appends 20   # smoke check
    .venv/bin/python benchmarks/tables.py --profile            # where keel's append, read and write time goes
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keel
from _common import (
    RESULTS_DIR,
    Timing,
    keel_dependency_versions,
    machine_info,
    summarize,
    time_call,
    write_results,
)
from _profiling import Breakdown, report_profile

LARGE_WRITE_TARGET = 1.2  # keel / deltalake, in-memory Arrow
APPEND_TARGET_MS = 20.0  # keel's mean minus deltalake's (kept DeltaTable) mean, per commit
BATCH_ROWS = 1_000


# -- data --------------------------------------------------------------------------------------------

def make_table(rows: int, seed: int = 42, first_id: int = 0) -> pa.Table:
    """A realistic 20-column table: ints, floats (some nulls), low/medium-cardinality strings, a bool, UTC time."""
    rng = np.random.default_rng(seed)

    def strings(prefix: str, cardinality: int) -> pa.Array:
        vocab = pa.array([f"{prefix}_{i:06d}" for i in range(cardinality)], pa.string())
        return vocab.take(pa.array(rng.integers(0, cardinality, rows)))

    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    year_us = 365 * 24 * 3600 * 1_000_000
    discount = rng.uniform(0, 0.5, rows)
    return pa.table({
        "id": pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
        "user_id": pa.array(rng.integers(0, 200_000, rows, dtype=np.int64)),
        "item_id": pa.array(rng.integers(0, 1_000_000, rows, dtype=np.int64)),
        "quantity": pa.array(rng.integers(1, 20, rows, dtype=np.int32)),
        "age": pa.array(rng.integers(18, 90, rows, dtype=np.int32)),
        "clicks": pa.array(rng.poisson(3.0, rows).astype(np.int64)),
        "price": pa.array(np.round(rng.lognormal(3.5, 0.8, rows), 2)),
        "discount": pa.array(discount, mask=rng.random(rows) < 0.05),
        "rating": pa.array(rng.uniform(1, 5, rows).astype(np.float32)),
        "latitude": pa.array(rng.uniform(-60, 70, rows)),
        "longitude": pa.array(rng.uniform(-180, 180, rows)),
        "weight_kg": pa.array(np.abs(rng.normal(2.0, 1.5, rows))),
        "country": strings("country", 25),
        "category": strings("category", 12),
        "device": strings("device", 4),
        "city": strings("city", 2_000),
        "merchant": strings("merchant", 20_000),
        "sku": strings("sku", 50_000),
        "is_return": pa.array(rng.random(rows) < 0.08),
        "event_time": pa.array(start + np.sort(rng.integers(0, year_us, rows)), pa.timestamp("us", tz="UTC")),
    })


# -- helpers -----------------------------------------------------------------------------------------

class Workdir:
    """Fresh folders under one temporary root, removed at the end."""

    def __init__(self, base: str | None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="keel-bench-tables-", dir=base))
        self._n = 0

    def new(self, label: str) -> Path:
        self._n += 1
        return self.root / f"{self._n:03d}-{label}"

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    seconds, _ = time_call(fn)
    return seconds


def repeat(fn: Callable[[], Any], n: int) -> Timing:
    return summarize([timed(fn) for _ in range(n)])


def rows_of(table: pa.Table, expected: int, what: str) -> None:
    if table.num_rows != expected:
        raise AssertionError(f"{what}: read {table.num_rows} rows, expected {expected}")


def warm_up(work: Workdir) -> None:
    """Load every code path once so imports and first-call costs stay out of the timings."""
    data = make_table(2_000, seed=7)
    ws = keel.init(work.new("warm-keel"))
    ws.data.ingest(data, "warm")
    ws.data.ingest(data, "warm", mode="append")
    ws.data.read_arrow("warm")
    ws.data.read_arrow("warm@0")
    ws.close()
    path = work.new("warm-delta")
    write_deltalake(path, data)
    write_deltalake(path, data, mode="append")
    DeltaTable(path).to_pyarrow_table()
    DeltaTable(path, version=0).to_pyarrow_table()
    folder = work.new("warm-parquet")
    folder.mkdir()
    pq.write_table(data, folder / "a.parquet")
    pq.read_table(folder)


# -- the four measurements -----------------------------------------------------------------------------

def bench_large_write(big: pa.Table, work: Workdir, repeats: int) -> tuple[dict[str, Timing], dict[str, Any]]:
    """Each repeat writes to fresh folders, the tools interleaved; the last repeat's outputs are kept for reads."""
    source = work.new("source.parquet")
    pq.write_table(big, source)
    samples: dict[str, list[float]] = {k: [] for k in ("keel", "deltalake", "parquet", "keel_file", "deltalake_file")}
    kept: dict[str, Any] = {}
    for r in range(repeats):
        last = r == repeats - 1
        ws = keel.init(work.new("big-keel"))
        samples["keel"].append(timed(lambda ws=ws: ws.data.ingest(big, "big")))
        delta = work.new("big-delta")
        samples["deltalake"].append(timed(lambda d=delta: write_deltalake(d, big)))
        target = work.new("big.parquet")
        samples["parquet"].append(timed(lambda t=target: pq.write_table(big, t)))
        ws_file = keel.init(work.new("big-keel-file"))
        samples["keel_file"].append(timed(lambda w=ws_file: w.data.ingest(source, "big")))
        delta_file = work.new("big-delta-file")
        samples["deltalake_file"].append(timed(lambda d=delta_file: write_deltalake(d, pq.read_table(source))))
        ws_file.close()
        shutil.rmtree(ws_file.root, ignore_errors=True)
        shutil.rmtree(delta_file, ignore_errors=True)
        if last:
            kept = {"ws": ws, "delta": delta, "parquet": target}
        else:
            ws.close()
            shutil.rmtree(ws.root, ignore_errors=True)
            shutil.rmtree(delta, ignore_errors=True)
            target.unlink()
    return {k: summarize(v) for k, v in samples.items()}, kept


def bench_appends(batches: list[pa.Table], work: Workdir) -> tuple[dict[str, Timing], dict[str, Any]]:
    """One commit per batch, the tools interleaved batch by batch.

    ``deltalake_handle`` is keel's floor: deltalake writing through a DeltaTable kept open between
    commits, as keel's TableStore does (``write_deltalake(path, ...)`` reloads the table every time).
    """
    ws = keel.init(work.new("small-keel"))
    delta = work.new("small-delta")
    delta_kept = work.new("small-delta-kept")
    folder = work.new("small-parquet")
    folder.mkdir()
    handle: list[DeltaTable] = []

    def kept(batch: pa.Table) -> None:
        if handle:
            write_deltalake(handle[0], batch, mode="append")
        else:
            write_deltalake(delta_kept, batch, mode="append")
            handle.append(DeltaTable(delta_kept))

    samples: dict[str, list[float]] = {"keel": [], "deltalake": [], "deltalake_handle": [], "parquet": []}
    gc.collect()
    for i, batch in enumerate(batches):
        part = folder / f"part-{i:05d}.parquet"
        samples["keel"].append(time_call(lambda b=batch: ws.data.ingest(b, "small", mode="append"))[0])
        samples["deltalake"].append(time_call(lambda b=batch: write_deltalake(delta, b, mode="append"))[0])
        samples["deltalake_handle"].append(time_call(lambda b=batch: kept(b))[0])
        samples["parquet"].append(time_call(lambda b=batch, p=part: pq.write_table(b, p))[0])
    return {k: summarize(v) for k, v in samples.items()}, {"ws": ws, "delta": delta, "parquet": folder}


def bench_reads(small: dict[str, Any], big: dict[str, Any], n_small: int, n_big: int, repeats: int
                ) -> dict[str, dict[str, Timing | None]]:
    def check(fn: Callable[[], pa.Table], expected: int, what: str) -> Callable[[], pa.Table]:
        rows_of(fn(), expected, what)  # correctness once, outside the timings
        return fn

    out: dict[str, dict[str, Timing | None]] = {}
    out["read_latest_small"] = {
        "keel": repeat(check(lambda: small["ws"].data.read_arrow("small"), n_small, "keel small"), repeats),
        "deltalake": repeat(check(lambda: DeltaTable(small["delta"]).to_pyarrow_table(), n_small, "delta small"),
                            repeats),
        "parquet": repeat(check(lambda: pq.read_table(small["parquet"]), n_small, "parquet small"), repeats),
    }
    out["time_travel_v0"] = {
        "keel": repeat(check(lambda: small["ws"].data.read_arrow("small@0"), BATCH_ROWS, "keel @0"), repeats),
        "deltalake": repeat(check(lambda: DeltaTable(small["delta"], version=0).to_pyarrow_table(), BATCH_ROWS,
                                  "delta @0"), repeats),
        "parquet": None,
    }
    out["read_latest_big"] = {
        "keel": repeat(check(lambda: big["ws"].data.read_arrow("big"), n_big, "keel big"), repeats),
        "deltalake": repeat(check(lambda: DeltaTable(big["delta"]).to_pyarrow_table(), n_big, "delta big"), repeats),
        "parquet": repeat(check(lambda: pq.read_table(big["parquet"]), n_big, "parquet big"), repeats),
    }
    return out


# -- report ------------------------------------------------------------------------------------------

def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def build_rows(large: dict[str, Timing], appends: dict[str, Timing], reads: dict[str, dict[str, Timing | None]],
               rows: int, n_appends: int, repeats: int, read_repeats: int) -> list[tuple[str, float | None, ...]]:
    def stat(t: Timing | None, key: str = "median") -> float | None:
        return None if t is None else t[key]

    big = f"{rows:,} x 20"
    out = [
        (f"large write {big}, Arrow in memory (median of {repeats})",
         stat(large["keel"]), stat(large["deltalake"]), stat(large["parquet"])),
        (f"large write {big}, from a Parquet file (median of {repeats})¹",
         stat(large["keel_file"]), stat(large["deltalake_file"]), None),
    ]
    for key, label in (("mean", "mean"), ("p50", "p50"), ("p95", "p95")):
        out.append((f"append {BATCH_ROWS:,} rows, per commit, {label} (n={n_appends})²",
                    stat(appends["keel"], key), stat(appends["deltalake"], key), stat(appends["parquet"], key)))
    out.append((f"{n_appends} appends, total", stat(appends["keel"], "total"), stat(appends["deltalake"], "total"),
                stat(appends["parquet"], "total")))
    labels = {
        "read_latest_small": f"read latest after {n_appends} appends ({n_appends * BATCH_ROWS:,} rows)",
        "time_travel_v0": f"time travel to version 0 after {n_appends} commits",
        "read_latest_big": f"read latest, {big}",
    }
    for key, label in labels.items():
        r = reads[key]
        out.append((f"{label} (median of {read_repeats})", stat(r["keel"]), stat(r["deltalake"]), stat(r["parquet"])))
    return out


def print_report(table_rows: list[tuple], verdicts: list[tuple[str, bool, str]], machine: str,
                 notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))
    table = Table(title=f"keel tables benchmark — {machine}", title_justify="left")
    table.add_column("operation")
    for name in ("keel", "deltalake", "pyarrow.parquet", "keel/deltalake"):
        table.add_column(name, justify="right")
    for label, k, d, p in table_rows:
        table.add_row(label, fmt(k), fmt(d), fmt(p), ratio(k, d))
    console.print(table)
    console.print("¹ from a file: keel ingests the path; the deltalake column is pq.read_table + write_deltalake.")
    for note in notes:
        console.print(note, highlight=False)
    for name, ok, detail in verdicts:
        console.print(f"[{'green' if ok else 'red'}]{'PASS' if ok else 'FAIL'}[/] {name}: {detail}",
                      highlight=False)


def run(args: argparse.Namespace) -> int:
    info = machine_info()
    machine = f"{info['cpu_count']} cores, Python {info['python']}"
    load = info["load_average_1m"]
    if load is not None and load > (info["cpu_count"] or 1) / 2:
        print(f"warning: 1-minute load average is {load:.1f} on {info['cpu_count']} cores; other work will "
              "inflate and scatter the timings", flush=True)
    work = Workdir(args.workdir)
    try:
        print(f"generating {args.rows:,} x 20 rows and {args.appends} batches of {BATCH_ROWS:,} ...", flush=True)
        big = make_table(args.rows, seed=42)
        small = make_table(args.appends * BATCH_ROWS, seed=43)
        batches = [small.slice(i * BATCH_ROWS, BATCH_ROWS) for i in range(args.appends)]
        warm_up(work)
        print(f"large write x{args.repeats} ...", flush=True)
        large, big_out = bench_large_write(big, work, args.repeats)
        print(f"{args.appends} appends ...", flush=True)
        appends, small_out = bench_appends(batches, work)
        print("reads ...", flush=True)
        reads = bench_reads(small_out, big_out, args.appends * BATCH_ROWS, args.rows, args.read_repeats)
        small_out["ws"].close()
        big_out["ws"].close()
    finally:
        work.cleanup()

    write_ratio = large["keel"]["median"] / large["deltalake"]["median"]
    append_ms = appends["keel"]["mean"] * 1000
    append_overhead_ms = (appends["keel"]["mean"] - appends["deltalake_handle"]["mean"]) * 1000
    verdicts = [
        ("large write", write_ratio <= LARGE_WRITE_TARGET,
         f"keel/deltalake = {write_ratio:.2f}x (target ≤ {LARGE_WRITE_TARGET}x, median of {args.repeats})"),
        ("small append", append_overhead_ms <= APPEND_TARGET_MS,
         f"keel adds {append_overhead_ms:.1f} ms per commit to deltalake's kept-open mean (target ≤ "
         f"{APPEND_TARGET_MS:.0f} ms); keel {append_ms:.1f} ms mean, p50 {appends['keel']['p50'] * 1000:.1f}, "
         f"p95 {appends['keel']['p95'] * 1000:.1f}"),
    ]
    table_rows = build_rows(large, appends, reads, args.rows, args.appends, args.repeats, args.read_repeats)
    floor = appends["deltalake_handle"]
    notes = [f"² keel's floor, deltalake writing through a DeltaTable kept open (as keel does): "
             f"{floor['mean'] * 1000:.1f} ms per commit mean, p50 {floor['p50'] * 1000:.1f}, "
             f"p95 {floor['p95'] * 1000:.1f}; keel adds {(appends['keel']['mean'] - floor['mean']) * 1000:.1f} ms "
             f"per commit to it"]
    print_report(table_rows, verdicts, machine, notes)

    k = appends["keel"]["samples"]
    window = max(1, min(20, len(k) // 4))
    trend = {tool: {"first_mean_ms": 1000 * sum(t["samples"][:window]) / window,
                    "last_mean_ms": 1000 * sum(t["samples"][-window:]) / window, "window": window}
             for tool, t in appends.items()}
    print(f"append trend (mean of first/last {window} commits): " + "; ".join(
        f"{tool} {v['first_mean_ms']:.1f} → {v['last_mean_ms']:.1f} ms" for tool, v in trend.items()))
    end_load = machine_info()["load_average_1m"]
    path = write_results("tables", {
        "params": {"rows": args.rows, "columns": 20, "appends": args.appends, "batch_rows": BATCH_ROWS,
                   "large_write_repeats": args.repeats, "read_repeats": args.read_repeats},
        "versions": keel_dependency_versions(),
        "targets": {"large_write_ratio_max": LARGE_WRITE_TARGET, "append_overhead_ms_max": APPEND_TARGET_MS,
                    "large_write_ratio": write_ratio, "append_ms_mean": append_ms,
                    "append_overhead_ms": append_overhead_ms,
                    "large_write_pass": verdicts[0][1], "append_pass": verdicts[1][1]},
        "table": [{"operation": r[0], "keel_s": r[1], "deltalake_s": r[2], "parquet_s": r[3],
                   "keel_over_deltalake": None if r[1] is None or not r[2] else r[1] / r[2]} for r in table_rows],
        "large_write": large, "appends": appends, "append_trend": trend, "reads": reads,
        "load_average_1m_at_end": end_load,
    }, machine=info)
    print(f"results: {path}")
    return 0


# -- profiling ----------------------------------------------------------------------------------------

# Peer entry points timed alongside keel's own functions by --profile's breakdown.


def profile(args: argparse.Namespace) -> int:
    """Where keel's time goes: a wall-clock breakdown, then cProfile (files in benchmarks/results/).

    Appends: ``--appends`` commits of 1,000 rows to one table; the breakdown reports the last quarter
    (the per-commit cost grows with the table's history), then reads of that table (version 0 and
    latest). Large write: ``--rows`` rows, once.
    """
    work = Workdir(args.workdir)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    small = make_table(args.appends * BATCH_ROWS, seed=43)
    batches = [small.slice(i * BATCH_ROWS, BATCH_ROWS) for i in range(args.appends)]
    big = make_table(args.rows, seed=42)
    tail = max(1, args.appends // 4)
    found: dict[str, Any] = {"machine": machine_info()}
    try:
        warm_up(work)
        timer = Breakdown()
        timer.install()
        try:
            ws = keel.init(work.new("breakdown-small"))
            for batch in batches[:-tail]:
                ws.data.ingest(batch, "small", mode="append")
            timer.reset()
            for batch in batches[-tail:]:
                ws.data.ingest(batch, "small", mode="append")
            found["append_breakdown"] = timer.report(
                f"keel append, commits {args.appends - tail + 1}..{args.appends}", tail)
            for _ in range(20):
                ws.data.read_arrow("small@0")
            found["time_travel_breakdown"] = timer.report(f"keel read small@0 after {args.appends} commits", 20)
            for _ in range(5):
                ws.data.read_arrow("small")
            found["read_latest_breakdown"] = timer.report(f"keel read latest after {args.appends} commits", 5)
            ws.close()
            ws = keel.init(work.new("breakdown-big"))
            gc.collect()
            timer.reset()
            ws.data.ingest(big, "big")
            found["large_write_breakdown"] = timer.report(f"keel large write, {args.rows:,} rows", 1)
            ws.close()
        finally:
            timer.uninstall()

        ws = keel.init(work.new("prof-small"))
        for batch in batches[:-tail]:
            ws.data.ingest(batch, "small", mode="append")
        prof = cProfile.Profile()
        prof.enable()
        for batch in batches[-tail:]:
            ws.data.ingest(batch, "small", mode="append")
        prof.disable()
        ws.close()
        report_profile(prof, "append", tail, RESULTS_DIR / "tables-append.prof")

        ws = keel.init(work.new("prof-big"))
        gc.collect()
        prof = cProfile.Profile()
        prof.enable()
        ws.data.ingest(big, "big")
        prof.disable()
        ws.close()
        report_profile(prof, "large write", 1, RESULTS_DIR / "tables-large-write.prof")
    finally:
        work.cleanup()
    path = RESULTS_DIR / "tables-profile.json"
    path.write_text(json.dumps(found, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nbreakdown: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large write (default 1,000,000)")
    parser.add_argument("--appends", type=int, default=200, help="number of 1,000-row appends (default 200)")
    parser.add_argument("--repeats", type=int, default=5, help="large-write repeats, median reported (default 5)")
    parser.add_argument("--read-repeats", type=int, default=5, help="repeats of each read (default 5)")
    parser.add_argument("--workdir", default=None, help="where temporary tables go (default: the system temp dir)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the benchmark, break down where keel's append and large-write time goes")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.appends < 1 or args.repeats < 1 or args.read_repeats < 1:
        parser.error("--rows, --appends, --repeats and --read-repeats must be positive")
    return profile(args) if args.profile else run(args)


if __name__ == "__main__":
    sys.exit(main())
