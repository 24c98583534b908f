"""``LlmProposer`` (the planner/coder graph behind the ``Proposer`` interface) and ``MixedProposer``.

``LlmProposer.propose`` runs the graph once per requested draft (concurrently, within the client's
request cap) and returns the drafts that have code, each carrying the LLM calls that produced it.
Calls that produced no draft — no code in the reply, an endpoint error — are kept until the search
loop collects them with ``drain_calls()`` (it stores them against the job).

It spends requests on new ideas, not on repeats (it lives as long as the job):

- a plan is reused while the parent, its feedback and the request's variant are unchanged (one
  planner request serves every draft of the parent), and is handed to the first draft's calls;
- a draft met before (``DraftMemory.claim``) is handed over unchecked, marked ``repeat``;
- a repair is asked for only when the quick check failed for a reason not yet sent back for the same
  parent, and a reply without code gets one repair at most (``graph.py``);
- when a parent's drafts repeat, its next request changes: the temperature rises (up to
  ``MAX_TEMPERATURE``), other inspirations and other knowledge-base entries are shown, and every
  second time the planner is asked for an approach not yet tried, the tried ones listed.

``exhausted()`` says why no more proposals can come (token or request budget spent, the endpoint
failing request after request); the loop stops on it.

``MixedProposer`` interleaves LLM drafts with an offline proposer's: LLM first, about half each,
offline filling in whatever the LLM did not deliver.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from evoforge.agents.base import DraftMemory, LlmCallRecord, Proposal, ProposalRequest, Proposer
from evoforge.agents.llm.client import LlmClient
from evoforge.agents.llm.graph import Checker, DraftState, build_graph, run_graph
from evoforge.agents.llm.prompts import PROMPTS, PromptContext, knowledge_query
from evoforge.domain import source_hash

log = logging.getLogger(__name__)

#: knowledge retrieval: (query, k) → entries as text
Retrieve = Callable[[str, int], Sequence[str]]
#: temperature added per repeat of a parent's drafts, and the most it is raised to
TEMPERATURE_STEP = 0.2
MAX_TEMPERATURE = 1.2
#: a new plan (an approach not yet tried) every this many variants
VARIANTS_PER_PLAN = 2


def _first_sentence(plan: str, limit: int = 240) -> str:
    lines = [ln.strip(" -*#\t") for ln in plan.splitlines() if ln.strip(" -*#\t")]
    text = " ".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Parent:
    """What the proposer remembers of one parent across requests."""

    variant: int = 0  # how often its drafts repeated
    tried: list[str] | None = None  # plans used on it (first sentences)
    sent: set[str] | None = None  # failures already sent back for repair


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
        memory: DraftMemory | None = None,
    ) -> None:
        self.client = client
        self.checker = checker
        self.retrieve = retrieve
        self.knowledge_k = knowledge_k
        self.max_repairs = max_repairs
        self.memory = memory
        self._graphs: dict[Any, Any] = {}
        self._orphans: list[LlmCallRecord] = []
        self._lock = threading.Lock()
        self._plans: dict[tuple[str, str, int], str] = {}
        self._plan_locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._parents: dict[str, _Parent] = {}
        self.plans_reused = 0

    def _graph(self, kind: Any) -> Any:
        if kind not in self._graphs:
            self._graphs[kind] = build_graph(
                self.client,
                self.checker,
                PROMPTS[kind],
                max_repairs=self.max_repairs,
                memory=self.memory,
                repair_gate=self._repair_gate,
            )
        return self._graphs[kind]

    def drain_calls(self) -> list[LlmCallRecord]:
        with self._lock:
            calls, self._orphans = self._orphans, []
        return calls

    def exhausted(self) -> str | None:
        return self.client.exhausted()

    # -- memory per parent -----------------------------------------------------------------------

    def _parent(self, request: ProposalRequest) -> tuple[str, _Parent]:
        key = source_hash(request.parent_source, request.target.kind)
        with self._lock:
            return key, self._parents.setdefault(key, _Parent(tried=[], sent=set()))

    def _repair_gate(self, ctx: PromptContext, reason: str) -> bool:
        """True (and remembered) when ``reason`` was not yet sent back for this parent."""
        _, parent = self._parent(ctx.request)
        with self._lock:
            assert parent.sent is not None
            if reason in parent.sent:
                return False
            parent.sent.add(reason)
            return True

    # -- one request -----------------------------------------------------------------------------

    def _knowledge(self, request: ProposalRequest, variant: int) -> tuple[str, ...]:
        """Retrieved entries; after repeats, the next ones down the ranking (wrapping around)."""
        if self.retrieve is None:
            return ()
        try:
            ranked = list(self.retrieve(knowledge_query(request), self.knowledge_k * (1 + variant)))
        except Exception:  # retrieval is a help, never a reason to lose a round
            log.exception("knowledge retrieval failed; prompting without it")
            return ()
        if not ranked:
            return ()
        start = (variant * self.knowledge_k) % len(ranked)
        rotated = ranked[start:] + ranked[:start]
        return tuple(rotated[: self.knowledge_k])

    def _temperature(self, variant: int) -> float | None:
        if variant == 0:
            return None
        base = self.client.settings.temperature
        return min(max(base, MAX_TEMPERATURE), base + TEMPERATURE_STEP * variant)

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        if request.count <= 0 or request.target.kind not in PROMPTS:
            return []
        reason = self.exhausted()
        if reason:
            log.info("no LLM proposals: %s", reason)
            return []
        graph = self._graph(request.target.kind)
        parent_key, parent = self._parent(request)
        with self._lock:
            variant, tried = parent.variant, tuple(parent.tried or ())
        plan_round = variant // VARIANTS_PER_PLAN
        knowledge = self._knowledge(request, variant)
        contexts = [
            PromptContext(
                request,
                knowledge,
                i,
                request.count,
                variant=variant,
                tried=tried if plan_round else (),
            )
            for i in range(request.count)
        ]
        temperature = self._temperature(variant)
        plan, plan_calls = self._plan(contexts[0], parent_key, plan_round, temperature)
        if plan is None:  # the planner failed: nothing to code from
            with self._lock:
                self._orphans.extend(plan_calls)
            return []
        if plan_calls:  # a new plan: remembered as tried on this parent
            summary = _first_sentence(plan)
            with self._lock:
                if summary and parent.tried is not None and summary not in parent.tried:
                    parent.tried.append(summary)
        workers = max(1, min(len(contexts), self.client.concurrency))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-draft") as pool:
            states = list(pool.map(lambda ctx: self._run(graph, ctx, plan, temperature), contexts))
        proposals = self._proposals(states, plan, plan_calls)
        repeats = sum(1 for p in proposals if p.repeat)
        with self._lock:
            if repeats or not proposals:
                parent.variant += 1  # the next request for this parent asks differently
        log.debug(
            "llm proposer: %d draft(s) of %d requested, %d repeat(s), variant %d",
            len(proposals),
            len(states),
            repeats,
            variant,
        )
        return proposals

    def _plan(
        self, ctx: PromptContext, parent_key: str, plan_round: int, temperature: float | None
    ) -> tuple[str | None, list[LlmCallRecord]]:
        """The plan for this parent, feedback and round: reused when known, else one planner request."""
        feedback = json.dumps(ctx.request.feedback, sort_keys=True, default=str)
        key = (parent_key, hashlib.sha256(feedback.encode()).hexdigest(), plan_round)
        with self._lock:
            lock = self._plan_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                known = self._plans.get(key)
            if known is not None:
                self.plans_reused += 1
                return known, []
            prompts = PROMPTS[ctx.request.target.kind]
            reply = self.client.chat(prompts.planner(ctx), role="planner", temperature=temperature)
            calls = list(reply.attempts)
            if not reply.ok:
                return None, calls
            plan = reply.text or ""
            with self._lock:
                self._plans[key] = plan
            return plan, calls

    def _proposals(
        self, states: list[DraftState], plan: str, plan_calls: list[LlmCallRecord]
    ) -> list[Proposal]:
        proposals: list[Proposal] = []
        pending_plan = list(plan_calls)
        for state in states:
            calls = tuple(state.get("calls", []))
            draft = state.get("draft")
            if draft is None:
                with self._lock:
                    self._orphans.extend(calls)
                continue
            check = state.get("check")
            note = _first_sentence(plan) or "LLM rewrite"
            if check is not None and not check.ok:
                note = f"{note} (the quick {check.name} check still failed)"
            proposals.append(
                Proposal(
                    source=draft,
                    origin=f"llm:{self.client.model}",
                    note=note,
                    rule="",  # an LLM rewrite implements no named rule
                    calls=(*pending_plan, *calls),
                    repeat=bool(state.get("repeat")),
                    check=check,
                    repairs=int(state.get("repairs", 0)),
                )
            )
            pending_plan = []
        if pending_plan:
            with self._lock:
                self._orphans.extend(pending_plan)
        return proposals

    def _run(self, graph: Any, context: PromptContext, plan: str, temperature: float | None) -> DraftState:
        try:
            return run_graph(graph, context, plan=plan, temperature=temperature)
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

    def exhausted(self) -> str | None:
        """Never: the offline half keeps proposing (the loop's stale-round rule ends it)."""
        return None

    def llm_exhausted(self) -> str | None:
        return self.llm.exhausted()

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        if request.count <= 0:
            return []
        from_llm = self.llm.propose(replace(request, count=-(-request.count // 2)))
        from_offline = self.offline.propose(replace(request, count=max(0, request.count - len(from_llm))))
        mixed: list[Proposal] = []
        for i in range(max(len(from_llm), len(from_offline))):
            mixed += from_llm[i : i + 1] + from_offline[i : i + 1]
        return mixed
