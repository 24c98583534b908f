"""bench/corpus_check.py, the corpus benchmark's independent re-check: sequential designs from reset.

Small designs in several reset styles (asynchronous active high and active low, synchronous, none),
each a rewrite that must be proven and the attacks that must not: a difference in a state reachable
after reset, in the first cycle after reset is released, or from the power-up state with no reset.
A difference only while reset is held (outputs of the reset cycle are not compared) is allowed.
Real Yosys; no liberty (area is not measured here).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from corpus_check import find_resets, independent_check, prove_with_abc

pytestmark = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys is not installed")

# A two-state FSM whose reset state has code 1 (so the all-zero power-up state is not its reset state),
# as VerilogEval writes it, and the same FSM re-encoded one-hot with reset code 01.
FSM = """
module fsm(input clk, input areset, input in, output out);
  parameter A=0, B=1;
  reg state, next;
  always @(*) case (state) A: next = in ? A : B; B: next = in ? B : A; endcase
  always @(posedge clk, posedge areset) if (areset) state <= B; else state <= next;
  assign out = (state == B);
endmodule
"""
FSM_ONE_HOT = """
module fsm(input clk, input areset, input in, output out);
  reg [1:0] s;  // 01 = B, 10 = A
  always @(posedge clk or posedge areset)
    if (areset) s <= 2'b01; else s <= in ? s : {s[0], s[1]};
  assign out = s[0];
endmodule
"""

# A 3-bit counter with an active-low asynchronous reset to 5 and its output decoded at 2.
COUNTER_N = """
module cnt(input clk, input rst_n, input en, output hit, output [2:0] q);
  reg [2:0] c;
  always @(posedge clk or negedge rst_n) if (!rst_n) c <= 3'd5; else if (en) c <= c + 3'd1;
  assign hit = c == 3'd2;
  assign q = c;
endmodule
"""
# The same, counting in a register that holds c - 5 (reset code 0): equivalent.
COUNTER_N_OFFSET = """
module cnt(input clk, input rst_n, input en, output hit, output [2:0] q);
  reg [2:0] d;
  always @(posedge clk, negedge rst_n) begin
    if (~rst_n) d <= 0;
    else d <= d + {2'b0, en};
  end
  assign q = d + 3'd5;
  assign hit = d == 3'd5;
endmodule
"""
# Attack: differs only when the counter reaches 7 (reachable after reset, 2 cycles of en).
COUNTER_N_WRONG_AT_7 = COUNTER_N.replace("assign q = c;", "assign q = (c == 3'd7) ? 3'd0 : c;")

# A one-hot FSM with a synchronous reset (to 01); 00 is never reached after reset.
SYNC = """
module ring(input clk, input rst, input go, output [1:0] s_out);
  reg [1:0] s;
  always @(posedge clk) if (rst) s <= 2'b01; else if (go) s <= {s[0], s[1]};
  assign s_out = s;
endmodule
"""
# Differs only in state 00, i.e. only in the power-up cycle while reset is held: allowed.
SYNC_ONLY_WHILE_RESET = SYNC.replace("assign s_out = s;", "assign s_out = (s == 2'b00) ? 2'b11 : s;")
# Differs in the first cycle after reset is released (a flag the reset sets): must not be proven.
SYNC_FIRST_CYCLE_AFTER = SYNC.replace(
    "assign s_out = s;",
    "reg first; always @(posedge clk) first <= rst;\n  assign s_out = first ? ~s : s;",
)
# The same attack with an asynchronous reset.
FSM_FIRST_CYCLE_AFTER = FSM.replace(
    "assign out = (state == B);",
    "reg first; always @(posedge clk, posedge areset) if (areset) first <= 1; else first <= 0;\n"
    "  assign out = first ? 1'b0 : (state == B);",
)

# No reset: a shift register compared from the all-zero state.
SHIFT = """
module sh(input clk, input d, output q);
  reg [2:0] r;
  always @(posedge clk) r <= {r[1:0], d};
  assign q = r[2];
endmodule
"""
SHIFT_SPLIT = """
module sh(input clk, input d, output q);
  reg a, b, c;
  always @(posedge clk) begin a <= d; b <= a; c <= b; end
  assign q = c;
endmodule
"""
SHIFT_WRONG = SHIFT.replace("assign q = r[2];", "assign q = r[2] ^ (r == 3'b111);")


def check(tmp_path: Path, original: str, best: str, top: str, **kw: Any) -> dict[str, Any]:
    source = tmp_path / "original.v"
    source.write_text(original)
    return independent_check(source, best, top, None, tmp_path / "check", **kw)


def test_resets_are_read_from_the_netlist(tmp_path: Path) -> None:
    cases = [(FSM, "fsm", ("areset", False, True)), (COUNTER_N, "cnt", ("rst_n", True, True))]
    cases += [(SYNC, "ring", ("rst", False, False))]
    for k, (text, top, expected) in enumerate(cases):
        source = tmp_path / f"d{k}.v"
        source.write_text(text)
        work = tmp_path / f"w{k}"
        work.mkdir()
        resets, state_bits = find_resets(source, top, work)
        assert [(r.port, r.active_low, r.asynchronous) for r in resets] == [expected]
        assert resets[0].found == "netlist" and state_bits > 0
    source = tmp_path / "sh.v"
    source.write_text(SHIFT)
    assert find_resets(source, "sh", tmp_path) == ([], 3)


def test_fsm_re_encoded_with_a_non_zero_reset_code_is_proven_from_reset(tmp_path: Path) -> None:
    row = check(tmp_path, FSM, FSM_ONE_HOT, "fsm")
    assert row["equivalent"], row
    assert row["method"].startswith("induction from reset areset=1 (asynchronous, from netlist)")


def test_active_low_asynchronous_reset(tmp_path: Path) -> None:
    row = check(tmp_path, COUNTER_N, COUNTER_N_OFFSET, "cnt")
    assert row["equivalent"], row
    assert "rst_n=0 (asynchronous" in row["method"]
    wrong = check(tmp_path, COUNTER_N, COUNTER_N_WRONG_AT_7, "cnt")
    assert not wrong["equivalent"] and wrong["outcome"] == "differs", wrong


def test_synchronous_reset_skips_only_the_reset_cycle(tmp_path: Path) -> None:
    assert check(tmp_path, SYNC, SYNC, "ring")["equivalent"]
    row = check(tmp_path, SYNC, SYNC_ONLY_WHILE_RESET, "ring")
    assert row["equivalent"] and "rst=1 (synchronous, from netlist)" in row["method"], row
    after = check(tmp_path, SYNC, SYNC_FIRST_CYCLE_AFTER, "ring")
    assert after["outcome"] == "differs", after


def test_first_cycle_after_an_asynchronous_reset_is_compared(tmp_path: Path) -> None:
    row = check(tmp_path, FSM, FSM_FIRST_CYCLE_AFTER, "fsm")
    assert row["outcome"] == "differs", row


def test_design_without_reset_starts_from_zero(tmp_path: Path) -> None:
    row = check(tmp_path, SHIFT, SHIFT_SPLIT, "sh")
    assert row["equivalent"] and row["method"].startswith("induction from the all-zero state"), row
    wrong = check(tmp_path, SHIFT, SHIFT_WRONG, "sh")
    assert wrong["outcome"] == "differs", wrong


def test_evoforge_hint_is_used_and_recorded_only_without_a_reset_in_the_netlist(tmp_path: Path) -> None:
    # the reset passes a register first, so no flop's reset pin is an input port
    registered = SYNC.replace(
        "always @(posedge clk) if (rst)",
        "reg r; always @(posedge clk) r <= rst;\n  always @(posedge clk) if (r)",
    )
    row = check(tmp_path, registered, registered, "ring", hint=[{"port": "rst", "active_low": False}])
    assert row["equivalent"] and "rst=1 (synchronous, from evoforge's report)" in row["method"], row
    row = check(tmp_path, FSM, FSM_ONE_HOT, "fsm", hint=[{"port": "in", "active_low": False}])
    assert "areset=1 (asynchronous, from netlist)" in row["method"], row  # a hint never overrides it


def test_unclosed_induction_is_unproven(tmp_path: Path) -> None:
    # a difference only at count 200 of an 8-bit counter: beyond the base case's reach
    counter = """
module c8(input clk, input rst, output [7:0] q);
  reg [7:0] c;
  always @(posedge clk) if (rst) c <= 0; else c <= c + 8'd1;
  assign q = c;
endmodule
"""
    late = counter.replace("assign q = c;", "assign q = (c == 8'd200) ? 8'd0 : c;")
    row = check(tmp_path, counter, late, "c8")
    assert not row["equivalent"] and row["outcome"].startswith("unproven"), row


def test_abc_fallback_for_combinational_designs(tmp_path: Path) -> None:
    adder = "module m(input [7:0] a, b, output [8:0] y); assign y = a + b; endmodule\n"
    swapped = "module m(input [7:0] a, b, output [8:0] y); assign y = {1'b0, b} + {1'b0, a}; endmodule\n"
    wrong = "module m(input [7:0] a, b, output [8:0] y); assign y = (a == 8'd77) ? 9'd0 : a + b; endmodule\n"
    (tmp_path / "a.v").write_text(adder)
    for k, (text, expected) in enumerate(((swapped, "equivalent"), (wrong, "differs"))):
        (tmp_path / f"b{k}.v").write_text(text)
        work = tmp_path / f"w{k}"
        work.mkdir()
        assert prove_with_abc(tmp_path / "a.v", tmp_path / f"b{k}.v", "m", work) == expected


def test_original_x_is_a_dont_care_for_combinational_designs(tmp_path: Path) -> None:
    table = """
module t(input [1:0] s, output reg y);
  always @* case (s) 2'd0: y = 0; 2'd1: y = 1; 2'd2: y = 1; default: y = 1'bx; endcase
endmodule
"""
    filled = "module t(input [1:0] s, output y); assign y = s[0] | s[1]; endmodule\n"
    row = check(tmp_path, table, filled, "t")  # ABC's 0 for the x differs; the SAT miter's don't-care not
    assert row["equivalent"] and "then SAT" in row["method"], row
    plain = check(tmp_path, table.replace("1'bx", "1"), filled, "t")
    assert plain["equivalent"] and plain["method"] == "combinational: ABC iprove on the AIGER miter"
    wrong = check(tmp_path, table.replace("1'bx", "1"), filled.replace("|", "^"), "t")
    assert wrong["outcome"] == "differs", wrong
