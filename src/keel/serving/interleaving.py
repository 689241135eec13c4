"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): two rankings merged into one list shown to
the user, each item credited to the model ("team") that drafted it, so a click says which model the user
preferred on this request.

In each round the team with fewer picks drafts next (a seeded coin decides a tie); it picks its highest-ranked
item not yet shown. Each team's picks keep its own order, and the two teams' counts differ by at most one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from keel.serving.routing import bucket

__all__ = ["Interleaved", "credit", "team_draft"]


@dataclass(frozen=True)
class Interleaved:
    """The merged list and, for each position, the team (``"a"`` or ``"b"``) that drafted it."""

    items: tuple[Hashable, ...]
    teams: tuple[str, ...]


def team_draft(a: Sequence[Hashable], b: Sequence[Hashable], *, seed: str, key: str,
               length: int | None = None) -> Interleaved:
    """Interleave rankings ``a`` and ``b`` for the request ``key`` (the same key, the same list)."""
    limit = len(set(a) | set(b)) if length is None else length
    items: list[Hashable] = []
    teams: list[str] = []
    shown: set[Hashable] = set()
    picks = {"a": 0, "b": 0}
    cursor = {"a": 0, "b": 0}
    ranking = {"a": a, "b": b}
    round_no = 0
    while len(items) < limit:
        if picks["a"] != picks["b"]:
            team = "a" if picks["a"] < picks["b"] else "b"
        else:
            team = "a" if bucket(seed, f"{key}\x00{round_no}", "interleave") < 0.5 else "b"
            round_no += 1
        other = "b" if team == "a" else "a"
        for side in (team, other):  # a team with nothing left to draft yields its turn
            ranked = ranking[side]
            while cursor[side] < len(ranked) and ranked[cursor[side]] in shown:
                cursor[side] += 1
            if cursor[side] < len(ranked):
                item = ranked[cursor[side]]
                items.append(item)
                teams.append(side)
                shown.add(item)
                picks[side] += 1
                break
        else:
            break  # both rankings are exhausted
    return Interleaved(tuple(items), tuple(teams))


def credit(shown: Interleaved, clicked: Sequence[Hashable]) -> dict[str, int]:
    """Clicks per team: the preference one request expresses (the report sums them over requests)."""
    team_of = dict(zip(shown.items, shown.teams, strict=True))
    counts = {"a": 0, "b": 0}
    for item in clicked:
        if item in team_of:
            counts[team_of[item]] += 1
    return counts
