"""How the search loop writes and reads a job: domain values in, store rows out.

Every function takes an open session (``Store.transaction()``); the loop is the only caller, so the
loop stays the one writer of its job. The cross-job cache is consulted here: a draft whose source hash
has a cached verdict for the same target and verdict context (every setting a verdict depends on),
and whose verdict passes :func:`evoforge.search.cache_policy.reuse_refusal` against the job's own
requirements, is recorded with that verdict and never evaluated. Only a verdict copied from the cache
counts as a cache hit; the functional fingerprint is computed by simulating the probe, so it saves no
simulation and is not a cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from evoforge.agents.base import LlmCallRecord, Proposal
from evoforge.domain import (
    CandidateStatus,
    JobStatus,
    Metrics,
    Objective,
    StageResult,
    TargetKind,
    Verdict,
    VerdictContext,
    improvement,
    source_hash,
)
from evoforge.errors import NotFoundError
from evoforge.search.cache_policy import reuse_refusal
from evoforge.search.population import Member, best_member
from evoforge.store import repository
from evoforge.store.cache import CacheHashKind
from evoforge.store.models import CacheEntry, Candidate, Job, LlmCall, StageRun

log = logging.getLogger(__name__)

ORIGINAL = "original"

#: what a parent's benchmark tells the next proposal (spread and roofline included: 15.5)
BENCHMARK_FEEDBACK = (
    "device", "reference_ms", "candidate_ms", "speedup", "interval", "spread", "roofline_speedup",
    "unmeasured", "flag",
)  # fmt: skip


def start_job(session: Session, job_id: int) -> Job:
    job = repository.get_job(session, job_id)
    job.status = JobStatus.RUNNING.value
    job.error = None
    return job


def finish_job(
    session: Session,
    job_id: int,
    status: JobStatus,
    objectives: tuple[Objective, ...],
    error: str | None = None,
) -> None:
    job = repository.get_job(session, job_id)
    refresh_counts(session, job)
    baseline = Metrics.from_dict(job.baseline_metrics)
    best = best_member(population(session, job_id, include_original=False), objectives, baseline)
    job.best_candidate_id = best.candidate_id if best else None
    job.status = status.value
    job.error = error


def refresh_counts(session: Session, job: Job) -> None:
    rows = session.execute(
        select(Candidate.status, Candidate.cache_hit, func.count())
        .where(Candidate.job_id == job.id, Candidate.origin != ORIGINAL)
        .group_by(Candidate.status, Candidate.cache_hit)
    ).all()
    job.proposed = sum(n for _, _, n in rows)
    job.cache_hits = sum(n for _, hit, n in rows if hit is not None)
    job.evaluated = sum(n for status, hit, n in rows if hit is None and status != CandidateStatus.PENDING)
    job.rejected = sum(n for status, _, n in rows if status == CandidateStatus.REJECTED)


def original_candidate(session: Session, job_id: int) -> Candidate | None:
    return session.scalars(
        select(Candidate).where(Candidate.job_id == job_id, Candidate.origin == ORIGINAL)
    ).first()


def record_original(session: Session, job_id: int, verdict: Verdict) -> Candidate:
    job = repository.get_job(session, job_id)
    candidate = original_candidate(session, job_id)
    if candidate is None:
        candidate = repository.add_candidate(
            session,
            job_id,
            source=job.target_source,
            origin=ORIGINAL,
            source_hash=source_hash(job.target_source, TargetKind(job.kind)),
            note="the design as given",
        )
    for result in verdict.stages:
        record_stage(session, candidate.id, result)
    _apply_verdict(candidate, verdict)
    job.baseline_metrics = verdict.metrics.to_dict()
    return candidate


#: rejected children of a parent shown to the proposers (latest first)
RECENT_FAILURES = 3


def _feedback(session: Session, candidate_id: int) -> dict[str, Any]:
    """What the proposers get to see of a parent: its critical path and largest cells (RTL), its
    kernels' registers/spills/shared memory and its measured speed-up or why it is unmeasured
    (kernels), and why its latest children were rejected (the failure detail: first mismatching
    elements, counterexample, …)."""
    feedback: dict[str, Any] = {}
    failed = session.scalars(
        select(Candidate)
        .where(
            Candidate.parent_id == candidate_id,
            Candidate.status == CandidateStatus.REJECTED.value,
            Candidate.duplicate_of.is_(None),  # a repeat teaches nothing new (and keeps plans reusable)
            or_(Candidate.cache_hit.is_(None), Candidate.cache_hit != "quick"),
        )
        .order_by(Candidate.id.desc())
        .limit(RECENT_FAILURES)
    ).all()
    if failed:
        feedback["recent_failures"] = [
            {"stage": c.rejected_stage, "reason": c.reason, "note": c.note, "origin": c.origin}
            for c in failed
        ]
    runs = session.scalars(select(StageRun).where(StageRun.candidate_id == candidate_id)).all()
    for run in runs:
        if run.name == "timing":
            for key in ("critical_path", "startpoint", "endpoint", "slack_ns"):
                if key in run.data:
                    feedback[key] = run.data[key]
        if run.name == "synthesis":
            for key in ("largest_cells", "cells_by_type"):
                if key in run.data:
                    feedback[key] = run.data[key]
        if run.name == "resources" and run.data.get("kernels"):
            feedback["kernel_resources"] = {"arch": run.data.get("arch"), "kernels": run.data["kernels"]}
        if run.name == "benchmark" and run.data:
            feedback["benchmark"] = {k: run.data.get(k) for k in BENCHMARK_FEEDBACK}
        if run.name == "static" and run.data.get("backend"):
            feedback["backend"] = run.data["backend"]
    return feedback


def member_of(candidate: Candidate, feedback: dict[str, Any] | None = None) -> Member:
    return Member(
        candidate_id=candidate.id,
        source=candidate.source,
        metrics=Metrics.from_dict(candidate.metrics),
        generation=candidate.generation,
        origin=candidate.origin,
        assurance=candidate.assurance,
        feedback=feedback or {},
    )


def population(session: Session, job_id: int, *, include_original: bool = True) -> list[Member]:
    query = select(Candidate).where(
        Candidate.job_id == job_id, Candidate.status == CandidateStatus.ACCEPTED.value
    )
    # a duplicate of a candidate of the same job is a record, not a member (its original is one)
    same_job = aliased(Candidate)
    query = query.where(
        ~exists().where(same_job.id == Candidate.duplicate_of, same_job.job_id == Candidate.job_id)
    )
    if not include_original:
        query = query.where(Candidate.origin != ORIGINAL)
    return [member_of(c, _feedback(session, c.id)) for c in session.scalars(query.order_by(Candidate.id))]


def pending_candidates(session: Session, job_id: int) -> list[Candidate]:
    return list(
        session.scalars(
            select(Candidate).where(
                Candidate.job_id == job_id,
                Candidate.status == CandidateStatus.PENDING.value,
                Candidate.origin != ORIGINAL,
            )
        )
    )


def is_pending(session: Session, candidate_id: int) -> bool:
    candidate = session.get(Candidate, candidate_id, populate_existing=True)
    return candidate is not None and candidate.status == CandidateStatus.PENDING.value


def proposal_count(session: Session, job_id: int) -> int:
    return int(
        session.scalar(select(func.count()).where(Candidate.job_id == job_id, Candidate.origin != ORIGINAL))
        or 0
    )


def source_hashes(session: Session, job_id: int) -> set[str]:
    return set(session.scalars(select(Candidate.source_hash).where(Candidate.job_id == job_id)))


def add_proposal(
    session: Session,
    job_id: int,
    parent: Member,
    proposal: Proposal,
    target_fp: str,
    context: VerdictContext,
) -> tuple[int, bool]:
    """Store a draft; returns (candidate id, answered from the cache)."""
    job = repository.get_job(session, job_id)
    digest = source_hash(proposal.source, TargetKind(job.kind))
    candidate = repository.add_candidate(
        session,
        job_id,
        source=proposal.source,
        origin=proposal.origin,
        source_hash=digest,
        parent_id=parent.candidate_id,
        note=lineage_note(proposal),
        generation=parent.generation + 1,
    )
    cached = repository.find_cache(
        session, target_fingerprint=target_fp, hash_kind="source", hash=digest, context=context
    )
    if cached is None:
        return candidate.id, False
    verdict = verdict_from_dict(cached.verdict)
    refusal = reuse_refusal(verdict, cached.context, context)
    if refusal is not None:
        log.info("cached verdict for %s not reused: %s", digest[:12], refusal)
        return candidate.id, False
    for result in verdict.stages:
        record_stage(session, candidate.id, result)
    _apply_verdict(candidate, verdict)
    candidate.cache_hit = "source"
    _refresh(session, job_id)
    return candidate.id, True


def record_calls(
    session: Session, job_id: int, candidate_id: int | None, calls: Sequence[LlmCallRecord]
) -> None:
    """Store LLM calls, linked to the candidate they produced (``None``: they produced none).

    Calls already written as they completed (``stored_id``) are only linked.
    """
    repository.link_llm_calls(session, [c.stored_id for c in calls if c.stored_id is not None], candidate_id)
    for call in calls:
        if call.stored_id is None:
            record_call(session, job_id, candidate_id, call)


def record_call(session: Session, job_id: int, candidate_id: int | None, call: LlmCallRecord) -> int:
    """Store one LLM call; its row id."""
    row = repository.record_llm_call(
        session,
        job_id=job_id,
        candidate_id=candidate_id,
        role=call.role,
        model=call.model,
        prompt=call.prompt,
        reply=call.reply,
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        latency_s=call.latency_s,
        error=call.error,
    )
    return row.id


def llm_usage(session: Session, job_id: int) -> dict[str, int]:
    """The job's LLM calls: how many, how many failed, and the tokens they used."""
    row = session.execute(
        select(
            func.count(LlmCall.id),
            func.count(LlmCall.error),
            func.coalesce(func.sum(LlmCall.prompt_tokens), 0),
            func.coalesce(func.sum(LlmCall.completion_tokens), 0),
        ).where(LlmCall.job_id == job_id)
    ).one()
    calls, errors, prompt_tokens, completion_tokens = (int(v or 0) for v in row)
    return {
        "calls": calls,
        "errors": errors,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
    }


def lineage_note(proposal: Proposal) -> str:
    """The proposal's note with its rule and the design's rooms it touched, for the lineage view."""
    extra = [f"rule {proposal.rule}"] if proposal.rule and proposal.rule not in proposal.note else []
    if proposal.touched:
        more = " …" if len(proposal.touched) > 12 else ""
        extra.append("touched " + ", ".join(proposal.touched[:12]) + more)
    return f"{proposal.note} [{'; '.join(extra)}]" if extra else proposal.note


def lineage(session: Session, candidate_id: int) -> list[Candidate]:
    """The candidate and its ancestors, the original first."""
    chain: list[Candidate] = []
    current = session.get(Candidate, candidate_id)
    while current is not None and len(chain) < 10_000:
        chain.append(current)
        current = session.get(Candidate, current.parent_id) if current.parent_id is not None else None
    return chain[::-1]


def winning_lineage(session: Session, job_id: int) -> list[Candidate]:
    """Original → … → the job's best candidate (empty when the job found no improvement)."""
    job = repository.get_job(session, job_id)
    if job.best_candidate_id is None:
        return []
    steps = lineage(session, job.best_candidate_id)
    return steps if len(steps) > 1 and steps[0].origin == ORIGINAL else []


def record_stage(session: Session, candidate_id: int, result: StageResult) -> None:
    repository.record_stage(session, candidate_id, result)


def finish_candidate(
    session: Session,
    job_id: int,
    candidate_id: int,
    verdict: Verdict,
    target_fp: str,
    context: VerdictContext,
) -> None:
    """Store the verdict, and remember it by each hash that may answer a later draft (source hash;
    implementation hash for the synthesis-dependent stages of accepted candidates)."""
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFoundError(f"candidate {candidate_id} vanished from the database")
    _apply_verdict(candidate, verdict)
    stored = verdict_to_dict(verdict)

    def remember(hash_kind: CacheHashKind, digest: str) -> None:
        repository.put_cache(
            session,
            target_fingerprint=target_fp,
            hash_kind=hash_kind,
            hash=digest,
            context=context,
            verdict=stored,
        )

    if verdict.accepted and verdict.implementation_hash:
        remember("implementation", verdict.implementation_hash)
    if not verdict.error:
        remember("source", candidate.source_hash)
    _refresh(session, job_id)


def _refresh(session: Session, job_id: int) -> None:
    job = repository.get_job(session, job_id)
    refresh_counts(session, job)  # the heartbeat is stamped by the lease fence, on the database clock


def _apply_verdict(candidate: Candidate, verdict: Verdict) -> None:
    candidate.status = verdict.status.value
    candidate.rejected_stage = verdict.stage if verdict.status == CandidateStatus.REJECTED else None
    candidate.reason = verdict.reason
    candidate.metrics = verdict.metrics.to_dict()
    candidate.assurance = str(verdict.assurance) if verdict.assurance else None
    candidate.functional_hash = verdict.functional_hash
    candidate.implementation_hash = verdict.implementation_hash


def implementation_results(
    session: Session, target_fp: str, context: VerdictContext, stage_names: tuple[str, ...]
) -> dict[str, dict[str, StageResult]]:
    """Stage results known per implementation hash (from earlier jobs), for the verifier to reuse."""
    entries = session.scalars(
        select(CacheEntry).where(
            CacheEntry.target_fingerprint == target_fp,
            CacheEntry.hash_kind == "implementation",
            CacheEntry.context_digest == context.digest(),
        )
    )
    known: dict[str, dict[str, StageResult]] = {}
    for entry in entries:
        stages = verdict_from_dict(entry.verdict).stages
        known[entry.hash] = {r.name: r for r in stages if r.name in stage_names}
    return known


# -- verdicts as JSON (the cache table) ------------------------------------------------------------


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        "accepted": verdict.accepted,
        "stage": verdict.stage,
        "reason": verdict.reason,
        "metrics": verdict.metrics.to_dict(),
        "assurance": str(verdict.assurance) if verdict.assurance else None,
        "functional_hash": verdict.functional_hash,
        "implementation_hash": verdict.implementation_hash,
        "stages": [
            {
                "name": r.name,
                "ok": r.ok,
                "seconds": r.seconds,
                "detail": r.detail,
                "metrics": r.metrics.to_dict(),
                "data": r.data,
            }
            for r in verdict.stages
        ],
    }


def verdict_from_dict(data: dict[str, Any]) -> Verdict:
    from evoforge.domain import Assurance

    stages = tuple(
        StageResult(
            name=s["name"],
            ok=s["ok"],
            seconds=0.0,
            metrics=Metrics.from_dict(s.get("metrics")),
            detail=s.get("detail", ""),
            data=s.get("data") or {},
            cached=True,
        )
        for s in data.get("stages", [])
    )
    assurance = data.get("assurance")
    return Verdict(
        accepted=bool(data["accepted"]),
        stage=data["stage"],
        reason=data["reason"],
        metrics=Metrics.from_dict(data.get("metrics")),
        stages=stages,
        assurance=Assurance.parse(assurance) if assurance else None,
        functional_hash=data.get("functional_hash"),
        implementation_hash=data.get("implementation_hash"),
    )


def improvement_of(job: Job, candidate: Candidate) -> dict[str, float]:
    return improvement(Metrics.from_dict(job.baseline_metrics), Metrics.from_dict(candidate.metrics))


#: the loop's other writers (``duplicates.py``) apply verdicts and refresh counts the same way
apply_verdict = _apply_verdict
refresh_job = _refresh
