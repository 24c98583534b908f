"""The record of every LLM prompt and reply (DESIGN.md: "Every prompt and reply is stored").

Functions take a ``Session`` first; the caller commits.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from evoforge.store._convert import clean_text, db_errors
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
        prompt=clean_text(prompt),
        reply=None if reply is None else clean_text(reply),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=latency_s,
        error=None if error is None else clean_text(error),
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
