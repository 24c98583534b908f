"""Minimal patches: a rule's rewrite changes only the lines it must; comments and layout stay."""

from __future__ import annotations

import difflib
from pathlib import Path

from evoforge.agents.rtl_rules.patch import minimal_patch
from evoforge.tools.verilog_ast import parse_verilog

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rtl"

COUNTER = """\
// A tick every 100 enabled cycles.   (header comment: must survive)
module tick (
    input  wire clk,   // the clock
    input  wire rst,
    input  wire en,
    output reg  tick
);
    reg [31:0] count;      /* far too wide */

    always @(posedge clk) begin
        if (rst) begin
            count <= 32'd0;
            tick  <= 1'b0;
        end else begin
            tick <= 1'b0;           // default
            if (en) begin
                if (count == 32'd99) begin
                    count <= 32'd0;
                    tick  <= 1'b1;
                end else begin
                    count <= count + 32'd1;
                end
            end
        end
    end
endmodule
"""


def _changed(before: str, after: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0):
        if line.startswith("-") and not line.startswith("---"):
            removed.append(line[1:])
        elif line.startswith("+") and not line.startswith("+++"):
            added.append(line[1:])
    return removed, added


def test_width_reduction_patches_only_the_register_lines(rule_proposals) -> None:
    [proposal, *_] = rule_proposals(COUNTER, "tick", "width_reduction")
    removed, _added = _changed(COUNTER, proposal.source)
    # the declaration and the three assignments to the register; nothing else
    assert len(removed) == 4, removed
    assert all("count" in line for line in removed)
    for comment in ("// A tick every 100", "// the clock", "// default"):
        assert comment in proposal.source
    assert "            tick  <= 1'b0;\n" in proposal.source  # the user's alignment is kept


def test_unchanged_tree_gives_the_text_back_byte_for_byte() -> None:
    text = (EXAMPLES / "alu16.v").read_text()
    parsed = parse_verilog(text)
    assert minimal_patch(text, parsed, parsed.ast) == text


def test_an_edited_case_arm_is_the_only_hunk(rule_proposals) -> None:
    text = (EXAMPLES / "alu16.v").read_text()
    [proposal, *_] = rule_proposals(text, "alu16", "addsub_sharing")
    removed, _added = _changed(text, proposal.source)
    assert removed and len(removed) <= 8, removed
    # the comment lines of the arms the rule did not touch are kept
    assert "default: y = a & b;                               // and" in proposal.source
    assert proposal.source.startswith(text.split("(", 1)[0])


def test_a_macro_on_a_patched_line_is_kept(rule_proposals) -> None:
    """Text rules edit byte ranges: a macro next to the renamed name stays as the user wrote it."""
    text = "`define ZERO 32'd0\n" + COUNTER.replace(
        "count <= 32'd0;\n            tick", "count <= `ZERO;\n            tick"
    )
    proposals = rule_proposals(text, "tick", "width_reduction")
    assert proposals, "the rule still proposes"
    assert "count_q <= `ZERO;" in proposals[0].source
