"""The planner, coder and repair prompts, per domain (RTL now; kernels in a simpler form).

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


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


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
        clock = f"clock {rtl.clock}" if rtl.clock else "combinational (no clock)"
        reset = f", reset {rtl.reset} ({'active low' if rtl.reset_active_low else 'active high'})"
        return (
            f"Top module `{rtl.top}` with ports: {ports}; {clock}{reset if rtl.reset else ''}. "
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
        feedback = _feedback_lines(request.feedback)
        if feedback:
            parts.append("## What the verifier reported\n" + "\n".join(feedback))
        inspirations = _inspirations(request.inspirations, self.language)
        if inspirations:
            parts.append("## Other verified versions (for ideas)\n" + "\n\n".join(inspirations))
        if ctx.knowledge:
            parts.append(
                "## Known optimisation techniques\n" + "\n".join(f"- {clip(k, 1500)}" for k in ctx.knowledge)
            )
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
        variety = (
            f"\n\nThis is plan {ctx.index + 1} of {ctx.count}: prefer a different idea from the obvious one."
            if ctx.count > 1 and ctx.index > 0
            else ""
        )
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
                "summary, then the complete design in a ```verilog block.",
            },
        ]

    def repair(self, ctx: PromptContext, plan: str, previous_reply: str, problem: str) -> list[Message]:
        return [
            *self.coder(ctx, plan),
            {"role": "assistant", "content": previous_reply},
            {
                "role": "user",
                "content": f"That rewrite cannot be used: {clip(problem, DETAIL_LIMIT)}\n\nFix it and reply "
                "with the complete corrected design in a ```verilog block.",
            },
        ]


class KernelPrompts(RtlPrompts):
    """Prompts for GPU kernels (the kernel verifier is a later issue; these stay simple)."""

    kind = TargetKind.KERNEL
    language = "python"

    def _interface(self, ctx: PromptContext) -> str:
        return (
            "Keep the module's class name, constructor and forward() signature; results must match the "
            "original within tolerance for every input shape the problem defines."
        )

    def _situation(self, ctx: PromptContext) -> str:
        return super()._situation(ctx).replace("```verilog", f"```{self.language}")

    def planner(self, ctx: PromptContext) -> list[Message]:
        messages = super().planner(ctx)
        messages[0]["content"] = (
            f"{PLANNER_SYSTEM_PREFIX} of a GPU kernel optimisation service. Write a short plan (at most "
            "five numbered steps) to make the kernel faster: fusion, tiling, memory coalescing, fewer "
            "launches. Results must stay correct within tolerance. Do not write code."
        )
        return messages

    def coder(self, ctx: PromptContext, plan: str) -> list[Message]:
        messages = super().coder(ctx, plan)
        messages[0]["content"] = (
            f"{CODER_SYSTEM_PREFIX} of a GPU kernel optimisation service. Rewrite the problem's model with "
            "a faster custom kernel (Triton or CUDA through torch) following the plan. The verifier times "
            "the kernel: do not time, cache results or special-case inputs. End your reply with the "
            "complete module in one ```python fenced block."
        )
        messages[1]["content"] = messages[1]["content"].replace("```verilog", "```python")
        return messages

    def repair(self, ctx: PromptContext, plan: str, previous_reply: str, problem: str) -> list[Message]:
        messages = super().repair(ctx, plan, previous_reply, problem)
        messages[-1]["content"] = messages[-1]["content"].replace("```verilog", "```python")
        return messages


PROMPTS: dict[TargetKind, PromptBuilder] = {TargetKind.RTL: RtlPrompts(), TargetKind.KERNEL: KernelPrompts()}


def knowledge_query(request: ProposalRequest) -> str:
    """What to look up in the knowledge base for a request: the parent's hot spots and the target."""
    words = [request.target.name]
    words += [str(s) for s in (request.feedback.get("critical_path") or [])[:8]]
    cells = request.feedback.get("cells_by_type")
    if isinstance(cells, dict):
        words += list(cells)[:8]
    return " ".join([*words, clip(request.parent_source, 2000)])
