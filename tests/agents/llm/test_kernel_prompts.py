"""The kernel prompts carry the candidate contract and the kernel cascade's feedback on the parent."""

from __future__ import annotations

from typing import Any

from evoforge.agents.base import Inspiration, ProposalRequest
from evoforge.agents.llm.prompts import PROMPTS, PromptContext, knowledge_query
from evoforge.domain import Metrics, SourceFile, Target, TargetKind

PROBLEM = """\
import torch
import torch.nn as nn
class Model(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
def get_inputs():
    return [torch.randn(8, 512)]
def get_init_inputs():
    return []
"""
PARENT = "from evoforge.runtime import load_c\n_lib = load_c('void f(float *o) {}')\nclass ModelNew: ...\n"
SUMMARY = {
    "patterns": [{"kind": "row_reduction", "op": "softmax", "input": 0}],
    "probe": {
        "inputs": [{"type": "Tensor", "shape": [8, 512], "dtype": "torch.float32", "device": "cpu"}],
        "benchmark_inputs": True,
        "cuda": False,
    },
}
TARGET = Target(TargetKind.KERNEL, "softmax", (SourceFile("softmax.py", PROBLEM),), kernel_summary=SUMMARY)
MISMATCH = (
    "trial 2: output 0: 37 of 4096 elements differ; first mismatching elements:\n"
    "  [3, 17]: expected 0.0123 got 0.5 (abs error 0.4877, allowed 1e-05)"
)


def request(feedback: dict[str, Any], parent: str = PARENT, **kwargs: Any) -> ProposalRequest:
    return ProposalRequest(TARGET, parent, Metrics(runtime_ms=0.8, speedup=1.7), feedback, **kwargs)


C_FEEDBACK = {
    "backend": "c",
    "benchmark": {
        "device": "cpu",
        "reference_ms": 1.36,
        "candidate_ms": 0.8,
        "speedup": 1.7,
        "unmeasured": None,
        "flag": None,
    },
    "recent_failures": [
        {"stage": "correctness", "reason": MISMATCH, "note": "fused the max pass", "origin": "llm:m"},
        {
            "stage": "static",
            "reason": "line 9: try/except (…)",
            "note": "guarded the call",
            "origin": "llm:m",
        },
    ],
}
TRITON_FEEDBACK = {
    "backend": "triton",
    "kernel_resources": {
        "arch": "sm_90",
        "kernels": [{"kernel": "softmax_kernel", "registers": 40, "spills": 12, "shared_bytes": 1024}],
    },
    "benchmark": {
        "device": "cuda",
        "reference_ms": None,
        "candidate_ms": None,
        "speedup": None,
        "unmeasured": "Triton runs here only in its interpreter, whose timings say nothing about GPU speed",
        "flag": None,
    },
}


def user_text(messages: list[dict[str, str]]) -> str:
    return messages[1]["content"]


def test_c_parent_feedback_shows_speedup_and_the_first_mismatching_elements() -> None:
    prompts = PROMPTS[TargetKind.KERNEL]
    ctx = PromptContext(
        request(C_FEEDBACK, inspirations=(Inspiration("class ModelNew: pass", Metrics(runtime_ms=0.9)),)),
        ("Fuse the max and the sum passes of a softmax",),
    )
    text = user_text(prompts.planner(ctx))
    for expected in (
        PROBLEM.strip(),
        PARENT.strip(),
        "runtime_ms = 0.8ms",
        "speedup = 1.7",
        "(backend: c)",
        "0.8 ms vs torch eager 1.36 ms on cpu: speed-up 1.70x",
        "computed wrong results (rejected at correctness)",
        "[3, 17]: expected 0.0123 got 0.5 (abs error 0.4877, allowed 1e-05)",
        "fused the max pass",
        "rejected at static: line 9: try/except",
        "row_reduction (softmax)",
        "(8, 512) float32",
        "no CUDA GPU",
        "get_benchmark_inputs()",
        "Fuse the max and the sum passes",
        "class ModelNew: pass",
    ):
        assert expected in text, expected
    assert "unmeasured" not in text.split("## What the verifier reported")[1]


def test_triton_parent_feedback_shows_resources_spills_and_why_speed_is_unmeasured() -> None:
    text = user_text(PROMPTS[TargetKind.KERNEL].planner(PromptContext(request(TRITON_FEEDBACK))))
    assert "sm_90: softmax_kernel: 40 registers, 12 spilled, 1024 B shared memory" in text
    assert "Registers spill to local memory" in text
    assert "Speed: unmeasured (Triton runs here only in its interpreter" in text
    assert "(backend: triton)" in text
    assert "write C kernels (the C backend)" in text  # the way to a measured speed-up here


def test_coder_states_the_candidate_contract_and_repair_carries_the_problem() -> None:
    prompts = PROMPTS[TargetKind.KERNEL]
    ctx = PromptContext(request(C_FEEDBACK))
    coder = prompts.coder(ctx, "1. one pass per row")
    system = coder[0]["content"]
    assert system.startswith("You are the coder")
    for expected in (
        "class ModelNew(nn.Module)",
        "@triton.jit",
        "load_inline",
        "from evoforge.runtime import load_c",
        "a Python int as int64_t, a float as double",
        "contiguous CPU tensor",
        "_lib.relu(out, x, x.numel())",
        "try/except",
        "threads",
        "timers",
        "caching results",
        "library fallback",
        "last fenced block",
    ):
        assert expected in system, expected
    assert "1. one pass per row" in coder[1]["content"] and "```python" in coder[1]["content"]
    assert "```verilog" not in system + coder[1]["content"]
    repair = prompts.repair(ctx, "1. plan", "reply", "it fails the static check: line 3: calls torch.exp")
    assert repair[-2] == {"role": "assistant", "content": "reply"}
    assert "line 3: calls torch.exp" in repair[-1]["content"] and "```python" in repair[-1]["content"]


def test_the_original_as_parent_is_shown_once_and_a_gpu_machine_is_said_so() -> None:
    gpu = Target(
        TargetKind.KERNEL,
        "softmax",
        (SourceFile("softmax.py", PROBLEM),),
        kernel_summary={"probe": {"cuda": True, "inputs": []}},
    )
    ctx = PromptContext(
        ProposalRequest(gpu, PROBLEM, Metrics(runtime_ms=1.0), {"benchmark": {"device": "cpu"}})
    )
    text = user_text(PROMPTS[TargetKind.KERNEL].planner(ctx))
    assert text.count("torch.softmax(x, dim=-1)") == 1
    assert "has a CUDA GPU" in text and "no CUDA GPU" not in text
    assert "What the verifier reported" not in text  # nothing measured beyond the baseline


def test_knowledge_query_uses_kernel_words() -> None:
    query = knowledge_query(request(TRITON_FEEDBACK))
    for word in ("softmax", "row_reduction", "kernel", "triton", "register spills"):
        assert word in query, word
    assert "critical" not in query
