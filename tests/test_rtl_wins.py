"""Wins on every objective (issue 12.6): a delay win that costs area is reported, with its trade-off."""

from __future__ import annotations

from evoforge.domain import Metrics, Objective
from evoforge.search.population import Member, best_member, wins
from evoforge.search.report import trade_off

OBJECTIVES = (Objective.AREA, Objective.DELAY)
BASE = Metrics(area_um2=100.0, delay_ns=2.44)


def _m(cid: int, area: float, delay: float) -> Member:
    return Member(cid, f"// {cid}", Metrics(area_um2=area, delay_ns=delay))


def test_a_delay_win_that_costs_area_is_the_best_and_a_trade_off() -> None:
    faster = _m(1, 107.0, 1.0)  # 2.44x delay, 7 % more area
    assert best_member([faster], OBJECTIVES, BASE) == faster
    assert wins([faster], OBJECTIVES, BASE) == [faster]
    assert trade_off(BASE, faster.metrics) == {"better": ["delay_ns"], "worse": ["area_um2"]}


def test_no_win_when_nothing_beats_the_original_on_anything() -> None:
    worse = [_m(1, 120.0, 3.0), _m(2, 100.0, 2.44)]
    assert best_member(worse, OBJECTIVES, BASE) is None
    assert wins(worse, OBJECTIVES, BASE) == []


def test_a_dominated_trade_off_is_no_win_and_the_primary_win_still_comes_first() -> None:
    smaller = _m(1, 80.0, 2.0)
    slower_smaller = _m(2, 90.0, 2.5)  # dominated by #1
    faster_bigger = _m(3, 130.0, 1.5)
    members = [smaller, slower_smaller, faster_bigger]
    assert best_member(members, OBJECTIVES, BASE) == smaller
    assert wins(members, OBJECTIVES, BASE) == [smaller, faster_bigger]


def test_the_largest_gain_wins_among_trade_offs() -> None:
    a = _m(1, 101.0, 2.0)
    b = _m(2, 150.0, 1.0)
    assert best_member([a, b], OBJECTIVES, BASE) == b
