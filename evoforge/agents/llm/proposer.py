"""``LlmProposer`` (the planner/coder graph behind the ``Proposer`` interface) and ``MixedProposer``.

``LlmProposer.propose`` runs the graph once per requested draft (concurrently, within the client's
request cap) and returns the drafts that have code, each carrying the LLM calls that produced it.
Calls that produced no draft — no code in the reply, an endpoint error, a draft equal to its parent —
are kept until the search loop collects them with ``drain_calls()`` (it stores them against the job).
Once the job's token budget is spent it proposes nothing.

``MixedProposer`` interleaves LLM drafts with an offline proposer's: LLM first, about half each,
offline filling in whatever the LLM did not deliver.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from evoforge.agents.base import LlmCallRecord, Proposal, ProposalRequest, Proposer
from evoforge.agents.llm.client import LlmClient
from evoforge.agents.llm.graph import Checker, DraftState, build_graph, run_graph
from evoforge.agents.llm.prompts import PROMPTS, PromptContext, knowledge_query
from evoforge.domain import normalise_source

log = logging.getLogger(__name__)

#: knowledge retrieval: (query, k) → entries as text
Retrieve = Callable[[str, int], Sequence[str]]


def _first_sentence(plan: str, limit: int = 240) -> str:
    lines = [ln.strip(" -*#\t") for ln in plan.splitlines() if ln.strip(" -*#\t")]
    text = " ".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LlmProposer:
    name = "llm"

    def __init__(
        self,
        client: LlmClient,
        checker: Checker,
        *,
        retrieve: Retrieve | None = None,
        max_repairs: int = 2,
        knowledge_k: int = 3,
    ) -> None:
        self.client = client
        self.checker = checker
        self.retrieve = retrieve
        self.knowledge_k = knowledge_k
        self.max_repairs = max_repairs
        self._graphs: dict[Any, Any] = {}
        self._orphans: list[LlmCallRecord] = []
        self._lock = threading.Lock()

    def _graph(self, kind: Any) -> Any:
        if kind not in self._graphs:
            self._graphs[kind] = build_graph(
                self.client, self.checker, PROMPTS[kind], max_repairs=self.max_repairs
            )
        return self._graphs[kind]

    def drain_calls(self) -> list[LlmCallRecord]:
        with self._lock:
            calls, self._orphans = self._orphans, []
        return calls

    def _knowledge(self, request: ProposalRequest) -> tuple[str, ...]:
        if self.retrieve is None:
            return ()
        try:
            return tuple(self.retrieve(knowledge_query(request), self.knowledge_k))
        except Exception:  # retrieval is a help, never a reason to lose a round
            log.exception("knowledge retrieval failed; prompting without it")
            return ()

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        if request.count <= 0 or request.target.kind not in PROMPTS:
            return []
        if self.client.budget_spent:
            log.info("the LLM token budget is spent (%d tokens): no LLM proposals", self.client.tokens_spent)
            return []
        graph = self._graph(request.target.kind)
        knowledge = self._knowledge(request)
        contexts = [PromptContext(request, knowledge, i, request.count) for i in range(request.count)]
        workers = max(1, min(len(contexts), self.client.settings.max_concurrency))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-draft") as pool:
            states = list(pool.map(lambda ctx: self._run(graph, ctx), contexts))
        parent = normalise_source(request.parent_source, request.target.kind)
        proposals: list[Proposal] = []
        seen = {parent}
        for state in states:
            calls = tuple(state.get("calls", []))
            draft = state.get("draft")
            key = normalise_source(draft, request.target.kind) if draft else ""
            if draft is None or key in seen:
                with self._lock:
                    self._orphans.extend(calls)
                continue
            seen.add(key)
            plan = state.get("plan", "")
            check = state.get("check")
            note = _first_sentence(plan) or "LLM rewrite"
            if check is not None and not check.ok:
                note = f"{note} (the quick {check.name} check still failed after repairs)"
            proposals.append(
                Proposal(
                    source=draft,
                    origin=f"llm:{self.client.model}",
                    note=note,
                    rule="",  # an LLM rewrite implements no named rule
                    calls=calls,
                )
            )
        log.debug("llm proposer: %d of %d drafts usable", len(proposals), len(states))
        return proposals

    def _run(self, graph: Any, context: PromptContext) -> DraftState:
        try:
            return run_graph(graph, context)
        except Exception as exc:  # a bug in a node must not take the search down
            log.exception("the agent graph failed")
            return {"calls": [], "error": f"{type(exc).__name__}: {exc}"}


class MixedProposer:
    """LLM and offline drafts interleaved (LLM first); offline fills what the LLM does not deliver."""

    name = "mixed"

    def __init__(self, llm: LlmProposer, offline: Proposer) -> None:
        self.llm = llm
        self.offline = offline

    def explain(self, target: Any, source: str) -> list[dict[str, Any]]:
        """The offline half's per-rule outcomes on ``source`` (see ``OfflineProposer.explain``)."""
        explain = getattr(self.offline, "explain", None)
        return explain(target, source) if callable(explain) else []

    def drain_calls(self) -> list[LlmCallRecord]:
        return self.llm.drain_calls()

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        if request.count <= 0:
            return []
        from_llm = self.llm.propose(replace(request, count=-(-request.count // 2)))
        from_offline = self.offline.propose(replace(request, count=max(0, request.count - len(from_llm))))
        mixed: list[Proposal] = []
        for i in range(max(len(from_llm), len(from_offline))):
            mixed += from_llm[i : i + 1] + from_offline[i : i + 1]
        return mixed
