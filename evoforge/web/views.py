"""What the API and the pages show, built from the store: job summaries, progress, candidate details.

Plain dicts of JSON-able values; the JSON API returns them as they are and the templates render them
(escaped). Nothing here writes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evoforge.domain import CandidateStatus, JobStatus, Metrics, Objective, improvement
from evoforge.errors import NotFoundError
from evoforge.search.report import (
    ORIGINAL,
    candidate_row,
    job_report,
    lineage_rows,
    llm_call_rows,
    stage_run_row,
)
from evoforge.store import repository
from evoforge.store.models import Candidate, Job, StageRun

FINISHED = frozenset({JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value})
#: the metrics a kernel job's pages show, in order
KERNEL_METRICS = ("runtime_ms", "speedup", "registers", "spills", "shared_bytes")


def objectives_of(job: Job) -> tuple[Objective, ...]:
    names = (job.options or {}).get("objectives") or [Objective.AREA.value, Objective.DELAY.value]
    return tuple(Objective(n) for n in names)


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "status": job.status,
        "kind": job.kind,
        "target": job.target_name,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "budget": (job.options or {}).get("budget"),
        "proposer": (job.options or {}).get("proposer"),
        "objectives": [o.value for o in objectives_of(job)],
        "proposed": job.proposed,
        "best_candidate_id": job.best_candidate_id,
        "cancel_requested": job.cancel_requested,
        "worker": job.worker,
        "error": job.error,
    }


def _job_candidates(session: Session, job_id: int) -> list[Candidate]:
    return list(session.scalars(select(Candidate).where(Candidate.job_id == job_id).order_by(Candidate.id)))


def best_so_far(job: Job, candidates: list[Candidate]) -> list[dict[str, Any]]:
    """After each finished evaluation (in id order): the best value of the primary objective so far."""
    primary = objectives_of(job)[0]
    original = next((c for c in candidates if c.origin == ORIGINAL), None)
    best = primary.value_of(Metrics.from_dict(original.metrics)) if original and original.metrics else None
    series: list[dict[str, Any]] = []
    evaluations = 0
    for c in candidates:
        if c.origin == ORIGINAL or c.status == CandidateStatus.PENDING.value:
            continue
        evaluations += 1
        if c.status == CandidateStatus.ACCEPTED.value:
            value = primary.value_of(Metrics.from_dict(c.metrics))
            if value is not None and (best is None or value < best):
                best = value
        series.append({"evaluation": evaluations, "candidate_id": c.id, "best": best})
    return series


def progress(session: Session, job_id: int) -> dict[str, Any]:
    """The job's status, counts and best so far: what the event stream sends."""
    job = repository.get_job(session, job_id)
    session.refresh(job)
    candidates = _job_candidates(session, job_id)
    proposed = [c for c in candidates if c.origin != ORIGINAL]
    counts = {s.value: 0 for s in CandidateStatus}
    for c in proposed:
        counts[c.status] = counts.get(c.status, 0) + 1
    budget = int((job.options or {}).get("budget") or 0)
    finished = len(proposed) - counts[CandidateStatus.PENDING.value]
    series = best_so_far(job, candidates)
    baseline = Metrics.from_dict(job.baseline_metrics)
    primary = objectives_of(job)[0]
    best = _best_accepted(proposed, primary)
    return {
        "job_id": job.id,
        "status": job.status,
        "done": job.status in FINISHED,
        "cancel_requested": job.cancel_requested,
        "error": job.error,
        "budget": budget,
        "proposed": len(proposed),
        "finished": finished,
        "percent": 100 if job.status in FINISHED else min(100, round(100 * finished / max(1, budget))),
        "counts": counts,
        "cache_hits": sum(1 for c in proposed if c.cache_hit),
        "primary_objective": primary.value,
        "baseline": baseline.to_dict(),
        "best": None
        if best is None
        else {
            "candidate_id": best.id,
            "metrics": best.metrics,
            "improvement": improvement(baseline, Metrics.from_dict(best.metrics)),
        },
        "best_so_far": series[-1]["best"] if series else primary.value_of(baseline),
    }


def _best_accepted(candidates: list[Candidate], primary: Objective) -> Candidate | None:
    scored = [
        (value, c.id, c)
        for c in candidates
        if c.status == CandidateStatus.ACCEPTED.value
        and (value := primary.value_of(Metrics.from_dict(c.metrics))) is not None
    ]
    return min(scored, key=lambda t: (t[0], t[1]))[2] if scored else None


def job_detail(session: Session, job_id: int) -> dict[str, Any]:
    """The command-line report plus the summary, progress and best-so-far series."""
    job = repository.get_job(session, job_id)
    report = job_report(session, job_id)
    candidates = _job_candidates(session, job_id)
    kernel = {"kernel_rows": kernel_rows(session, candidates)} if job.kind == "kernel" else {}
    return (
        report
        | kernel
        | {
            "summary": job_summary(job),
            "progress": progress(session, job_id),
            "best_so_far": best_so_far(job, candidates),
            "accepted_points": [
                {"candidate_id": c.id, "origin": c.origin, "metrics": c.metrics}
                for c in candidates
                if c.status == CandidateStatus.ACCEPTED.value
            ],
        }
    )


def kernel_facts(runs: list[StageRun]) -> dict[str, Any]:
    """What a kernel candidate's stages say beyond its metrics: backend, device, why speed is unmeasured."""
    facts: dict[str, Any] = {"backend": None, "device": None, "unmeasured": None, "kernels": [], "arch": None}
    for run in runs:
        data = run.data or {}
        if run.name == "static" and data.get("backend"):
            facts["backend"] = data["backend"]
        if run.name == "resources":
            facts["kernels"] = list(data.get("kernels") or [])
            facts["arch"] = data.get("arch")
        if run.name in ("benchmark", "correctness") and data.get("unmeasured"):
            facts["unmeasured"] = str(data["unmeasured"])
        if run.name == "benchmark":
            facts["device"] = data.get("device")
            if data.get("flag"):
                facts["flag"] = data["flag"]
    return facts


def kernel_rows(session: Session, candidates: list[Candidate]) -> list[dict[str, Any]]:
    """Accepted kernel candidates (the original first) with their kernel metrics and speed facts."""
    accepted = [c for c in candidates if c.status == CandidateStatus.ACCEPTED.value]
    ids = [c.id for c in accepted]
    runs: dict[int, list[StageRun]] = {i: [] for i in ids}
    if ids:
        for run in session.scalars(select(StageRun).where(StageRun.candidate_id.in_(ids))):
            runs[run.candidate_id].append(run)
    rows = []
    for c in accepted:
        metrics = c.metrics or {}
        facts = kernel_facts(runs[c.id])
        if c.origin == ORIGINAL and facts["unmeasured"] is None and metrics.get("runtime_ms") is not None:
            facts["backend"] = "torch eager"
        rows.append(
            {"candidate_id": c.id, "origin": c.origin, "metrics": {k: metrics.get(k) for k in KERNEL_METRICS}}
            | facts
        )
    return rows


def candidate_detail(session: Session, job_id: int, candidate_id: int) -> dict[str, Any]:
    """One candidate with its stages (logs included), LLM calls, parent and original sources."""
    candidate = repository.get_candidate(session, candidate_id)
    if candidate.job_id != job_id:
        raise NotFoundError(f"candidate {candidate_id} does not belong to job {job_id}")
    job = repository.get_job(session, job_id)
    candidates = _job_candidates(session, job_id)
    by_id = {c.id: c for c in candidates}
    parent = by_id.get(candidate.parent_id) if candidate.parent_id is not None else None
    original = next((c for c in candidates if c.origin == ORIGINAL), None)
    baseline = Metrics.from_dict(job.baseline_metrics)
    return candidate_row(candidate) | {
        "job_id": job_id,
        "target": job.target_name,
        "source": candidate.source,
        "parent_source": parent.source if parent is not None else None,
        "original_source": original.source if original is not None else job.target_source,
        "improvement": improvement(baseline, Metrics.from_dict(candidate.metrics))
        if candidate.status == CandidateStatus.ACCEPTED.value
        else {},
        "baseline": baseline.to_dict(),
        "lineage": lineage_rows(candidates, candidate.id),
        "kind": job.kind,
        "kernel": kernel_facts(list(candidate.stage_runs)) if job.kind == "kernel" else None,
        "stages": [stage_run_row(r, with_log=True) for r in candidate.stage_runs],
        "llm_calls": llm_call_rows(session, job_id, candidate.id),
    }
