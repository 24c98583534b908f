"""The record of every LLM prompt and reply (DESIGN.md: "Every prompt and reply is stored").

Functions take a ``Session`` first; the caller commits. A call is written when it completes (it
cost money even if the run is killed before it produced a candidate) and linked to the candidate it
produced later, with ``link_llm_calls``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evoforge.store._convert import db_errors
from evoforge.store.models import LlmCall


@db_errors
def record_llm_call(
    session: Session,
    *,
    job_id: int,
    role: str,
    model: str,
    prompt: str,
    reply: str | None = None,
    candidate_id: int | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    latency_s: float | None = None,
    error: str | None = None,
) -> LlmCall:
    call = LlmCall(
        job_id=job_id,
        candidate_id=candidate_id,
        role=role,
        model=model,
        prompt=prompt,
        reply=reply,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=latency_s,
        error=error,
    )
    session.add(call)
    session.flush()
    return call


@db_errors
def list_llm_calls(session: Session, job_id: int, *, candidate_id: int | None = None) -> list[LlmCall]:
    stmt = select(LlmCall).where(LlmCall.job_id == job_id).order_by(LlmCall.id)
    if candidate_id is not None:
        stmt = stmt.where(LlmCall.candidate_id == candidate_id)
    return list(session.scalars(stmt))


@db_errors
def link_llm_calls(session: Session, call_ids: Sequence[int], candidate_id: int | None) -> None:
    """Link stored calls to the candidate they produced (``None`` leaves them the job's only)."""
    if call_ids and candidate_id is not None:
        session.execute(
            update(LlmCall)
            .where(LlmCall.id.in_(list(call_ids)))
            .values(candidate_id=candidate_id)
            .execution_options(synchronize_session=False)
        )
