"""Routing: which model answers a request, as a pure, seeded function of (policy, request key).

Every request key (a user id, a listing id; the request id when there is none) hashes to a point in [0, 1)
with a per-deployment seed. A/B arms own consecutive ranges of that interval in proportion to their weights,
and a canary's candidate owns [0, step): so a key always lands on the same arm (sticky), a canary step that
grows only moves keys from the stable version to the candidate (never back and forth), and over many keys each
arm's share is its weight. Shadow models are called beside the primary for a ``sample`` of keys (a second,
independent hash) and never change what the client gets. A ``holdout`` share of keys (a third hash) is answered by
the baseline instead of any model, so their outcomes are not influenced by the model: the unbiased labels a
retraining policy's feedback-loop guard counts on (keel.retraining).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from keel.errors import InvalidInput

__all__ = ["HOLDOUT", "KINDS", "Arm", "Policy", "Route", "bucket", "route"]

HOLDOUT = "holdout"  # the arm of the keys a deployment's holdout answers without the model (feedback-loop guard)
KINDS = ("single", "shadow", "ab", "canary", "interleave")
_SCALE = float(2**64)


@dataclass(frozen=True)
class Arm:
    """A named share of the traffic served by one model version (``price/4``)."""

    name: str
    model: str
    weight: float = 1.0


@dataclass(frozen=True)
class Policy:
    """How a deployment routes. ``arms``: the primary (single, shadow), the variants (ab, interleave), or the
    stable version then the candidate (canary); ``step``: the candidate's share of traffic (canary);
    ``shadows``: models called beside the primary for a ``sample`` of keys."""

    kind: str
    arms: tuple[Arm, ...]
    seed: str
    step: float = 0.0
    shadows: tuple[str, ...] = ()
    sample: float = 1.0
    holdout: float = 0.0  # the share of keys answered without the model (by ``holdout_model``, the baseline)
    holdout_model: str = ""
    _edges: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"unknown routing policy {self.kind!r}; use one of {', '.join(KINDS)}")
        wanted = {"single": 1, "shadow": 1, "canary": 2, "interleave": 2}.get(self.kind)
        if wanted is not None and len(self.arms) != wanted:
            raise InvalidInput(f"a {self.kind} policy has {wanted} arm(s), not {len(self.arms)}")
        if self.kind == "ab" and len(self.arms) < 2:
            raise InvalidInput("an A/B policy needs at least two variants")
        if len({a.name for a in self.arms}) != len(self.arms):
            raise InvalidInput("arm names must be unique: " + ", ".join(a.name for a in self.arms))
        if any(not a.weight > 0 for a in self.arms):
            raise InvalidInput("every arm's weight must be positive")
        if not 0.0 <= self.step <= 1.0:
            raise InvalidInput(f"a canary step is a share of traffic in [0, 1], not {self.step}")
        if not 0.0 <= self.sample <= 1.0:
            raise InvalidInput(f"a shadow sample is a share of traffic in [0, 1], not {self.sample}")
        if not 0.0 <= self.holdout <= 0.5 or (self.holdout and not self.holdout_model):
            raise InvalidInput(f"a holdout is a share of traffic in [0, 0.5] answered by the baseline, not "
                               f"{self.holdout}")
        if self.kind == "shadow" and not self.shadows:
            raise InvalidInput("a shadow policy needs at least one shadow model")
        total = sum(a.weight for a in self.arms)
        edges, running = [], 0.0
        for arm in self.arms:
            running += arm.weight / total
            edges.append(running)
        edges[-1] = 1.0  # no gap at the top from rounding
        object.__setattr__(self, "_edges", tuple(edges))


@dataclass(frozen=True)
class Route:
    """What one request gets: the arm and model that answer it, and the models shadowing it."""

    arm: str
    model: str
    shadows: tuple[str, ...] = ()
    both: tuple[str, ...] = ()  # interleave: the two models whose rankings are merged


def bucket(seed: str, key: str, salt: str = "route") -> float:
    """A point in [0, 1) for ``key``, stable for a seed: the same key always lands in the same place."""
    digest = hashlib.blake2b(f"{salt}\x00{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def route(policy: Policy, key: str) -> Route:
    """The route of one request (``key``: its sticky key, else its request id)."""
    shadows = policy.shadows if policy.shadows and bucket(policy.seed, key, "shadow") < policy.sample else ()
    if policy.holdout and bucket(policy.seed, key, "holdout") < policy.holdout:
        return Route(HOLDOUT, policy.holdout_model, shadows)  # the model does not influence what these keys get
    if policy.kind in ("single", "shadow"):
        arm = policy.arms[0]
    elif policy.kind == "canary":
        stable, candidate = policy.arms
        arm = candidate if bucket(policy.seed, key) < policy.step else stable
    elif policy.kind == "interleave":
        first = policy.arms[0] if bucket(policy.seed, key) < 0.5 else policy.arms[1]
        return Route(first.name, first.model, shadows, tuple(a.model for a in policy.arms))
    else:
        arm = _pick(policy.arms, policy._edges, bucket(policy.seed, key))
    return Route(arm.name, arm.model, shadows)


def _pick(arms: Sequence[Arm], edges: Sequence[float], point: float) -> Arm:
    for arm, edge in zip(arms, edges, strict=True):
        if point < edge:
            return arm
    return arms[-1]
