"""Benchmark for issue 5, "Feature store": the two shapes from Feast's complaints, and apply time.

1. apply       ``ws.features.apply`` of 100 views (10 features each, over one source table) into a fresh
               workspace, then the same 100 again unchanged (nothing stored), then all 100 changed (100 new
               versions). Target (issue 5): under 5 seconds. Feast's users report minutes for ``feast apply``;
               Feast is not run here (its apply is measured nowhere else in this repository either).
2. wide        the shape of Feast's issue: 17,000 entity rows x 1,000 features (10 views x 100 float64
               features, each view 100,000 rows over 2,000 ids), point-in-time with a ttl: seconds, stored
               as a training set (a Delta table version). Feast's report: 30 minutes and 50 GB. First call
               (the views' rows prepared) and a second call (prepared rows kept) are both printed.
3. streamed    a stored training set of ``--stream-rows`` (2,000,000) entity rows x 10 features, written a
               chunk of 250,000 rows at a time: seconds and the process's peak RSS growth during the call,
               against the size of the result in memory (Arrow), to show the write holds a chunk, not the set.

    .venv/bin/python benchmarks/features_scale.py                   # about 2 minutes
    .venv/bin/python benchmarks/features_scale.py --stream-rows 300000 --wide-entities 2000

Results: benchmarks/results/features_scale.json. The exit code is 0 whatever the figures (a measurement).
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import pandas as pd
import pyarrow as pa

import keel
from _common import fresh_dir, machine_info, write_results
from keel import Entity, Feature, FeatureView

APPLY_TARGET_S = 5.0
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def clocked(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def events(rows: int, ids: int, features: int, seed: int, prefix: str = "f") -> pa.Table:
    rng = np.random.default_rng(seed)
    at = T0.value // 1000 + rng.integers(0, 60 * 86_400_000_000, rows)
    columns: dict[str, Any] = {"driver_id": rng.integers(0, ids, rows),
                               "event_ts": pa.array(at, pa.timestamp("us", tz="UTC"))}
    columns.update({f"{prefix}{i}": rng.random(rows) for i in range(features)})
    return pa.table(columns)


def entity_rows(rows: int, ids: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    at = T0.value // 1000 + rng.integers(0, 60 * 86_400_000_000, rows)
    return pa.table({"driver_id": rng.integers(0, ids, rows),
                     "event_timestamp": pa.array(at, pa.timestamp("us", tz="UTC")), "label": rng.random(rows)})


def bench_apply(work: Path) -> dict[str, Any]:
    ws = keel.init(work / "apply")
    ws.data.ingest(events(1000, 100, 10, 0), "driver_stats", time_column="event_ts")
    driver = Entity("driver", ["driver_id"])

    def views(ttl_days: int) -> list[Any]:
        return [driver, *(FeatureView(f"view_{i:03d}", [driver], "driver_stats", "event_ts",
                                      [Feature(f"f{j}", "float64", f"feature {j}") for j in range(10)],
                                      ttl=timedelta(days=ttl_days), owner="bench") for i in range(100))]

    first, plan = clocked(lambda: ws.features.apply(views(7)))
    assert len(plan.added) == 100 and plan.applied
    same, plan = clocked(lambda: ws.features.apply(views(7)))
    assert len(plan.unchanged) == 100 and not plan.applied
    changed, plan = clocked(lambda: ws.features.apply(views(8)))
    assert len(plan.changed) == 100 and set(plan.versions.values()) == {2}
    ws.close()
    return {"apply_100_new_s": first, "apply_100_unchanged_s": same, "apply_100_changed_s": changed}


def bench_wide(work: Path, entities: int) -> dict[str, Any]:
    ws = keel.init(work / "wide")
    driver = Entity("driver", ["driver_id"])
    defs: list[Any] = [driver]
    for v in range(10):
        ws.data.ingest(events(100_000, 2000, 100, v + 1, prefix=f"v{v}_f"), f"stats_{v}", time_column="event_ts")
        defs.append(FeatureView(f"stats_{v}", [driver], f"stats_{v}", "event_ts",
                                [Feature(f"v{v}_f{i}", "float64") for i in range(100)], ttl=timedelta(days=7)))
    ws.features.apply(defs)
    wanted = [f"stats_{v}:v{v}_f{i}" for v in range(10) for i in range(100)]
    rows = entity_rows(entities, 2000, 99)
    first, ts = clocked(lambda: ws.features.training_set(rows, wanted, label="label", name="wide"))
    second, ts2 = clocked(lambda: ws.features.training_set(rows, wanted, label="label", name="wide"))
    assert ts.num_rows == entities and len(ts2.to_arrow().column_names) == 3 + 1000
    filled = float(np.mean([ts2.to_arrow()[c].null_count == 0 for c in ts2.to_arrow().column_names[3:13]]))
    ws.close()
    return {"wide_entities": entities, "wide_features": 1000, "wide_first_s": first, "wide_second_s": second,
            "wide_stored_as": ts2.ref, "wide_columns_without_nulls_share": filled}


def rss() -> int:
    """This process's resident set now, in bytes (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as stat:
        return int(stat.read().split()[1]) * resource.getpagesize()


def peak_rss_growth(call: Any) -> tuple[float, float, Any]:
    """Seconds, and the peak resident set growth (MiB) while ``call`` runs, sampled every 5 ms."""
    base = rss()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        seconds, out = clocked(call)
    finally:
        done.set()
        sampler.join()
    return seconds, (peak[0] - base) / 2**20, out


def bench_stream(work: Path, rows: int) -> dict[str, Any]:
    ws = keel.init(work / "stream")
    driver = Entity("driver", ["driver_id"])
    ws.data.ingest(events(1_000_000, 10_000, 10, 7), "driver_stats", time_column="event_ts")
    ws.features.apply([driver, FeatureView("driver_stats", [driver], "driver_stats", "event_ts",
                                           [Feature(f"f{i}", "float64") for i in range(10)], ttl=timedelta(days=7))])
    wanted = [f"driver_stats:f{i}" for i in range(10)]
    small = entity_rows(1000, 10_000, 5)
    ws.features.training_set(small, wanted, label="label", store=False)  # the view's rows prepared, untimed
    entities = entity_rows(rows, 10_000, 6)
    seconds, growth, ts = peak_rss_growth(lambda: ws.features.training_set(entities, wanted, label="label",
                                                                          name="streamed"))
    size = (entities.nbytes + rows * 10 * 8) / 2**20  # the result in memory: entity columns + 10 float64
    info = ws.features.get_training_set(ts.ref)
    ws.close()
    return {"stream_rows": rows, "stream_s": seconds, "stream_peak_rss_growth_mib": growth,
            "stream_result_mib": size, "stream_stored_rows": info.rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wide-entities", type=int, default=17_000)
    parser.add_argument("--stream-rows", type=int, default=2_000_000)
    args = parser.parse_args()
    machine = machine_info()
    out: dict[str, Any] = {}
    with fresh_dir("keel-bench-features-scale-") as work:
        out.update(bench_apply(work))
        out.update(bench_wide(work, args.wide_entities))
        out.update(bench_stream(work, args.stream_rows))
    verdict = "PASS" if out["apply_100_new_s"] < APPLY_TARGET_S and out["apply_100_changed_s"] < APPLY_TARGET_S \
        else "FAIL"
    print(f"apply 100 views: new {out['apply_100_new_s']:.2f} s, unchanged {out['apply_100_unchanged_s']:.2f} s, "
          f"changed {out['apply_100_changed_s']:.2f} s  — {verdict} (< {APPLY_TARGET_S:.0f} s)")
    print(f"training set {out['wide_entities']:,} entity rows x 1,000 features (10 views): first call "
          f"{out['wide_first_s']:.2f} s, second {out['wide_second_s']:.2f} s, stored as {out['wide_stored_as']}")
    print(f"stored training set {out['stream_rows']:,} rows x 10 features in chunks of 250,000: "
          f"{out['stream_s']:.2f} s; peak RSS growth {out['stream_peak_rss_growth_mib']:.0f} MiB for a result of "
          f"{out['stream_result_mib']:.0f} MiB")
    write_results("features_scale", out, machine)


if __name__ == "__main__":
    main()
