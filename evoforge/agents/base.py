"""The proposer interface every agent implements, and the registry of proposers by name.

A proposer takes a :class:`ProposalRequest` (the target, a parent source with its metrics and the
verifier's feedback) and returns :class:`Proposal` drafts; the search loop verifies them. Proposers
never verify anything themselves (agents may use domain, kb and tools only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from evoforge import domain
from evoforge.errors import ConfigError


@dataclass(frozen=True)
class ProposalRequest:
    target: domain.Target
    parent_source: str
    parent_metrics: domain.Metrics
    feedback: dict[str, Any] = field(default_factory=dict)  # "critical_path": [signal names], …
    count: int = 4
    seed: int = 0


@dataclass(frozen=True)
class Proposal:
    source: str
    origin: str  # "offline:resource_sharing", "llm:<model>", …
    note: str  # one sentence: what was rewritten, where
    rule: str
    touched: tuple[str, ...] = ()  # signal / always-block names the rewrite changed


class Proposer(Protocol):
    name: str

    def propose(self, request: ProposalRequest) -> list[Proposal]: ...


def _offline(**options: Any) -> Proposer:
    # imported here: the rule package imports this module for the request/proposal types
    from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer

    return OfflineRtlProposer(**options)


#: proposer factories by name; options are passed to the factory
PROPOSERS: dict[str, Callable[..., Proposer]] = {
    "offline": _offline,
}


def get_proposer(name: str, **options: Any) -> Proposer:
    """The proposer registered as ``name``; unknown names raise ``ConfigError`` listing the valid ones."""
    factory = PROPOSERS.get(name)
    if factory is None:
        valid = ", ".join(sorted(PROPOSERS))
        raise ConfigError(f"unknown proposer {name!r}; valid proposers: {valid}", hint=f"use one of: {valid}")
    return factory(**options)
