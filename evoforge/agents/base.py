"""The proposer interface every agent implements, and the registry of proposers by name.

A proposer takes a :class:`ProposalRequest` (the target, a parent source with its metrics and the
verifier's feedback) and returns :class:`Proposal` drafts; the search loop verifies them. Proposers
never verify anything themselves (agents may use domain, kb and tools only).

Proposers never write to the store either. A proposal carries the LLM calls that produced it
(``Proposal.calls``), which the loop stores linked to the new candidate; calls that produced no
proposal (no code in the reply, an endpoint error) are handed over by ``drain_calls()`` of a proposer
that implements :class:`CallSource`, and stored linked to the job only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from evoforge import domain
from evoforge.domain import StageResult
from evoforge.errors import ConfigError


@dataclass(frozen=True)
class Inspiration:
    """Another strong member of the population, shown to an LLM as an example."""

    source: str
    metrics: domain.Metrics
    note: str = ""


@dataclass(frozen=True)
class LlmCallRecord:
    """One request to a model endpoint (one attempt: a retried request is several records)."""

    role: str  # "planner", "coder", "repair"
    model: str
    prompt: str  # the messages, rendered "[role]\ntext" one after the other
    reply: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    stored_id: int | None = None  # its row in the store, when written as it completed


@dataclass(frozen=True)
class ProposalRequest:
    target: domain.Target
    parent_source: str
    parent_metrics: domain.Metrics
    feedback: dict[str, Any] = field(default_factory=dict)  # "critical_path": [signal names], …
    count: int = 4
    seed: int = 0
    inspirations: tuple[Inspiration, ...] = ()


@dataclass(frozen=True)
class Proposal:
    source: str
    origin: str  # "offline:resource_sharing", "llm:<model>", …
    note: str  # one sentence: what was rewritten, where
    rule: str
    touched: tuple[str, ...] = ()  # signal / always-block names the rewrite changed
    calls: tuple[LlmCallRecord, ...] = ()  # the LLM calls that produced this draft
    repeat: bool = False  # met before (``DraftMemory.claim`` said so): handed over unchecked
    check: StageResult | None = None  # the quick check the draft got, when one ran
    repairs: int = 0  # repair requests spent on it


class Proposer(Protocol):
    name: str

    def propose(self, request: ProposalRequest) -> list[Proposal]: ...


class DraftMemory(Protocol):
    """Drafts met before in this job or an earlier one (the search room implements it)."""

    def claim(self, source: str) -> bool:
        """True the first time this draft — or a renaming of it — is met; False for a repeat."""
        ...


@runtime_checkable
class Budgeted(Protocol):
    """A proposer with a budget of its own (LLM tokens or requests): the loop stops when it is spent."""

    def exhausted(self) -> str | None:
        """Why no more proposals can come (budget spent, endpoint failing), or None."""
        ...


@runtime_checkable
class CallSource(Protocol):
    """A proposer whose LLM calls did not all end in a proposal; the loop stores those too."""

    def drain_calls(self) -> list[LlmCallRecord]:
        """The calls made since the last drain that no returned proposal carries (then forgotten)."""
        ...


class OfflineProposer:
    """The offline proposer of the request's target kind: RTL rewrite rules or kernel templates."""

    name = "offline"

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._by_kind: dict[domain.TargetKind, Proposer] = {}

    def _for(self, kind: domain.TargetKind) -> Proposer:
        if kind not in self._by_kind:
            # imported here: the proposer packages import this module for the request/proposal types
            if kind is domain.TargetKind.KERNEL:
                from evoforge.agents.kernel_templates import OfflineKernelProposer

                self._by_kind[kind] = OfflineKernelProposer(**self._options)
            else:
                from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer

                self._by_kind[kind] = OfflineRtlProposer(**self._options)
        return self._by_kind[kind]

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        return self._for(request.target.kind).propose(request)

    def explain(self, target: domain.Target, source: str) -> list[dict[str, Any]]:
        """Per offline rule: whether it applies to ``source``, or why not (empty for kernel targets)."""
        proposer = self._for(target.kind)
        explain = getattr(proposer, "explain", None)
        return [o.to_dict() for o in explain(source)] if callable(explain) else []


def _offline(**options: Any) -> Proposer:
    """Options: ``knowledge`` (the knowledge base)."""
    return OfflineProposer(**options)


def _llm(**options: Any) -> Proposer:
    """Options: ``client`` (LlmClient), ``checker`` (the quick check), ``retrieve``, ``max_repairs``,
    ``memory`` (a ``DraftMemory``: repeats skip the quick check)."""
    from evoforge.agents.llm.proposer import LlmProposer

    return LlmProposer(**options)


def _mixed(**options: Any) -> Proposer:
    """The ``llm`` options; the offline half uses every offline rule."""
    from evoforge.agents.llm.proposer import LlmProposer, MixedProposer

    return MixedProposer(LlmProposer(**options), _offline())


#: proposer factories by name; options are passed to the factory
PROPOSERS: dict[str, Callable[..., Proposer]] = {
    "offline": _offline,
    "llm": _llm,
    "mixed": _mixed,
}


def get_proposer(name: str, **options: Any) -> Proposer:
    """The proposer registered as ``name``; unknown names raise ``ConfigError`` listing the valid ones."""
    factory = PROPOSERS.get(name)
    if factory is None:
        valid = ", ".join(sorted(PROPOSERS))
        raise ConfigError(f"unknown proposer {name!r}; valid proposers: {valid}", hint=f"use one of: {valid}")
    return factory(**options)
