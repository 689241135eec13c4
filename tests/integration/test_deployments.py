"""Deployments' control plane: endpoints whose routing changes only through the service, every change a
version with who and why, and only releasable model versions routed to."""

from __future__ import annotations

from collections import Counter

import pytest

import keel
from gates_helpers import CHECKLIST, register, toy_world
from keel.errors import Conflict, GatesFailed, InvalidInput, NotFound, PermissionDenied
from keel.serving.routing import route


@pytest.fixture
def world(ws: keel.Workspace):
    split = toy_world(ws)
    good, other = register(ws, split), register(ws, split)
    return ws, split, good, other


def test_an_endpoint_routes_through_shadow_canary_promote_and_rollback_with_its_history(world) -> None:
    ws, _, good, other = world
    created = ws.deployments.create("price-api", good.name, fallbacks=["baseline"], reason="first")
    assert (created.kind, created.state, created.models, created.current.version) == ("single", "active",
                                                                                      ["toy/1"], 1)
    shadowed = ws.deployments.shadow("price-api", other.name, sample=0.5)
    routes = [route(shadowed.routing(), f"k{i}") for i in range(4000)]
    assert {r.model for r in routes} == {"toy/1"} and 0.45 < sum(bool(r.shadows) for r in routes) / 4000 < 0.55
    canary = ws.deployments.canary("price-api", other.name, steps=[5, 25, 50, 100], interval_s=600,
                                   guardrails=["error_rate < 0.01"])
    share = Counter(route(canary.routing(), f"k{i}").model for i in range(20_000))
    assert abs(share["toy/2"] / 20_000 - 0.05) < 0.01
    promoted = ws.deployments.promote("price-api", reason="guardrails held")
    assert promoted.kind == "single" and promoted.current.policy["arms"][0]["model"] == "toy/2"
    assert promoted.current.policy["fallbacks"] == ["toy/1", "baseline"]
    back = ws.deployments.rollback("price-api", reason="undo")
    assert back.kind == "canary" and back.current.action == "rollback"
    history = ws.deployments.history("price-api")
    assert [v.action for v in history] == ["create", "shadow", "canary", "promote", "rollback"]
    assert all(v.by == ws.user for v in history)
    audit = [e.action for e in ws.audit.list(target="deployment:price-api", limit=10)]
    assert "deployment.promote" in audit and "deployment.rollback" in audit
    assert "deployment:price-api@4" in ws.lineage.downstream("model:toy/2").refs()


def test_ab_variants_split_by_weight_and_names_resolve_to_exact_versions(world) -> None:
    ws, _, good, other = world
    ws.models.set_alias(other.name, "challenger")
    ws.deployments.create("ab", good.name)
    split = ws.deployments.ab("ab", {"a": ("toy/1", 70), "b": ("toy@challenger", 30)}, sticky_key="host_id")
    assert [a["model"] for a in split.current.policy["arms"]] == ["toy/1", "toy/2"]  # the alias resolved now
    counts = Counter(route(split.routing(), f"host-{i}").arm for i in range(50_000))
    assert abs(counts["a"] / 50_000 - 0.7) < 0.01


def test_interleaving_names_both_models_and_each_request_gets_a_stable_first_pick(world) -> None:
    ws, _, good, other = world
    ws.deployments.create("rank", good.name)
    ws.deployments.ab("rank", {"a": (good.name, 1), "b": (other.name, 1)}, sticky_key="host_id")
    both = ws.deployments.interleave("rank", {"a": good.name, "b": other.name})
    assert both.current.policy["sticky_key"] is None and "steps" not in both.current.policy
    routes = [route(both.routing(), f"r{i}") for i in range(2000)]
    assert {r.both for r in routes} == {("toy/1", "toy/2")}
    assert abs(sum(r.arm == "a" for r in routes) / 2000 - 0.5) < 0.05
    with pytest.raises(InvalidInput, match="two ranking models"):
        ws.deployments.interleave("rank", {"a": good.name})


def test_only_versions_that_passed_their_gates_are_deployed_and_production_needs_an_approval(world) -> None:
    ws, split, good, _ = world
    ws.gates.set_checklist("toy", CHECKLIST)
    broken = register(ws, split, broken="anti_monotone")
    ws.gates.run(broken.name)
    with pytest.raises(GatesFailed):
        ws.deployments.create("api", broken.name)
    with pytest.raises(GatesFailed, match="has not been through"):
        ws.deployments.create("api", good.name)
    ws.gates.run(good.name)
    with pytest.raises(PermissionDenied, match="no production approval"):
        ws.deployments.create("prod-api", good.name, production=True)
    ws.users.add("ann", "approver")
    ann = ws.acting_as("ann")
    with pytest.raises(InvalidInput, match="reason"):
        ann.deployments.create("prod-api", good.name, production=True, override=True)
    made = ann.deployments.create("prod-api", good.name, production=True, override=True, reason="hotfix window")
    assert made.production and ws.deployments.list()[0].name == "prod-api"
    assert ws.audit.list(action="deployment.create", limit=1)[0].reason == "hotfix window"


def test_bad_changes_are_refused_and_nothing_is_written(world) -> None:
    ws, _, good, other = world
    ws.deployments.create("api", good.name)
    with pytest.raises(Conflict, match="exists"):
        ws.deployments.create("api", good.name)
    for bad in ([], [50, 25], [0, 10], [5, 120]):
        with pytest.raises(InvalidInput, match="rising percentages"):
            ws.deployments.canary("api", other.name, steps=bad, interval_s=60)
    with pytest.raises(InvalidInput, match="positive"):
        ws.deployments.canary("api", other.name, steps=[5], interval_s=0)
    with pytest.raises(InvalidInput, match="weight"):
        ws.deployments.ab("api", {"a": ("toy/1", 0), "b": ("toy/2", 10)})
    with pytest.raises(InvalidInput, match="only a canary or a shadow"):
        ws.deployments.promote("api")
    with pytest.raises(InvalidInput, match="no earlier policy"):
        ws.deployments.rollback("api")
    with pytest.raises(NotFound):
        ws.deployments.create("api-2", "toy/9")
    with pytest.raises(NotFound):
        ws.deployments.get("nope")
    assert len(ws.deployments.history("api")) == 1
    ws.deployments.pause("api", reason="incident")
    with pytest.raises(Conflict, match="paused"):
        ws.deployments.shadow("api", other.name)
    assert ws.deployments.resume("api").state == "active"
    ws.deployments.delete("api", reason="retired")
    with pytest.raises(NotFound):
        ws.deployments.get("api")
    with pytest.raises(Conflict, match="deleted"):
        ws.deployments.create("api", good.name)
