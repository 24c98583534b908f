"""A job as the JSON object of DESIGN.md's command-line contract (also what the web API serves)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evoforge.domain import Metrics, improvement
from evoforge.store import repository
from evoforge.store.models import Candidate, Job

ORIGINAL = "original"


def candidate_row(candidate: Candidate) -> dict[str, Any]:
    return {
        "id": candidate.id,
        "parent_id": candidate.parent_id,
        "origin": candidate.origin,
        "status": candidate.status,
        "rejected_stage": candidate.rejected_stage,
        "reason": candidate.reason,
        "source_hash": candidate.source_hash,
        "functional_hash": candidate.functional_hash,
        "implementation_hash": candidate.implementation_hash,
        "metrics": candidate.metrics,
        "assurance": candidate.assurance,
        "cache_hit": candidate.cache_hit,
        "note": candidate.note,
    }


def job_report(session: Session, job_id: int) -> dict[str, Any]:
    job: Job = repository.get_job(session, job_id)
    candidates = list(
        session.scalars(select(Candidate).where(Candidate.job_id == job_id).order_by(Candidate.id))
    )
    baseline = Metrics.from_dict(job.baseline_metrics)
    best = next((c for c in candidates if c.id == job.best_candidate_id), None)
    return {
        "job_id": job.id,
        "status": job.status,
        "error": job.error,
        "target": {"kind": job.kind, "name": job.target_name},
        "options": job.options,
        "baseline": {"metrics": baseline.to_dict()},
        "best": None
        if best is None
        else {
            "candidate_id": best.id,
            "source": best.source,
            "metrics": best.metrics,
            "improvement": improvement(baseline, Metrics.from_dict(best.metrics)),
            "assurance": best.assurance,
            "origin": best.origin,
            "note": best.note,
        },
        "counts": {
            "proposed": job.proposed,
            "evaluated": job.evaluated,
            "cache_hits": job.cache_hits,
            "rejected": job.rejected,
        },
        "candidates": [candidate_row(c) for c in candidates if c.origin != ORIGINAL],
    }
