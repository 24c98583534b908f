"""logic_minimise's don't-cares: x entries the source writes, and codes a register never holds after
reset (netlist_reach). Each in four spellings, proven against the original with the original's x
as don't-care; the negatives (an x through an operator or a select's control, a register without a
reset code, a register that reaches every code); corpus designs through the real verifier cascade."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from evoforge.agents.rtl_rules import logic_minimise
from evoforge.agents.rtl_rules.netlist_eval import Evaluator
from evoforge.agents.rtl_rules.netlist_reach import reachable_codes
from evoforge.agents.rtl_rules.text_sites import Design, apply_edits
from evoforge.agents.rtl_rules.two_level import function_text
from evoforge.tools.yosys import Yosys

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "agents"))
from equiv_ctx import fast_cascade  # noqa: E402
from rtl_checks import reset_equivalent, rule_sites  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "rtl"

# y over (a, b, c): 1 on 3 and 7, 0 on 0, 1, 4, 5, x on 2 and 6 → with the x rows free, y = b
X_SPELLINGS = {
    "case_default_x": "module m (input a, b, c, output reg y);\n"
    "  always @* case ({a, b, c})\n    3'd3, 3'd7: y = 1'b1;\n    3'd2, 3'd6: y = 1'bx;\n"
    "    default: y = 1'b0;\n  endcase\nendmodule\n",
    "assign_ternary_x": "module m (input a, b, c, output y);\n"
    "  assign y = b ? (c ? 1'b1 : 1'bx) : 1'b0;\nendmodule\n",
    "case_parameter_labels": "module m (input a, b, c, output reg y);\n"
    "  localparam [1:0] LOW = 2'b00, ONE = 2'b01, TWO = 2'b10, BOTH = 2'b11;\n"
    "  always @(*) begin\n    case ({b, c})\n      BOTH: y = 1;\n      TWO: y = 'x;\n"
    "      LOW, ONE: y = 0;\n    endcase\n  end\nendmodule\n",
    "sv_always_comb_if": "module m (input logic a, b, c, output logic y);\n"
    "  always_comb begin\n    if (!b) y = '0;\n    else if (c) y = '1;\n    else y = 'x;\n  end\n"
    "endmodule\n",
}

# a decade counter: codes 10..15 never held after reset; four spellings
COUNTERS = {
    "sync_reset_if": "module m (input clk, reset, en, output reg [3:0] q);\n"
    "  always @(posedge clk)\n    if (reset) q <= 0;\n    else if (en) begin\n"
    "      if (q == 9) q <= 0; else q <= q + 1;\n    end\nendmodule\n",
    "async_reset_ternary": "module m (input clk, reset, en, output reg [3:0] q);\n"
    "  wire [3:0] n = q == 4'd9 ? 4'd0 : q + 4'd1;\n"
    "  always @(posedge clk or posedge reset) if (reset) q <= 4'd0; else q <= en ? n : q;\n"
    "endmodule\n",
    "case_parameter_labels": "module m (input clk, reset, en, output reg [3:0] q);\n"
    "  localparam [3:0] LAST = 4'd9, FIRST = 4'd0;\n"
    "  always @(posedge clk) begin\n    case ({reset, en})\n      2'b00: q <= q;\n"
    "      2'b01: q <= (q == LAST) ? FIRST : q + 1'b1;\n      default: q <= FIRST;\n    endcase\n"
    "  end\nendmodule\n",
    "sv_two_process": "module m (input logic clk, reset, en, output logic [3:0] q);\n"
    "  logic [3:0] next;\n  always_comb begin\n    next = q;\n"
    "    if (en) next = (q >= 4'd9) ? '0 : q + 4'd1;\n    if (reset) next = '0;\n  end\n"
    "  always_ff @(posedge clk) q <= next;\nendmodule\n",
}


def _sites(text: str) -> tuple[list[Any], list[str]]:
    return rule_sites(logic_minimise.RULE, text)


def _x_equivalent(gold: str, gate: str, cwd: Path) -> bool:
    """Combinational: the gate equals the original wherever the original is defined (and is never x
    there), for every input — a plain Yosys miter, ROMs mapped to logic."""
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "gold.sv").write_text(gold)
    (cwd / "gate.sv").write_text(gate)
    script = (
        "read_verilog -sv gold.sv\nprep -flatten -top m\nmemory\nrename m gold\ndesign -stash gold\n"
        "read_verilog -sv gate.sv\nprep -flatten -top m\nmemory\nrename m gate\ndesign -stash gate\n"
        "design -copy-from gold -as gold gold\ndesign -copy-from gate -as gate gate\n"
        "miter -equiv -ignore_gold_x -flatten -make_assert gold gate miter\nhierarchy -top miter\n"
        "sat -verify -prove-asserts -set-def-inputs -enable_undef miter\n"
    )
    return Yosys(timeout=120).run_script(script, cwd=cwd, name="xeq").ok


def test_two_level_uses_dont_cares_only_to_grow_cubes() -> None:
    # ones {3, 7}, x {2, 6}: b alone (leaf 1); without the x rows it needs b & c
    assert function_text([3, 7], 3, ["c", "b", "a"], 24, [2, 6]) == "b"
    assert function_text([3, 7], 3, ["c", "b", "a"], 24) == "(c & b)"
    # every row free but the ones: the constant 1; no ones: the constant 0
    assert function_text([1], 1, ["a"], 24, [0]) == "1'b1"
    assert function_text([], 2, ["a", "b"], 24, [1, 2]) == "1'b0"


@pytest.mark.parametrize("spelling", sorted(X_SPELLINGS))
def test_x_entries_are_dont_cares_in_every_spelling(spelling: str, tmp_path: Path) -> None:
    text = X_SPELLINGS[spelling]
    sites, declines = _sites(text)
    assert len(sites) == 1, (sites, declines)
    assert "don't-cares" in sites[0].note, sites[0].note
    patched = apply_edits(text, sites[0].edits)
    assert "y = b;" in patched, patched
    assert _x_equivalent(text, patched, tmp_path / "eq"), patched
    # the proof has teeth: a rewrite wrong on a defined row (row 3: y = 1) fails it
    wrong = patched.replace("y = b;", "y = b & ~c;")
    assert not _x_equivalent(text, wrong, tmp_path / "neq")


def test_overlapping_casez_arms_keep_their_priority(tmp_path: Path) -> None:
    # s = 11 matches both arms: the first wins (a); only s = 00 is x
    text = (
        "module m (input [1:0] s, input a, b, output reg y);\n  always @* casez (s)\n"
        "    2'b1?: y = a;\n    2'b?1: y = b;\n    default: y = 1'bx;\n  endcase\nendmodule\n"
    )
    sites, declines = _sites(text)
    assert len(sites) == 1 and "don't-cares" in sites[0].note, (sites, declines)
    patched = apply_edits(text, sites[0].edits)
    assert _x_equivalent(text, patched, tmp_path / "eq"), patched
    assert not _x_equivalent(text, text.replace("2'b1?: y = a;", "2'b1?: y = b;"), tmp_path / "neq")


@pytest.mark.parametrize(
    "text, why",
    [
        # Verilog computes 0 & x = 0: the evaluator's x there is not the source's
        (
            "module m (input a, b, output y);\n  assign y = (a & 1'bx) | b;\nendmodule\n",
            "through an operator",
        ),
        # an x select: Verilog merges the two data words bit by bit
        (
            "module m (input a, b, c, output y);\n  wire s = c ? 1'bx : a;\n  assign y = s ? b : 1'b0;\n"
            "endmodule\n",
            "through an operator or a select's control",
        ),
    ],
)
def test_an_x_through_an_operator_or_a_control_is_declined(text: str, why: str) -> None:
    sites, declines = _sites(text)
    assert not [s for s in sites if "don't-cares" in s.note], sites
    assert any(why in d for d in declines), declines


@pytest.mark.parametrize("spelling", sorted(COUNTERS))
def test_codes_a_counter_never_holds_are_dont_cares(spelling: str, tmp_path: Path) -> None:
    text = COUNTERS[spelling]
    design = Design(text)
    module = design.netlist.modules["m"]
    reaches = reachable_codes(module, Evaluator(module))
    assert [sorted(r.codes) for r in reaches] == [list(range(10))]
    sites, declines = _sites(text)
    held = [s for s in sites if "never hold after reset" in s.note]
    assert held, (sites, declines)
    patched = apply_edits(text, [e for s in held for e in s.edits])
    ok, log = reset_equivalent(text, patched, "m", tmp_path / "eq", reset="reset", steps=24)
    assert ok, f"{patched}\n{log[-1500:]}"


@pytest.mark.parametrize(
    "text",
    [
        # no reset: the counter may start anywhere
        COUNTERS["sync_reset_if"].replace("    if (reset) q <= 0;\n    else ", "    "),
        # loaded from an input: every code is reachable
        "module m (input clk, load, input [3:0] d, output reg [3:0] q);\n"
        "  always @(posedge clk) if (load) q <= d; else if (q == 9) q <= 0; else q <= q + 1;\nendmodule\n",
        # a free-running 4-bit counter reaches every code
        "module m (input clk, reset, output reg [3:0] q);\n"
        "  always @(posedge clk) if (reset) q <= 0; else q <= q + 1;\nendmodule\n",
    ],
)
def test_no_dont_cares_without_a_reset_code_or_with_every_code_reached(text: str) -> None:
    module = Design(text).netlist.modules["m"]
    assert reachable_codes(module, Evaluator(module)) == []
    sites, _ = _sites(text)
    assert not [s for s in sites if "never hold after reset" in s.note]


CORPUS_DESIGNS = [
    "verilog-eval/Prob116_m2014_q3_ref.sv",  # a case table with x entries
    "verilog-eval/Prob067_countslow_ref.sv",  # a decade counter with a synchronous reset
]


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the public corpus is absent ({CORPUS})")
@pytest.mark.parametrize("relative", CORPUS_DESIGNS)
def test_corpus_dont_cares_pass_the_cascade(relative: str, tmp_path: Path) -> None:
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    target = load_rtl_target([CORPUS / relative], RtlTargetOptions(), workdir=tmp_path / "target")
    sites, declines = _sites(target.source)
    sites = [s for s in sites if "don't-cares" in s.note]
    assert sites, declines
    patched = apply_edits(target.source, [e for s in sites for e in s.edits])
    verdict = fast_cascade(target, tmp_path).verify(patched)
    assert verdict.accepted, f"{verdict.stage}: {verdict.reason}\n{patched}"
