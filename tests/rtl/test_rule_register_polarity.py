"""register_polarity: one 3-bit register whose readers invert it, in four spellings, is stored
complemented and the rewrite passes the real verifier cascade (proven); without a reset or initial
value, as a port, or written by ``++`` / a concatenation the rule declines and says why."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from evoforge.agents.rtl_rules import register_polarity
from evoforge.agents.rtl_rules.text_sites import Design, apply_edits, check_patch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "agents"))
from equiv_ctx import fast_cascade  # noqa: E402
from rtl_checks import reset_equivalent, rule_sites  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "rtl"

# s' = {s[2] ^ x, ~s[1] & x, ~s[0] | x}, z = ~|s, s reset to 0 (asynchronous, active low)
SPELLINGS = {
    "always_if_chain": "module m (input clk, rst_n, x, output z);\n"
    "  reg [2:0] s;\n"
    "  always @(posedge clk or negedge rst_n)\n"
    "    if (!rst_n) s <= 3'b000;\n"
    "    else s <= {s[2] ^ x, ~s[1] & x, ~s[0] | x};\n"
    "  assign z = ~|s;\nendmodule\n",
    "case_parameter_labels": "module m (input clk, rst_n, x, output reg z);\n"
    "  localparam [2:0] IDLE = 3'd0;\n"
    "  reg [2:0] s;\n"
    "  always @(posedge clk, negedge rst_n) begin\n"
    "    if (rst_n == 1'b0) s <= IDLE;\n"
    "    else begin\n      s[2] <= s[2] ^ x;\n"
    "      case (s[1]) 1'b0: s[1] <= x; default: s[1] <= 1'b0; endcase\n"
    "      if (!s[0]) s[0] <= 1'b1; else s[0] <= x;\n    end\n  end\n"
    "  always @* case (s) IDLE: z = 1'b1; default: z = 1'b0; endcase\nendmodule\n",
    "assigns_and_register_block": "module m (input clk, rst_n, x, output z);\n"
    "  reg [2:0] s;\n  wire n0, n1, n2;\n"
    "  assign n0 = ~s[0] | x;\n  assign n1 = ~s[1] & x;\n  assign n2 = s[2] ^ x;\n"
    "  always @(posedge clk or negedge rst_n) begin\n"
    "    if (~rst_n) s <= 0;\n    else s <= {n2, n1, n0};\n  end\n"
    "  assign z = (s == 3'b000);\nendmodule\n",
    "sv_always_ff": "module m (input logic clk, rst_n, x, output logic z);\n"
    "  logic [2:0] s;\n"
    "  always_ff @(posedge clk or negedge rst_n)\n"
    "    if (!rst_n) s <= '0;\n"
    "    else begin s[2] <= s[2] ^ x; s[1] <= !s[1] && x; s[0] <= !s[0] || x; end\n"
    "  always_comb z = !s;\nendmodule\n",
}


def _sites(text: str) -> tuple[list[Any], list[str]]:
    return rule_sites(register_polarity.RULE, text)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_is_flipped_and_proven(spelling: str, tmp_path: Path) -> None:
    text = SPELLINGS[spelling]
    sites, declines = _sites(text)
    assert [s.touched for s in sites] == [("s",)], (sites, declines)
    patched = apply_edits(text, sites[0].edits)
    assert check_patch(Design(text), patched) is None
    assert "^ 3'sb111" in patched or "^ 1'sb1" in patched, patched  # the reset write is complemented
    ok, log = reset_equivalent(text, patched, "m", tmp_path / "eq", reset="rst_n", active_low=True)
    assert ok, f"{patched}\n{log[-1500:]}"


@pytest.mark.slow
@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_the_flip_passes_the_real_cascade_proven(spelling: str, tmp_path: Path) -> None:
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    path = tmp_path / ("m.sv" if spelling.startswith("sv") else "m.v")
    path.write_text(SPELLINGS[spelling])
    target = load_rtl_target([path], RtlTargetOptions(), workdir=tmp_path / "target")
    sites, _ = _sites(target.source)
    patched = apply_edits(target.source, sites[0].edits)
    verdict = fast_cascade(target, tmp_path).verify(patched)
    assert verdict.accepted and verdict.reason == "accepted (proven)", (
        f"{verdict.stage}: {verdict.reason}\n{patched}"
    )


def test_an_initial_value_is_a_start_value(tmp_path: Path) -> None:
    text = (
        "module m (input clk, x, output z);\n  reg [2:0] s = 3'b001;\n"
        "  always @(posedge clk) s <= {s[2] ^ x, ~s[1] & x, ~s[0] | x};\n"
        "  assign z = ~|s;\nendmodule\n"
    )
    sites, declines = _sites(text)
    assert len(sites) == 1, declines
    patched = apply_edits(text, sites[0].edits)
    assert "reg [2:0] s = (3'b001) ^ 3'sb111;" in patched, patched
    ok, log = reset_equivalent(text, patched, "m", tmp_path / "eq", steps=12)
    assert ok, f"{patched}\n{log[-1500:]}"
    wrong = patched.replace("(3'b001) ^ 3'sb111", "3'b001")  # the start value not complemented: differs
    assert not reset_equivalent(text, wrong, "m", tmp_path / "neg", steps=12)[0]


def test_without_reset_or_initial_value_the_rule_declines() -> None:
    text = (
        "module m (input clk, x, output z);\n  reg [2:0] s;\n"
        "  always @(posedge clk) s <= {s[2] ^ x, ~s[1] & x, ~s[0] | x};\n"
        "  assign z = ~|s;\nendmodule\n"
    )
    sites, declines = _sites(text)
    assert sites == [] and any("no reset or initial value" in d for d in declines), declines


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("output z);\n  reg [2:0] s;", "output z, output reg [2:0] s);\n"), "is a port"),
        (("else s <= {s[2] ^ x,", "else if (x) s++;\n    else s <= {~s[2] ^ x,"), "written by `s++`"),
        (("else s <= {s[2] ^ x,", "else if (x) s += 3'd2;\n    else s <= {~s[2] ^ x,"), "compound"),
        (("assign z = ~|s;", "reg u;\n  always @(posedge x) {s, u} <= 0;\n  assign z = ~|s;"), "part of"),
        (("~s[0] | x", "~s[0] | s[x]"), "not a literal bit or range"),
        (("reg [2:0] s;", "reg signed [2:0] s;"), "signed"),
        (("assign z = ~|s;", "assign z = ~|s;\n  always @(posedge s[0]) ;"), "edge in an event list"),
    ],
)
def test_unsafe_registers_are_declined_with_the_reason(change: tuple[str, str], reason: str) -> None:
    text = SPELLINGS["always_if_chain"].replace(*change)
    assert text != SPELLINGS["always_if_chain"]
    sites, declines = _sites(text)
    assert sites == [] and any(reason in d for d in declines), declines


def test_plain_reads_outvote_inverted_ones() -> None:
    # s is read plainly by three ANDs and inverted once: storing it complemented saves nothing
    text = (
        "module m (input clk, rst, input [2:0] a, output [2:0] y, output z);\n  reg [2:0] s;\n"
        "  always @(posedge clk or posedge rst) if (rst) s <= 0; else s <= a;\n"
        "  assign y = s & a;\n  assign z = (s & ~a) == 3'b111 ? 1'b1 : s[0] & a[0];\nendmodule\n"
    )
    sites, _ = _sites(text)
    assert sites == [], sites


def test_widths_and_signedness_of_writes_are_kept(tmp_path: Path) -> None:
    # a narrower signed value is sign-extended into s, a wider one cut; reads in a wider sum
    text = (
        "module m (input clk, rst, input signed [1:0] a, input [7:0] b, input sel, output [7:0] y);\n"
        "  reg [3:0] s;\n"
        "  always @(posedge clk or posedge rst)\n"
        "    if (rst) s <= 4'b0101; else if (sel) s <= a; else s <= b + 8'd3;\n"
        "  assign y = 8'd7 + ~s + (s == 4'd0);\nendmodule\n"
    )
    sites, declines = _sites(text)
    assert len(sites) == 1, declines
    patched = apply_edits(text, sites[0].edits)
    ok, log = reset_equivalent(text, patched, "m", tmp_path / "eq", reset="rst")
    assert ok, f"{patched}\n{log[-1500:]}"


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the public corpus is absent ({CORPUS})")
def test_the_corpus_fsm_with_an_initial_value_is_flipped_and_proven(tmp_path: Path) -> None:
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    path = CORPUS / "verilog-eval" / "Prob074_ece241_2014_q4_ref.sv"
    target = load_rtl_target([path], RtlTargetOptions(), workdir=tmp_path / "target")
    sites, declines = _sites(target.source)
    assert len(sites) == 1, declines
    patched = apply_edits(target.source, sites[0].edits)
    verdict = fast_cascade(target, tmp_path).verify(patched)
    assert verdict.accepted, f"{verdict.stage}: {verdict.reason}\n{patched}"
