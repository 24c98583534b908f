"""The planner, coder and repair prompts, per domain (RTL designs and KernelBench kernels).

A prompt carries what DESIGN.md lists: the original, the parent and its metrics, the verifier's
feedback (the failure detail and counterexample of recent attempts, the critical path as RTL
signals, the resource usage), a few strong and diverse members of the population as inspirations,
and retrieved knowledge-base entries. Long texts are clipped so that a prompt stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from evoforge.agents.base import Inspiration, ProposalRequest
from evoforge.domain import Metrics, TargetKind

Message = dict[str, str]

#: characters of one source shown in a prompt, and of one feedback detail
SOURCE_LIMIT = 12_000
DETAIL_LIMIT = 1_500
PLANNER_SYSTEM_PREFIX = "You are the planner"
CODER_SYSTEM_PREFIX = "You are the coder"


@dataclass(frozen=True)
class PromptContext:
    """Everything a prompt may show, taken from a proposal request plus retrieved knowledge."""

    request: ProposalRequest
    knowledge: tuple[str, ...] = ()
    index: int = 0  # which of the request's drafts this is (asks for a different idea each time)
    count: int = 1
    variant: int = 0  # how often drafts for this parent repeated: rotates inspirations
    tried: tuple[str, ...] = ()  # approaches already tried on this parent (the planner avoids them)


class PromptBuilder(Protocol):
    kind: TargetKind
    language: str

    def planner(self, ctx: PromptContext) -> list[Message]: ...
    def coder(self, ctx: PromptContext, plan: str) -> list[Message]: ...
    def repair(self, ctx: PromptContext, plan: str, previous_reply: str, problem: str) -> list[Message]: ...


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit // 2] + f"\n… [{len(text) - limit} characters cut] …\n" + text[-limit // 2 :]


def format_metrics(metrics: Metrics) -> str:
    units = {"area_um2": "µm²", "delay_ns": "ns", "runtime_ms": "ms", "shared_bytes": "B"}
    values = metrics.to_dict()
    return ", ".join(f"{k} = {v:g}{units.get(k, '')}" for k, v in values.items()) or "not measured"


def _feedback_lines(feedback: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if feedback.get("critical_path"):
        path = " → ".join(str(s) for s in feedback["critical_path"][:24])
        lines.append(f"- Critical path (RTL signals, start to end): {path}")
    if feedback.get("slack_ns") is not None:
        lines.append(f"- Timing slack: {feedback['slack_ns']} ns")
    cells = feedback.get("cells_by_type") or feedback.get("largest_cells")
    if cells:
        if isinstance(cells, dict):
            top = sorted(cells.items(), key=lambda kv: -float(kv[1]) if _number(kv[1]) else 0)[:10]
            text = ", ".join(f"{k}: {v}" for k, v in top)
        else:
            text = ", ".join(str(c) for c in list(cells)[:10])
        lines.append(f"- Resource usage (cells): {text}")
    for failure in feedback.get("recent_failures", [])[:3]:
        what = clip(str(failure.get("reason", "")), DETAIL_LIMIT)
        note = failure.get("note") or ""
        lines.append(f"- An earlier rewrite ({note[:120]}) was rejected at {failure.get('stage')}: {what}")
    return lines


def _planner_variety(ctx: PromptContext) -> str:
    """Asks for another idea: a later plan of a request, or approaches already tried on this parent."""
    parts = []
    if ctx.tried:
        tried = "\n".join(f"- {clip(t, 300)}" for t in ctx.tried[-8:])
        parts.append(
            "## Approaches already tried on this version\n"
            f"{tried}\n\nThey gave nothing new. Propose an approach that is not on this list."
        )
    if ctx.count > 1 and ctx.index > 0:
        parts.append(
            f"This is plan {ctx.index + 1} of {ctx.count}: prefer a different idea from the obvious one."
        )
    return "".join(f"\n\n{p}" for p in parts)


def _coder_variety(ctx: PromptContext) -> str:
    """The second and later drafts from one plan ask for another step or another way to do it."""
    if ctx.count > 1 and ctx.index > 0:
        return (
            f"\n\nThis is draft {ctx.index + 1} of {ctx.count} from this plan: implement a different step, "
            "or the same step another way, than the most obvious rewrite."
        )
    return ""


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _repair(
    coder: list[Message], previous_reply: str, problem: str, draft: str, whole: str, language: str
) -> list[Message]:
    """The coder's conversation, its unusable reply, and what was wrong with it."""
    return [
        *coder,
        {"role": "assistant", "content": previous_reply},
        {
            "role": "user",
            "content": f"That {draft} cannot be used: {clip(problem, DETAIL_LIMIT)}\n\nFix it and reply "
            f"with the complete corrected {whole} in a ```{language} block.",
        },
    ]


def _reported(feedback: list[str], ctx: PromptContext, language: str) -> list[str]:
    """The closing sections of a situation: the verifier's feedback, inspirations, knowledge."""
    parts = []
    if feedback:
        parts.append("## What the verifier reported\n" + "\n".join(feedback))
    items = ctx.request.inspirations
    if items and ctx.variant:  # drafts repeated: show other members of the population
        shift = (ctx.variant * 2) % len(items)
        items = (*items[shift:], *items[:shift])
    inspirations = _inspirations(items, language)
    if inspirations:
        parts.append("## Other verified versions (for ideas)\n" + "\n\n".join(inspirations))
    if ctx.knowledge:
        parts.append(
            "## Known optimisation techniques\n" + "\n".join(f"- {clip(k, 1500)}" for k in ctx.knowledge)
        )
    return parts


def _inspirations(items: Sequence[Inspiration], language: str) -> list[str]:
    out = []
    for i, item in enumerate(items[:2], 1):
        note = f": {item.note[:160]}" if item.note else ""
        out.append(
            f"### Inspiration {i} ({format_metrics(item.metrics)}){note}\n"
            f"```{language}\n{clip(item.source, SOURCE_LIMIT // 2).rstrip()}\n```"
        )
    return out


class RtlPrompts:
    """Prompts for Verilog designs: smaller area and a shorter critical path, same behaviour."""

    kind = TargetKind.RTL
    language = "verilog"

    def _interface(self, ctx: PromptContext) -> str:
        rtl = ctx.request.target.rtl
        if rtl is None:
            return ""
        ports = ", ".join(
            f"{p.direction} {'signed ' if p.signed else ''}[{p.width}] {p.name}" for p in rtl.ports
        )
        clocks = [f"clock {c.port} ({'/'.join(c.edges)})" for c in rtl.clocks] or ["combinational (no clock)"]
        resets = [
            f"{'asynchronous ' if r.asynchronous else ''}reset {r.port} "
            f"({'active low' if r.active_low else 'active high'})"
            for r in rtl.resets
        ]
        return (
            f"Top module `{rtl.top}` with ports: {ports}; {', '.join(clocks + resets)}. "
            "Keep the module name, every port (name, direction, width, signedness) and the cycle-by-cycle "
            "behaviour at the ports exactly."
        )

    def _situation(self, ctx: PromptContext) -> str:
        request = ctx.request
        parts = [
            f"## Target: {request.target.name}",
            self._interface(ctx),
            f"## The original design\n```verilog\n{clip(request.target.source, SOURCE_LIMIT).rstrip()}\n```",
        ]
        if request.parent_source.strip() != request.target.source.strip():
            parts.append(
                "## The current version to improve (verified equal to the original)\n"
                f"```verilog\n{clip(request.parent_source, SOURCE_LIMIT).rstrip()}\n```"
            )
        parts.append(f"## Its measurements\n{format_metrics(request.parent_metrics)}")
        parts += _reported(_feedback_lines(request.feedback), ctx, self.language)
        return "\n\n".join(p for p in parts if p)

    def planner(self, ctx: PromptContext) -> list[Message]:
        system = (
            f"{PLANNER_SYSTEM_PREFIX} of a hardware optimisation service. You read a Verilog design and "
            "its measurements and write a short optimisation plan: at most five numbered steps, each one "
            "concrete (which signals, which always block, what to share, restructure or remove). Every "
            "rewrite must keep the behaviour at the ports identical, cycle by cycle, for every input; "
            "it is checked by simulation and formal equivalence. Optimise area first, then delay. Do not "
            "write code."
        )
        variety = _planner_variety(ctx)
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": self._situation(ctx) + variety + "\n\nWrite the plan."},
        ]

    def coder(self, ctx: PromptContext, plan: str) -> list[Message]:
        system = (
            f"{CODER_SYSTEM_PREFIX} of a hardware optimisation service. You rewrite a Verilog design "
            "following a plan. Keep the behaviour at the ports identical cycle by cycle (it is checked by "
            "simulation and formal equivalence), keep the top module's name and ports, use synthesisable "
            "Verilog-2005 only (no system tasks, no `include). End your reply with the complete rewritten "
            "design in one ```verilog fenced block: the last fenced block of the reply is taken as the "
            "candidate."
        )
        return [
            {"role": "system", "content": system},
            {
                "role": "user",
                "content": f"{self._situation(ctx)}\n\n## The plan\n{plan.strip() or '(no plan)'}\n\n"
                "Implement the plan's first step (more steps if they are safe). Reply with a one-sentence "
                "summary, then the complete design in a ```verilog block." + _coder_variety(ctx),
            },
        ]

    def repair(self, ctx: PromptContext, plan: str, previous_reply: str, problem: str) -> list[Message]:
        return _repair(self.coder(ctx, plan), previous_reply, problem, "rewrite", "design", self.language)


class KernelPrompts:
    """Prompts for KernelBench problems: a faster ``ModelNew`` whose arithmetic runs in custom kernels.

    The feedback is the kernel cascade's: the first mismatching elements of a rejected child (its
    correctness detail), registers, spills and shared memory from the ahead-of-time compile, and the
    measured speed-up over torch eager or why it is unmeasured on this machine.
    """

    kind = TargetKind.KERNEL
    language = "python"

    def _machine(self, ctx: PromptContext) -> list[str]:
        request = ctx.request
        probe = dict((request.target.kernel_summary or {}).get("probe") or {})
        benchmark = request.feedback.get("benchmark") or {}
        lines = []
        if probe.get("cuda"):
            lines.append("- This machine has a CUDA GPU: Triton and CUDA kernels are run and timed on it.")
        else:
            lines.append(
                "- This machine has no CUDA GPU: Triton kernels are checked on the CPU in Triton's "
                "interpreter and their speed is unmeasured; CUDA kernels are compiled (nvcc) but cannot "
                "run. C kernels (`evoforge.runtime.load_c`) run on the CPU and are timed against torch "
                "eager: they are the backend whose speed-up is measured here."
            )
        if benchmark.get("unmeasured") and not probe.get("cuda"):
            lines.append(
                "- The current version's speed is unmeasured here; to get a measured speed-up on this "
                "machine, write C kernels (the C backend)."
            )
        shapes = _shapes(probe.get("inputs"))
        if shapes:
            bench = "" if probe.get("benchmark_inputs") else " (also the benchmark shapes)"
            lines.append(f"- Inputs of the correctness check: {shapes}{bench}.")
        if probe.get("benchmark_inputs"):
            lines.append(
                "- The benchmark uses larger inputs (get_benchmark_inputs()): the kernel must handle any "
                "shape, not only the small one."
            )
        return lines

    def _situation(self, ctx: PromptContext) -> str:
        request = ctx.request
        parts = [
            f"## Target: {request.target.name}",
            "Keep the constructor and forward() signature of `Model`; the outputs must match the original "
            "within tolerance (same shape, dtype and device) on fresh random inputs of every shape the "
            "problem defines.",
            f"## The original problem (reference `Model`)\n```python\n"
            f"{clip(request.target.source, SOURCE_LIMIT).rstrip()}\n```",
        ]
        patterns = _patterns(request.target.kernel_summary)
        if patterns:
            parts.append(f"The reference traces to: {patterns}.")
        if request.parent_source.strip() != request.target.source.strip():
            parts.append(
                "## The current version to improve (verified correct)\n"
                f"```python\n{clip(request.parent_source, SOURCE_LIMIT).rstrip()}\n```"
            )
        measured = format_metrics(request.parent_metrics)
        backend = request.feedback.get("backend")
        parts.append(f"## Its measurements\n{measured}" + (f" (backend: {backend})" if backend else ""))
        parts.append("## This machine\n" + "\n".join(self._machine(ctx)))
        parts += _reported(kernel_feedback_lines(request.feedback), ctx, self.language)
        return "\n\n".join(p for p in parts if p)

    def planner(self, ctx: PromptContext) -> list[Message]:
        system = (
            f"{PLANNER_SYSTEM_PREFIX} of a kernel optimisation service. You read a KernelBench problem "
            "(a PyTorch `Model`), the current custom-kernel version, its measurements and the verifier's "
            "feedback, and write a short plan to make it faster: at most five numbered steps, each one "
            "concrete (which operations to fuse into one kernel, the tiling or block size, the memory "
            "access order, vectorisation, threads, fewer launches, which backend). Every arithmetic "
            "operation must run inside a custom kernel; outputs must stay correct within tolerance. If an "
            "earlier attempt failed, say how to avoid its failure. Do not write code."
        )
        variety = _planner_variety(ctx)
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": self._situation(ctx) + variety + "\n\nWrite the plan."},
        ]

    def coder(self, ctx: PromptContext, plan: str) -> list[Message]:
        return [
            {"role": "system", "content": KERNEL_CODER_SYSTEM},
            {
                "role": "user",
                "content": f"{self._situation(ctx)}\n\n## The plan\n{plan.strip() or '(no plan)'}\n\n"
                "Implement the plan. Reply with a one-sentence summary, then the complete module (imports, "
                "kernels, `class ModelNew`) in a ```python block." + _coder_variety(ctx),
            },
        ]

    def repair(self, ctx: PromptContext, plan: str, previous_reply: str, problem: str) -> list[Message]:
        return _repair(self.coder(ctx, plan), previous_reply, problem, "module", "module", self.language)


#: the candidate contract, as the kernel verifier enforces it (static, compile and correctness stages)
KERNEL_CODER_SYSTEM = f"""{CODER_SYSTEM_PREFIX} of a kernel optimisation service. You write a Python \
module that makes a KernelBench problem faster with custom kernels, following a plan.

The candidate contract (checked by the verifier; anything else is rejected):
- The module defines `class ModelNew(nn.Module)` with the same constructor arguments and forward() \
signature as `Model`. Create parameters (nn.Linear, nn.Parameter, ...) in the same order as `Model` so \
they get the same initial values, and use their tensors in your kernels. Do not import or subclass \
`Model`, and do not import the problem file.
- ALL arithmetic runs inside custom kernels, including bias adds, activations, scaling and reductions. \
torch is only for allocation and views: torch.empty/empty_like/zeros, .view, .reshape, .contiguous, \
.transpose, .permute, .expand, .unsqueeze, indexing, .clone, .copy_, .fill_.
- Backends (pick one):
  * Triton: `import triton`, `import triton.language as tl`, `@triton.jit` kernels launched as \
`kernel[grid](...)`.
  * CUDA: `from torch.utils.cpp_extension import load_inline` with `name=`, `cpp_sources=`, \
`cuda_sources=`, `functions=[...]` (KernelBench's convention), then call the module's function.
  * C on the CPU: `from evoforge.runtime import load_c`; `_lib = load_c(r\"\"\"...C source...\"\"\")` \
compiles once at import (gcc -O3 -march=native, OpenMP on; extra flags only via \
`flags=("-ffast-math",)`: -O*, -f*, -m*, -D*). Call `_lib.fn(out, x, n)`: a tensor is passed as a \
pointer to its first element (it must be a contiguous CPU tensor: call .contiguous() first), a \
Python int as int64_t, a float as double, a bool as int64_t 0/1; functions return void. A complete \
C candidate for a ReLU problem:
```python
import torch
import torch.nn as nn
from evoforge.runtime import load_c

_lib = load_c(r\"\"\"
#include <stdint.h>
void relu(float *out, const float *x, int64_t n) {{
    #pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}}
\"\"\")


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        _lib.relu(out, x, x.numel())
        return out
```
- Forbidden (the candidate is rejected, do not waste an attempt): torch compute outside your kernels \
(torch.add/mul/matmul/softmax/sum/exp/relu/linear/..., tensor methods such as x.sum() or x.exp(), \
torch.nn.functional, the @ operator) — a library fallback; try/except; threads, processes, \
asyncio, extra CUDA streams or events; timers (importing time or timeit); caching results between \
calls (module-level caches, writing self.* in forward(), functools caches, memoising by shape); \
modifying the inputs; computing the result in __init__; numpy; ctypes; exec/eval/open; patching \
attributes of other modules.
- Kernels must handle any input shape the problem may pass (use sizes from the tensors, guard the \
tails), and every kernel must actually run during forward().

End your reply with the complete module in one ```python fenced block: the last fenced block of the \
reply is taken as the candidate."""


def kernel_feedback_lines(feedback: dict[str, Any]) -> list[str]:
    """The kernel cascade's feedback on the parent, as prompt lines."""
    lines: list[str] = []
    bench = feedback.get("benchmark") or {}
    if bench.get("unmeasured"):
        lines.append(f"- Speed: unmeasured ({bench['unmeasured']}).")
    elif bench.get("speedup") is not None:
        text = (
            f"- Speed: {_ms(bench.get('candidate_ms'))} vs torch eager {_ms(bench.get('reference_ms'))} "
            f"on {bench.get('device') or 'the CPU'}: speed-up {float(bench['speedup']):.2f}x"
        )
        if bench.get("flag"):
            text += f" (flagged {bench['flag']})"
        lines.append(text + ".")
    resources = feedback.get("kernel_resources") or {}
    kernels = list(resources.get("kernels") or [])
    if kernels:
        listed = "; ".join(
            f"{k.get('kernel')}: {k.get('registers')} registers, {k.get('spills')} spilled, "
            f"{k.get('shared_bytes')} B shared memory"
            for k in kernels[:8]
        )
        lines.append(
            f"- Resources from the ahead-of-time compile for {resources.get('arch') or 'the GPU'}: {listed}."
        )
        if any(int(k.get("spills") or 0) > 0 for k in kernels):
            lines.append("- Registers spill to local memory: use smaller blocks or fewer live values.")
    for failure in feedback.get("recent_failures", [])[:3]:
        what = clip(str(failure.get("reason", "")), DETAIL_LIMIT)
        note = str(failure.get("note") or "")[:120]
        stage = failure.get("stage")
        if stage == "correctness":
            lines.append(
                f"- An earlier attempt ({note}) computed wrong results (rejected at correctness): {what}"
            )
        else:
            lines.append(f"- An earlier attempt ({note}) was rejected at {stage}: {what}")
    return lines


def _ms(value: Any) -> str:
    return f"{float(value):.4g} ms" if _number(value) else "? ms"


def _shapes(described: Any) -> str:
    out = []
    for item in described or []:
        if isinstance(item, dict) and item.get("shape") is not None:
            dtype = str(item.get("dtype") or "").replace("torch.", "")
            out.append(f"{tuple(item['shape'])} {dtype}".strip())
        elif isinstance(item, dict):
            out.append(str(item.get("type") or "value"))
    return ", ".join(out)


def _patterns(summary: dict[str, Any] | None) -> str:
    names = []
    for pattern in (summary or {}).get("patterns") or []:
        if isinstance(pattern, dict) and pattern.get("kind"):
            op = pattern.get("op")
            names.append(f"{pattern['kind']} ({op})" if op else str(pattern["kind"]))
    return ", ".join(names)


PROMPTS: dict[TargetKind, PromptBuilder] = {TargetKind.RTL: RtlPrompts(), TargetKind.KERNEL: KernelPrompts()}


def knowledge_query(request: ProposalRequest) -> str:
    """What to look up in the knowledge base for a request: the parent's hot spots and the target."""
    words = [request.target.name]
    if request.target.kind is TargetKind.KERNEL:
        for pattern in (request.target.kernel_summary or {}).get("patterns") or []:
            if isinstance(pattern, dict):
                words += [str(pattern[k]) for k in ("kind", "op") if pattern.get(k)]
        backend = request.feedback.get("backend")
        words += ["kernel", str(backend)] if backend else ["kernel"]
        if any(
            int(k.get("spills") or 0)
            for k in (request.feedback.get("kernel_resources") or {}).get("kernels") or []
        ):
            words.append("register spills")
        return " ".join([*words, clip(request.parent_source, 2000)])
    words += [str(s) for s in (request.feedback.get("critical_path") or [])[:8]]
    cells = request.feedback.get("cells_by_type")
    if isinstance(cells, dict):
        words += list(cells)[:8]
    return " ".join([*words, clip(request.parent_source, 2000)])
