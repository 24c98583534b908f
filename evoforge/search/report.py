"""A job as the JSON object of DESIGN.md's command-line contract (also what the web API serves)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evoforge.domain import CandidateStatus, Metrics, Objective, improvement
from evoforge.search.cost import llm_cost
from evoforge.search.population import Member, pareto_front
from evoforge.store import repository
from evoforge.store.models import Candidate, Job, StageRun

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
        "duplicate_of": candidate.duplicate_of,
        "note": candidate.note,
    }


def stage_run_row(run: StageRun, *, with_log: bool = False) -> dict[str, Any]:
    """One stored stage result, as the CLI and the web API show it."""
    row: dict[str, Any] = {
        "name": run.name,
        "ok": run.ok,
        "error": run.error,
        "cached": run.cached,
        "seconds": run.seconds,
        "detail": run.detail,
        "metrics": run.metrics,
        "data": run.data,
    }
    if with_log:
        row["log"] = run.log_excerpt
    return row


def trade_off(baseline: Metrics, metrics: Metrics) -> dict[str, list[str]]:
    """The metrics a candidate improves and those it makes worse than the original (a trade-off)."""
    gains = improvement(baseline, metrics)
    return {
        "better": sorted(k for k, v in gains.items() if v > 1.0),
        "worse": sorted(k for k, v in gains.items() if v < 1.0),
    }


def front_objectives(job: Job) -> tuple[Objective, ...]:
    """RTL: area and delay (a rewrite that trades one for the other is shown, not hidden); else the job's."""
    if job.kind == "rtl":
        return (Objective.AREA, Objective.DELAY)
    return tuple(Objective(o) for o in (job.options or {}).get("objectives", [])) or (Objective.RUNTIME,)


def pareto_rows(job: Job, candidates: list[Candidate], baseline: Metrics) -> list[dict[str, Any]]:
    """The accepted candidates no other accepted one beats on every objective (the original included)."""
    members = [
        Member(c.id, c.source, Metrics.from_dict(c.metrics), c.generation, c.origin, c.assurance)
        for c in candidates
        if c.status == CandidateStatus.ACCEPTED.value
    ]
    origins = {c.id: c for c in candidates}
    return [
        {
            "candidate_id": m.candidate_id,
            "origin": m.origin,
            "metrics": m.metrics.to_dict(),
            "assurance": m.assurance,
            "improvement": improvement(baseline, m.metrics),
            "note": origins[m.candidate_id].note,
        }
        for m in pareto_front(members, front_objectives(job))
    ]


def lineage_rows(candidates: list[Candidate], candidate_id: int) -> list[dict[str, Any]]:
    """The steps from the original to a candidate: what each rewrite was and which rooms it touched."""
    by_id = {c.id: c for c in candidates}
    steps: list[dict[str, Any]] = []
    current = by_id.get(candidate_id)
    while current is not None and current.origin != ORIGINAL and len(steps) < len(by_id):
        steps.append(
            {
                "candidate_id": current.id,
                "origin": current.origin,
                "note": current.note,
                "metrics": current.metrics,
            }
        )
        current = by_id.get(current.parent_id) if current.parent_id is not None else None
    return steps[::-1]


def _clocking(meta: dict[str, Any]) -> dict[str, Any]:
    """An RTL target's clocks, resets and how they were found (jobs stored before these: nothing)."""
    return {k: meta[k] for k in ("clocks", "resets", "notes") if k in meta}


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
        "interface": _clocking(job.target_meta or {}),
        "options": job.options,
        "baseline": {"metrics": baseline.to_dict()},
        "best": None
        if best is None
        else {
            "candidate_id": best.id,
            "source": best.source,
            "metrics": best.metrics,
            "improvement": improvement(baseline, Metrics.from_dict(best.metrics)),
            "trade_off": trade_off(baseline, Metrics.from_dict(best.metrics)),
            "assurance": best.assurance,
            "origin": best.origin,
            "note": best.note,
            "lineage": lineage_rows(candidates, best.id),
        },
        "counts": {
            "proposed": job.proposed,
            "evaluated": job.evaluated,
            "cache_hits": job.cache_hits,
            "rejected": job.rejected,
        },
        "candidates": [candidate_row(c) for c in candidates if c.origin != ORIGINAL],
        "pareto_front": pareto_rows(job, candidates, baseline),
        "rules": list((job.target_meta or {}).get("rule_outcomes") or []),
        "llm": llm_cost(session, job_id),
    }


def llm_call_rows(session: Session, job_id: int, candidate_id: int | None = None) -> list[dict[str, Any]]:
    """A job's LLM calls (or one candidate's), oldest first, prompt and reply in full."""
    return [
        {
            "id": call.id,
            "candidate_id": call.candidate_id,
            "role": call.role,
            "model": call.model,
            "prompt_tokens": call.prompt_tokens,
            "completion_tokens": call.completion_tokens,
            "latency_s": call.latency_s,
            "error": call.error,
            "created_at": call.created_at.isoformat(),
            "prompt": call.prompt,
            "reply": call.reply,
        }
        for call in repository.list_llm_calls(session, job_id, candidate_id=candidate_id)
    ]
