"""``keel monitor`` as a subprocess (issue 8): create (options and a YAML config), list, show, run, reports,
report and delete on a workspace whose deployment has served predictions; bad input exits 2 with one ``error:``
line and stores nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import Run, concurrently, keel_cli, ok, user_error
from test_monitoring import serve

import keel
from gates_helpers import register, toy_frame, toy_world


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """toy/1 deployed as ``price``, 300 predictions in its log; a developer ``dev``."""
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        ws.users.add("dev", "developer")
        register(ws, toy_world(ws, 600))
        ws.deployments.create("price", "toy/1")
        serve(ws, toy_frame(300, seed=3), tmp_path / "log")
    return root


def monitor(*args: object, cwd: Path) -> Run:
    return keel_cli("-w", cwd / "ws", "monitor", *args, cwd=cwd, env={"KEEL_USER": "dev"})


def test_each_command(built: Path) -> None:
    here = built.parent
    config = here / "monitor.yaml"
    config.write_text("window: 2h\nslices: [cat]\nthresholds: {x2: 0.2}\n", encoding="utf-8")
    made = json.loads(ok(monitor("create", "drift", "--deployment", "price", "--config", str(config),
                                 "--reason", "watch it", "--format", "json", cwd=here)).out)
    assert (made["deployment"], made["window"], made["slices"], made["thresholds"]) == ("price", "2h", ["cat"],
                                                                                        {"x2": 0.2})
    ran = ok(monitor("run", "drift", cwd=here))
    assert ran.out.startswith("monitor_report:drift/1: no drift — 300 rows") and "x1" in ran.out
    assert "by cat" in ran.out
    listed, shown, reports, report = concurrently(
        lambda: monitor("list", "--format", "json", cwd=here), lambda: monitor("show", "drift", cwd=here),
        lambda: monitor("reports", "drift", "--format", "json", cwd=here),
        lambda: monitor("report", "drift", "--number", "1", "--format", "json", cwd=here))
    assert [m["name"] for m in json.loads(ok(listed).out)] == ["drift"]
    assert "1 report(s)" in ok(shown).out
    assert [r["number"] for r in json.loads(ok(reports).out)] == [1]
    body = json.loads(ok(report).out)
    assert body["status"] == "ok" and body["rows"] == 300 and body["ref"] == "monitor_report:drift/1"
    written = ok(monitor("report", "drift", "--out", str(here / "drift.html"), cwd=here))
    assert written.out.startswith("wrote ") and "<svg" in (here / "drift.html").read_text(encoding="utf-8")
    empty = json.loads(ok(monitor("run", "drift", "--window", "2020-01-01T00:00Z..2020-01-02T00:00Z", "--format",
                                  "json", cwd=here)).out)
    assert (empty["status"], empty["number"]) == ("no_data", 2)
    ok(monitor("delete", "drift", "--reason", "done", cwd=here))
    assert json.loads(ok(monitor("list", "--format", "json", cwd=here)).out) == []


def test_bad_input_exits_2_with_one_line(built: Path) -> None:
    here = built.parent
    bad_yaml = here / "bad.yaml"
    bad_yaml.write_text("windo: 1h\n", encoding="utf-8")
    results = concurrently(
        lambda: monitor("create", "m", "--deployment", "nope", cwd=here),
        lambda: monitor("create", "m", "--deployment", "price", "--slice", "zzz", cwd=here),
        lambda: monitor("create", "m", "--deployment", "price", "--window", "soon", cwd=here),
        lambda: monitor("create", "m", "--deployment", "price", "--config", str(bad_yaml), cwd=here),
        lambda: monitor("run", "missing", cwd=here),
        lambda: monitor("list", "--format", "xml", cwd=here))
    user_error(results[0], "no deployment 'nope'")
    user_error(results[1], "slice column")
    user_error(results[2], "soon")
    user_error(results[3], "unknown key(s) windo")
    user_error(results[4], "no monitor 'missing'")
    user_error(results[5], "--format")
    assert json.loads(ok(monitor("list", "--format", "json", cwd=here)).out) == []


def test_trace_and_logs_query(built: Path) -> None:
    here = built.parent
    rows = json.loads(ok(keel_cli("-w", built, "logs", "query", "kind = 'primary'", "--columns",
                                  "request_id,served_by", "--limit", "1", "--format", "json", cwd=here)).out)
    assert len(rows) == 1 and rows[0]["served_by"] == "toy/1"
    request_id = rows[0]["request_id"]
    traced = json.loads(ok(keel_cli("-w", built, "trace", request_id, "--format", "json", cwd=here)).out)
    assert traced["request_id"] == request_id and traced["route"]["served_by"] == "toy/1"
    text = ok(keel_cli("-w", built, "trace", request_id, cwd=here)).out
    assert f"request {request_id}" in text and "answered by toy/1" in text and "trained on split:" in text
    user_error(keel_cli("-w", built, "trace", "nope", cwd=here), "no prediction with request id 'nope'")
    user_error(keel_cli("-w", built, "logs", "query", "latency_ms >>> 1", cwd=here), "filter")


def test_alert_rules_from_the_cli(built: Path) -> None:
    here = built.parent
    shown = ok(monitor("create", "watch", "--deployment", "price", "--alert", "rows >= 1", "--alert",
                       "drift(x1) > 5", cwd=here)).out
    assert "alert: rows >= 1" in shown
    assert "alert FIRING: rows >= 1 (value 300)" in ok(monitor("run", "watch", cwd=here)).out
    events = json.loads(ok(monitor("alerts", "watch", "--format", "json", cwd=here)).out)
    assert [(e["rule"], e["state"], e["report"], e["webhook"]) for e in events] == [("rows >= 1", "firing", 1, None)]
    user_error(monitor("create", "bad", "--deployment", "price", "--alert", "rows is high", cwd=here),
               "alert rule 'rows is high'")
    user_error(monitor("create", "bad", "--deployment", "price", "--webhook", "http://127.0.0.1:1/x", cwd=here),
               "webhook_allow_private")


def test_labels_ingest(built: Path) -> None:
    here = built.parent
    with keel.open(built) as ws:
        answered = ws.monitors.query_log("kind = 'primary'", columns=["request_id", "inputs"]).to_pylist()
    lines = [{"request_id": r["request_id"], "pos": i, "y": 10.0}
             for r in answered for i in range(len(json.loads(r["inputs"])))]
    path = here / "labels.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    done = json.loads(ok(keel_cli("-w", built, "labels", "ingest", str(path), "--deployment", "price", "--label",
                                  "y", "--row", "pos", "--format", "json", cwd=here, env={"KEEL_USER": "dev"})).out)
    assert done == {"deployment": "price", "requests": len(answered), "skipped_missing": 0}
    ok(monitor("create", "perf", "--deployment", "price", cwd=here))
    report = json.loads(ok(monitor("run", "perf", "--format", "json", cwd=here)).out)
    assert report["results"]["performance"]["rows"] == 300
    user_error(keel_cli("-w", built, "labels", "ingest", str(here / "missing.csv"), "--deployment", "price",
                        cwd=here), "does not exist")
    user_error(keel_cli("-w", built, "labels", "ingest", str(path), "--deployment", "price", "--label", "y",
                        cwd=here), "several rows")
