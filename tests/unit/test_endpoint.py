"""The data plane's core without HTTP: fallbacks on errors and timeouts, shadows that never touch the answer."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.errors import SignatureMismatch
from keel.serving.endpoint import Endpoint, NoModelAnswered
from keel.serving.model import Deployment, DeploymentVersion

FRAME = pd.DataFrame({"x": [1.0, 2.0]})


class Fixed:
    def __init__(self, value: float, delay: float = 0.0, fail: bool = False) -> None:
        self.value, self.delay, self.fail, self.calls = value, delay, fail, 0

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise ValueError("model exploded")
        return np.full(len(frame), self.value)


def deployment(policy: dict[str, Any]) -> Deployment:
    version = DeploymentVersion("api", 1, policy, "active", "create", None, datetime.now(UTC), "me")
    models = [a["model"] for a in policy["arms"]] + policy.get("shadows", []) + policy.get("fallbacks", [])
    return Deployment("api", False, "seed", version, datetime.now(UTC), "me", list(dict.fromkeys(models)))


def single(primary: str, fallbacks: list[str], shadows: list[str] | None = None) -> dict[str, Any]:
    kind = "shadow" if shadows else "single"
    return {"kind": kind, "arms": [{"name": "primary", "model": primary, "weight": 1}], "fallbacks": fallbacks,
            "shadows": shadows or [], "sample": 1.0}


def test_the_primary_answers_and_says_so() -> None:
    endpoint = Endpoint(deployment(single("m/2", ["m/1"])), {"m/2": Fixed(2.0), "m/1": Fixed(1.0)})
    answer = endpoint.predict(FRAME, "k")
    assert answer.predictions.tolist() == [2.0, 2.0] and (answer.served_by, answer.reason) == ("m/2", None)


def test_a_failing_primary_falls_back_down_the_chain_and_the_answer_says_why() -> None:
    models = {"m/3": Fixed(3.0, fail=True), "m/2": Fixed(2.0, fail=True), "m/1": Fixed(1.0)}
    answer = Endpoint(deployment(single("m/3", ["m/2", "m/1"])), models).predict(FRAME, "k")
    assert answer.served_by == "m/1" and answer.model == "m/3" and "model exploded" in answer.reason
    assert [a["model"] for a in answer.attempts] == ["m/3", "m/2", "m/1"]


def test_a_slow_primary_times_out_and_the_fallback_answers_in_time() -> None:
    models = {"slow": Fixed(9.0, delay=2.0), "fast": Fixed(1.0)}
    endpoint = Endpoint(deployment(single("slow", ["fast"])), models, timeout_s=0.1)
    started = time.perf_counter()
    answer = endpoint.predict(FRAME, "k")
    assert answer.served_by == "fast" and "timed out" in answer.reason
    assert time.perf_counter() - started < 1.0
    endpoint.close()


def test_when_every_model_fails_the_request_gets_a_retryable_error_naming_each() -> None:
    models = {"a": Fixed(1.0, fail=True), "b": Fixed(1.0, fail=True)}
    with pytest.raises(NoModelAnswered, match=r"a: ValueError.*b: ValueError") as refused:
        Endpoint(deployment(single("a", ["b"])), models).predict(FRAME, "k")
    assert refused.value.http_status == 503


@pytest.mark.parametrize("shadow", [Fixed(0.0, fail=True), Fixed(0.0, delay=1.5)])
def test_a_failing_or_hanging_shadow_changes_neither_the_answer_nor_its_latency(shadow: Fixed) -> None:
    seen: list[tuple[str, Any]] = []
    done = threading.Event()

    def record(model: str, key: str, output: Any, ms: float) -> None:
        seen.append((model, output))
        done.set()

    endpoint = Endpoint(deployment(single("p", [], shadows=["s"])), {"p": Fixed(5.0), "s": shadow}, on_shadow=record)
    started = time.perf_counter()
    answer = endpoint.predict(FRAME, "k")
    assert time.perf_counter() - started < 0.5 and answer.predictions.tolist() == [5.0, 5.0]
    assert done.wait(5) and seen[0][0] == "s"  # the shadow ran, after the answer, and was recorded
    assert isinstance(seen[0][1], ValueError) or seen[0][1].tolist() == [0.0, 0.0]
    endpoint.close()


def test_an_endpoint_refuses_a_deployment_whose_models_are_not_loaded() -> None:
    with pytest.raises(Exception, match="not loaded"):
        Endpoint(deployment(single("m/2", ["m/1"])), {"m/2": Fixed(2.0)})


def test_a_request_that_does_not_fit_the_signature_is_the_clients_error_not_a_fallback() -> None:
    class Strict(Fixed):
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            raise SignatureMismatch("missing column(s) y")

    fallback = Fixed(1.0)
    endpoint = Endpoint(deployment(single("m/2", ["m/1"])), {"m/2": Strict(2.0), "m/1": fallback})
    with pytest.raises(SignatureMismatch):
        endpoint.predict(FRAME, "k")
    assert fallback.calls == 0


class Scorer:
    """A ranker: scores each row by one column (higher first), or fails."""

    def __init__(self, column: str, fail: bool = False) -> None:
        self.column, self.fail = column, fail

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if self.fail:
            raise ValueError("ranker down")
        return frame[self.column].to_numpy()


ITEMS = pd.DataFrame({"item": ["p", "q", "r", "s"], "up": [4.0, 3.0, 2.0, 1.0], "down": [1.0, 2.0, 3.0, 4.0]})


def interleave_policy() -> dict[str, Any]:
    return {"kind": "interleave", "arms": [{"name": "old", "model": "r/1", "weight": 1},
                                           {"name": "new", "model": "r/2", "weight": 1}],
            "fallbacks": [], "item_key": "item"}


def test_interleaving_merges_both_rankings_and_credits_each_item_to_the_arm_that_drafted_it() -> None:
    endpoint = Endpoint(deployment(interleave_policy()), {"r/1": Scorer("up"), "r/2": Scorer("down")})
    answer = endpoint.predict(ITEMS, "user-7")
    items, teams = answer.ranking["items"], answer.ranking["teams"]
    assert sorted(items) == ["p", "q", "r", "s"] and set(teams) == {"old", "new"}
    assert abs(teams.count("old") - teams.count("new")) <= 1
    assert items[teams.index("old")] == "p" and items[teams.index("new")] == "s"  # each drafts its own top item
    assert endpoint.predict(ITEMS, "user-7").ranking == answer.ranking  # the same key, the same list
    endpoint.close()


def test_interleaving_with_one_ranker_down_serves_the_others_ranking_and_says_why() -> None:
    endpoint = Endpoint(deployment(interleave_policy()), {"r/1": Scorer("up"), "r/2": Scorer("down", fail=True)})
    answer = endpoint.predict(ITEMS, "user-7")
    assert answer.ranking == {"items": ["p", "q", "r", "s"], "teams": ["old"] * 4}
    assert answer.served_by == "r/1" and "ranker down" in answer.reason
    endpoint.close()


def test_without_a_timeout_models_answer_on_the_requests_own_thread_and_still_fall_back() -> None:
    seen: list[str] = []

    class Where(Fixed):
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            seen.append(threading.current_thread().name)
            return super().predict(frame)

    models = {"m/2": Fixed(2.0, fail=True), "m/1": Where(1.0)}
    answer = Endpoint(deployment(single("m/2", ["m/1"])), models, timeout_s=0).predict(FRAME, "k")
    assert answer.served_by == "m/1" and "model exploded" in answer.reason
    assert seen == [threading.current_thread().name]  # no hand-over to a model thread


class Where(Fixed):
    """Records the thread each call ran on."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.threads: list[str] = []

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return super().predict(frame)


def test_a_fast_model_without_a_fallback_answers_inline_a_slow_one_or_one_with_a_fallback_on_its_thread() -> None:
    here = threading.current_thread().name
    fast = Where(1.0)
    Endpoint(deployment(single("m/1", [])), {"m/1": fast}, warm_ms={"m/1": 0.4}).predict(FRAME, "k")
    slow = Where(1.0)
    Endpoint(deployment(single("m/1", [])), {"m/1": slow}, warm_ms={"m/1": 40.0}).predict(FRAME, "k")
    guarded = Where(1.0)
    Endpoint(deployment(single("m/2", ["m/1"])), {"m/2": guarded, "m/1": Fixed(1.0)},
             warm_ms={"m/2": 0.4, "m/1": 0.4}).predict(FRAME, "k")  # a fallback to hand a slow request to: timed
    unmeasured = Where(1.0)
    Endpoint(deployment(single("m/1", [])), {"m/1": unmeasured}).predict(FRAME, "k")
    assert fast.threads == [here]
    assert all(t != here and t.startswith("keel-model") for t in slow.threads + guarded.threads + unmeasured.threads)
