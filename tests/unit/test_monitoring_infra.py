"""The infrastructure numbers of a window (issue 8) from synthetic heartbeats: processes, CPU, memory, uptime with
gaps counted as down, restarts, error counters, the deployment filter, and None for a window without any."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from keel.monitoring.infra import infrastructure
from keel.monitoring.kpis import service_health
from keel.serving.feedback import LOG_SCHEMA

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def beat(second: float, pid: int, *, host: str = "h1", started: float = 0.0, cpu: float = 0.0, rss: int = 100,
         requests: int = 0, errors: int = 0, every: float = 10.0, final: bool = False,
         deployments: list[str] | None = None) -> dict:
    output = {"pid": pid, "host": host, "started_at": (T0 + timedelta(seconds=started)).isoformat(),
              "cpu_seconds": cpu, "rss_bytes": rss, "requests": requests, "errors": errors, "every_s": every,
              "deployments": deployments}
    return {"at": T0 + timedelta(seconds=second), "kind": "health", "status": "stopped" if final else "ok",
            "output": json.dumps(output)}


def table(beats: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(beats, schema=LOG_SCHEMA).select(["at", "status", "output"])


def window(start: float, end: float) -> tuple[datetime, datetime]:
    return T0 + timedelta(seconds=start), T0 + timedelta(seconds=end)


def test_one_process_steady_cpu_memory_and_full_uptime() -> None:
    beats = [beat(s, 7, cpu=s * 0.25, rss=100 + s, requests=int(s) * 2, errors=int(s) // 50) for s in
             range(0, 101, 10)]
    found = infrastructure(table(beats), *window(0, 100))
    assert found is not None
    assert (found["processes"], found["heartbeats"], found["restarts"]) == (1, 11, 0)
    assert found["cpu"] == pytest.approx(0.25) and found["cpu_seconds"] == pytest.approx(25.0)
    assert found["memory"] == {"peak_bytes": 200, "last_bytes": 200}
    assert found["uptime"] == pytest.approx(1.0)
    assert (found["requests"], found["errors"]) == (200, 2) and found["error_rate"] == pytest.approx(2 / 202)


def test_a_gap_over_two_intervals_is_down_and_a_stopped_process_is_not_up_after_it() -> None:
    beats = [beat(s, 7) for s in (0, 10, 20)] + [beat(s, 7) for s in (60, 70)] + [beat(80, 7, final=True)]
    found = infrastructure(table(beats), *window(0, 100))
    assert found is not None
    assert found["up_seconds"] == pytest.approx(20 + 20) and found["uptime"] == pytest.approx(0.4)
    alive = infrastructure(table(beats[:-1]), *window(0, 100))  # no final row: up one interval past the last
    assert alive is not None and alive["up_seconds"] == pytest.approx(20 + 10 + 10)


def test_two_workers_overlap_sum_their_cpu_and_a_replacement_is_a_restart() -> None:
    a = [beat(s, 1, cpu=s * 0.5, rss=300) for s in range(0, 101, 10)]
    b = [beat(s, 2, cpu=s * 0.25, rss=500) for s in range(0, 41, 10)]  # killed after 40 s
    c = [beat(s, 3, started=55, cpu=s * 0.25, rss=400) for s in range(60, 101, 10)]  # its replacement
    other_host = [beat(s, 4, host="h2", started=50, rss=50) for s in range(50, 101, 10)]  # a new host: no restart
    found = infrastructure(table(a + b + c + other_host), *window(0, 100))
    assert found is not None
    assert (found["processes"], found["restarts"]) == (4, 1)
    assert found["cpu"] == pytest.approx(0.5 + 0.25 + 0.25 + 0.0)
    assert found["memory"] == {"peak_bytes": 500, "last_bytes": 300 + 500 + 400 + 50}
    assert found["uptime"] == pytest.approx(1.0)


def test_heartbeats_before_the_window_cover_its_start_and_only_the_deployments_processes_count() -> None:
    beats = [beat(s, 1, deployments=["price"]) for s in range(-30, 31, 10)]
    beats += [beat(s, 2, deployments=["other"], rss=9999) for s in range(-30, 31, 10)]
    found = infrastructure(table(beats), *window(5, 30), deployment="price")
    assert found is not None and found["processes"] == 1 and found["memory"]["peak_bytes"] == 100
    assert found["uptime"] == pytest.approx(1.0)
    assert infrastructure(table(beats), *window(5, 30), deployment="nobody") is None


def test_a_window_without_heartbeats_is_none_and_service_health_carries_it() -> None:
    beats = [beat(s, 1) for s in range(100, 131, 10)]
    assert infrastructure(table(beats), *window(0, 50)) is None
    assert infrastructure(table([]), *window(0, 50)) is None
    empty = LOG_SCHEMA.empty_table()
    assert service_health(empty, *window(0, 50), table(beats))["infrastructure"] is None
    assert service_health(empty, *window(100, 130), table(beats))["infrastructure"]["processes"] == 1
    assert "infrastructure" not in service_health(empty, *window(0, 50))  # not asked: not there
