"""FSM state encoding in any coding style: the same four-state machine in five spellings is found on
the netlist; every proposal (tool encodings, renamed codes) is equivalent from reset — the attribute
ones also after Yosys's own FSM re-encoding — and the patch touches only the names' values and the
attribute. Machines whose state leaks (a port, arithmetic, a non-constant compare) get no renaming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rtl_checks import reset_equivalent, rule_sites

from evoforge.agents.rtl_rules.fsm_encoding import RULE
from evoforge.agents.rtl_rules.netlist_fsm import code_registers, renamed_equal
from evoforge.agents.rtl_rules.text_sites import apply_edits
from evoforge.tools.yosys_netlist import word_netlist

# A Moore machine: A -in-> B, B -!in-> C, C -in-> D, D -in-> B / -!in-> C; out in D.
SPELLINGS = {
    # two processes, parameters, case, async reset (Yosys does not re-encode it: self-resetting)
    "two_process_parameters": """\
module fsm (input clk, input areset, input in, output out);
  parameter A = 0, B = 1, C = 2, D = 3;
  reg [1:0] state, next;
  always @(*) begin
    case (state)
      A: next = in ? B : A;
      B: next = in ? B : C;
      C: next = in ? D : A;
      D: next = in ? B : C;
    endcase
  end
  always @(posedge clk or posedge areset)
    if (areset) state <= A;
    else state <= next;
  assign out = (state == D);
endmodule
""",
    # one clocked process, localparams, an if chain, synchronous reset (Yosys re-encodes it one-hot)
    "one_process_localparam_if": """\
module fsm (input clk, input reset, input in, output reg out);
  localparam [1:0] A = 2'd0, B = 2'd1, C = 2'd2, D = 2'd3;
  reg [1:0] state;
  always @(posedge clk) begin
    if (reset) state <= A;
    else if (state == A) begin if (in) state <= B; end
    else if (state == B) begin if (!in) state <= C; end
    else if (state == C) state <= in ? D : A;
    else state <= in ? B : C;
  end
  always @(*) out = state == D;
endmodule
""",
    # SystemVerilog: typedef enum, always_ff / always_comb, unique case
    "systemverilog_enum": """\
module fsm (input logic clk, input logic reset, input logic in, output logic out);
  typedef enum logic [1:0] {A, B, C, D} state_t;
  state_t state, next;
  always_ff @(posedge clk) state <= reset ? A : next;
  always_comb begin
    next = state;
    unique case (state)
      A: if (in) next = B;
      B: if (!in) next = C;
      C: next = in ? D : A;
      D: next = in ? B : C;
    endcase
  end
  assign out = state == D;
endmodule
""",
    # three processes, explicit sensitivity list, ternary chain, active-low async reset
    "three_process_ternaries": """\
module fsm (clk, rst_n, in, out);
  input clk, rst_n, in;
  output out;
  parameter A = 2'b00, B = 2'b01, C = 2'b10, D = 2'b11;
  reg [1:0] cur, nxt;
  reg out;
  always @(posedge clk or negedge rst_n)
    if (!rst_n) cur <= A;
    else cur <= nxt;
  always @(cur or in)
    nxt = (cur == A) ? (in ? B : A) : (cur == B) ? (in ? B : C) : (cur == C) ? (in ? D : A) : (in ? B : C);
  always @(cur) out = (cur == D) ? 1'b1 : 1'b0;
endmodule
""",
    # five states in three bits, next state written with a `define-free generate-free case default
    "five_states_default": """\
module fsm (input clk, input reset, input in, output out);
  parameter A = 3'd0, B = 3'd1, C = 3'd2, D = 3'd3, E = 3'd4;
  reg [2:0] state, next;
  always @(posedge clk) state <= reset ? A : next;
  always @(*) begin
    case (state)
      A: next = in ? B : A;
      B: next = in ? E : C;
      C: next = in ? D : A;
      D: next = in ? B : C;
      E: next = in ? E : D;
      default: next = 3'bxxx;
    endcase
  end
  assign out = (state == D) || (state == E);
endmodule
""",
    # `define codes, a one-process machine with the output registered from the next state
    "define_macros": """\
`define S_A 2'd0
`define S_B 2'd1
`define S_C 2'd2
`define S_D 2'd3
module fsm (input clk, input reset, input in, output reg out);
  reg [1:0] state;
  always @(posedge clk)
    if (reset) begin state <= `S_A; out <= 1'b0; end
    else case (state)
      `S_A: begin state <= in ? `S_B : `S_A; out <= 1'b0; end
      `S_B: begin state <= in ? `S_B : `S_C; out <= 1'b0; end
      `S_C: begin state <= in ? `S_D : `S_A; out <= in; end
      default: begin state <= in ? `S_B : `S_C; out <= 1'b0; end
    endcase
endmodule
""",
}
RESET = {
    "define_macros": ("reset", False),
    "two_process_parameters": ("areset", False),
    "one_process_localparam_if": ("reset", False),
    "systemverilog_enum": ("reset", False),
    "three_process_ternaries": ("rst_n", True),
    "five_states_default": ("reset", False),
}


def _sites(text: str) -> tuple[list[Any], list[str]]:
    return rule_sites(RULE, text)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_is_one_state_register(spelling: str) -> None:
    found = code_registers(word_netlist(SPELLINGS[spelling]).modules["fsm"])
    assert len(found) == 1
    assert found[0].width in (2, 3) and len(found[0].codes) >= 4


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_proposal_is_equivalent_from_reset(spelling: str, tmp_path: Path) -> None:
    text = SPELLINGS[spelling]
    sites, declines = _sites(text)
    kinds = {s.note.split(": ", 1)[1].split(" (")[0] for s in sites}
    assert any("binary" in k for k in kinds), (kinds, declines)
    assert any("codes" in k for k in kinds), f"no renamed codes: {declines}"
    reset, low = RESET[spelling]
    for k, site in enumerate(sites):
        patched = apply_edits(text, site.edits)
        fsm = "fsm_encoding" in patched and "codes in" not in site.note
        ok, log = reset_equivalent(text, patched, "fsm", tmp_path / str(k), reset, low, fsm=fsm)
        assert ok, f"{site.note}\n{patched}\n{log[-1500:]}"
        # only the names' values and the attribute changed: every other line is kept
        before, after = text.splitlines(), patched.splitlines()
        assert len(before) == len(after)
        changed = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
        assert all(
            "fsm_encoding" in after[i]
            or any(w in before[i] for w in ("parameter", "localparam", "enum", "`define"))
            for i in changed
        ), changed


def test_a_renaming_that_also_changes_another_value_is_refused() -> None:
    text = (
        SPELLINGS["two_process_parameters"]
        .replace("  reg [1:0] state, next;", "  reg [1:0] state, next;\n  wire [7:0] spare = D;")
        .replace("assign out = (state == D);", "assign out = (state == D) ^ spare[0];")
    )
    module = word_netlist(text).modules["fsm"]
    (reg,) = code_registers(module)
    swapped = text.replace("A = 0, B = 1, C = 2, D = 3", "A = 0, B = 1, C = 3, D = 2")
    assert renamed_equal(module, word_netlist(swapped).modules["fsm"], reg, {2: 3, 3: 2}) is not None
    sites, _ = _sites(text)
    assert not any("codes in" in s.note for s in sites)


LEAKS = {
    # the state is an output port
    "port": SPELLINGS["two_process_parameters"]
    .replace("output out);", "output out, output reg [1:0] state);")
    .replace("  reg [1:0] state, next;", "  reg [1:0] next;"),
    # the state is read by arithmetic
    "arithmetic": SPELLINGS["two_process_parameters"].replace(
        "assign out = (state == D);", "assign out = (state + 2'd1) == 2'd0;"
    ),
    # the state is compared with another signal
    "compare": SPELLINGS["two_process_parameters"]
    .replace("input in, output out);", "input in, input [1:0] k, output out);")
    .replace("assign out = (state == D);", "assign out = (state == k);"),
}


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_a_state_that_leaks_is_not_renamed(leak: str) -> None:
    sites, declines = _sites(LEAKS[leak])
    assert sites == []
    if leak != "arithmetic":  # a counter-like read is simply not a code register
        assert declines, "the rule should say why"


def test_codes_written_as_literals_get_only_the_tool_encodings() -> None:
    text = (
        SPELLINGS["two_process_parameters"]
        .replace("  parameter A = 0, B = 1, C = 2, D = 3;\n", "")
        .replace("A:", "2'd0:")
        .replace("B:", "2'd1:")
        .replace("C:", "2'd2:")
        .replace("D:", "2'd3:")
        .replace("? B", "? 2'd1")
        .replace("? D", "? 2'd3")
        .replace(": A", ": 2'd0")
        .replace(": C", ": 2'd2")
        .replace("<= A", "<= 2'd0")
        .replace("== D", "== 2'd3")
    )
    sites, declines = _sites(text)
    assert sites and all("fsm_encoding" in s.note for s in sites)
    assert any("not written as parameter" in d for d in declines)
