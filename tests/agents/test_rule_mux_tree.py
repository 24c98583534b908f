"""Selector decodes in any spelling become mux trees: every proposal is proven equal by SAT; selects
the tree would change (labels on different selectors, a select that feeds a register) are left alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rtl_checks import reset_equivalent, rule_sites, sky130

from evoforge.agents.rtl_rules.mux_tree import RULE
from evoforge.agents.rtl_rules.text_sites import apply_edits

SPELLINGS = {
    "case_parameter_labels": """\
module sel (input [2:0] op, input [15:0] a, b, c, d, e, output reg [15:0] y);
  localparam PA = 3'd0, PB = 3'd1, PC = 3'd2, PD = 3'd5, PE = 3'd6;
  always @(op or a or b or c or d or e)
    case (op)
      PA: y = a;
      PB: y = b;
      PC: y = c;
      PD: y = d;
      PE: y = e;
      default: y = 16'hffff;
    endcase
endmodule
""",
    "if_chain": """\
module sel (input [2:0] op, input [15:0] a, b, c, d, e, output reg [15:0] y);
  always @* begin
    if (op == 3'd0) y = a;
    else if (op == 3'd1) y = b;
    else if (op == 3'd2) y = c;
    else if (op == 3'd5) y = d;
    else if (op == 3'd6) y = e;
    else y = 16'hffff;
  end
endmodule
""",
    "ternary_assign": """\
module sel (input [2:0] op, input [15:0] a, b, c, d, e, output [15:0] y);
  assign y = op == 3'd0 ? a : op == 3'd1 ? b : op == 3'd2 ? c : op == 3'd5 ? d : op == 3'd6 ? e : 16'hffff;
endmodule
""",
    "systemverilog_unique_case": """\
module sel (input logic [2:0] op, input logic [15:0] a, b, c, d, e, output logic [15:0] y);
  always_comb begin
    y = '1;
    unique case (op)
      3'd0: y = a;
      3'd1: y = b;
      3'd2: y = c;
      3'd5: y = d;
      3'd6: y = e;
      default: ;
    endcase
  end
endmodule
""",
    "generate_lanes": """\
module sel (input [2:0] op, input [79:0] v, output reg [15:0] y);
  integer k;
  always @* begin
    y = 16'hffff;
    for (k = 0; k < 5; k = k + 1)
      if (op == k) y = v[k*16 +: 16];
  end
endmodule
""",
}


def _sites(text: str) -> tuple[list[Any], list[str]]:
    return rule_sites(RULE, text)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_becomes_a_proven_tree(spelling: str, tmp_path: Path) -> None:
    text = SPELLINGS[spelling]
    sites, declines = _sites(text)
    assert len(sites) == 1, declines
    patched = apply_edits(text, sites[0].edits)
    assert "op[2] ?" in patched
    ok, log = reset_equivalent(text, patched, "sel", tmp_path / "eq", steps=0)
    assert ok, f"{patched}\n{log[-1500:]}"
    assert text.splitlines()[0] in patched


def test_the_tree_is_faster_in_sky130(tmp_path: Path) -> None:
    text = SPELLINGS["case_parameter_labels"]
    (site,) = _sites(text)[0]
    patched = apply_edits(text, site.edits)
    _, before = sky130(text, "sel", tmp_path / "before")
    _, after = sky130(patched, "sel", tmp_path / "after")
    assert after <= before


LEFT_ALONE = {
    # the labels compare two different selectors
    "two_selectors": """\
module sel (input [2:0] op, input [2:0] alt, input [15:0] a, b, c, d, output reg [15:0] y);
  always @* begin
    if (op == 3'd0) y = a;
    else if (alt == 3'd1) y = b;
    else if (op == 3'd2) y = c;
    else y = d;
  end
endmodule
""",
    # the select only feeds a register's next state (no combinational signal to re-drive)
    "clocked": """\
module sel (input clk, input [2:0] op, input [15:0] a, b, c, d, output reg [15:0] y);
  always @(posedge clk)
    case (op)
      3'd0: y <= a;
      3'd1: y <= b;
      3'd2: y <= c;
      default: y <= d;
    endcase
endmodule
""",
    # two arms: nothing to gain
    "two_arms": """\
module sel (input [2:0] op, input [15:0] a, b, output [15:0] y);
  assign y = op == 3'd3 ? a : b;
endmodule
""",
}


@pytest.mark.parametrize("case", sorted(LEFT_ALONE))
def test_selects_the_tree_would_change_are_left_alone(case: str) -> None:
    sites, _ = _sites(LEFT_ALONE[case])
    assert sites == []
