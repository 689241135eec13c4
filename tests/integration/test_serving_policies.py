"""What a deployment's policy makes the data plane do (issue 7): the baseline answers when every model fails,
an interleave merges two rankings and credits the user's pick through the data plane's feedback route, and the
canary controller's pass judges every active canary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from keel.errors import InvalidInput
from keel.serving.app import create_predictor_app


@pytest.fixture
def world(ws: keel.Workspace):
    split = toy_world(ws, n=600)
    return ws, split, register(ws, split), register(ws, split, broken="anti_monotone")


def test_the_baseline_is_the_train_parts_mean_and_answers_when_every_model_fails(world, tmp_path) -> None:
    ws, split, good, _ = world
    made = ws.deployments.create("price", good.name, fallbacks=["baseline"])
    baseline = made.current.policy["baseline"]
    mean = ws.data.read_split(split.ref, "train", columns=["y"])["y"].mean()
    assert baseline["value"] == pytest.approx(mean) and (baseline["of"], baseline["label"]) == (good.name, "y")
    assert ws.deployments.canary("price", good.name, steps=[50], interval_s=60).current.policy["baseline"] == baseline
    from serving_helpers import ConstantModel

    with ws.runs.start("slow") as run:  # a model that never answers in time, trained (say its tags) on the split
        run.set_tags({"fit.data": split.ref, "fit.label": "y"})
        slow = ws.models.register(ConstantModel(0.0, delay_s=2.0), "slow", flavor="python", run=run,
                                  input_example=toy_frame(1)[FEATURES])
    ws.deployments.create("slow", slow.name, fallbacks=["baseline"])
    rows = toy_frame(2)[FEATURES].to_dict(orient="records")
    app = create_predictor_app(ws, ["slow"], log_folder=tmp_path / "log", timeout_s=0.1, trusted=True)
    with TestClient(app) as client:
        answer = client.post("/v1/endpoints/slow/predict", json={"records": rows})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predictions"] == pytest.approx([mean, mean]) and body["model"] == "baseline"
        assert "timed out" in body["fallback"]["reason"] and body["fallback"]["chosen"] == slow.name
        assert 'keel_fallbacks_total{deployment="slow",version="baseline"} 1.0' in client.get("/metrics").text


def test_a_baseline_needs_training_data_it_can_read(ws: keel.Workspace) -> None:
    from serving_helpers import ConstantModel

    version = ws.models.register(ConstantModel(1.0), "const", flavor="python", input_example=toy_frame(5)[FEATURES])
    with pytest.raises(InvalidInput, match="no stored training data"):
        ws.deployments.create("c", version.name, fallbacks=["baseline"])
    assert ws.deployments.list() == []


def test_an_interleave_merges_rankings_and_the_users_pick_credits_a_model_through_the_data_plane(world, tmp_path):
    ws, _, good, flipped = world
    ws.deployments.create("rank", good.name)
    ws.deployments.interleave("rank", {"old": good.name, "new": flipped.name}, item_key="item")
    items = toy_frame(6)[FEATURES].assign(item=[f"listing-{i}" for i in range(6)]).to_dict(orient="records")
    with TestClient(create_predictor_app(ws, log_folder=tmp_path / "log")) as client:
        picks = []
        for user in range(30):
            shown = client.post("/v1/endpoints/rank/predict", json={"records": items},
                                headers={"x-keel-key": f"user-{user}"}).json()
            assert sorted(shown["ranking"]) == sorted(i["item"] for i in items)
            assert set(shown["teams"]) == {"old", "new"}
            new_pick = shown["ranking"][shown["teams"].index("new")]
            picks.append({"request_id": shown["request_id"], "chosen": [new_pick]})
        accepted = client.post("/v1/endpoints/rank/feedback", json={"items": picks})
        assert accepted.json() == {"deployment": "rank", "accepted": 30}
        refused = client.post("/v1/endpoints/rank/feedback", json={"items": [{"request_id": "r", "chosen": []}]})
        assert refused.status_code == 400 and "item 0" in refused.json()["error"]["message"]
    report = ws.deployments.report("rank")["interleave"]
    assert report["with_feedback"] == 30 and report["wins"] == {"old": 0, "new": 30}
    assert report["preference_a"] == 0.0 and report["p_value"] < 0.001 and report["significant"]


def test_the_controllers_pass_judges_every_active_canary_and_nothing_else(world) -> None:
    ws, _, good, flipped = world
    for name in ("a", "b", "c"):
        ws.deployments.create(name, good.name)
    ws.deployments.canary("a", flipped.name, steps=[10, 100], interval_s=3600)
    ws.deployments.canary("b", flipped.name, steps=[10, 100], interval_s=1)
    ws.deployments.pause("b")
    decisions = ws.deployments.check_canaries()
    assert list(decisions) == ["a"] and decisions["a"].action == "wait" and "interval" in decisions["a"].reason
    later = ws.deployments.check_canaries(now=datetime.now(UTC) + timedelta(hours=2))
    assert later["a"].action == "wait" and "request(s)" in later["a"].reason  # no traffic yet: nothing to judge


def test_the_loader_times_each_model_warm_and_a_fast_one_without_fallbacks_answers_inline(world) -> None:
    ws, _, good, _ = world
    from keel.serving.endpoint import INLINE_BELOW_MS
    from keel.serving.loader import EndpointSet
    from serving_helpers import ConstantModel

    def constant(name: str, delay_s: float) -> str:  # microseconds, or ten times the bound: never near it
        return ws.models.register(ConstantModel(1.0, delay_s=delay_s), name, flavor="python",
                                  input_example=toy_frame(1)[FEATURES]).name

    fast, slow = constant("fast", 0.0), constant("slowish", INLINE_BELOW_MS * 10 / 1e3)
    ws.deployments.create("alone", fast)
    ws.deployments.create("guarded", good.name, fallbacks=["baseline"])
    ws.deployments.create("slowish", slow)
    served = EndpointSet(ws, None, 1.0, lambda _name: None, trusted=True)
    served.refresh()
    assert served.endpoints["alone"].inline == {fast}
    assert served.endpoints["guarded"].inline == {"baseline"}  # a fallback to hand a slow request to: timed
    assert served.endpoints["slowish"].inline == frozenset()
    served.close()
