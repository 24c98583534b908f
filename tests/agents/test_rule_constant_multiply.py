"""Strength reduction found on the netlist: products by constants in four spellings become CSD
shift-add functions, proven equal by SAT; signed products and loop bodies are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from rtl_checks import reset_equivalent

from evoforge.agents.rtl_rules import constant_multiply
from evoforge.agents.rtl_rules.ast_utils import collecting_declines
from evoforge.agents.rtl_rules.text_sites import Design, apply_edits

SPELLINGS = {
    "assign_literal": "module m (input [9:0] x, output [15:0] y);\n  assign y = x * 15;\nendmodule\n",
    "event_list_sized": (
        "module m (input [9:0] x, output reg [15:0] y);\n  always @(x) y = x * 10'd27;\nendmodule\n"
    ),
    "always_comb_localparam": (
        "module m (input logic [9:0] x, output logic [15:0] y);\n  localparam logic [7:0] K = 8'd119;\n"
        "  always_comb y = K * x;\nendmodule\n"
    ),
    "case_parameter_factor": (
        "module m (input [1:0] s, input [9:0] x, output reg [15:0] y);\n  parameter F = 23;\n"
        "  always @* case (s)\n    2'd0: y = x * F;\n    2'd1: y = x;\n    default: y = s ? x : 16'd0;\n"
        "  endcase\nendmodule\n"
    ),
}


def _sites(text: str):
    with collecting_declines() as declines:
        sites = constant_multiply.text_sites(Design(text), "strength_reduction")
    return sites, declines


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_becomes_shifts_and_adds(spelling: str, tmp_path: Path) -> None:
    text = SPELLINGS[spelling]
    sites, declines = _sites(text)
    assert len(sites) == 1, declines
    patched = apply_edits(text, sites[0].edits)
    body = patched.split("endfunction")[1]
    assert "<<" in patched and " * " not in body
    ok, log = reset_equivalent(text, patched, "m", tmp_path / "eq", steps=0)
    assert ok, f"{patched}\n{log[-1500:]}"


def test_signed_products_and_cheap_constants_are_left_alone() -> None:
    signed = "module m (input signed [9:0] x, output signed [15:0] y);\n  assign y = x * 15;\nendmodule\n"
    cheap = "module m (input [9:0] x, output [15:0] y);\n  assign y = x * 5;\nendmodule\n"  # 101: no saving
    assert _sites(signed)[0] == [] and _sites(cheap)[0] == []


def test_a_loop_body_is_declined_with_the_reason() -> None:
    text = (
        "module m (input [19:0] x, output reg [31:0] y);\n  integer i;\n"
        "  always @* for (i = 0; i < 2; i = i + 1) y[i*16 +: 16] = x[i*10 +: 10] * 15;\nendmodule\n"
    )
    sites, declines = _sites(text)
    assert sites == [] and any("not one written expression" in d for d in declines)
