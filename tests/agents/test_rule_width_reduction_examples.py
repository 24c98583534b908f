"""Regression: width reduction must analyse every bundled example without raising.

It once raised TypeError in the next-state walk on fir4 and alu16; the offline proposer logged and
skipped the rule, hiding its sites.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from evoforge.agents.rtl_rules import width_reduction
from evoforge.agents.rtl_rules.text_sites import Design

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rtl"

# the high-bits analysis walks up through Rvalue and low-closed operators of the register's own next state
LOW_BITS = """
module lowcnt(input clk, input rst, input en, output [3:0] q);
  reg [15:0] c;
  always @(posedge clk)
    if (rst) c <= 16'd0;
    else if (en) c <= (c + 16'd3) ^ {c[7:0], 8'd0};
  assign q = c[3:0];
endmodule
"""


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.v")))
def test_every_example_is_analysed(name: str) -> None:
    width_reduction.RULE.text_sites(Design((EXAMPLES / name).read_text()), random.Random(0))


def test_the_next_state_walk_finds_unused_high_bits() -> None:
    sites = width_reduction.RULE.text_sites(Design(LOW_BITS), random.Random(0))
    assert len(sites) == 1 and "c" in sites[0].touched
