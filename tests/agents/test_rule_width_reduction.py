"""Width reduction on counters and accumulators written in different styles: each proposal re-parses,
keeps the ports, matches the original for more cycles than the counter's period (yosys bounded SAT
from the reset state) and synthesises to fewer cells; unbounded or unsafe registers are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.tools.verilog_ast import parse_verilog

RULE = "width_reduction"

# 1. if/else with an enable and a synchronous reset, wraps at 5, read by a compare and a part select
IF_ENABLE = """
module slowtick(input clk, input reset, input go, output [2:0] ph, output at_end);
  reg [15:0] n;
  always @(posedge clk)
    if (reset) n <= 16'd0;
    else if (go) begin
      if (n == 16'd5) n <= 16'd0;
      else n <= n + 16'd1;
    end
  assign ph = n[2:0];
  assign at_end = n == 16'd5;
endmodule
"""

# 2. a ternary next state, asynchronous active-low reset, read as a whole and compared with a
#    constant beyond the bound (zero extension keeps both exact)
TERNARY_ASYNC = """
module wrap9(clk, rst_n, q, big);
  input clk, rst_n;
  output [11:0] q;
  output big;
  reg [11:0] c;
  always @(posedge clk or negedge rst_n) begin
    if (!rst_n) c <= 0;
    else c <= (c >= 12'd9) ? 12'd0 : c + 1'b1;
  end
  assign q = c;
  assign big = c > 12'd200;
endmodule
"""

# 3. a down counter written with case, as an output reg port
CASE_DOWN = """
module down(input clk, input rst, output reg [7:0] left, output reg pulse);
  always @(posedge clk) begin
    if (rst) begin
      left <= 8'd6;
      pulse <= 1'b0;
    end else begin
      pulse <= left == 8'd0;
      case (left)
        8'd0: left <= 8'd6;
        default: left <= left - 8'd1;
      endcase
    end
  end
endmodule
"""

# 4. an accumulator of which only the low nibble is ever read
LOW_BITS = """
module lowacc(input clk, input rst, input [7:0] x, output [3:0] y, output par);
  reg [15:0] acc;
  always @(posedge clk or posedge rst)
    if (rst) acc <= 16'h0;
    else acc <= (acc ^ {8'd0, x}) + {x, 8'd3};
  assign y = acc[3:0];
  assign par = acc[2];
endmodule
"""

# (design, top, bits the register keeps, cycles the bounded check covers, yosys keeps the extra bits)
DESIGNS = [
    (IF_ENABLE, "slowtick", 3, 16, True),
    (TERNARY_ASYNC, "wrap9", 4, 24, True),
    (CASE_DOWN, "down", 3, 18, True),
    # yosys itself drops flip-flops that reach no output: proposed anyway, must not cost anything
    (LOW_BITS, "lowacc", 4, 8, False),
]


@pytest.mark.parametrize(("text", "top", "bits", "steps", "shrinks"), DESIGNS, ids=[d[1] for d in DESIGNS])
def test_narrowed_registers_are_equivalent_and_smaller(
    text, top, bits, steps, shrinks, tmp_path: Path, rule_proposals, yosys_equivalent, yosys_metrics
) -> None:
    (proposal,) = rule_proposals(text, top, RULE)
    assert proposal.rule == RULE and proposal.note and proposal.touched
    assert f"to {bits} bits" in proposal.note
    assert parse_verilog(proposal.source).modules[top].ports == parse_verilog(text).modules[top].ports
    ok, log = yosys_equivalent(text, proposal.source, top, tmp_path / "eq", steps=steps)
    assert ok, f"not equivalent:\n{proposal.source}\n{log[-2000:]}"
    before = yosys_metrics(text, top, tmp_path / "before")
    after = yosys_metrics(proposal.source, top, tmp_path / "after")
    assert after.cells < before.cells if shrinks else after.cells <= before.cells, (before, after)


def test_the_bounded_check_can_fail(tmp_path: Path, yosys_equivalent) -> None:
    wrong = IF_ENABLE.replace("n == 16'd5) n <= 16'd0", "n == 16'd5) n <= 16'd1")
    ok, _ = yosys_equivalent(IF_ENABLE, wrong, "slowtick", tmp_path, steps=16)
    assert not ok


UNBOUNDED = IF_ENABLE.replace(
    "if (n == 16'd5) n <= 16'd0;\n      else ", ""
)  # free-running: every bit matters
NO_RESET = IF_ENABLE.replace("if (reset) n <= 16'd0;\n    else ", "")  # may start anywhere
SIGNED = IF_ENABLE.replace("reg [15:0] n;", "reg signed [15:0] n;")
ESCAPES = IF_ENABLE.replace("else n <= n + 16'd1;", "else n <= n + 16'd2;")  # 4 → 6 → 8 … never wraps
WIDE_READ = LOW_BITS.replace("assign par = acc[2];", "assign par = acc[12];")
CONDITION_READ = LOW_BITS.replace("else acc <=", "else if (acc != 16'hffff) acc <=")


@pytest.mark.parametrize(
    "text",
    [UNBOUNDED, NO_RESET, SIGNED, ESCAPES, WIDE_READ, CONDITION_READ],
    ids=["unbounded", "no-reset", "signed", "escapes", "wide-read", "condition-read"],
)
def test_unsafe_registers_are_left_alone(text: str, rule_proposals) -> None:
    top = "slowtick" if "slowtick" in text else "lowacc"
    proposals = rule_proposals(text, top, RULE)
    if text is WIDE_READ:  # bit 12 is read: 13 bits stay, the 3 above are still dropped
        assert [p.note for p in proposals if "to 13 bits" in p.note] == [proposals[0].note]
        return
    assert proposals == []


# The same bounded counter in more spellings (SystemVerilog, ANSI output ports, several names in one
# declaration, case with parameter labels): found on the netlist, patched in place.
MORE_SPELLINGS = {
    "sv_always_ff_localparam": (
        """\
module cnt (input logic clk, input logic rst, input logic en, output logic wrap);
  localparam logic [15:0] LAST = 16'd11;
  logic [15:0] n;
  always_ff @(posedge clk)
    if (rst) n <= '0;
    else if (en) n <= (n == LAST) ? '0 : n + 16'd1;
  assign wrap = en && n == LAST;
endmodule
""",
        "rst",
        4,
    ),
    "ansi_output_port": (
        """\
module cnt (input clk, input rst_n, output reg [9:0] n);
  always @(posedge clk or negedge rst_n)
    if (!rst_n) n <= 10'd0;
    else if (n < 10'd20) n <= n + 10'd1;
endmodule
""",
        "rst_n",
        5,
    ),
    "several_names_one_declaration": (
        """\
module cnt (input clk, input rst, output [7:0] q, output t);
  reg [7:0] a, n, b;
  always @(posedge clk) begin
    a <= rst ? 8'd0 : a + 8'd1;
    n <= rst ? 8'd0 : (n == 8'd6 ? 8'd0 : n + 8'd1);
    b <= a ^ {5'd0, n[2:0]};
  end
  assign q = b;
  assign t = n == 8'd6;
endmodule
""",
        "rst",
        3,
    ),
    "case_parameter_labels_down": (
        """\
module cnt (input clk, input rst, output reg [11:0] left);
  parameter TOP = 12'd9, ZERO = 12'd0;
  always @(posedge clk)
    if (rst) left <= TOP;
    else case (left)
      ZERO: left <= TOP;
      default: left <= left - 12'd1;
    endcase
endmodule
""",
        "rst",
        4,
    ),
}


@pytest.mark.parametrize("spelling", sorted(MORE_SPELLINGS))
def test_more_spellings_are_narrowed_and_equivalent(spelling: str, tmp_path: Path) -> None:
    import random

    from rtl_checks import reset_equivalent

    from evoforge.agents.rtl_rules import width_reduction
    from evoforge.agents.rtl_rules.text_sites import Design, apply_edits

    text, reset, bits = MORE_SPELLINGS[spelling]
    sites = width_reduction.RULE.text_sites(Design(text), random.Random(0))
    narrowed = [s for s in sites if f"to {bits} bits" in s.note]
    assert len(narrowed) == 1, [s.note for s in sites]
    patched = apply_edits(text, narrowed[0].edits)
    low = reset.endswith("_n")
    ok, log = reset_equivalent(text, patched, "cnt", tmp_path / "eq", reset, low, steps=30)
    assert ok, f"{patched}\n{log[-1500:]}"


def test_array_words_whose_high_bits_nothing_reads_are_narrowed(tmp_path: Path) -> None:
    import random

    from rtl_checks import reset_equivalent

    from evoforge.agents.rtl_rules import width_reduction
    from evoforge.agents.rtl_rules.text_sites import Design, apply_edits

    text = """\
module mem (input clk, input rst_n, input we, input [1:0] wa, ra, input [5:0] wd, output reg [5:0] rd);
  reg [7:0] m [0:3];
  integer i;
  always @(posedge clk or negedge rst_n)
    if (!rst_n) for (i = 0; i < 4; i = i + 1) m[i] <= 8'd0;
    else if (we) m[wa] <= wd;
  always @(posedge clk) rd <= m[ra];
endmodule
"""
    sites = width_reduction.RULE.text_sites(Design(text), random.Random(0))
    (site,) = [s for s in sites if "array m" in s.note]
    patched = apply_edits(text, site.edits)
    assert "reg [5:0] m [0:3];" in patched
    ok, log = reset_equivalent(text, patched, "mem", tmp_path / "eq", "rst_n", True, steps=12)
    assert ok, log[-1500:]
    # a read that uses the high bits keeps the words whole
    wide = text.replace("rd <= m[ra];", "rd <= m[ra][7:2];")
    assert not [
        s for s in width_reduction.RULE.text_sites(Design(wide), random.Random(0)) if "array" in s.note
    ]
