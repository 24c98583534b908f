"""The planner/coder graph, declared once in ``build_graph()``.

    START → plan ─(ok)→ code ─(a block)→ check ─(new, ok)──────────────────────→ END (a draft)
              │          │                  ├(met before: no check)───────────→ END (a repeat)
              │          │                  └(failed for a new reason, repairs left)→ code
              │          └(no block: one repair at most)→ code
              └(error)→ END    └(error, or no block again)→ END

The state is a ``TypedDict``; nodes return partial updates; routers return ``Literal`` names. The
LLM client, the quick checker (the cheap verifier stages: parse/lint/interface, or static/compile),
the draft memory (``claim``: a draft met before is handed over unchecked) and the repair gate (is
this failure new for this parent?) are injected, so this module imports no verifier. A plan given in
the input state is used as is (the proposer reuses plans). Every LLM attempt is appended to
``calls``. A draft that still fails the quick check when no repair is due is handed over anyway: the
search loop records it as rejected at that stage, which a person can then see.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypedDict

from evoforge.agents.base import DraftMemory, LlmCallRecord
from evoforge.agents.llm.client import ChatClient
from evoforge.agents.llm.extract import extract_code
from evoforge.agents.llm.prompts import PromptBuilder, PromptContext
from evoforge.domain import StageResult

log = logging.getLogger(__name__)

#: the quick check: the cheap verifier stages on a draft; returns the last stage run (failed or ok)
Checker = Callable[[str], StageResult]
#: (the draft's context, the failure as sent back) → whether to ask for a repair (False: already sent)
RepairGate = Callable[[PromptContext, str], bool]
#: repairs of a reply that has no code at all
NO_CODE_REPAIRS = 1

NO_CODE = "the reply has no fenced code block"


class DraftState(TypedDict, total=False):
    context: PromptContext  # input
    temperature: float | None  # input: this request's temperature (None: the configured one)
    plan: str  # input when reused, else the planner's reply
    reply: str  # the coder's latest reply
    draft: str | None  # the code of the latest reply
    check: StageResult | None  # the quick check of ``draft``
    repeat: bool  # ``draft`` was met before: handed over without a check
    repair: bool  # the failed check is new for this parent: ask for a repair
    repairs: int  # coder calls after the first
    no_code: int  # replies without code so far
    error: str | None  # the endpoint failed; no draft
    calls: Annotated[list[LlmCallRecord], operator.add]


def build_graph(
    llm: ChatClient,
    checker: Checker,
    prompts: PromptBuilder,
    *,
    max_repairs: int = 2,
    memory: DraftMemory | None = None,
    repair_gate: RepairGate | None = None,
) -> Any:
    """The compiled graph: ``invoke({"context": PromptContext(...)})`` returns the final ``DraftState``."""
    from langgraph.graph import END, START, StateGraph

    def plan(state: DraftState) -> DraftState:
        if state.get("plan") is not None:  # reused: parent and feedback unchanged
            return {"error": None, "repairs": 0, "no_code": 0}
        reply = llm.chat(
            prompts.planner(state["context"]), role="planner", temperature=state.get("temperature")
        )
        return {
            "plan": reply.text or "",
            "error": reply.error,
            "calls": list(reply.attempts),
            "repairs": 0,
            "no_code": 0,
        }

    def code(state: DraftState) -> DraftState:
        ctx, plan_text = state["context"], state.get("plan", "")
        previous = state.get("reply")
        temperature = state.get("temperature")
        if previous is None:
            reply = llm.chat(prompts.coder(ctx, plan_text), role="coder", temperature=temperature)
            repairs = 0
        else:
            messages = prompts.repair(ctx, plan_text, previous, _problem(state))
            reply = llm.chat(messages, role="repair", temperature=temperature)
            repairs = state.get("repairs", 0) + 1
        draft = extract_code(reply.text, prompts.kind) if reply.ok else None
        no_code = state.get("no_code", 0) + (1 if reply.ok and draft is None else 0)
        return {
            "reply": reply.text or "",
            "draft": draft,
            "check": None,
            "repeat": False,
            "repair": False,
            "error": reply.error,
            "repairs": repairs,
            "no_code": no_code,
            "calls": list(reply.attempts),
        }

    def check(state: DraftState) -> DraftState:
        draft = state.get("draft")
        assert draft is not None
        if memory is not None and not memory.claim(draft):
            return {"repeat": True, "check": None, "repair": False}
        try:
            result = checker(draft)
        except Exception as exc:  # the checker is injected; its failure must not lose the draft
            log.exception("the quick check crashed")
            detail = f"{type(exc).__name__}: {exc}"
            return {"check": StageResult("check", False, 0.0, detail=detail, error=True), "repair": False}
        repair = False
        if not result.ok and not result.error and state.get("repairs", 0) < max_repairs:
            reason = f"{result.name}: {' '.join(result.detail.split())}"
            repair = repair_gate(state["context"], reason) if repair_gate is not None else True
        return {"check": result, "repair": repair}

    def after_plan(state: DraftState) -> Literal["code", "end"]:
        return "end" if state.get("error") else "code"

    def after_code(state: DraftState) -> Literal["check", "code", "end"]:
        if state.get("error"):
            return "end"
        if state.get("draft") is None:
            again = state.get("no_code", 0) <= NO_CODE_REPAIRS and state.get("repairs", 0) < max_repairs
            return "code" if again else "end"
        return "check"

    def after_check(state: DraftState) -> Literal["code", "end"]:
        return "code" if state.get("repair") else "end"

    graph = StateGraph(DraftState)
    graph.add_node("plan", plan)
    graph.add_node("code", code)
    graph.add_node("check", check)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", after_plan, {"code": "code", "end": END})
    graph.add_conditional_edges("code", after_code, {"check": "check", "code": "code", "end": END})
    graph.add_conditional_edges("check", after_check, {"code": "code", "end": END})
    return graph.compile()


def _problem(state: DraftState) -> str:
    result = state.get("check")
    if state.get("draft") is None:
        return NO_CODE + "; end the reply with the complete design in one fenced block"
    if result is not None and not result.ok:
        return f"it fails the {result.name} check: {result.detail}"
    return "it could not be checked"


def run_graph(
    graph: Any,
    context: PromptContext,
    *,
    plan: str | None = None,
    temperature: float | None = None,
    recursion_limit: int = 50,
) -> DraftState:
    """Invoke ``graph`` on ``context`` (with a reused ``plan``, if any); the final state."""
    start: DraftState = {"context": context, "calls": [], "temperature": temperature}
    if plan is not None:
        start["plan"] = plan
    final: DraftState = graph.invoke(start, config={"recursion_limit": recursion_limit})
    return final
