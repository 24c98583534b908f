"""The offline proposer's choice: objectives, critical path and largest cells decide which rule goes where."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pyverilog.vparser import ast as vast

from evoforge import domain
from evoforge.agents.base import Proposal, ProposalRequest
from evoforge.agents.rtl_rules import RULES
from evoforge.agents.rtl_rules.ast_utils import Rewrite, walk_paths
from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer
from evoforge.search.records import lineage_note
from evoforge.tools.verilog_ast import ParsedVerilog

DESIGN = """
module two(input [7:0] a, b, c, d, output [7:0] x, y);
  assign x = a + b;
  assign y = c + d;
endmodule
"""


class SwapRule:
    """Stands in for a real rule: commutes the n-th addition of the design (touching its signals)."""

    def __init__(self, name: str, index: int, touched: tuple[str, ...]) -> None:
        self.name, self.index, self.touched = name, index, touched

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]:
        module = next(iter(parsed.modules))
        adds = [p for p, node in walk_paths(parsed.ast) if isinstance(node, vast.Plus)]
        return [
            Rewrite(
                rule=self.name,
                module=module,
                path=adds[self.index],
                note=f"{self.name} on {self.touched[0]}",
                touched=self.touched,
                transform=lambda node: vast.Plus(node.right, node.left),
            )
        ]


@pytest.fixture
def proposer(monkeypatch: pytest.MonkeyPatch) -> OfflineRtlProposer:
    # real rule names, so that their knowledge-base entries (goals, cells) are the ones used
    monkeypatch.setitem(RULES, "rebalance", SwapRule("rebalance", 0, ("x", "a", "b")))
    monkeypatch.setitem(RULES, "fsm_minimise", SwapRule("fsm_minimise", 1, ("y", "c", "d")))
    monkeypatch.setitem(RULES, "resource_sharing", SwapRule("resource_sharing", 1, ("y", "c", "d")))
    return OfflineRtlProposer(rules=["rebalance", "resource_sharing"])


def _request(**feedback: Any) -> ProposalRequest:
    target = domain.Target(domain.TargetKind.RTL, "two", (domain.SourceFile("two.v", DESIGN),))
    return ProposalRequest(target, DESIGN, domain.Metrics(), feedback=feedback, count=8, seed=3)


def _singles(proposals: list[Proposal]) -> list[str]:
    return [p.rule for p in proposals if "+" not in p.rule]


def test_the_critical_path_puts_the_timing_rule_first(proposer: OfflineRtlProposer) -> None:
    hot_x = proposer.propose(_request(objectives=["area_um2", "delay_ns"], critical_path=["two.x[3]", "a"]))
    assert hot_x[0].rule == "rebalance+resource_sharing"  # all compatible sites together lead
    assert _singles(hot_x) == ["rebalance", "resource_sharing"]
    assert "x" in hot_x[1].touched


def test_area_objective_without_a_path_prefers_the_area_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RULES, "rebalance", SwapRule("rebalance", 0, ("x", "a", "b")))
    monkeypatch.setitem(RULES, "resource_sharing", SwapRule("resource_sharing", 1, ("y", "c", "d")))
    for objectives, first in ((["area_um2"], "resource_sharing"), (["delay_ns"], "rebalance")):
        fresh = OfflineRtlProposer(rules=["rebalance", "resource_sharing"])
        assert _singles(fresh.propose(_request(objectives=objectives)))[0] == first, objectives


def test_largest_cells_steer_area_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RULES, "fsm_minimise", SwapRule("fsm_minimise", 0, ("x",)))
    monkeypatch.setitem(RULES, "resource_sharing", SwapRule("resource_sharing", 1, ("y",)))
    flops = [
        {"cell": "sky130_fd_sc_hd__dfxtp_1", "count": 40, "area_um2": 800.0},
        {"cell": "sky130_fd_sc_hd__fa_1", "count": 2, "area_um2": 40.0},
    ]
    adders = [
        {"cell": "sky130_fd_sc_hd__fa_1", "count": 40, "area_um2": 800.0},
        {"cell": "sky130_fd_sc_hd__dfxtp_1", "count": 2, "area_um2": 40.0},
    ]
    for cells, first in ((flops, "fsm_minimise"), (adders, "resource_sharing")):
        fresh = OfflineRtlProposer(rules=["fsm_minimise", "resource_sharing"])
        ranked = _singles(fresh.propose(_request(objectives=["area_um2"], largest_cells=cells)))
        assert ranked[0] == first, (cells[0]["cell"], ranked)


def test_what_was_offered_is_not_offered_again(proposer: OfflineRtlProposer) -> None:
    request = _request()
    first = proposer.propose(ProposalRequest(**{**request.__dict__, "count": 2}))
    second = proposer.propose(ProposalRequest(**{**request.__dict__, "count": 2}))
    assert len(first) == 2 and len(second) == 1
    assert not {p.source for p in first} & {p.source for p in second}
    assert proposer.propose(request) == []


def test_rule_and_touched_reach_the_candidate_note() -> None:
    proposal = Proposal(
        "module m; endmodule", "offline:resource_sharing", "Shared one adder", "resource_sharing", ("y", "c")
    )
    note = lineage_note(proposal)
    assert note.startswith("Shared one adder") and "rule resource_sharing" in note and "touched y, c" in note
