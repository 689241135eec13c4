"""Infrastructure monitoring and structured serve events (issue 8) on a real data plane: each serving process logs
heartbeats (kind ``health``) through its prediction log, a monitor's report carries the window's processes, CPU,
memory, uptime and restarts (None before anything served), and a fallback is a structured event with the
request's whole context."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from keel.serving.app import LOG_TABLE, create_predictor_app

ROWS = toy_frame(5, seed=3)[FEATURES].to_dict(orient="records")


@pytest.fixture
def world(ws: keel.Workspace):
    split = toy_world(ws, n=600)
    model = register(ws, split)
    ws.deployments.create("price", model.name)
    return ws, model


def test_heartbeats_give_the_served_window_its_processes_cpu_memory_and_uptime(world, tmp_path) -> None:
    ws, _ = world
    ws.monitors.create("health", "price", window="1h", alerts=["uptime < 0.5", "memory_mb > 1000000", "restarts > 0"])
    app = create_predictor_app(ws, ["price"], log_folder=tmp_path / "log", heartbeat_every_s=0.5,
                               commit_every_s=30)  # nothing committed while serving: one commit at the end
    with TestClient(app) as client:
        start = datetime.now(UTC)
        for _ in range(8):
            assert client.post("/v1/endpoints/price/predict", json={"records": ROWS}).status_code == 200
            time.sleep(0.25)
        end = datetime.now(UTC)
    logged = ws.data.read(LOG_TABLE)
    health = logged[logged.kind == "health"]
    assert len(health) >= 4 and health.deployment.isna().all() and health.served_by.isna().all()
    last = json.loads(health.sort_values("at").iloc[-1].output)
    assert (last["pid"], last["host"], last["requests"], last["deployments"]) == \
        (os.getpid(), socket.gethostname(), 8, ["price"])
    assert health.sort_values("at").iloc[-1].status == "stopped"  # the final heartbeat at shutdown

    report = ws.monitors.run("health", window=f"{start.isoformat()}..{end.isoformat()}")
    infra = report.results["service"]["infrastructure"]
    assert infra["processes"] == 1 and infra["restarts"] == 0 and infra["heartbeats"] >= 2
    assert infra["cpu"] is not None and infra["cpu"] >= 0 and infra["cpu_seconds"] >= 0
    assert infra["memory"]["peak_bytes"] > 0 and infra["memory"]["last_bytes"] > 0
    assert infra["uptime"] == pytest.approx(1.0, abs=0.05)
    assert infra["errors"] == 0 and infra["requests"] <= 8
    assert [a["firing"] for a in report.results["alerts"]] == [False, False, False]
    page = ws.monitors.html("health")
    assert 'id="service"' in page and "Uptime" in page and "CPU" in page

    before = ws.monitors.run("health", window=f"{(start - timedelta(hours=2)).isoformat()}.."
                                              f"{(start - timedelta(hours=1)).isoformat()}")
    assert before.results["service"]["infrastructure"] is None  # no heartbeat: nothing known, not zeros
    assert [a["value"] for a in before.results["alerts"]] == [None, None, None]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(json.loads(record.getMessage()))


@pytest.fixture
def serve_events():
    logger = logging.getLogger("keel.serve")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    yield logger, handler.events
    logger.removeHandler(handler)
    logger.setLevel(level)


CONTEXT = {"request_id", "deployment", "arm", "model", "served_by", "user", "host", "pid", "operation",
           "duration_ms"}


def test_a_fallback_is_a_structured_event_and_routine_answers_are_logged_only_at_debug(ws, tmp_path,
                                                                                        serve_events) -> None:
    from serving_helpers import ConstantModel, FailingModel

    logger, events = serve_events
    example = toy_frame(5)[FEATURES]
    broken = ws.models.register(FailingModel(), "broken", flavor="python", input_example=example)
    backup = ws.models.register(ConstantModel(3.0), "backup", flavor="python", input_example=example)
    ws.deployments.create("price", broken.name, fallbacks=[backup.name])
    logger.setLevel(logging.INFO)
    app = create_predictor_app(ws, log_folder=tmp_path / "log", trusted=True, reload_every_s=0.2)
    with TestClient(app) as client:
        reply = client.post("/v1/endpoints/price/predict", json={"records": ROWS}, headers={"x-request-id": "r-1"})
        assert reply.status_code == 200 and reply.json()["model"] == backup.name
        fallbacks = [e for e in events if e["event"] == "predict.fallback"]
        assert len(fallbacks) == 1
        event = fallbacks[0]
        assert set(event) >= CONTEXT and event["level"] == "warning"
        assert (event["request_id"], event["deployment"], event["arm"], event["model"], event["served_by"],
                event["user"], event["operation"], event["pid"], event["host"]) == \
            ("r-1", "price", "primary", broken.name, backup.name, None, "predict", os.getpid(), socket.gethostname())
        assert "this candidate is broken" in event["reason"] and event["duration_ms"] > 0

        ws.deployments.create("plain", backup.name)
        for _ in range(100):  # picked up while serving
            if client.post("/v1/endpoints/plain/predict", json={"records": ROWS}).status_code == 200:
                break
            time.sleep(0.1)
        assert not [e for e in events if e["event"] == "predict.answered"]  # info: routine answers are silent
        logger.setLevel(logging.DEBUG)
        client.post("/v1/endpoints/plain/predict", json={"records": ROWS}, headers={"x-request-id": "r-2"})
        answered = [e for e in events if e["event"] == "predict.answered"]
        assert len(answered) == 1 and set(answered[0]) >= CONTEXT and answered[0]["level"] == "debug"
        assert (answered[0]["request_id"], answered[0]["served_by"]) == ("r-2", backup.name)

        seen = len(events)
        refused = client.post("/v1/endpoints/price/predict", json={"records": [{"x1": "many", "x2": 1.0, "cat": "a"}]})
        assert refused.status_code == 422
        assert [e["event"] for e in events[seen:]] == ["predict.rejected"]  # once, with the request's context
        assert set(events[-1]) >= CONTEXT and events[-1]["level"] == "info" and events[-1]["status"] == 422
