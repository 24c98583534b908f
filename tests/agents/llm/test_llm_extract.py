"""The candidate is the last fenced code block in a language of the target's domain."""

from __future__ import annotations

from evoforge.agents.llm.extract import code_blocks, extract_code
from evoforge.domain import TargetKind


def test_last_verilog_block_wins() -> None:
    reply = (
        "Plan:\n```verilog\nmodule a; endmodule\n```\nBetter:\n```verilog\nmodule b; endmodule\n```\nDone."
    )
    assert extract_code(reply) == "module b; endmodule\n"


def test_unlabelled_block_counts_and_other_languages_do_not() -> None:
    reply = "```\nmodule a; endmodule\n```\nThe diff:\n```diff\n- x\n+ y\n```\n"
    assert extract_code(reply) == "module a; endmodule\n"
    assert extract_code("```text\nhello\n```") is None


def test_no_block_or_an_unclosed_one_is_none() -> None:
    assert extract_code("I would share the adder.") is None
    assert extract_code("```verilog\nmodule a;\n") is None
    assert extract_code(None) is None
    assert extract_code("```verilog\n   \n```") is None


def test_kernel_languages() -> None:
    reply = "```cuda\n__global__ void k() {}\n```\n```python\nclass ModelNew: pass\n```"
    assert extract_code(reply, TargetKind.KERNEL) == "class ModelNew: pass\n"
    assert extract_code("```verilog\nmodule a; endmodule\n```", TargetKind.KERNEL) is None


def test_longer_fences_hold_inner_backticks() -> None:
    reply = "````verilog\n// ``` not a fence end\nmodule a; endmodule\n````"
    assert extract_code(reply) == "// ``` not a fence end\nmodule a; endmodule\n"
    assert [label for label, _ in code_blocks("```sv\nx\n```\n```Verilog\ny\n```")] == ["sv", "verilog"]
