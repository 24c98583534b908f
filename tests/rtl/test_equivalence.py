"""The ``equivalence`` stage against the real yosys/yosys-abc: proofs, refutations, bounds, timeouts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from equiv_ctx import inp, make_ctx, out

from evoforge.tools.yosys import Yosys
from evoforge.verifiers.rtl.counterexample import format_bits, parse_sat_model
from evoforge.verifiers.rtl.equivalence import run_equivalence
from evoforge.verifiers.rtl.equivalence_scripts import split_cases

pytestmark = pytest.mark.skipif(not Yosys().available(), reason="yosys is not installed")


# ---------------------------------------------------------------------------------------------
# combinational

MUL_PORTS = (inp("a", 8), inp("b", 8), inp("c", 8), inp("d", 8), inp("s"), out("y", 16))
MUL_ORIGINAL = """
module top(input [7:0] a, b, c, d, input s, output [15:0] y);
  assign y = s ? a * b : c * d;
endmodule
"""
MUL_SHARED = """
module top(input [7:0] a, b, c, d, input s, output [15:0] y);
  wire [7:0] x1 = s ? a : c;
  wire [7:0] x2 = s ? b : d;
  assign y = x1 * x2;
endmodule
"""


def test_resource_sharing_of_a_multiplier_is_proven(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, MUL_ORIGINAL, MUL_SHARED, MUL_PORTS, equivalence_timeout_s=30)
    result = run_equivalence(ctx)
    assert result.ok, result.detail
    assert result.data["assurance"] == "proven"
    assert result.detail.startswith("proven by")
    assert result.seconds < 20
    assert all(set(a) == {"method", "outcome", "seconds", "note"} for a in result.data["attempts"])


ALU_PORTS = (inp("a", 8), inp("b", 8), inp("op", 2), out("y", 8))
ALU_ORIGINAL = """
module top(input [7:0] a, input [7:0] b, input [1:0] op, output reg [7:0] y);
  always @* case (op)
    2'd0: y = a + b;
    2'd1: y = a - b;
    2'd2: y = a & b;
    default: y = a ^ b;
  endcase
endmodule
"""
ALU_WRONG = """
module top(input [7:0] a, input [7:0] b, input [1:0] op, output [7:0] y);
  wire [7:0] sum = a + (op[0] ? ~b : b) + op[0];
  wire [7:0] lg = op[0] ? (a ^ b) : (a & b);
  // subtly wrong: one corner input gives the wrong sum
  assign y = op[1] ? lg : ((a == 8'd200 && b == 8'd13) ? 8'd0 : sum);
endmodule
"""
ALU_RIGHT = ALU_WRONG.replace("(a == 8'd200 && b == 8'd13) ? 8'd0 : sum", "sum")


def test_alu_rewrite_is_proven(tmp_path: Path) -> None:
    result = run_equivalence(make_ctx(tmp_path, ALU_ORIGINAL, ALU_RIGHT, ALU_PORTS))
    assert result.ok and result.data["assurance"] == "proven", result.detail


def test_corner_case_bug_is_disproven_with_the_input_named(tmp_path: Path) -> None:
    result = run_equivalence(make_ctx(tmp_path, ALU_ORIGINAL, ALU_WRONG, ALU_PORTS))
    assert not result.ok and not result.error
    cex = result.data["counterexample"]
    assert cex["output"] == "y" and cex["gate"] == "8'd0" and cex["gold"] != "8'd0"
    assert cex["cycles"][0]["inputs"]["a"] == "8'd200"
    assert cex["cycles"][0]["inputs"]["b"] == "8'd13"
    assert "a=8'd200" in result.detail and "b=8'd13" in result.detail


def test_undefined_candidate_output_is_not_equivalent(tmp_path: Path) -> None:
    """Reward hack #21: X where the original is defined is a mismatch, not a match."""
    ports = (inp("a", 4), out("y", 4))
    original = "module top(input [3:0] a, output [3:0] y); assign y = a == 4'd9 ? 4'd0 : a; endmodule"
    candidate = "module top(input [3:0] a, output [3:0] y); assign y = a == 4'd9 ? 4'bx : a; endmodule"
    result = run_equivalence(make_ctx(tmp_path, original, candidate, ports))
    assert not result.ok, result.detail
    assert result.data["counterexample"]["gate"] == "4'bxxxx"
    # the converse is allowed: the original's X is a don't-care
    result = run_equivalence(make_ctx(tmp_path / "converse", candidate, original, ports))
    assert result.ok and result.data["assurance"] == "proven", result.detail


def test_undefined_modules_are_rejected(tmp_path: Path) -> None:
    """Reward hack #19: different unknown modules must not 'prove' equivalent."""
    ports = (inp("a", 4), out("y", 4))
    original = "module top(input [3:0] a, output [3:0] y); foo u(.a(a), .y(y)); endmodule"
    candidate = "module top(input [3:0] a, output [3:0] y); bar u(.a(a), .y(y)); endmodule"
    result = run_equivalence(make_ctx(tmp_path, original, candidate, ports))
    assert not result.ok and result.data.get("assurance") is None
    assert "not defined" in result.detail and "bar" in result.detail


def test_black_box_modules_are_rejected(tmp_path: Path) -> None:
    ports = (inp("a", 4), out("y", 4))
    original = "module top(input [3:0] a, output [3:0] y); assign y = ~a; endmodule"
    candidate = """
    (* blackbox *) module inv4(input [3:0] a, output [3:0] y); endmodule
    module top(input [3:0] a, output [3:0] y); inv4 u(.a(a), .y(y)); endmodule
    """
    result = run_equivalence(make_ctx(tmp_path, original, candidate, ports))
    assert not result.ok and "black-box" in result.detail


@pytest.mark.skipif(not Yosys().available(), reason="yosys is not installed")
def test_a_hard_multiplier_times_out_without_hanging(tmp_path: Path) -> None:
    ports = (inp("a", 16), inp("b", 16), out("y", 32))
    original = "module top(input [15:0] a, b, output [31:0] y); assign y = a * b; endmodule"
    candidate = """
    module top(input [15:0] a, b, output [31:0] y);
      reg [31:0] acc; integer i;
      always @* begin
        acc = 0;
        for (i = 0; i < 16; i = i + 1) if (a[i]) acc = acc + ({16'd0, b} << i);
      end
      assign y = acc;
    endmodule
    """
    start = time.monotonic()
    result = run_equivalence(make_ctx(tmp_path, original, candidate, ports, equivalence_timeout_s=3))
    elapsed = time.monotonic() - start
    assert elapsed < 15, elapsed
    assert result.ok and result.data["assurance"] == "simulated", result.detail
    assert any(a["outcome"] == "timeout" for a in result.data["attempts"])
    assert result.detail.startswith("inconclusive")


# ---------------------------------------------------------------------------------------------
# sequential

FSM_PORTS = (inp("clk"), inp("rst"), inp("go"), out("busy"), out("done"))
FSM_BINARY = """
module top(input clk, input rst, input go, output busy, output done);
  reg [1:0] st;
  always @(posedge clk)
    if (rst) st <= 2'd0;
    else case (st)
      2'd0: if (go) st <= 2'd1;
      2'd1: st <= 2'd2;
      2'd2: st <= go ? 2'd1 : 2'd0;
      default: st <= 2'd0;
    endcase
  assign busy = st == 2'd1;
  assign done = st == 2'd2;
endmodule
"""
FSM_ONEHOT = """
module top(input clk, input rst, input go, output busy, output done);
  reg [2:0] oh;
  always @(posedge clk)
    if (rst) oh <= 3'b001;
    else oh <= {oh[1], (oh[0] & go) | (oh[2] & go), (oh[0] & ~go) | (oh[2] & ~go)};
  assign busy = oh[1];
  assign done = oh[2];
endmodule
"""


def test_state_reencoding_is_proven_or_bounded(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, FSM_BINARY, FSM_ONEHOT, FSM_PORTS, clock="clk", reset="rst", bmc_depth=12)
    result = run_equivalence(ctx)
    assert result.ok, result.detail
    assert result.data["assurance"] in ("proven", "bounded(12 cycles)")


def test_fsm_with_a_wrong_edge_is_disproven(tmp_path: Path) -> None:
    wrong = FSM_ONEHOT.replace("(oh[2] & go), (oh[0] & ~go)", "1'b0, (oh[0] & ~go)")
    ctx = make_ctx(tmp_path, FSM_BINARY, wrong, FSM_PORTS, clock="clk", reset="rst")
    result = run_equivalence(ctx)
    assert not result.ok, result.detail
    cex = result.data["counterexample"]
    assert cex["sequential"] and cex["cycles"][0]["inputs"]["rst"] == "1'd1"
    assert "clk" not in cex["cycles"][0]["inputs"]
    assert "cycle 1 (reset)" in result.detail


COUNTER_PORTS = (inp("clk"), inp("rst"), inp("en"), out("q", 8), out("wrap"))
COUNTER = """
module top(input clk, input rst, input en, output reg [7:0] q, output wrap);
  always @(posedge clk) if (rst) q <= 0; else if (en) q <= (q == 8'd45) ? 8'd0 : q + 8'd1;
  assign wrap = q == 8'd45;
endmodule
"""
COUNTER_DEEP_BUG = COUNTER.replace("q + 8'd1", "(q == 8'd40 ? 8'd42 : q + 8'd1)")


def test_a_bug_deeper_than_the_bound_is_not_proven(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, COUNTER, COUNTER_DEEP_BUG, COUNTER_PORTS, clock="clk", reset="rst", bmc_depth=20)
    result = run_equivalence(ctx)
    assert result.ok, result.detail
    # 20 cycles say nothing about two 8-bit counters (horizon 4*2^16 cycles): no `bounded` label
    assert result.data["assurance"] == "sampled"
    assert "bounded check 20 cycles" in result.detail and "horizon" in result.detail


def test_a_bug_within_the_bound_is_disproven(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, COUNTER, COUNTER_DEEP_BUG, COUNTER_PORTS, clock="clk", reset="rst", bmc_depth=60)
    result = run_equivalence(ctx)
    assert not result.ok, result.detail
    cex = result.data["counterexample"]
    assert cex["output"] == "q" and cex["cycle"] >= 42
    assert cex["gate"] == "8'd42" and cex["gold"] == "8'd41"
    assert len(cex["cycles"]) == cex["cycle"]


def test_active_low_reset(tmp_path: Path) -> None:
    original = COUNTER.replace("input rst", "input rst_n").replace("if (rst)", "if (!rst_n)")
    candidate = original.replace("(q == 8'd45) ? 8'd0 : q + 8'd1", "wrap ? 8'd0 : q + 8'd1")
    ports = (inp("clk"), inp("rst_n"), inp("en"), out("q", 8), out("wrap"))
    ctx = make_ctx(tmp_path, original, candidate, ports, clock="clk", reset="rst_n", active_low=True)
    result = run_equivalence(ctx)
    assert result.ok and result.data["assurance"] == "proven", result.detail
    # the polarity matters: a candidate that resets on the wrong level is refuted
    wrong = candidate.replace("if (!rst_n)", "if (rst_n)")
    result = run_equivalence(
        make_ctx(tmp_path / "w", original, wrong, ports, clock="clk", reset="rst_n", active_low=True)
    )
    assert not result.ok, result.detail
    assert result.data["counterexample"]["cycles"][0]["inputs"]["rst_n"] == "1'd0"


def test_an_added_pipeline_stage_is_disproven(tmp_path: Path) -> None:
    """Reward hack #20: one more cycle of latency is not equivalence."""
    ports = (inp("clk"), inp("rst"), inp("a", 8), inp("b", 8), out("y", 8))
    original = """
    module top(input clk, input rst, input [7:0] a, b, output reg [7:0] y);
      always @(posedge clk) if (rst) y <= 0; else y <= a + b;
    endmodule
    """
    candidate = """
    module top(input clk, input rst, input [7:0] a, b, output reg [7:0] y);
      reg [7:0] s;
      always @(posedge clk) if (rst) begin s <= 0; y <= 0; end else begin s <= a + b; y <= s; end
    endmodule
    """
    result = run_equivalence(make_ctx(tmp_path, original, candidate, ports, clock="clk", reset="rst"))
    assert not result.ok, result.detail
    assert result.data["counterexample"]["output"] == "y"


def test_a_clocked_design_without_reset_falls_back_or_proves(tmp_path: Path) -> None:
    ports = (inp("clk"), inp("a", 8), out("y", 8))
    head = "module top(input clk, input [7:0] a, output reg [7:0] y); always @(posedge clk)"
    original = f"{head} y <= a + 8'd1; endmodule"
    candidate = f"{head} y <= 8'd1 + a; endmodule"
    result = run_equivalence(make_ctx(tmp_path, original, candidate, ports, clock="clk"))
    assert result.ok and result.data["assurance"] == "proven", result.detail


# ---------------------------------------------------------------------------------------------
# helpers


def test_split_cases_cover_every_value_of_the_narrow_inputs() -> None:
    cases = split_cases([inp("a", 8), inp("s"), inp("op", 2), inp("t")])
    assert len(cases) == 4 and {tuple(sorted(c)) for c in cases} == {("s", "t")}
    assert {(c["s"], c["t"]) for c in cases} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert split_cases([inp("a", 8)]) == [{}]


def test_model_parser_reads_the_last_table() -> None:
    text = """
  Time Signal Name             Dec       Hex           Bin
  ---- --------------- ----------- --------- -------------
  init \\gold.q                  --        --      xxxx
     1 \\in_en                    1         1             1
     1 \\trigger                  0         0             0
  ---- --------------- ----------- --------- -------------
     2 \\gold_q                   3         3          0011
     2 \\trigger                  1         1             1
"""
    model = parse_sat_model(text)
    assert model == {1: {"in_en": "1", "trigger": "0"}, 2: {"gold_q": "0011", "trigger": "1"}}
    assert format_bits("0011") == "4'd3" and format_bits("0x1") == "3'b0x1"


def test_a_stuck_registered_output_is_disproven(tmp_path: Path) -> None:
    """A constant where the original adds must never pass induction (a known eqy false accept)."""
    ports = (inp("clk"), inp("rst"), inp("a", 4), inp("b", 4), out("y", 4))
    original = """
    module top(input clk, input rst, input [3:0] a, b, output reg [3:0] y);
      always @(posedge clk) if (rst) y <= 0; else y <= a + b;
    endmodule
    """
    candidate = original.replace("y <= a + b", "y <= 4'b0")
    result = run_equivalence(make_ctx(tmp_path, original, candidate, ports, clock="clk", reset="rst"))
    assert not result.ok, result.detail


def test_matching_registers_are_proven_structurally(tmp_path: Path) -> None:
    candidate = COUNTER.replace("(q == 8'd45) ? 8'd0 : q + 8'd1", "wrap ? 8'd0 : q + 8'd1")
    ctx = make_ctx(tmp_path, COUNTER, candidate, COUNTER_PORTS, clock="clk", reset="rst")
    result = run_equivalence(ctx)
    assert result.ok and result.data["assurance"] == "proven", result.detail
    assert result.data["method"] in ("structural", "induction")
