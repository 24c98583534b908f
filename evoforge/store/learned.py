"""Learned knowledge-base entries in the store (one table shared by every worker and machine).

The store keeps each entry as a JSON document under its id (``learned-<digest of the rewrite>``):
validating it is the knowledge base's business (``kb.learned``), which skips — with a warning — an
entry it cannot read instead of failing every job. Putting an entry that exists is a no-op, so two
jobs learning the same rewrite at once keep one row. Functions take a ``Session`` first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evoforge.store._convert import db_errors
from evoforge.store.models import LearnedEntryRow


@db_errors
def put_learned(
    session: Session,
    entry_id: str,
    *,
    domain: str,
    data: dict[str, Any],
    job_id: int | None = None,
    candidate_id: int | None = None,
) -> bool:
    """Store an entry; False (and nothing changed) when one with that id exists."""
    if session.get(LearnedEntryRow, entry_id) is not None:
        return False
    try:
        with session.begin_nested():  # a concurrent insert of the same id loses only this savepoint
            session.add(
                LearnedEntryRow(
                    id=entry_id, domain=domain, data=data, job_id=job_id, candidate_id=candidate_id
                )
            )
    except IntegrityError:
        return False
    return True


@db_errors
def list_learned(session: Session, *, domain: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) of every entry, oldest first."""
    stmt = select(LearnedEntryRow.id, LearnedEntryRow.data).order_by(
        LearnedEntryRow.created_at, LearnedEntryRow.id
    )
    if domain is not None:
        stmt = stmt.where(LearnedEntryRow.domain == domain)
    return [(entry_id, dict(data or {})) for entry_id, data in session.execute(stmt)]
