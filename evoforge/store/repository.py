"""Queries and writes of the store: plain functions that take a ``Session`` first.

The caller owns the transaction (``with store.transaction() as session: ...``); these functions
flush so that new rows have ids, but never commit. Rows passed in may come from an earlier, closed
session (sessions do not expire on commit): the functions that change them attach them first.
Domain values (``StageResult``, ``Verdict``, ``Metrics``) are converted here, so callers above
the store never build rows by hand. Database
errors leave as ``StoreError``; a missing id is a ``NotFoundError`` saying which id; an unknown
status or sort key is a ``BadInputError`` listing the valid ones. Jobs and candidates live here; the
cache (``cache.py``), leases (``leases.py``) and LLM calls (``llm_calls.py``) are re-exported so
that one import serves. Text needs no cleaning here: the column types do it (``models.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from evoforge.domain import CandidateStatus, JobStatus, Metrics, StageResult, TargetKind, Verdict
from evoforge.errors import BadInputError, NotFoundError
from evoforge.store._convert import LOG_EXCERPT_CHARS, choice, db_errors, excerpt, jsonable
from evoforge.store.cache import CacheHashKind, find_cache, put_cache
from evoforge.store.leases import claim_next_job, heartbeat
from evoforge.store.llm_calls import link_llm_calls, list_llm_calls, record_llm_call
from evoforge.store.models import CACHE_HASH_KINDS, Candidate, Job, StageRun, utcnow

__all__ = [
    "CANDIDATE_COLUMN_ORDERS",
    "LOG_EXCERPT_CHARS",
    "CacheHashKind",
    "add_candidate",
    "bump_job_counts",
    "candidates_by_functional_hash",
    "candidates_by_source_hash",
    "claim_next_job",
    "count_candidates",
    "count_jobs",
    "create_job",
    "excerpt",
    "find_cache",
    "finish_candidate",
    "get_candidate",
    "get_job",
    "heartbeat",
    "jsonable",
    "link_llm_calls",
    "list_candidates",
    "list_jobs",
    "list_llm_calls",
    "put_cache",
    "record_llm_call",
    "record_stage",
    "request_cancel",
    "set_job_baseline",
    "set_job_best",
    "set_job_status",
]

#: ``list_candidates(order_by=...)`` besides the metric names: plain columns, ascending.
CANDIDATE_COLUMN_ORDERS = ("id", "created_at", "generation")
#: metrics where bigger is better (sorted descending); every other metric is a cost.
_MAXIMISED_METRICS = frozenset({"speedup"})
_METRIC_NAMES = tuple(Metrics.__dataclass_fields__)
#: ids are 64-bit signed integers in every backend; larger numbers name nothing
MAX_ID = 2**63 - 1


# ---------------------------------------------------------------------------------------------
# Jobs


@db_errors
def create_job(
    session: Session,
    *,
    kind: str,
    target_name: str,
    target_fingerprint: str,
    target_source: str,
    target_meta: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    status: str = JobStatus.QUEUED,
) -> Job:
    """A new job, ``queued`` for a worker or already ``running`` in the caller's process."""
    job_status = choice(JobStatus, status, "job status")
    if job_status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise BadInputError(f"a new job cannot be {job_status.value!r}", hint="use 'queued' or 'running'")
    job = Job(
        kind=choice(TargetKind, kind, "target kind").value,
        target_name=target_name,
        target_fingerprint=target_fingerprint,
        target_source=target_source,
        target_meta=jsonable(target_meta or {}),
        options=jsonable(options or {}),
        status=job_status.value,
    )
    if job_status is JobStatus.RUNNING:
        job.claimed_at = job.heartbeat_at = utcnow()  # take_lease restamps with the database clock
    session.add(job)
    session.flush()
    return job


@db_errors
def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id) if 0 < job_id <= MAX_ID else None
    if job is None:
        raise NotFoundError(
            f"no job with id {job_id}",
            hint="`evoforge jobs` lists the jobs of this database (is --db / EVOFORGE_DB the right one?)",
        )
    return job


@db_errors
def list_jobs(session: Session, *, limit: int | None = 50, status: str | None = None) -> list[Job]:
    """Newest first."""
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Job.status == choice(JobStatus, status, "job status").value)
    return list(session.scalars(stmt))


@db_errors
def set_job_status(session: Session, job: Job, status: str, error: str | None = None) -> Job:
    """Set the status (and the error text, when given)."""
    session.add(job)  # re-attaches a job loaded in an earlier session
    job.status = choice(JobStatus, status, "job status").value
    if error is not None:
        job.error = error
    session.flush()
    return job


@db_errors
def set_job_baseline(session: Session, job: Job, metrics: Metrics) -> Job:
    session.add(job)  # re-attaches a job loaded in an earlier session
    job.baseline_metrics = metrics.to_dict()
    session.flush()
    return job


@db_errors
def set_job_best(session: Session, job: Job, candidate_id: int | None) -> Job:
    session.add(job)  # re-attaches a job loaded in an earlier session
    job.best_candidate_id = candidate_id
    session.flush()
    return job


@db_errors
def bump_job_counts(
    session: Session,
    job: Job,
    *,
    proposed: int = 0,
    evaluated: int = 0,
    cache_hits: int = 0,
    rejected: int = 0,
) -> Job:
    """Add to the job's counters in one UPDATE (safe against concurrent writers)."""
    session.add(job)
    session.flush()
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            proposed=Job.proposed + proposed,
            evaluated=Job.evaluated + evaluated,
            cache_hits=Job.cache_hits + cache_hits,
            rejected=Job.rejected + rejected,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(job)
    return job


@db_errors
def request_cancel(session: Session, job_id: int) -> Job:
    """Ask the job to stop; a job still queued is cancelled at once (no worker can claim it then)."""
    get_job(session, job_id)
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.CANCELLED.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    return job


@db_errors
def count_jobs(session: Session) -> dict[str, int]:
    """Jobs per status (every status present)."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    counts = {s.value: 0 for s in JobStatus}
    counts.update({status: n for status, n in rows})
    return counts


# ---------------------------------------------------------------------------------------------
# Candidates and stage runs


@db_errors
def add_candidate(
    session: Session,
    job_id: int,
    *,
    source: str,
    origin: str,
    source_hash: str,
    parent_id: int | None = None,
    note: str = "",
    generation: int = 0,
) -> Candidate:
    """A new ``pending`` candidate of the job."""
    candidate = Candidate(
        job_id=job_id,
        parent_id=parent_id,
        origin=origin,
        note=note,
        source=source,
        source_hash=source_hash,
        generation=generation,
        status=CandidateStatus.PENDING.value,
    )
    session.add(candidate)
    session.flush()
    return candidate


@db_errors
def record_stage(session: Session, candidate_id: int, result: StageResult) -> StageRun:
    """Store one stage's outcome (its log cut to ``LOG_EXCERPT_CHARS``)."""
    run = StageRun(
        candidate_id=candidate_id,
        name=result.name,
        ok=result.ok,
        error=result.error,
        cached=result.cached,
        seconds=result.seconds,
        detail=result.detail,
        log_excerpt=excerpt(result.log),
        metrics=result.metrics.to_dict(),
        data=jsonable(result.data),
    )
    session.add(run)
    session.flush()
    return run


@db_errors
def finish_candidate(
    session: Session,
    candidate: Candidate,
    verdict: Verdict,
    cache_hit: CacheHashKind | None = None,
    *,
    record_stages: bool = False,
) -> Candidate:
    """Write the verdict (status, stage, reason, metrics, hashes, assurance) onto the candidate.

    Stages are normally recorded one by one with ``record_stage``; ``record_stages=True`` stores
    ``verdict.stages`` here instead (e.g. for a verdict computed elsewhere).
    """
    if cache_hit is not None and cache_hit not in CACHE_HASH_KINDS:
        raise BadInputError(f"unknown cache hit kind {cache_hit!r}", hint=f"use one of: {CACHE_HASH_KINDS}")
    session.add(candidate)
    status = verdict.status
    candidate.status = status.value
    candidate.rejected_stage = None if status is CandidateStatus.ACCEPTED else verdict.stage
    candidate.reason = verdict.reason
    candidate.metrics = verdict.metrics.to_dict()
    candidate.assurance = None if verdict.assurance is None else str(verdict.assurance)
    candidate.functional_hash = verdict.functional_hash
    candidate.implementation_hash = verdict.implementation_hash
    candidate.cache_hit = cache_hit
    session.flush()
    if record_stages:
        for stage in verdict.stages:
            record_stage(session, candidate.id, stage)
    return candidate


@db_errors
def get_candidate(session: Session, candidate_id: int) -> Candidate:
    candidate = session.get(Candidate, candidate_id) if 0 < candidate_id <= MAX_ID else None
    if candidate is None:
        raise NotFoundError(
            f"no candidate with id {candidate_id}",
            hint="`evoforge show JOB` lists the candidates of a job",
        )
    return candidate


def _candidate_order(order_by: str) -> Sequence[Any]:
    if order_by in CANDIDATE_COLUMN_ORDERS:
        return (getattr(Candidate, order_by), Candidate.id)
    if order_by in _METRIC_NAMES:
        value = Candidate.metrics[order_by].as_float()
        best_first = value.desc() if order_by in _MAXIMISED_METRICS else value.asc()
        return (best_first.nulls_last(), Candidate.id)
    valid = ", ".join((*CANDIDATE_COLUMN_ORDERS, *_METRIC_NAMES))
    raise BadInputError(f"cannot order candidates by {order_by!r}", hint=f"use one of: {valid}")


@db_errors
def list_candidates(
    session: Session,
    job_id: int,
    *,
    status: str | None = None,
    order_by: str = "id",
    limit: int | None = None,
) -> list[Candidate]:
    """The job's candidates; ordered by a column, or by a metric best first (unmeasured last)."""
    stmt: Select[Candidate] = (
        select(Candidate).where(Candidate.job_id == job_id).order_by(*_candidate_order(order_by)).limit(limit)
    )
    if status is not None:
        stmt = stmt.where(Candidate.status == choice(CandidateStatus, status, "candidate status").value)
    return list(session.scalars(stmt))


@db_errors
def candidates_by_source_hash(session: Session, job_id: int, source_hash: str) -> list[Candidate]:
    stmt = select(Candidate).where(Candidate.job_id == job_id, Candidate.source_hash == source_hash)
    return list(session.scalars(stmt.order_by(Candidate.id)))


@db_errors
def candidates_by_functional_hash(session: Session, job_id: int, functional_hash: str) -> list[Candidate]:
    stmt = select(Candidate).where(Candidate.job_id == job_id, Candidate.functional_hash == functional_hash)
    return list(session.scalars(stmt.order_by(Candidate.id)))


@db_errors
def count_candidates(session: Session, job_id: int) -> dict[str, int]:
    """The job's candidates per status (every status present)."""
    stmt = select(Candidate.status, func.count()).where(Candidate.job_id == job_id).group_by(Candidate.status)
    counts = {s.value: 0 for s in CandidateStatus}
    counts.update({status: n for status, n in session.execute(stmt)})
    return counts
