"""Arithmetic built bit by bit becomes one word operator, found by what it computes and proven by SAT
inside the rule: five spellings (full-adder instances, per-bit gate equations in a generate loop, a
shift-and-add loop, a mux-ladder shifter in SystemVerilog, a ripple subtractor); an almost-adder and
logic that also drives another port are left alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rtl_checks import reset_equivalent, rule_sites

from evoforge.agents.rtl_rules.text_sites import apply_edits
from evoforge.agents.rtl_rules.word_operator import RULE

FULL_ADDER = """\
module fa (input x, y, ci, output s, co);
  assign s = x ^ y ^ ci;
  assign co = (x & y) | (ci & (x ^ y));
endmodule
"""

SPELLINGS = {
    "full_adder_instances": (
        """\
module top (input [3:0] a, b, input cin, output [3:0] sum, output cout);
  wire [3:0] c;
  fa f0 (.x(a[0]), .y(b[0]), .ci(cin), .s(sum[0]), .co(c[0]));
  fa f1 (.x(a[1]), .y(b[1]), .ci(c[0]), .s(sum[1]), .co(c[1]));
  fa f2 (.x(a[2]), .y(b[2]), .ci(c[1]), .s(sum[2]), .co(c[2]));
  fa f3 (.x(a[3]), .y(b[3]), .ci(c[2]), .s(sum[3]), .co(c[3]));
  assign cout = c[3];
endmodule
"""
        + FULL_ADDER,
        "{cout, sum} = a + b + cin",
    ),
    "generate_gate_equations": (
        """\
module top (input [5:0] a, b, output [5:0] sum, output cout);
  wire [6:0] c;
  assign c[0] = 1'b0;
  genvar i;
  generate
    for (i = 0; i < 6; i = i + 1) begin : bitwise
      assign sum[i] = a[i] ^ b[i] ^ c[i];
      assign c[i+1] = (a[i] & b[i]) | (c[i] & (a[i] | b[i]));
    end
  endgenerate
  assign cout = c[6];
endmodule
""",
        "{cout, sum} = a + b",
    ),
    "shift_add_loop": (
        """\
module top (input [3:0] x, input [3:0] y, output reg [7:0] p);
  integer i;
  always @(x or y) begin
    p = 8'd0;
    for (i = 0; i < 4; i = i + 1)
      if (y[i]) p = p + ({4'd0, x} << i);
  end
endmodule
""",
        "p = x * y",
    ),
    "systemverilog_mux_ladder": (
        """\
module top (input logic [7:0] d, input logic [2:0] s, output logic [7:0] q);
  logic [7:0] l1, l2;
  always_comb begin
    l1 = s[2] ? {4'b0, d[7:4]} : d;
    l2 = s[1] ? {2'b0, l1[7:2]} : l1;
    q = s[0] ? {1'b0, l2[7:1]} : l2;
  end
endmodule
""",
        "q = d >> s",
    ),
    "ripple_subtractor": (
        """\
module top (input [3:0] a, b, output [3:0] d);
  wire [4:0] c;
  assign c[0] = 1'b1;
  fa f0 (.x(a[0]), .y(~b[0]), .ci(c[0]), .s(d[0]), .co(c[1]));
  fa f1 (.x(a[1]), .y(~b[1]), .ci(c[1]), .s(d[1]), .co(c[2]));
  fa f2 (.x(a[2]), .y(~b[2]), .ci(c[2]), .s(d[2]), .co(c[3]));
  fa f3 (.x(a[3]), .y(~b[3]), .ci(c[3]), .s(d[3]), .co(c[4]));
endmodule
"""
        + FULL_ADDER,
        "d = a - b",
    ),
}


def _sites(text: str) -> tuple[list[Any], list[str]]:
    return rule_sites(RULE, text)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_becomes_one_proven_operator(spelling: str, tmp_path: Path) -> None:
    text, operator = SPELLINGS[spelling]
    sites, declines = _sites(text)
    assert len(sites) == 1, declines
    site = sites[0]
    assert operator in site.note, site.note
    patched = apply_edits(text, site.edits)
    ok, log = reset_equivalent(text, patched, "top", tmp_path / "eq", steps=0)
    assert ok, f"{patched}\n{log[-1500:]}"
    assert text.splitlines()[0] in patched  # the header is kept


def test_an_almost_adder_is_not_proposed() -> None:
    text, _ = SPELLINGS["generate_gate_equations"]
    wrong = text.replace("(c[i] & (a[i] | b[i]))", "(c[i] & (a[i] ^ b[i] ^ (i == 3)))")
    assert _sites(wrong)[0] == []


def test_logic_that_also_drives_another_port_is_left_alone() -> None:
    text, _ = SPELLINGS["full_adder_instances"]
    exposed = text.replace("output cout);", "output cout, output [3:0] carries);").replace(
        "  assign cout = c[3];", "  assign cout = c[3];\n  assign carries = c;"
    )
    sites, declines = _sites(exposed)
    assert sites == []
    assert any("used elsewhere" in d or "another port" in d for d in declines), declines
