"""The RTL prompts carry the original, the parent and its metrics, feedback, inspirations, knowledge."""

from __future__ import annotations

from evoforge.agents.base import Inspiration, ProposalRequest
from evoforge.agents.llm.prompts import PROMPTS, PromptContext, knowledge_query
from evoforge.domain import Metrics, Port, RtlInterface, SourceFile, Target, TargetKind

HEAD = "module m(input clk, input [3:0] a, output reg [4:0] y);\n"
ORIGINAL = HEAD + "  always @(posedge clk) y <= a + a;\nendmodule\n"
PARENT = HEAD + "  always @(posedge clk) y <= a << 1;\nendmodule\n"
TARGET = Target(
    TargetKind.RTL,
    "m",
    (SourceFile("m.v", ORIGINAL),),
    RtlInterface("m", (Port("clk", "input", 1), Port("a", "input", 4), Port("y", "output", 5)), clock="clk"),
)
FEEDBACK = {
    "critical_path": ["a[0]", "_12_", "y_reg[4]"],
    "cells_by_type": {"sky130_fd_sc_hd__fa_1": 4, "sky130_fd_sc_hd__dfxtp_1": 5},
    "recent_failures": [
        {"stage": "equivalence", "reason": "counterexample at cycle 3: a=1010", "note": "dropped the carry"}
    ],
}


def request() -> ProposalRequest:
    return ProposalRequest(
        TARGET,
        PARENT,
        Metrics(area_um2=42.5, delay_ns=1.25),
        FEEDBACK,
        count=2,
        inspirations=(Inspiration("module m_alt(); endmodule", Metrics(area_um2=40.0), "offline:x"),),
    )


def test_planner_prompt_carries_everything_the_design_says() -> None:
    system, user = PROMPTS[TargetKind.RTL].planner(
        PromptContext(request(), ("Share adders between branches",), 1, 2)
    )
    assert system["content"].startswith("You are the planner")
    text = user["content"]
    for expected in (
        ORIGINAL.strip(),
        PARENT.strip(),
        "area_um2 = 42.5µm²",
        "delay_ns = 1.25ns",
        "a[0] → _12_ → y_reg[4]",
        "sky130_fd_sc_hd__fa_1: 4",
        "rejected at equivalence: counterexample at cycle 3",
        "module m_alt(); endmodule",
        "Share adders between branches",
        "input [4] a",
        "clock clk",
        "plan 2 of 2",
    ):
        assert expected in text, expected


def test_coder_and_repair_prompts_ask_for_a_fenced_block_and_carry_the_error() -> None:
    prompts = PROMPTS[TargetKind.RTL]
    ctx = PromptContext(request())
    coder = prompts.coder(ctx, "1. use a shift")
    assert "```verilog" in coder[0]["content"] and "1. use a shift" in coder[-1]["content"]
    repair = prompts.repair(ctx, "1. use a shift", "reply", "it fails the lint check: line 2: syntax error")
    assert repair[-2] == {"role": "assistant", "content": "reply"}
    assert "line 2: syntax error" in repair[-1]["content"]


def test_the_original_is_shown_once_when_it_is_the_parent() -> None:
    ctx = PromptContext(ProposalRequest(TARGET, ORIGINAL, Metrics()))
    text = PROMPTS[TargetKind.RTL].planner(ctx)[1]["content"]
    assert text.count("always @(posedge clk)") == 1 and "not measured" in text


def test_kernel_prompts_ask_for_python() -> None:
    kernel = Target(TargetKind.KERNEL, "k", (SourceFile("k.py", "class Model: pass\n"),))
    ctx = PromptContext(ProposalRequest(kernel, "class Model: pass\n", Metrics(runtime_ms=2.0)))
    coder = PROMPTS[TargetKind.KERNEL].coder(ctx, "1. fuse")
    assert "```python" in coder[0]["content"] and "```verilog" not in coder[1]["content"]


def test_knowledge_query_names_the_hot_spots() -> None:
    query = knowledge_query(request())
    assert "y_reg[4]" in query and "sky130_fd_sc_hd__fa_1" in query
