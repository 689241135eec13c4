"""Routing and interleaving: the properties deployments rest on (issue 7), checked over many keys."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import InvalidInput
from keel.serving.interleaving import credit, team_draft
from keel.serving.routing import Arm, Policy, route

KEYS = [f"user-{i}" for i in range(100_000)]


def shares(policy: Policy, keys: list[str] = KEYS) -> dict[str, float]:
    counts = Counter(route(policy, k).arm for k in keys)
    return {arm: n / len(keys) for arm, n in counts.items()}


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=2, max_size=4), st.text(min_size=1, max_size=8))
def test_ab_splits_are_within_one_percent_of_the_weights_over_100k_keys(weights, seed) -> None:
    arms = tuple(Arm(f"v{i}", f"m/{i}", w) for i, w in enumerate(weights))
    got = shares(Policy("ab", arms, seed=seed))
    for arm in arms:
        assert abs(got.get(arm.name, 0.0) - arm.weight / sum(weights)) <= 0.01


@settings(max_examples=8, deadline=None)
@given(st.floats(0.01, 0.99), st.text(min_size=1, max_size=8))
def test_a_canary_gets_its_step_of_traffic_and_a_growing_step_only_moves_keys_to_it(step, seed) -> None:
    stable, candidate = Arm("stable", "price/4"), Arm("canary", "price/5")
    small = Policy("canary", (stable, candidate), seed=seed, step=step)
    assert abs(shares(small).get("canary", 0.0) - step) <= 0.01
    bigger = Policy("canary", (stable, candidate), seed=seed, step=min(1.0, step + 0.2))
    for key in KEYS[:5000]:
        if route(small, key).arm == "canary":
            assert route(bigger, key).arm == "canary"  # never back and forth


def test_routes_are_sticky_per_key_and_differ_by_seed() -> None:
    arms = (Arm("a", "m/1"), Arm("b", "m/2"))
    policy = Policy("ab", arms, seed="dep-1")
    assert [route(policy, k).arm for k in KEYS[:1000]] == [route(policy, k).arm for k in KEYS[:1000]]
    other = Policy("ab", arms, seed="dep-2")
    differs = sum(route(policy, k).arm != route(other, k).arm for k in KEYS[:1000])
    assert 400 < differs < 600  # another deployment splits its users independently


def test_shadow_never_changes_the_primary_and_samples_its_share() -> None:
    policy = Policy("shadow", (Arm("primary", "price/4"),), seed="s", shadows=("price/5",), sample=0.3)
    routes = [route(policy, k) for k in KEYS[:20_000]]
    assert {r.model for r in routes} == {"price/4"}
    assert abs(sum(bool(r.shadows) for r in routes) / len(routes) - 0.3) <= 0.01


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "blue-green", "arms": (Arm("a", "m/1"),)}, "unknown routing policy"),
    ({"kind": "canary", "arms": (Arm("a", "m/1"),)}, "2 arm"),
    ({"kind": "ab", "arms": (Arm("a", "m/1"), Arm("a", "m/2"))}, "unique"),
    ({"kind": "ab", "arms": (Arm("a", "m/1", 0), Arm("b", "m/2"))}, "positive"),
    ({"kind": "canary", "arms": (Arm("a", "m/1"), Arm("b", "m/2")), "step": 1.5}, "canary step"),
    ({"kind": "shadow", "arms": (Arm("a", "m/1"),)}, "shadow model"),
])
def test_a_malformed_policy_is_refused(kwargs, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        Policy(seed="s", **kwargs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), unique=True, max_size=12), st.lists(st.integers(0, 30), unique=True, max_size=12),
       st.text(max_size=6))
def test_team_draft_keeps_each_rankings_order_and_balances_the_teams(a, b, key) -> None:
    shown = team_draft(a, b, seed="s", key=key)
    assert len(shown.items) == len(set(shown.items)) == len(set(a) | set(b))
    for team, ranking in (("a", a), ("b", b)):
        picked = [item for item, t in zip(shown.items, shown.teams, strict=True) if t == team]
        assert picked == [item for item in ranking if item in picked]  # in the team's own order
    if a and b and set(a).isdisjoint(b) and len(a) == len(b):
        assert abs(shown.teams.count("a") - shown.teams.count("b")) <= 1
    assert team_draft(a, b, seed="s", key=key) == shown  # the same request, the same list


def test_a_click_credits_the_team_that_drafted_the_item() -> None:
    shown = team_draft(["x", "y", "z"], ["p", "q", "x"], seed="s", key="request-1")
    team_of = dict(zip(shown.items, shown.teams, strict=True))
    counts = credit(shown, ["p", "x", "unknown"])
    assert counts[team_of["p"]] >= 1 and sum(counts.values()) == 2
    first_picks = Counter(team_draft(["x"], ["y"], seed="s", key=f"r{i}").teams[0] for i in range(2000))
    assert abs(first_picks["a"] / 2000 - 0.5) < 0.05  # the coin is fair
