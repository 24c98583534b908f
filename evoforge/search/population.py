"""Pure policies over a snapshot of the population: Pareto ranking, parent selection, the best.

Nothing here writes anything; the search loop calls these functions and acts on what they return.
A member is an accepted candidate (the original included). Costs are minimised; a member missing a
metric on some objective is ranked behind every member that has it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evoforge.domain import Metrics, Objective


@dataclass(frozen=True)
class Member:
    candidate_id: int
    source: str
    metrics: Metrics
    generation: int = 0
    origin: str = ""
    assurance: str | None = None
    feedback: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _costs(member: Member, objectives: Sequence[Objective]) -> tuple[float, ...]:
    values = []
    for objective in objectives:
        value = objective.value_of(member.metrics)
        values.append(math.inf if value is None else value)
    return tuple(values)


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_ranks(members: Sequence[Member], objectives: Sequence[Objective]) -> list[int]:
    """Non-dominated sorting: rank 0 is the Pareto front, rank 1 the front of the rest, …"""
    costs = [_costs(m, objectives) for m in members]
    ranks = [-1] * len(members)
    remaining = set(range(len(members)))
    rank = 0
    while remaining:
        front = {i for i in remaining if not any(dominates(costs[j], costs[i]) for j in remaining if j != i)}
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


def pareto_front(members: Sequence[Member], objectives: Sequence[Objective]) -> list[Member]:
    """The non-dominated members, sorted by the first objective; duplicates by cost collapsed."""
    ranks = pareto_ranks(members, objectives)
    front: dict[tuple[float, ...], Member] = {}
    for member, rank in zip(members, ranks, strict=True):
        if rank == 0:
            front.setdefault(_costs(member, objectives), member)
    return [front[key] for key in sorted(front)]


def crowding(members: Sequence[Member], objectives: Sequence[Objective]) -> list[float]:
    """NSGA-II crowding distance (bigger = more isolated = more diverse)."""
    n = len(members)
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    costs = [_costs(m, objectives) for m in members]
    for k in range(len(objectives)):
        order = sorted(range(n), key=lambda i: costs[i][k])
        low, high = costs[order[0]][k], costs[order[-1]][k]
        distance[order[0]] = distance[order[-1]] = math.inf
        span = high - low
        if not math.isfinite(span) or span == 0:
            continue
        for prev, cur, nxt in zip(order, order[1:], order[2:], strict=False):
            distance[cur] += (costs[nxt][k] - costs[prev][k]) / span
    return distance


def select_parents(
    members: Sequence[Member], objectives: Sequence[Objective], count: int, rng: random.Random
) -> list[Member]:
    """Binary tournaments on (Pareto rank, crowding distance)."""
    if not members:
        return []
    ranks = pareto_ranks(members, objectives)
    spread = crowding(members, objectives)
    chosen = []
    for _ in range(count):
        i, j = rng.randrange(len(members)), rng.randrange(len(members))
        key_i, key_j = (ranks[i], -spread[i]), (ranks[j], -spread[j])
        chosen.append(members[i] if key_i <= key_j else members[j])
    return chosen


def survivors(members: Sequence[Member], objectives: Sequence[Objective], size: int) -> list[Member]:
    """The ``size`` members kept for the next round: best ranks first, diverse within a rank."""
    if len(members) <= size:
        return list(members)
    ranks = pareto_ranks(members, objectives)
    spread = crowding(members, objectives)
    order = sorted(range(len(members)), key=lambda i: (ranks[i], -spread[i], members[i].candidate_id))
    return [members[i] for i in order[:size]]


def _base_costs(baseline: Metrics, objectives: Sequence[Objective]) -> tuple[float, ...]:
    values = [o.value_of(baseline) for o in objectives]
    return tuple(math.inf if v is None else v for v in values)


def wins(members: Sequence[Member], objectives: Sequence[Objective], baseline: Metrics) -> list[Member]:
    """Members better than the baseline on at least one objective and on the Pareto front.

    The front is taken with the baseline as a point of its own: a member the original dominates is
    no win. A member on this list that is worse on some objective is a trade-off, and still a win.
    """
    base = _base_costs(baseline, objectives)
    points = [_costs(m, objectives) for m in members]
    out = []
    for member, cost in zip(members, points, strict=True):
        if not any(c < b for c, b in zip(cost, base, strict=True)) or dominates(base, cost):
            continue
        if any(dominates(other, cost) for other in points):
            continue
        out.append(member)
    return out


def _largest_gain(member: Member, objectives: Sequence[Objective], base: tuple[float, ...]) -> float:
    gains = [b / c for c, b in zip(_costs(member, objectives), base, strict=True) if 0 < c < b]
    return max(gains, default=1.0)


def best_member(
    members: Sequence[Member], objectives: Sequence[Objective], baseline: Metrics
) -> Member | None:
    """The member with the best first objective (ties: the next objectives), if it beats the baseline.

    "Beats" means: better on the first objective, or equal there and better on a later one. When no
    member beats the baseline that way, the best is the win (see :func:`wins`: better on another
    objective, on the front) with the largest gain on any objective; None only when no member is
    better than the original on anything.
    """
    base = _base_costs(baseline, objectives)
    better = [m for m in members if _costs(m, objectives) < base]  # lexicographic tuple comparison
    if better:
        return min(better, key=lambda m: (_costs(m, objectives), m.candidate_id))
    trade_offs = wins(members, objectives, baseline)
    if not trade_offs:
        return None
    return max(trade_offs, key=lambda m: (_largest_gain(m, objectives, base), -m.candidate_id))


def inspirations(
    members: Sequence[Member], parent: Member, objectives: Sequence[Objective], count: int = 2
) -> list[Member]:
    """Strong and diverse members to show beside ``parent``: the best on each objective in turn.

    The parent and the original design (shown anyway) are left out; each member appears once.
    """
    others = [m for m in members if m.candidate_id != parent.candidate_id and m.origin != "original"]
    chosen: list[Member] = []
    for k in range(len(objectives)):
        if len(chosen) >= count:
            break
        rotated = [*objectives[k:], *objectives[:k]]
        ranked = sorted(others, key=lambda m: (_costs(m, rotated), m.candidate_id))
        pick = next((m for m in ranked if m not in chosen), None)
        if pick is not None:
            chosen.append(pick)
    return chosen
