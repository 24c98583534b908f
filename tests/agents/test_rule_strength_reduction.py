"""Strength reduction on designs in different styles: each proposal re-parses, keeps the ports, is proven
equal by yosys and synthesises to fewer cells; unsafe or useless products are left alone."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from evoforge.agents.rtl_rules.strength_reduction import csd_digits, worth_it
from evoforge.tools.verilog_ast import parse_verilog

RULE = "strength_reduction"

# 1. continuous assign, sized constant on the right
ASSIGN = """
module scale7(input [5:0] a, input [7:0] b, output [9:0] y);
  assign y = a * 6'd7 + b;
endmodule
"""

# 2. always @*, unsized (32-bit, signed) constant on the left, narrower target, inside a ternary
ALWAYS_UNSIZED = """
module pick(input s, input [5:0] d, input [5:0] e, output reg [11:0] p);
  always @* begin
    if (s) p = 23 * d;
    else p = e * 30 - d;
  end
endmodule
"""

# 3. sequential, all signed: a signed constant times a signed input accumulates
SIGNED_SEQ = """
module macs(input clk, input rst, input signed [4:0] s, output reg signed [11:0] acc);
  always @(posedge clk)
    if (rst) acc <= 12'sd0;
    else acc <= acc + 12'sd14 * s;
endmodule
"""

DESIGNS = [(ASSIGN, "scale7", 1, 0), (ALWAYS_UNSIZED, "pick", 2, 0), (SIGNED_SEQ, "macs", 1, 4)]


@pytest.mark.parametrize(("text", "top", "sites", "steps"), DESIGNS, ids=[d[1] for d in DESIGNS])
def test_products_become_equivalent_smaller_shift_adds(
    text, top, sites, steps, tmp_path: Path, rule_proposals, yosys_equivalent, yosys_metrics
) -> None:
    proposals = rule_proposals(text, top, RULE)
    assert len(proposals) == sites + (1 if sites > 1 else 0)
    before = yosys_metrics(text, top, tmp_path / "before")
    ports = parse_verilog(text).modules[top].ports
    for index, proposal in enumerate(proposals):
        assert proposal.rule == RULE and proposal.note and proposal.touched
        assert parse_verilog(proposal.source).modules[top].ports == ports
        ok, log = yosys_equivalent(text, proposal.source, top, tmp_path / f"eq{index}", steps=steps)
        assert ok, f"not equivalent:\n{proposal.source}\n{log[-2000:]}"
        after = yosys_metrics(proposal.source, top, tmp_path / f"after{index}")
        assert after.cells < before.cells, (before, after)


def test_csd_digits() -> None:
    for value in range(1, 600):
        assert sum(d << s for s, d in csd_digits(value)) == value
        digits = [s for s, _ in csd_digits(value)]
        assert all(a - b >= 2 for a, b in itertools.pairwise(digits))  # no adjacent non-zeros
    assert csd_digits(119) == [(7, 1), (3, -1), (0, -1)]
    assert worth_it(15) and not worth_it(5) and not worth_it(16)


def test_the_equivalence_check_can_fail(tmp_path: Path, yosys_equivalent) -> None:
    ok, _ = yosys_equivalent(ASSIGN, ASSIGN.replace("a * 6'd7", "(a << 3) - a - 1'b1"), "scale7", tmp_path)
    assert not ok


# a signed input times an unsigned constant: the product is unsigned, `(s << 4) - (s << 1)` would not be
MIXED = SIGNED_SEQ.replace("12'sd14 * s", "12'd14 * s")
# a product whose high bits a right shift reads, widened by an unsized constant (removing it would
# narrow the context)
SHIFTED = ASSIGN.replace("assign y = a * 6'd7 + b;", "assign y = (a * 7 + b) >> 8;")
CHEAP = ASSIGN.replace("6'd7", "6'd5")  # 101: no cheaper than its two partial products


@pytest.mark.parametrize(
    ("text", "top"),
    [(MIXED, "macs"), (SHIFTED, "scale7"), (CHEAP, "scale7")],
    ids=["mixed", "shifted", "cheap"],
)
def test_unsafe_or_useless_products_are_left_alone(
    text: str, top: str, rule_proposals, yosys_equivalent, tmp_path: Path
) -> None:
    # the statement matcher declines all three; the netlist half sees the product at its real width
    # (7 = 8 - 1 is worth it there) and may rewrite the shifted one: then it must be exact
    for proposal in rule_proposals(text, top, RULE):
        assert text is SHIFTED, proposal.note
        ok, log = yosys_equivalent(text, proposal.source, top, tmp_path)
        assert ok, log[-2000:]
