"""Writing drafts that cost no evaluation: duplicates of earlier candidates and quick-check rejections.

The search loop calls these (it stays the one writer of its job). A duplicate is a candidate row of
its own — its source as proposed, its parent, its LLM calls — with ``duplicate_of`` pointing at the
candidate it repeats and ``cache_hit`` saying by which hash (``source`` or ``canonical``); it takes
that candidate's verdict (stage rows marked cached), at once when known, else when that candidate
finishes (``link_duplicate``). A duplicate never becomes a parent or the job's best while its
original is in the same job: ``records.population`` leaves it out. A draft whose quick check failed
is recorded as rejected at that stage with the stored result (``cache_hit`` ``quick`` when the check
itself was not run for it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy.orm import Session

from evoforge.agents.base import Proposal
from evoforge.domain import Assurance, CandidateStatus, Metrics, StageResult, Verdict
from evoforge.errors import NotFoundError
from evoforge.search import records
from evoforge.search.population import Member
from evoforge.store import repository
from evoforge.store.models import Candidate


@dataclass(frozen=True)
class DraftKey:
    source_hash: str
    canonical_hash: str | None


@dataclass(frozen=True)
class Resolution:
    """What the loop does with a draft: evaluate it, link it to a candidate, or reject it unchecked."""

    kind: Literal["new", "duplicate", "quick"]
    key: DraftKey
    by: Literal["source", "canonical", "quick"] | None = None
    original_id: int | None = None  # the candidate repeated (this job or another)
    verdict: Verdict | None = None  # its verdict (None while that candidate is pending)
    quick: StageResult | None = None  # the stored failed quick check ("quick")


def in_job(session: Session, job_id: int, found: Resolution) -> bool:
    """Whether the candidate a resolution points at belongs to ``job_id``."""
    original_id = getattr(found, "original_id", None)
    if original_id is None:
        return False
    original = session.get(Candidate, original_id)
    return original is not None and original.job_id == job_id


def _new_candidate(
    session: Session, job_id: int, parent: Member, proposal: Proposal, key: DraftKey
) -> Candidate:
    candidate = repository.add_candidate(
        session,
        job_id,
        source=proposal.source,
        origin=proposal.origin,
        source_hash=key.source_hash,
        parent_id=parent.candidate_id,
        note=records.lineage_note(proposal),
        generation=parent.generation + 1,
    )
    candidate.canonical_hash = key.canonical_hash
    return candidate


def record_duplicate(
    session: Session, job_id: int, parent: Member, proposal: Proposal, found: Resolution
) -> int:
    """A draft that repeats a candidate: linked to it, with its verdict when that is known."""
    candidate = _new_candidate(session, job_id, parent, proposal, found.key)
    candidate.duplicate_of = found.original_id
    candidate.cache_hit = found.by
    verdict = found.verdict
    if verdict is not None:
        _apply(session, candidate, verdict)
    records.refresh_job(session, job_id)
    return candidate.id


def link_duplicate(session: Session, job_id: int, candidate_id: int, verdict: Verdict) -> None:
    """Give a waiting duplicate the verdict of the candidate it repeats."""
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFoundError(f"candidate {candidate_id} vanished from the database")
    if candidate.status != CandidateStatus.PENDING.value:
        return
    _apply(session, candidate, _as_cached(verdict))
    records.refresh_job(session, job_id)


def record_quick_rejection(
    session: Session,
    job_id: int,
    parent: Member,
    proposal: Proposal,
    key: DraftKey,
    quick: StageResult,
    *,
    repeat: bool,
) -> int:
    """A draft whose quick check failed: rejected at that stage, without the cascade."""
    candidate = _new_candidate(session, job_id, parent, proposal, key)
    verdict = Verdict(
        False, quick.name, quick.detail or f"the quick {quick.name} check failed", Metrics(), (quick,)
    )
    _apply(session, candidate, verdict)
    if repeat:
        candidate.cache_hit = "quick"
    records.refresh_job(session, job_id)
    return candidate.id


def set_canonical(session: Session, candidate_id: int, key: DraftKey) -> None:
    candidate = session.get(Candidate, candidate_id)
    if candidate is not None:
        candidate.canonical_hash = key.canonical_hash


def _apply(session: Session, candidate: Candidate, verdict: Verdict) -> None:
    for result in verdict.stages:
        records.record_stage(session, candidate.id, result)
    records.apply_verdict(candidate, verdict)


def _as_cached(verdict: Verdict) -> Verdict:
    return replace(verdict, stages=tuple(replace(r, seconds=0.0, cached=True) for r in verdict.stages))


def finished_verdict(session: Session, candidate: Candidate) -> Verdict | None:
    """A finished candidate's verdict as stored (its stage rows, cached), None while it is pending."""
    if candidate.status == CandidateStatus.PENDING.value:
        return None
    stages = tuple(
        StageResult(
            name=run.name,
            ok=run.ok,
            seconds=0.0,
            metrics=Metrics.from_dict(run.metrics),
            detail=run.detail,
            error=run.error,
            data=run.data or {},
            cached=True,
        )
        for run in candidate.stage_runs
    )
    return Verdict(
        accepted=candidate.status == CandidateStatus.ACCEPTED.value,
        stage=candidate.rejected_stage or (stages[-1].name if stages else "verify"),
        reason=candidate.reason,
        metrics=Metrics.from_dict(candidate.metrics),
        stages=stages,
        assurance=Assurance.parse(candidate.assurance) if candidate.assurance else None,
        functional_hash=candidate.functional_hash,
        implementation_hash=candidate.implementation_hash,
        error=candidate.status == CandidateStatus.ERROR.value,
    )
