"""What a job's results cost in LLM requests: per proposal and per accepted candidate.

``llm_cost`` extends ``records.llm_usage`` (calls, failed calls, tokens) with the calls per role, the
repairs, the duplicates avoided (proposals that repeated an earlier draft — same source or a renaming
— and cost no evaluation, plus repeats of a failed quick check), and the same figures divided by the
proposals and by the accepted candidates (duplicates not counted twice). The CLI's ``show``, the JSON
report and the web job page print it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from evoforge.domain import CandidateStatus
from evoforge.search.records import ORIGINAL, llm_usage
from evoforge.store.models import Candidate, LlmCall

#: cache hits that mean "this draft was met before" (not a functional or implementation reuse)
_REPEATS = ("source", "canonical", "quick")


def llm_cost(session: Session, job_id: int) -> dict[str, Any]:
    usage: dict[str, Any] = dict(llm_usage(session, job_id))
    roles = dict(
        session.execute(
            select(LlmCall.role, func.count()).where(LlmCall.job_id == job_id).group_by(LlmCall.role)
        ).all()
    )
    mine = (Candidate.job_id == job_id, Candidate.origin != ORIGINAL)
    proposals = int(session.scalar(select(func.count()).where(*mine)) or 0)
    duplicates = int(
        session.scalar(
            select(func.count()).where(
                *mine, or_(Candidate.duplicate_of.is_not(None), Candidate.cache_hit.in_(_REPEATS))
            )
        )
        or 0
    )
    accepted = int(
        session.scalar(
            select(func.count()).where(
                *mine, Candidate.status == CandidateStatus.ACCEPTED.value, Candidate.duplicate_of.is_(None)
            )
        )
        or 0
    )
    tokens = usage["prompt_tokens"] + usage["completion_tokens"]
    repairs = int(roles.get("repair", 0))
    usage.update(
        {
            "by_role": {str(k): int(v) for k, v in roles.items()},
            "tokens": tokens,
            "repairs": repairs,
            "proposals": proposals,
            "accepted": accepted,
            "duplicates_avoided": duplicates,
            "per_proposal": _per(proposals, usage["calls"], tokens, repairs, duplicates),
            "per_accepted": _per(accepted, usage["calls"], tokens, repairs, duplicates),
        }
    )
    return usage


def _per(n: int, calls: int, tokens: int, repairs: int, duplicates: int) -> dict[str, float] | None:
    if n <= 0:
        return None
    return {
        "requests": calls / n,
        "tokens": tokens / n,
        "repairs": repairs / n,
        "duplicates_avoided": duplicates / n,
    }


def cost_line(cost: dict[str, Any]) -> str:
    """One line for people: requests, tokens, duplicates avoided, repairs — per proposal and per accepted."""

    def per(label: str, values: dict[str, float] | None) -> str:
        if not values:
            return f"per {label}: -"
        return (
            f"per {label}: {values['requests']:.2f} requests, {values['tokens']:.0f} tokens, "
            f"{values['repairs']:.2f} repairs, {values['duplicates_avoided']:.2f} duplicates avoided"
        )

    return "; ".join(
        [per("proposal", cost.get("per_proposal")), per("accepted candidate", cost.get("per_accepted"))]
    )
