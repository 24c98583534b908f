"""Parallel-prefix adders for wide +, -, < in any spelling: each proposal is proven equal by SAT and is
shallower; operands whose value would change as a function argument are declined with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rtl_checks import reset_equivalent, rule_sites, sky130

from evoforge.agents.rtl_rules.prefix_adder import RULE
from evoforge.agents.rtl_rules.text_sites import apply_edits

SPELLINGS = {
    "continuous_assign": """\
module adder (input [15:0] a, b, output [16:0] y);
  // a 17-bit sum of two 16-bit words
  assign y = a + b;
endmodule
""",
    "always_if": """\
module adder (input [15:0] a, b, input sub, output reg [15:0] y);
  always @(a or b or sub)
    if (sub) y = a - b;
    else y = b - a;
endmodule
""",
    "case_parameter_labels": """\
module adder (input [1:0] op, input [15:0] a, b, output reg [15:0] y);
  localparam ADD = 2'd0, SUB = 2'd1;
  always @* begin
    case (op)
      ADD: y = a + b;
      SUB: y = a - b;
      default: y = a;
    endcase
  end
endmodule
""",
    "for_loop_lanes": """\
module adder (input [31:0] a, b, output reg [33:0] s);
  integer i;
  always @* begin
    for (i = 0; i < 2; i = i + 1)
      s[i*17 +: 17] = a[i*16 +: 16] + b[i*16 +: 16];
  end
endmodule
""",
    "systemverilog_carry_in": """\
module adder (input logic [15:0] a, b, input logic cin, output logic [15:0] y, output logic cout);
  always_comb {cout, y} = a + b + cin;
endmodule
""",
    "signed_compare": """\
module adder (input signed [11:0] a, b, input [11:0] u, v, output lt, output ge);
  assign lt = a < b;
  assign ge = u >= v;
endmodule
""",
}


def _sites(text: str) -> tuple[list[Any], list[str]]:
    return rule_sites(RULE, text)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_gets_a_proven_prefix_adder(spelling: str, tmp_path: Path) -> None:
    text = SPELLINGS[spelling]
    sites, declines = _sites(text)
    assert sites, declines
    patched = apply_edits(text, [e for s in sites for e in s.edits])
    ok, log = reset_equivalent(text, patched, "adder", tmp_path / "eq", steps=0)
    assert ok, f"{patched}\n{log[-1500:]}"
    _, before = sky130(text, "adder", tmp_path / "before")
    _, after = sky130(patched, "adder", tmp_path / "after")
    assert after <= before, (before, after)
    # the user's lines other than the rewritten expressions are kept
    assert all(line in patched for line in text.splitlines() if not set("+-<>") & set(line))


def test_a_wide_subtraction_is_faster_in_sky130(tmp_path: Path) -> None:
    text = """\
module sub64 (input [63:0] a, b, output [63:0] d);
  assign d = a - b;
endmodule
"""
    (site,) = _sites(text)[0]
    patched = apply_edits(text, site.edits)
    ok, log = reset_equivalent(text, patched, "sub64", tmp_path / "eq", steps=0)
    assert ok, log[-1500:]
    _, before = sky130(text, "sub64", tmp_path / "before")
    _, after = sky130(patched, "sub64", tmp_path / "after")
    assert after < before


DECLINED = {
    # a sum of several words: synthesis builds one carry-save tree for it, better than a chain
    "accumulation": (
        "module adder (input [63:0] v, output reg [9:0] acc);\n  integer i;\n  always @* begin\n"
        "    acc = 10'd0;\n    for (i = 0; i < 4; i = i + 1) acc = acc + v[i*16 +: 8];\n  end\nendmodule\n",
        "a sum of several words",
    ),
    # an operand whose width comes from its context
    "compound_operand": (
        "module adder (input [15:0] a, b, c, output [15:0] y);\n  assign y = (a & b) + c;\nendmodule\n",
        "depends on its context",
    ),
    # a signed operand extended in an unsigned context
    "signedness": (
        "module adder (input signed [7:0] s, input [15:0] u, output [15:0] y);\n"
        "  assign y = s + u;\nendmodule\n",
        "extended differently",
    ),
}


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_unsafe_operands_are_declined_with_the_reason(case: str) -> None:
    text, reason = DECLINED[case]
    sites, declines = _sites(text)
    assert sites == []
    assert any(reason in d for d in declines), declines


def test_narrow_operators_are_left_to_synthesis() -> None:
    sites, _ = _sites("module adder (input [2:0] a, b, output [3:0] y);\n  assign y = a + b;\nendmodule\n")
    assert sites == []
