"""logic_minimise: one small combinational function in four spellings becomes the same proven sum of
products; x entries become don't-cares; explicit sensitivity lists are left alone; on public corpus
designs the rule fires and its proposal passes the real verifier cascade."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from evoforge.agents.rtl_rules import logic_minimise
from evoforge.agents.rtl_rules.text_sites import apply_edits

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "agents"))
from equiv_ctx import fast_cascade  # noqa: E402
from rtl_checks import reset_equivalent, rule_sites  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "rtl"

# y = (a & b) | c, written four ways; `sel` picks among constants through a case table
SPELLINGS = {
    "assign_ternary": "module m (input a, b, c, output y);\n"
    "  assign y = c ? 1'b1 : (a ? b : 1'b0);\nendmodule\n",
    "always_if_chain": "module m (input a, b, c, output reg y);\n"
    "  always @(*) begin\n    if (c) y = 1'b1;\n    else if (a && b) y = 1'b1;\n    else y = 1'b0;\n"
    "  end\nendmodule\n",
    "case_parameter_labels": "module m (input a, b, c, output reg y);\n"
    "  localparam [2:0] ONLY_C = 3'b001, AB = 3'b110;\n"
    "  always @* begin\n    case ({a, b, c})\n      AB: y = 1'b1;\n"
    "      ONLY_C, 3'b011, 3'b101, 3'b111: y = 1;\n"
    "      default: y = 1'b0;\n    endcase\n  end\nendmodule\n",
    "sv_always_comb_for": "module m (input logic a, b, c, output logic y);\n"
    "  logic [1:0] v;\n  assign v = {a, b};\n"
    "  always_comb begin\n    y = c;\n    for (int i = 0; i < 1; i++) y = y | (v[0] & v[1]);\n  end\n"
    "endmodule\n",
}


def _sites(text: str) -> tuple[list[Any], list[str]]:
    return rule_sites(logic_minimise.RULE, text)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_becomes_a_proven_sum_of_products(spelling: str, tmp_path: Path) -> None:
    text = SPELLINGS[spelling]
    sites, declines = _sites(text)
    targets = [s for s in sites if "y" in s.touched[:1]]
    assert len(targets) == 1, (sites, declines)
    patched = apply_edits(text, targets[0].edits)
    assert "(a & b) | c" in patched.replace("((", "(") or "c | (a & b)" in patched, patched
    ok, log = reset_equivalent(text, patched, "m", tmp_path / "eq", steps=0)
    assert ok, f"{patched}\n{log[-1500:]}"


def test_a_parity_table_is_written_as_xor(tmp_path: Path) -> None:
    text = (
        "module m (input [2:0] x, output reg p);\n  always @* case (x)\n"
        "    3'd0, 3'd3, 3'd5, 3'd6: p = 1'b1;\n    default: p = 1'b0;\n  endcase\nendmodule\n"
    )
    sites, declines = _sites(text)
    assert len(sites) == 1, declines
    patched = apply_edits(text, sites[0].edits)
    assert "~(x[0] ^ x[1] ^ x[2])" in patched, patched
    assert reset_equivalent(text, patched, "m", tmp_path / "eq", steps=0)[0]


def test_a_table_with_x_entries_uses_them_as_dont_cares() -> None:
    # (the x rules in full: test_rule_dont_care.py)
    text = SPELLINGS["case_parameter_labels"].replace("default: y = 1'b0;", "default: y = 1'bx;")
    sites, declines = _sites(text)
    # every row is 1 or x: with the x rows free, y is the constant 1 — which an always @* cannot be
    assert sites == [] and any("is constant" in d for d in declines), (sites, declines)
    text = text.replace("always @*", "always_comb").replace("output reg y", "output logic y")
    sites, declines = _sites(text)
    assert len(sites) == 1 and "don't-cares" in sites[0].note, (sites, declines)
    assert "always_comb y = 1'b1;" in apply_edits(text, sites[0].edits)


def test_an_explicit_sensitivity_list_or_a_constant_always_star_is_left_alone() -> None:
    partial = SPELLINGS["always_if_chain"].replace("@(*)", "@(c)")
    assert _sites(partial)[0] == []
    constant = "module m (input a, output reg y);\n  always @* y = a & ~a;\nendmodule\n"
    sites, declines = _sites(constant)
    assert sites == [] and any("constant" in d for d in declines), declines


def test_a_constant_assign_is_propagated(tmp_path: Path) -> None:
    text = "module m (input a, output y);\n  wire t = ~a;\n  assign y = a & t;\nendmodule\n"
    sites, declines = _sites(text)
    assert len(sites) == 1, declines
    patched = apply_edits(text, sites[0].edits)
    assert "assign y = 1'b0;" in patched, patched
    assert reset_equivalent(text, patched, "m", tmp_path / "eq", steps=0)[0]


# the next state of q (and of a delayed copy p) in four spellings: q' = load ? d : (en ? ~q : q)
CLOCKED = {
    "always_if_chain": "module m (input clk, rst_n, load, en, d, output reg q, output reg p);\n"
    "  always @(posedge clk or negedge rst_n)\n    if (!rst_n) begin q <= 1'b1; p <= 0; end\n"
    "    else begin\n      if (load) q <= d;\n      else if (en) q <= ~q;\n      p <= q;\n    end\n"
    "endmodule\n",
    "assign_ternary_next": "module m (input clk, rst_n, load, en, d, output reg q, output reg p);\n"
    "  wire nq = load ? d : en ? !q : q;\n"
    "  always @(posedge clk, negedge rst_n) begin\n    if (~rst_n) begin q <= 1; p <= 1'b0; end\n"
    "    else begin q <= nq; p <= q; end\n  end\nendmodule\n",
    "case_parameter_labels": "module m (input clk, rst_n, load, en, d, output reg q, output reg p);\n"
    "  localparam HOLD = 2'b00, FLIP = 2'b01;\n"
    "  always @(posedge clk or negedge rst_n) begin\n    if (rst_n == 1'b0) begin q <= 1'b1; p <= 1'b0; end\n"
    "    else begin\n      p <= q;\n      case ({load, en})\n        HOLD: q <= q;\n        FLIP: q <= ~q;\n"
    "        default: q <= d;\n      endcase\n    end\n  end\nendmodule\n",
    "sv_always_ff_xor": "module m (input logic clk, rst_n, load, en, d, output logic q, p);\n"
    "  always_ff @(posedge clk or negedge rst_n)\n    if (!rst_n) begin q <= '1; p <= '0; end\n"
    "    else begin q <= load ? d : q ^ en; p <= q; end\nendmodule\n",
}


@pytest.mark.parametrize("spelling", sorted(CLOCKED))
def test_every_clocked_spelling_gets_a_proven_next_state(spelling: str, tmp_path: Path) -> None:
    text = CLOCKED[spelling]
    sites, declines = _sites(text)
    clocked = [s for s in sites if "next state of q" in s.note]
    assert len(clocked) == 1, (sites, declines)
    patched = apply_edits(text, clocked[0].edits)
    assert "if (!rst_n) begin q <= 1'b1; p <= 1'b0; end" in patched, patched
    ok, log = reset_equivalent(text, patched, "m", tmp_path / "eq", reset="rst_n", active_low=True)
    assert ok, f"{patched}\n{log[-1500:]}"


def test_a_concatenated_target_is_left_alone() -> None:
    text = CLOCKED["sv_always_ff_xor"].replace("begin q <= '1; p <= '0; end", "{q, p} <= 2'b10;")
    assert [s for s in _sites(text)[0] if "next state of q" in s.note] == []


def test_a_clocked_block_with_blocking_writes_is_left_alone() -> None:
    text = CLOCKED["always_if_chain"].replace("q <= d", "q = d").replace("q <= ~q", "q = ~q")
    sites, declines = _sites(text)
    assert [s for s in sites if "next state of q" in s.note] == []
    assert any("blocking" in d for d in declines), declines


def test_registers_of_two_clocks_in_one_block_are_left_alone() -> None:
    text = (
        "module m (input c1, c2, a, b, output reg x, y);\n"
        "  always @(posedge c1 or posedge c2) begin x <= a; y <= b; end\nendmodule\n"
    )
    assert _sites(text)[0] == []


def test_a_target_aliased_to_its_leaf_is_not_read_as_its_own_leaf() -> None:
    """`assign ins = r[7:5]` makes ins's bits r's bits: the leaf must be written r[..], never ins."""
    text = (
        "module m (input clk, input [7:0] d, output [2:0] ins, output [2:0] low);\n"
        "  reg [7:0] r;\n  always @(posedge clk) r <= d;\n"
        "  assign ins = r[7:5];\n  assign low = ~r[2:0];\nendmodule\n"
    )
    sites = _sites(text)[0]
    patched = apply_edits(text, [e for s in sites for e in s.edits])
    assert "assign ins = ins" not in patched and "assign ins = r[7:5];" in patched, patched
    assert "assign low = {~r[2], ~r[1], ~r[0]};" in patched, patched


def test_too_many_leaves_are_left_alone() -> None:
    wide = "module m (input [8:0] a, output y);\n  assign y = ^a;\nendmodule\n"
    assert _sites(wide)[0] == []


CORPUS_DESIGNS = [
    "verilog-eval/Prob132_always_if2_ref.sv",
    "verilog-eval/Prob112_always_case2_ref.sv",
    "verilog-eval/Prob122_kmap4_ref.sv",
]


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the public corpus is absent ({CORPUS})")
@pytest.mark.parametrize("relative", CORPUS_DESIGNS)
def test_corpus_designs_fire_and_pass_the_cascade(relative: str, tmp_path: Path) -> None:
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    path = CORPUS / relative
    target = load_rtl_target([path], RtlTargetOptions(), workdir=tmp_path / "target")
    sites, declines = _sites(target.source)
    assert sites, declines
    patched = apply_edits(target.source, [e for s in sites for e in s.edits])
    verdict = fast_cascade(target, tmp_path).verify(patched)
    assert verdict.accepted, f"{verdict.stage}: {verdict.reason}\n{patched}"
