"""Operator sharing found on the netlist (the spellings the statement matchers missed): case labels
as parameter names, explicit sensitivity lists, SystemVerilog, ternaries; each proposal is proven
equal by SAT and keeps fewer arithmetic cells; operators a select does not separate are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from rtl_checks import reset_equivalent

from evoforge.agents.rtl_rules import operator_sharing
from evoforge.agents.rtl_rules.ast_utils import collecting_declines
from evoforge.agents.rtl_rules.text_sites import Design, apply_edits

ADDSUB = {
    # the MIPS-style ALU of issue 12: parameter labels, an explicit event list
    "case_parameter_labels_event_list": """\
module alu (a, b, op, y);
  input [15:0] a, b;
  input [2:0] op;
  output reg [15:0] y;
  parameter ADD = 3'b000, SUB = 3'b001, AND = 3'b010, RSUB = 3'b011;
  always @(a or b or op)
    case (op)
      ADD: y = a + b;
      SUB: y = a - b;
      RSUB: y = b - a;
      AND: y = a & b;
      default: y = 16'd0;
    endcase
endmodule
""",
    "if_else_chain": """\
module alu (input [15:0] a, b, input sub, output reg [15:0] y);
  always @* begin
    if (sub) y = a - b;
    else y = a + b;
  end
endmodule
""",
    "ternary_assign": """\
module alu (input [15:0] a, b, input [1:0] op, output [15:0] y);
  assign y = (op == 2'd2) ? a - b : a + b;
endmodule
""",
    "systemverilog_always_comb": """\
module alu (input logic [15:0] a, b, input logic sub, output logic [15:0] y, output logic zero);
  always_comb begin
    unique case (sub)
      1'b0: y = a + b;
      1'b1: y = a - b;
    endcase
    zero = y == '0;
  end
endmodule
""",
}

SAME_OP = {
    "case_multipliers": """\
module mulsel (input [1:0] s, input [3:0] a, b, c, d, e, f, output reg [7:0] y);
  localparam P0 = 2'd0, P1 = 2'd1;
  always @*
    case (s)
      P0: y = a * b;
      P1: y = c * d;
      default: y = e * f;
    endcase
endmodule
""",
    "ternary_multipliers": """\
module mulsel (input s, input [3:0] a, b, c, d, output [7:0] y);
  assign y = s ? a * b : c * d;
endmodule
""",
}


def _sites(text: str, mixed: bool):
    with collecting_declines() as declines:
        sites = operator_sharing.text_sites(Design(text), "x", mixed=mixed)
    return sites, declines


@pytest.mark.parametrize(
    ("spelling", "mixed"), [*((s, True) for s in ADDSUB), *((s, False) for s in SAME_OP)]
)
def test_every_spelling_shares_one_operator(spelling: str, mixed: bool, tmp_path: Path) -> None:
    text = {**ADDSUB, **SAME_OP}[spelling]
    sites, declines = _sites(text, mixed)
    assert len(sites) == 1, declines
    patched = apply_edits(text, sites[0].edits)
    top = "alu" if mixed else "mulsel"
    ok, log = reset_equivalent(text, patched, top, tmp_path / "eq", steps=0)
    assert ok, f"{patched}\n{log[-1500:]}"
    assert text.splitlines()[0] in patched
    if "event_list" in spelling:  # the new wire joins the explicit sensitivity list
        assert "or evo_sh)" in patched


def test_the_shared_design_has_one_adder(tmp_path: Path) -> None:
    from evoforge.tools.yosys import Yosys

    text = ADDSUB["case_parameter_labels_event_list"]
    (site,) = _sites(text, True)[0]
    patched = apply_edits(text, site.edits)
    counts = []
    for name, design in (("before", text), ("after", patched)):
        (tmp_path / f"{name}.v").write_text(design)
        run = Yosys(timeout=120).run_script(
            f"read_verilog -sv {name}.v\nsynth -top alu -run :fine\ntee -o {name}.txt stat\n",
            cwd=tmp_path,
            name=name,
        )
        assert run.ok, run.error
        stat = (tmp_path / f"{name}.txt").read_text()
        counts.append(sum(int(n) for n in __import__("re").findall(r"\$(?:alu|add|sub|macc)\s+(\d+)", stat)))
    assert counts[1] < counts[0], counts


def test_operators_read_outside_the_select_are_left_alone() -> None:
    text = ADDSUB["if_else_chain"].replace(
        "output reg [15:0] y);", "output reg [15:0] y, output [15:0] d);\n  assign d = a - b;"
    )
    sites, _ = _sites(text, True)
    assert sites == []  # a - b is also an output: sharing it would change d


def test_loop_copies_are_left_alone() -> None:
    text = """\
module alu (input [31:0] a, b, input [1:0] sub, output reg [31:0] y);
  integer i;
  always @* for (i = 0; i < 2; i = i + 1)
    y[i*16 +: 16] = sub[i] ? a[i*16 +: 16] - b[i*16 +: 16] : a[i*16 +: 16] + b[i*16 +: 16];
endmodule
"""
    sites, _ = _sites(text, True)
    assert sites == []
