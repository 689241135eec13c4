"""`keel serve` as a real process: SIGKILL it under load, start it again, and every request that got a 200 is
in the prediction log exactly once (issue 7's reliability test for the log)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from serving_helpers import free_port, start_server

pytestmark = pytest.mark.slow
ROWS = toy_frame(2)[FEATURES].to_dict(orient="records")


def test_sigkill_under_load_loses_no_answered_request_and_logs_each_once(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        split = toy_world(ws, n=600)
        ws.deployments.create("price", register(ws, split).name)
    port = free_port()
    proc = start_server(root, port)
    answered: list[str] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            i = 0
            while not stop.is_set():
                rid = f"w{worker}-{i}"
                try:
                    reply = client.post("/v1/endpoints/price/predict", json={"records": ROWS},
                                        headers={"x-request-id": rid})
                except httpx.TransportError:
                    return  # the server died mid-request: that request was never answered
                if reply.status_code == 200:
                    answered.append(reply.json()["request_id"])
                i += 1

    threads = [threading.Thread(target=load, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    while len(answered) < 300:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(answered) >= 300

    restarted = start_server(root, port)  # recovers the killed process's segments on the way up
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a graceful stop
    with keel.open(root) as ws:
        logged = ws.data.read("predictions")
    primary = logged[logged.kind == "primary"].request_id
    assert set(answered) <= set(primary)
    assert primary.is_unique, primary[primary.duplicated()].tolist()[:5]
