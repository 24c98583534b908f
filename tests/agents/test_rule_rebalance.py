"""Rebalancing running max/min chains written in different styles: each proposal re-parses, keeps the
ports, is proven equal by yosys and has a shorter logic depth; unsafe chains are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.tools.verilog_ast import parse_verilog

RULE = "rebalance"

# 1. running minimum with a payload, `acc > e` written the other way round, last occurrence wins (<=)
MIN_LAST = """
module argmin6(input [4:0] a, b, c, d, e, f, output reg [4:0] lo, output reg [2:0] at);
  always @* begin
    at = 3'd0;
    lo = a;
    if (lo >= b) begin lo = b; at = 3'd1; end
    if (lo >= c) begin at = 3'd2; lo = c; end
    if (lo >= d) begin lo = d; at = 3'd3; end
    if (lo >= e) begin lo = e; at = 3'd4; end
    if (lo >= f) begin lo = f; at = 3'd5; end
  end
endmodule
"""

# 2. value-only running max with ternary steps and narrower elements, then used further in the block
TERNARY_MAX = """
module peak(input [5:0] p0, p1, p2, p3, p4, input [3:0] k, output reg [6:0] top, output reg hi);
  always @(*) begin
    top = p0;
    top = (p1 > top) ? p1 : top;
    top = (top > p2) ? top : p2;
    top = (p3 > top) ? p3 : top;
    top = (k > top) ? k : top;
    top = (p4 > top) ? p4 : top;
    hi = top > 7'd40;
  end
endmodule
"""

# 3. signed elements, first occurrence, payload expressions that are not constants
SIGNED_ARGMAX = """
module sargmax(input signed [3:0] x0, x1, x2, x3, input [1:0] base, output reg signed [3:0] m,
               output reg [2:0] w);
  always @* begin
    m = x0; w = {1'b0, base};
    if (x1 > m) begin m = x1; w = base + 3'd1; end
    if (x2 > m) begin m = x2; w = base + 3'd2; end
    if (m < x3) begin m = x3; w = base + 3'd3; end
  end
endmodule
"""

DESIGNS = [(MIN_LAST, "argmin6"), (TERNARY_MAX, "peak"), (SIGNED_ARGMAX, "sargmax")]


@pytest.mark.parametrize(("text", "top"), DESIGNS, ids=[d[1] for d in DESIGNS])
def test_chains_become_equivalent_shallower_trees(
    text, top, tmp_path: Path, rule_proposals, yosys_equivalent, yosys_metrics
) -> None:
    (proposal,) = rule_proposals(text, top, RULE)
    assert proposal.rule == RULE and proposal.note and proposal.touched
    assert parse_verilog(proposal.source).modules[top].ports == parse_verilog(text).modules[top].ports
    ok, log = yosys_equivalent(text, proposal.source, top, tmp_path / "eq")
    assert ok, f"not equivalent:\n{proposal.source}\n{log[-2000:]}"
    before = yosys_metrics(text, top, tmp_path / "before")
    after = yosys_metrics(proposal.source, top, tmp_path / "after")
    assert after.depth < before.depth, (before, after)


def test_a_wrong_tie_rule_is_caught(tmp_path: Path, rule_proposals, yosys_equivalent) -> None:
    (proposal,) = rule_proposals(MIN_LAST, "argmin6", RULE)
    assert " < " in proposal.source  # last occurrence wins: the nodes keep the right one on ties
    wrong = proposal.source.replace(" < ", " <= ")
    ok, _ = yosys_equivalent(MIN_LAST, wrong, "argmin6", tmp_path)
    assert not ok


MIXED_TIES = MIN_LAST.replace("if (lo >= c)", "if (lo > c)")  # payload chain with two tie rules
SIGNED_MIX = SIGNED_ARGMAX.replace(
    "input signed [3:0] x0, x1, x2, x3,", "input signed [3:0] x0, x1, x2, input [3:0] x3,"
)
READS_BLOCK = TERNARY_MAX.replace(
    "top = (k > top) ? k : top;", "top = (hi > top) ? hi : top;"
)  # hi: assigned here
TOO_WIDE = TERNARY_MAX.replace("input [3:0] k", "input [7:0] k")  # wider than the accumulator: truncates
SHORT = TERNARY_MAX.replace(
    "    top = (top > p2) ? top : p2;\n    top = (p3 > top) ? p3 : top;\n    top = (k > top) ? k : top;\n"
    "    top = (p4 > top) ? p4 : top;\n",
    "",
)  # two elements: already a tree


@pytest.mark.parametrize(
    ("text", "top"),
    [
        (SIGNED_MIX, "sargmax"),
        (READS_BLOCK, "peak"),
        (TOO_WIDE, "peak"),
        (SHORT, "peak"),
    ],
    ids=["signed-mix", "reads-block", "too-wide", "short"],
)
def test_unsafe_chains_are_left_alone(text: str, top: str, rule_proposals) -> None:
    assert rule_proposals(text, top, RULE) == []


def test_a_payload_chain_with_two_tie_rules_only_gets_its_value_rebalanced(
    rule_proposals, yosys_equivalent, tmp_path
) -> None:
    """The index depends on the tie rule, so it keeps its chain; the minimum's value does not."""
    proposals = rule_proposals(MIXED_TIES, "argmin6", RULE)
    for k, proposal in enumerate(proposals):
        assert "netlist" not in proposal.note
        ok, log = yosys_equivalent(MIXED_TIES, proposal.source, "argmin6", tmp_path / str(k))
        assert ok, log[-2000:]
