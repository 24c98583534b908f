"""Compare-select chains found on the word-level netlist: the same logic in several spellings.

Each spelling computes the max (or min) of five values; each must get a rebalance proposal that
Yosys proves equal to the original and that synthesises shallower.
"""

from __future__ import annotations

import pytest

from evoforge.agents.rtl_rules.select_tree import chains
from evoforge.tools.yosys_netlist import word_netlist

SPELLINGS = {
    "continuous_assigns": """\
module mx (input [7:0] a, b, c, d, e, output [7:0] y);
  // running max, one continuous assign per step
  wire [7:0] m1 = a > b ? a : b;
  wire [7:0] m2 = m1 > c ? m1 : c;
  wire [7:0] m3;
  assign m3 = (m2 >= d) ? m2 : d;
  assign y = e > m3 ? e : m3;
endmodule
""",
    "if_chain_explicit_sensitivity": """\
module mx (input [7:0] a, b, c, d, e, output reg [7:0] y);
  always @(a or b or c or d or e) begin
    y = a;
    if (b < y) y = b;
    if (y > c) y = c;
    if (d < y) y = d;
    if (e <= y) y = e;
  end
endmodule
""",
    "for_loop_packed_vector": """\
module mx (input [39:0] v, output reg [7:0] y);
  integer i;
  always @* begin
    y = v[7:0];
    for (i = 1; i < 5; i = i + 1)
      if (v[i*8 +: 8] > y) y = v[i*8 +: 8];
  end
endmodule
""",
    "ternary_statements_signed": """\
module mx (input signed [7:0] a, b, c, d, e, output reg signed [7:0] y);
  reg signed [7:0] t;
  always @* begin
    t = (a > b) ? a : b;
    t = (t > c) ? t : c;
    t = (d > t) ? d : t;
    y = (t >= e) ? t : e;
  end
endmodule
""",
    "generate_loop": """\
module mx (input [39:0] v, output [7:0] y);
  wire [7:0] m [0:4];
  assign m[0] = v[7:0];
  genvar k;
  generate
    for (k = 1; k < 5; k = k + 1) begin : step
      assign m[k] = (v[k*8 +: 8] > m[k-1]) ? v[k*8 +: 8] : m[k-1];
    end
  endgenerate
  assign y = m[4];
endmodule
""",
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_is_one_netlist_chain(spelling: str) -> None:
    netlist = word_netlist(SPELLINGS[spelling])
    found = chains(netlist.modules["mx"])
    assert len(found) == 1, found
    assert found[0].depth == 4 and len(found[0].leaves) == 5


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_gets_a_proven_shallower_tree(
    spelling: str, rule_proposals, yosys_equivalent, yosys_metrics, tmp_path
) -> None:
    text = SPELLINGS[spelling]
    proposals = [
        p
        for p in rule_proposals(text, "mx", "rebalance")
        if "-input max chain" in p.note or "-input min chain" in p.note
    ]
    assert proposals, f"no netlist rebalance proposal for the {spelling} spelling"
    ok, log = yosys_equivalent(text, proposals[0].source, "mx", tmp_path / "eq")
    assert ok, log[-2000:]
    before = yosys_metrics(text, "mx", tmp_path / "before")
    after = yosys_metrics(proposals[0].source, "mx", tmp_path / "after")
    assert after.depth < before.depth, (before, after)
    # the user's lines outside the chain's driver are kept
    assert text.splitlines()[0] in proposals[0].source


def test_a_chain_read_by_a_clocked_block_is_declined_with_its_reason() -> None:
    from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer

    text = """\
module mx (input clk, input [7:0] a, b, c, d, output reg [7:0] y);
  always @(posedge clk) begin
    y <= (((a > b ? a : b) > c ? (a > b ? a : b) : c) > d) ? ((a > b ? a : b) > c ? (a > b ? a : b) : c) : d;
  end
endmodule
"""
    outcomes = {o.rule: o for o in OfflineRtlProposer(["rebalance"]).explain(text)}
    assert not outcomes["rebalance"].applied
    assert "unnamed" in outcomes["rebalance"].reason or "clocked" in outcomes["rebalance"].reason
