"""The planner/coder graph, declared once in ``build_graph()``.

    START → plan ─(ok)→ code ─(a block)→ check ─(ok)──────────────→ END  (hand the draft to the loop)
              │          │  └(no block, repairs left)→ code          │
              └(error)→ END └(error, or no block and none left)→ END └(failed, repairs left)→ code

The state is a ``TypedDict``; nodes return partial updates; routers return ``Literal`` names. The
LLM client and the quick checker (the cheap verifier stages: parse/lint/interface, or compile) are
injected, so this module imports no verifier. Every LLM attempt is appended to ``calls``. A draft that
still fails the quick check when the repairs are used up is handed over anyway: the search loop
records it as rejected at that stage, which a person can then see.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypedDict

from evoforge.agents.base import LlmCallRecord
from evoforge.agents.llm.client import ChatClient
from evoforge.agents.llm.extract import extract_code
from evoforge.agents.llm.prompts import PromptBuilder, PromptContext
from evoforge.domain import StageResult

log = logging.getLogger(__name__)

#: the quick check: the cheap verifier stages on a draft; returns the last stage run (failed or ok)
Checker = Callable[[str], StageResult]

NO_CODE = "the reply has no fenced code block"


class DraftState(TypedDict, total=False):
    context: PromptContext  # input
    plan: str
    reply: str  # the coder's latest reply
    draft: str | None  # the code of the latest reply
    check: StageResult | None  # the quick check of ``draft``
    repairs: int  # coder calls after the first
    error: str | None  # the endpoint failed; no draft
    calls: Annotated[list[LlmCallRecord], operator.add]


def build_graph(llm: ChatClient, checker: Checker, prompts: PromptBuilder, *, max_repairs: int = 2) -> Any:
    """The compiled graph: ``invoke({"context": PromptContext(...)})`` returns the final ``DraftState``."""
    from langgraph.graph import END, START, StateGraph

    def plan(state: DraftState) -> DraftState:
        reply = llm.chat(prompts.planner(state["context"]), role="planner")
        return {"plan": reply.text or "", "error": reply.error, "calls": list(reply.attempts), "repairs": 0}

    def code(state: DraftState) -> DraftState:
        ctx, plan_text = state["context"], state.get("plan", "")
        previous = state.get("reply")
        if previous is None:
            reply = llm.chat(prompts.coder(ctx, plan_text), role="coder")
            repairs = 0
        else:
            reply = llm.chat(prompts.repair(ctx, plan_text, previous, _problem(state)), role="repair")
            repairs = state.get("repairs", 0) + 1
        draft = extract_code(reply.text, prompts.kind) if reply.ok else None
        return {
            "reply": reply.text or "",
            "draft": draft,
            "check": None,
            "error": reply.error,
            "repairs": repairs,
            "calls": list(reply.attempts),
        }

    def check(state: DraftState) -> DraftState:
        draft = state.get("draft")
        assert draft is not None
        try:
            return {"check": checker(draft)}
        except Exception as exc:  # the checker is injected; its failure must not lose the draft
            log.exception("the quick check crashed")
            return {
                "check": StageResult("check", False, 0.0, detail=f"{type(exc).__name__}: {exc}", error=True)
            }

    def after_plan(state: DraftState) -> Literal["code", "end"]:
        return "end" if state.get("error") else "code"

    def after_code(state: DraftState) -> Literal["check", "code", "end"]:
        if state.get("error"):
            return "end"
        if state.get("draft") is None:
            return "code" if state.get("repairs", 0) < max_repairs else "end"
        return "check"

    def after_check(state: DraftState) -> Literal["code", "end"]:
        result = state.get("check")
        if result is None or result.ok or result.error:  # a checker failure is not the coder's fault
            return "end"
        return "code" if state.get("repairs", 0) < max_repairs else "end"

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


def run_graph(graph: Any, context: PromptContext, *, recursion_limit: int = 50) -> DraftState:
    """Invoke ``graph`` on ``context``; the final state (``calls`` always present)."""
    final: DraftState = graph.invoke(
        {"context": context, "calls": []}, config={"recursion_limit": recursion_limit}
    )
    return final
