"""Mask select on designs in different styles: each proposal re-parses, keeps the ports, is proven equal
by yosys and synthesises smaller; non-complementary masks and signed values are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.tools.verilog_ast import parse_verilog

RULE = "mask_select"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rtl"

# 2. always @*, sums instead of products, `!k`, mask on the right of one `&`
ALWAYS_SUMS = """
module gate_sum(input [7:0] u, input [7:0] v, input [7:0] w, input [7:0] x, input k, output reg [7:0] q);
  always @* q = ((u + v) & {8{!k}}) | ({8{k}} & (w + x));
endmodule
"""

# 3. separate assigns to 11-bit wires, differences, the operands of `|` swapped
WIRES = """
module bus_or(input [9:0] p0, input [9:0] p1, input [9:0] q0, input [9:0] q1, input s, output [10:0] o);
  wire [10:0] m0;
  wire [10:0] m1;
  assign m0 = p0 - q0;
  assign m1 = p1 - q1;
  assign o = (m1 & {11{s}}) | ({11{~s}} & m0);
endmodule
"""

DESIGNS = [
    ((EXAMPLES / "dual_mul.v").read_text(), "dual_mul"),
    (ALWAYS_SUMS, "gate_sum"),
    (WIRES, "bus_or"),
]


@pytest.mark.parametrize(("text", "top"), DESIGNS, ids=[d[1] for d in DESIGNS])
def test_masked_or_becomes_a_shared_select(
    text, top, tmp_path: Path, rule_proposals, yosys_equivalent, yosys_metrics
) -> None:
    proposals = rule_proposals(text, top, RULE)
    assert len(proposals) == 1
    proposal = proposals[0]
    assert proposal.rule == RULE and "shared one operator" in proposal.note and proposal.touched
    assert parse_verilog(proposal.source).modules[top].ports == parse_verilog(text).modules[top].ports
    ok, log = yosys_equivalent(text, proposal.source, top, tmp_path / "eq")
    assert ok, f"not equivalent:\n{proposal.source}\n{log[-2000:]}"
    before = yosys_metrics(text, top, tmp_path / "before")
    after = yosys_metrics(proposal.source, top, tmp_path / "after")
    assert after.arith < before.arith and after.cells < before.cells, (before, after)


def test_a_wire_read_elsewhere_stays_a_plain_select(tmp_path: Path, rule_proposals, yosys_equivalent) -> None:
    text = WIRES.replace("output [10:0] o);", "output [10:0] o, output [10:0] m);").replace(
        "endmodule", "  assign m = m0;\nendmodule"
    )
    proposals = rule_proposals(text, "bus_or", RULE)
    assert len(proposals) == 1 and "shared" not in proposals[0].note
    assert "(s)? p1 - q1 : m0" in proposals[0].source  # m1 is still inlined, m0 is not
    ok, log = yosys_equivalent(text, proposals[0].source, "bus_or", tmp_path)
    assert ok, log[-2000:]


NEGATIVE = {
    # two different conditions: both values may pass at once
    "two_conditions": WIRES.replace("input s,", "input s, input t,").replace("{11{~s}}", "{11{t}}"),
    # the same polarity twice
    "same_polarity": WIRES.replace("{11{~s}}", "{11{s}}"),
    # signed values: the select would sign-extend where the masked OR zero-extends
    "signed": WIRES.replace("wire [10:0] m0;", "wire signed [10:0] m0;").replace(
        "wire [10:0] m1;", "wire signed [10:0] m1;"
    ),
    # a two-bit condition: {11{s}} is 22 bits and not a mask
    "wide_condition": WIRES.replace("input s,", "input [1:0] s,"),
    # values wider than the mask: the masked OR clears their high bits
    "wider_values": WIRES.replace("{11{s}}", "{10{s}}").replace("{11{~s}}", "{10{~s}}"),
}


@pytest.mark.parametrize("name", list(NEGATIVE))
def test_non_masks_are_left_alone(name: str, rule_proposals, yosys_equivalent, tmp_path: Path) -> None:
    # the statement matcher declines all of these; the netlist half may still find a masked OR where
    # the bits are one (a signed pair of the output's width is one): then it must be exact
    for proposal in rule_proposals(NEGATIVE[name], "bus_or", RULE):
        assert name == "signed", proposal.note
        ok, log = yosys_equivalent(NEGATIVE[name], proposal.source, "bus_or", tmp_path)
        assert ok, log[-2000:]
