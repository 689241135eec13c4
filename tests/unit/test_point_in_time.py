"""Point-in-time joins against a brute-force reference (issue 5): generated event tables with duplicates,
equal timestamps, late and null created_timestamps and ttl boundaries; zero mismatches, nothing from the future.

The reference is deliberately naive: for each entity row, scan every event row.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keel
from keel.features.model import Entity, Feature, FeatureView
from keel.features.pit import ViewInput, one_row_per_instant, point_in_time_join

T0 = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(hours=1)  # the grid every timestamp sits on (entity rows: give or take a microsecond)
SLOTS = 48  # two days
US = timedelta(microseconds=1)
TS = pa.timestamp("us", tz="UTC")
FEATURES = ["value", "count", "seen_at"]  # seen_at is the event's own timestamp: where each value came from


@dataclass(frozen=True)
class Scenario:
    keys: list[str]
    events: list[dict[str, Any]]  # in table order
    entities: list[dict[str, Any]]
    with_created: bool
    ttl: timedelta | None

    def event_table(self) -> pa.Table:
        columns = [*self.keys, "ts", *(["created"] if self.with_created else []), *FEATURES]
        return pa.table({c: pa.array([r[c] for r in self.events], _type(c)) for c in columns})

    def entity_table(self) -> pa.Table:
        columns = [*self.keys, "event_timestamp", "row"]
        return pa.table({c: pa.array([r[c] for r in self.entities], _type(c)) for c in columns})


def _type(column: str) -> pa.DataType:
    return {"ts": TS, "created": TS, "seen_at": TS, "event_timestamp": TS, "value": pa.float64()}.get(
        column, pa.int64())


@st.composite
def scenarios(draw: st.DrawFn, min_events: int = 0) -> Scenario:
    keys = ["k1", "k2"] if draw(st.booleans()) else ["k1"]
    with_created = draw(st.booleans())
    events = []
    for _ in range(draw(st.integers(min_events, 30))):
        ts = None if draw(st.integers(0, 14)) == 0 else T0 + draw(st.integers(0, SLOTS - 1)) * STEP
        row = {"k1": draw(st.integers(0, 3)), "k2": draw(st.integers(0, 1)), "ts": ts, "seen_at": ts,
               "value": draw(st.one_of(st.none(), st.integers(-3, 50).map(lambda v: v / 4))),
               "count": draw(st.one_of(st.none(), st.integers(0, 9)))}
        if with_created:  # null, at the event time, or later (often equal to another row's)
            late = draw(st.one_of(st.none(), st.integers(0, 3)))
            row["created"] = None if late is None or ts is None else ts + late * STEP
        events.append(row)
    if events:  # exact duplicates, anywhere in the table
        copies = draw(st.lists(st.integers(0, len(events) - 1), max_size=10))
        events = draw(st.permutations([*events, *(dict(events[i]) for i in copies)]))
    entities = []
    for i in range(draw(st.integers(0, 30))):
        slot = draw(st.integers(0, SLOTS + 4))
        jitter = draw(st.sampled_from([0, 0, 0, 0, 1, -1])) * US
        entities.append({"k1": draw(st.integers(0, 5)), "k2": draw(st.integers(0, 2)), "row": i,
                         "event_timestamp": T0 + slot * STEP + jitter})
    ttl = draw(st.one_of(st.none(), st.integers(1, 8).map(lambda n: n * STEP)))
    return Scenario(keys, events, entities, with_created, ttl)


def reference(s: Scenario) -> list[dict[str, Any]]:
    """Per entity row: the event row with the same keys, event_ts <= its ts, greatest by (event_ts,
    created_ts with nulls lowest, position); its features if within ttl (inclusive), else nulls."""
    out = []
    for entity in s.entities:
        at = entity["event_timestamp"]
        best, best_rank = None, None
        for position, event in enumerate(s.events):
            if event["ts"] is None or event["ts"] > at or any(event[k] != entity[k] for k in s.keys):
                continue
            created = event.get("created")
            rank = (event["ts"], (created is not None, created or T0), position)
            if best_rank is None or rank > best_rank:
                best, best_rank = event, rank
        fresh = best is not None and (s.ttl is None or best["ts"] >= at - s.ttl)
        out.append({f: best[f] if fresh else None for f in FEATURES})
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def check(s: Scenario, result: pa.Table) -> None:
    expected = reference(s)
    rows = result.to_pylist()
    assert len(rows) == len(s.entities), "one output row per entity row"
    entity_columns = [*s.keys, "event_timestamp", "row"]
    assert [{c: r[c] for c in entity_columns} for r in rows] == \
        [{c: r[c] for c in entity_columns} for r in s.entities], "entity rows in their original order"
    mismatches = [(i, {f: row[f] for f in FEATURES}, want) for i, (row, want) in enumerate(zip(rows, expected,
                                                                                              strict=True))
                  if not all(_same(row[f], want[f]) for f in FEATURES)]
    assert not mismatches, f"{len(mismatches)} mismatches (row, got, expected): {mismatches[:5]}"
    for row in rows:  # nothing from the future, and nothing older than the ttl
        if row["seen_at"] is not None:
            assert row["seen_at"] <= row["event_timestamp"]
            assert s.ttl is None or row["seen_at"] >= row["event_timestamp"] - s.ttl


def pure_join(s: Scenario) -> pa.Table:
    reduced = one_row_per_instant(s.event_table(), s.keys, "ts", "created" if s.with_created else None)
    return point_in_time_join(s.entity_table(), "event_timestamp",
                              [ViewInput("v", reduced, s.keys, "ts", FEATURES, ttl=s.ttl)])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_point_in_time_join_matches_the_brute_force_reference(s: Scenario) -> None:
    check(s, pure_join(s))


def test_reference_semantics_on_a_hand_written_case() -> None:
    """The reference itself, on a case small enough to check by eye (so the property compares to the truth)."""
    h = lambda n: T0 + n * STEP  # noqa: E731
    events = [  # key 1: two rows at h(2), the later created wins; key 1 at h(5) has a null created
        {"k1": 1, "k2": 0, "ts": h(2), "created": h(2), "value": 1.0, "count": 1, "seen_at": h(2)},
        {"k1": 1, "k2": 0, "ts": h(2), "created": h(3), "value": 2.0, "count": 2, "seen_at": h(2)},
        {"k1": 1, "k2": 0, "ts": h(2), "created": None, "value": 3.0, "count": 3, "seen_at": h(2)},
        {"k1": 1, "k2": 0, "ts": h(5), "created": None, "value": 4.0, "count": 4, "seen_at": h(5)},
        {"k1": 1, "k2": 0, "ts": h(5), "created": None, "value": 5.0, "count": 5, "seen_at": h(5)},
        {"k1": 2, "k2": 0, "ts": None, "created": None, "value": 6.0, "count": 6, "seen_at": None},
    ]
    entities = [{"k1": 1, "k2": 0, "event_timestamp": t, "row": i}
                for i, t in enumerate([h(1), h(2), h(4), h(4) + US, h(5) - US, h(5), h(9)])]
    entities.append({"k1": 2, "k2": 0, "event_timestamp": h(9), "row": 7})
    s = Scenario(["k1"], events, entities, True, 2 * STEP)
    assert [r["value"] for r in reference(s)] == [None, 2.0, 2.0, None, None, 5.0, None, None]
    check(s, pure_join(s))


_TZ_PROBE = """
import datetime as dt
import pyarrow as pa
from keel.features.pit import ViewInput, one_row_per_instant, point_in_time_join
T = pa.timestamp("us", tz="UTC")
t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
events = pa.table({"k": [1], "ts": pa.array([t0], T), "seen_at": pa.array([t0], T)})
entities = pa.table({"k": [1], "event_timestamp": pa.array([t0], T)})
view = ViewInput("v", one_row_per_instant(events, ["k"], "ts"), ["k"], "ts", ["seen_at"])
out = point_in_time_join(entities, "event_timestamp", [view])
print(out.schema.field("event_timestamp").type.tz, out.schema.field("seen_at").type.tz)
"""


def test_join_timestamps_are_utc_whatever_the_local_time_zone() -> None:
    done = subprocess.run([sys.executable, "-c", _TZ_PROBE], env={**os.environ, "TZ": "America/New_York"},
                          capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["UTC", "UTC"]


# -- end to end: ingest, apply, training_set ----------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[keel.Workspace]:
    with pytest.MonkeyPatch.context() as env:  # like conftest's _isolated_env, for the whole module
        for name in [n for n in os.environ if n.startswith("KEEL_") and not n.startswith("KEEL_TEST_")]:
            env.delenv(name)
        ws = keel.init(Path(tmp_path_factory.mktemp("pit")) / "ws")
        yield ws
        ws.close()


_names = itertools.count()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(min_events=1))
def test_training_set_matches_the_brute_force_reference(workspace: keel.Workspace, s: Scenario) -> None:
    n = next(_names)
    entity = Entity("pair" if s.keys == ["k1", "k2"] else "single", list(s.keys))
    view = FeatureView(f"v{n}", [entity], source=f"events{n}", timestamp="ts",
                       created_timestamp="created" if s.with_created else None, ttl=s.ttl,
                       features=[Feature("value", "float64"), Feature("count", "int64"),
                                 Feature("seen_at", "timestamp")])
    workspace.data.ingest(s.event_table(), f"events{n}")
    workspace.features.apply([entity, view])
    result = workspace.features.training_set(s.entity_table(), [f"v{n}:{f}" for f in FEATURES], store=False)
    check(s, result.to_arrow())
