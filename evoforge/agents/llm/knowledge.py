"""The LLM agents' use of the knowledge base: retrieval for prompts, learned entries from wins.

``retriever`` turns a :class:`~evoforge.kb.KnowledgeBase` into the ``retrieve(query, k)`` callable the
proposer takes; ``learn`` turns an accepted LLM improvement into a learned entry (plan, diff excerpt,
metrics) that later prompts retrieve like a built-in rule.
"""

from __future__ import annotations

from evoforge.agents.llm.proposer import Retrieve
from evoforge.domain import Metrics, TargetKind
from evoforge.kb import KnowledgeBase, make_learned


def retriever(kb: KnowledgeBase, kind: TargetKind) -> Retrieve:
    def retrieve(query: str, k: int) -> list[str]:
        return [entry.as_prompt() for entry in kb.search(query, domain=kind.value, k=k)]

    return retrieve


def learn(
    kb: KnowledgeBase,
    *,
    kind: TargetKind,
    target: str,
    origin: str,
    plan: str,
    before: str,
    after: str,
    parent_metrics: Metrics,
    metrics: Metrics,
    gain: dict[str, float],
    assurance: str | None = None,
    job_id: int | None = None,
    candidate_id: int | None = None,
) -> bool:
    """Keep an LLM's verified improvement as a learned entry; False if it was known already."""
    entry = make_learned(
        domain="kernel" if kind is TargetKind.KERNEL else "rtl",
        target=target,
        before=before,
        after=after,
        origin=origin,
        note=plan,
        baseline={k: float(v) for k, v in parent_metrics.to_dict().items()},
        metrics={k: float(v) for k, v in metrics.to_dict().items()},
        improvement=gain,
        assurance=assurance,
        job_id=job_id,
        candidate_id=candidate_id,
    )
    return kb.add_learned(entry)
