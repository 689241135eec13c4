"""`keel serve` as a real process while deployments change under load (issue 7): a model swap drops nothing and
every answer names the version that computed it; a canary advances and is promoted, a bad one is rolled back,
each picked up by the running server; SIGTERM drains what is in flight; overload gets a fast 503."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import keel
from gates_helpers import FEATURES, toy_frame
from keel.errors import NotFound
from serving_helpers import ConstantModel, FailingModel, free_port, start_server

pytestmark = pytest.mark.slow
ROWS = toy_frame(1)[FEATURES].to_dict(orient="records")
EXAMPLE = toy_frame(5)[FEATURES]


def _register(ws: keel.Workspace, model: Any) -> str:
    return ws.models.register(model, "const", flavor="python", input_example=EXAMPLE).name


class Load:
    """Clients posting one-row requests until stopped; every reply (or error) kept."""

    def __init__(self, port: int, name: str, clients: int = 2) -> None:
        self.url, self.name = f"http://127.0.0.1:{port}", name
        self.replies: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(c,)) for c in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def wait_for(self, n: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        start = len(self.replies)
        while len(self.replies) < start + n:
            assert time.monotonic() < deadline, f"only {len(self.replies) - start} replies in {timeout_s} s"
            time.sleep(0.02)

    def _run(self, client_no: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                try:
                    reply = client.post(f"/v1/endpoints/{self.name}/predict", json={"records": ROWS},
                                        headers={"x-keel-key": f"user-{client_no}-{i}"})
                except httpx.TransportError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if reply.status_code != 200:
                    self.errors.append(f"{reply.status_code}: {reply.text}")
                else:
                    self.replies.append(reply.json())


def _logged(ws: keel.Workspace, name: str, n: int, since: datetime, arms: tuple[str, ...] = ("stable", "canary"),
            timeout_s: float = 30) -> None:
    """Wait until the server has committed ``n`` rows of ``name`` answered by ``arms`` since ``since`` (requests
    answered by the previous policy until the server picked the change up are not the ones to count)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            log = ws.data.read("predictions")
        except NotFound:  # not committed yet
            log = None
        if log is not None and ((log.deployment == name) & (log.kind == "primary") & (log["at"] >= since)
                                & log.arm.isin(arms)).sum() >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"the log did not reach {n} rows for {name} in {timeout_s} s")


@pytest.fixture
def world(tmp_path: Path) -> Any:
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        versions = [_register(ws, ConstantModel(1.0)), _register(ws, ConstantModel(2.0)),
                    _register(ws, FailingModel())]
    return root, versions


def test_a_model_swap_under_load_drops_nothing_and_each_answer_names_its_version(world) -> None:
    root, (one, two, _) = world
    with keel.open(root) as ws:
        ws.deployments.create("swap", one)
    port = free_port()
    proc = start_server(root, port, "--trusted")
    try:
        with Load(port, "swap") as load:
            load.wait_for(50)
            with keel.open(root) as ws:
                ws.deployments.shadow("swap", two)
                ws.deployments.promote("swap", reason="swap under load")
            deadline = time.monotonic() + 20
            while not load.replies or load.replies[-1]["model"] != two:
                assert time.monotonic() < deadline, "the server never picked up the promotion"
                time.sleep(0.05)
            load.wait_for(50)
        assert load.errors == []
        value = {one: 1.0, two: 2.0}
        assert all(r["predictions"] == [value[r["model"]]] for r in load.replies)  # computed by the named version
        assert {r["model"] for r in load.replies} == {one, two}
    finally:
        proc.terminate()
        proc.wait(30)


def _traffic(port: int, name: str, n: int) -> list[dict[str, Any]]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        replies = [client.post(f"/v1/endpoints/{name}/predict", json={"records": ROWS},
                               headers={"x-keel-key": f"user-{i}"}) for i in range(n)]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200][:3]
    return [r.json() for r in replies]


def _await_policy(port: int, name: str, arms: set[str], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while {r["arm"] for r in _traffic(port, name, 40)} != arms:
        assert time.monotonic() < deadline, f"the server did not switch {name} to arms {arms}"


def test_a_canary_advances_and_is_promoted_and_a_bad_one_is_rolled_back_on_the_running_server(world) -> None:
    root, (one, two, broken) = world
    guardrails = ["error_rate < 0.05", "mean_shift(prediction) < 5"]
    with keel.open(root) as ws:
        ws.deployments.create("price", one, fallbacks=[one])
        ws.deployments.canary("price", two, steps=[50, 100], interval_s=1, guardrails=guardrails)
    port = free_port()
    proc = start_server(root, port, "--trusted")
    try:
        with keel.open(root) as ws:
            since = ws.deployments.get("price").current.at
            answers = _traffic(port, "price", 200)
            share = sum(a["arm"] == "canary" for a in answers) / len(answers)
            assert 0.35 < share < 0.65 and all(a["model"] == (two if a["arm"] == "canary" else one) for a in answers)
            _logged(ws, "price", 200, since)
            later = datetime.now(UTC) + timedelta(seconds=5)
            assert ws.deployments.check_canary("price", now=later).action == "advance"
            _await_policy(port, "price", {"canary"})
            since = ws.deployments.get("price").current.at
            _traffic(port, "price", 60)
            _logged(ws, "price", 60, since, arms=("canary",))
            assert ws.deployments.check_canary("price", now=datetime.now(UTC) + timedelta(seconds=5)).action \
                == "promote"
            _await_policy(port, "price", {"primary"})
            assert {a["model"] for a in _traffic(port, "price", 20)} == {two}

            ws.deployments.canary("price", broken, steps=[50, 100], interval_s=1, guardrails=guardrails)
            _await_policy(port, "price", {"stable", "canary"})
            since = ws.deployments.get("price").current.at
            answers = _traffic(port, "price", 200)
            failed_over = [a for a in answers if a["arm"] == "canary"]
            assert failed_over and all(a["model"] == one and "broken" in a["fallback"]["reason"] for a in failed_over)
            _logged(ws, "price", 200, since)
            decision = ws.deployments.check_canary("price", now=datetime.now(UTC) + timedelta(seconds=5))
            assert decision.action == "rollback" and "error_rate" in decision.reason, decision
            _await_policy(port, "price", {"primary"})
            assert {a["model"] for a in _traffic(port, "price", 20)} == {two}
            assert ws.deployments.history("price")[-1].action == "rollback"
    finally:
        proc.terminate()
        proc.wait(30)


def test_sigterm_under_load_answers_every_request_in_flight(world, tmp_path: Path) -> None:
    root, _ = world
    with keel.open(root) as ws:
        slow = _register(ws, ConstantModel(3.0, delay_s=0.05))
        ws.deployments.create("slow", slow)
    port = free_port()
    proc = start_server(root, port, "--trusted")
    sent = threading.Event()
    results: list[str] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while not sent.is_set():  # requests started before SIGTERM must all be answered
                try:
                    reply = client.post("/v1/endpoints/slow/predict", json={"records": ROWS})
                    results.append(str(reply.status_code))
                except httpx.TransportError as exc:
                    results.append(f"{type(exc).__name__}")

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(one, i) for i in range(6)]
        while len(results) < 30:
            time.sleep(0.02)
        sent.set()  # no client starts a request after this point
        proc.send_signal(signal.SIGTERM)
        for future in futures:
            future.result(60)
    assert proc.wait(30) in (0, -signal.SIGTERM)
    assert results and set(results) == {"200"}, sorted(set(results))


def test_overload_gets_a_fast_503_with_retry_after(world) -> None:
    root, _ = world
    with keel.open(root) as ws:
        slow = _register(ws, ConstantModel(3.0, delay_s=0.5))
        ws.deployments.create("slow", slow)
    port = free_port()
    # a long timeout: the second accepted request waits 0.5 s for the model's thread, then takes its own 0.5 s
    proc = start_server(root, port, "--trusted", "--max-inflight", "2", "--timeout-ms", "10000")
    try:
        def post(_: int) -> httpx.Response:
            return httpx.post(f"http://127.0.0.1:{port}/v1/endpoints/slow/predict", json={"records": ROWS},
                              timeout=30)

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(post, range(8)))
        refused = [r for r in replies if r.status_code == 503]
        assert refused and any(r.status_code == 200 for r in replies)
        assert all(r.headers["retry-after"] == "1" and r.json()["error"]["type"] == "Overloaded" for r in refused)
        assert all(r.elapsed.total_seconds() < 0.4 for r in refused)  # refused at once, not after waiting
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert f'keel_rejections_total{{deployment="slow",status="503"}} {len(refused)}.0' in metrics
    finally:
        proc.terminate()
        proc.wait(30)
