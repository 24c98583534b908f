"""The planner/coder graph with a fake LLM and a fake quick check; the LLM and mixed proposers."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from evoforge.agents.base import CallSource, LlmCallRecord, Proposal, ProposalRequest
from evoforge.agents.llm.client import LlmReply, Message, render_messages
from evoforge.agents.llm.graph import build_graph, run_graph
from evoforge.agents.llm.prompts import PROMPTS, PromptContext
from evoforge.agents.llm.proposer import LlmProposer, MixedProposer
from evoforge.config import LlmSettings
from evoforge.domain import Metrics, SourceFile, StageResult, Target, TargetKind

GOOD = "module m(input a, output y); assign y = a; endmodule"
BROKEN = "module m(input a, output y); assign y = ; endmodule"
TARGET = Target(
    TargetKind.RTL, "m", (SourceFile("m.v", "module m(input a, output y); assign y = ~~a; endmodule"),)
)


def block(code: str) -> str:
    return f"Done.\n```verilog\n{code}\n```"


@dataclass
class FakeChat:
    """Replies in order per role ("planner" / "coder"+"repair"); None = an endpoint error."""

    planner: list[str | None] = field(default_factory=lambda: ["1. simplify"])
    coder: list[str | None] = field(default_factory=list)
    seen: list[tuple[str, list[Message]]] = field(default_factory=list)
    settings: LlmSettings = field(default_factory=lambda: LlmSettings(model="fake", max_concurrency=1))
    model: str = "fake"
    budget_spent: bool = False
    tokens_spent: int = 0
    concurrency: int = 1
    temperatures: list[float | None] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def exhausted(self) -> str | None:
        return "the LLM token budget is spent" if self.budget_spent else None

    def chat(self, messages: Sequence[Message], *, role: str, temperature: float | None = None) -> LlmReply:
        with self._lock:
            self.seen.append((role, list(messages)))
            self.temperatures.append(temperature)
            queue = self.planner if role == "planner" else self.coder
            text = queue.pop(0) if queue else "nothing"
        error = "HTTP 500: boom" if text is None else None
        record = LlmCallRecord(role, self.model, render_messages(messages), text, 10, 5, 0.01, error)
        return LlmReply(text, self.model, 10, 5, 0.01, error, (record,))


def checker(source: str) -> StageResult:
    ok = "= ;" not in source
    return StageResult("lint", ok, 0.0, detail="" if ok else "line 1: syntax error near ';'")


def context(count: int = 1) -> PromptContext:
    request = ProposalRequest(TARGET, TARGET.source, Metrics(area_um2=10.0), count=count)
    return PromptContext(request, ("share adders",), 0, count)


def test_plan_code_check_hands_over_a_clean_draft() -> None:
    llm = FakeChat(coder=[block(GOOD)])
    state = run_graph(build_graph(llm, checker, PROMPTS[TargetKind.RTL]), context())
    assert state["draft"] == GOOD + "\n" and state["check"] is not None and state["check"].ok
    assert [c.role for c in state["calls"]] == ["planner", "coder"]
    assert "1. simplify" in llm.seen[1][1][-1]["content"]  # the coder sees the plan


def test_a_failed_check_goes_back_to_the_coder_with_the_error() -> None:
    llm = FakeChat(coder=[block(BROKEN), block(GOOD)])
    state = run_graph(build_graph(llm, checker, PROMPTS[TargetKind.RTL], max_repairs=2), context())
    assert state["draft"] == GOOD + "\n" and state["repairs"] == 1
    role, messages = llm.seen[-1]
    assert role == "repair" and "syntax error near ';'" in messages[-1]["content"]
    assert messages[-2] == {"role": "assistant", "content": block(BROKEN)}


def test_repairs_are_bounded_and_the_last_draft_is_still_handed_over() -> None:
    llm = FakeChat(coder=[block(BROKEN)] * 5)
    state = run_graph(build_graph(llm, checker, PROMPTS[TargetKind.RTL], max_repairs=2), context())
    assert state["repairs"] == 2 and len(state["calls"]) == 4
    assert state["draft"] is not None and state["check"] is not None and not state["check"].ok


def test_no_code_asks_again_then_gives_up() -> None:
    llm = FakeChat(coder=["I would share the adder."] * 3)
    state = run_graph(build_graph(llm, checker, PROMPTS[TargetKind.RTL], max_repairs=1), context())
    assert state["draft"] is None and len(state["calls"]) == 3
    assert "no fenced code block" in llm.seen[-1][1][-1]["content"]


def test_an_endpoint_error_ends_the_graph_with_the_call_recorded() -> None:
    llm = FakeChat(planner=[None])
    state = run_graph(build_graph(llm, checker, PROMPTS[TargetKind.RTL]), context())
    assert state.get("draft") is None
    assert state["error"] == "HTTP 500: boom" and len(state["calls"]) == 1


def test_llm_proposer_returns_drafts_with_their_calls_and_keeps_the_rest() -> None:
    llm = FakeChat(planner=["1. a", "1. b", "1. c"], coder=[block(GOOD), "no code", "no code", "no code"])
    proposer = LlmProposer(llm, checker, retrieve=lambda q, k: ["share adders"], max_repairs=1)  # type: ignore[arg-type]
    proposals = proposer.propose(ProposalRequest(TARGET, TARGET.source, Metrics(), count=2))
    assert isinstance(proposer, CallSource)
    assert len(proposals) == 1 and proposals[0].origin == "llm:fake"
    assert [c.role for c in proposals[0].calls] == ["planner", "coder"]  # one plan serves both drafts
    orphans = proposer.drain_calls()
    assert [c.role for c in orphans] == ["coder", "repair"] and proposer.drain_calls() == []
    assert "share adders" in llm.seen[0][1][-1]["content"]  # retrieved knowledge reaches the prompt


def test_llm_proposer_proposes_nothing_once_the_budget_is_spent() -> None:
    llm = FakeChat(coder=[block(GOOD)], budget_spent=True)
    proposer = LlmProposer(llm, checker)  # type: ignore[arg-type]
    assert proposer.propose(ProposalRequest(TARGET, TARGET.source, Metrics(), count=2)) == []
    assert llm.seen == []


class Offline:
    name = "offline"

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        return [Proposal(f"// offline {i}\n{GOOD}", "offline:x", "x", "x") for i in range(request.count)]


def test_mixed_interleaves_llm_first_and_offline_fills_the_rest() -> None:
    llm = FakeChat(planner=["1. a", "1. b"], coder=[block(GOOD), "no code", "no code"])
    mixed = MixedProposer(LlmProposer(llm, checker, max_repairs=0), Offline())  # type: ignore[arg-type]
    proposals = mixed.propose(ProposalRequest(TARGET, TARGET.source, Metrics(), count=4))
    assert [p.origin for p in proposals] == ["llm:fake", "offline:x", "offline:x", "offline:x"]
    assert len(mixed.drain_calls()) == 1  # the coder request of the draft without code
