"""Evaluation attempts of a candidate: who may write its stage rows.

An evaluation task (``search/evaluate.py``) may run more than once for one candidate: Ray retries a
task whose worker died, a resumed job evaluates its pending candidates again. Each attempt opens with
:func:`begin_attempt`, which gives the candidate a fresh ``attempt_token``, counts the attempt and
deletes the stage rows an earlier attempt left; every later write of the attempt opens with
:func:`check_attempt` (an UPDATE conditional on the token, like the job's lease fence). An attempt
that was superseded — its worker presumed dead, yet still running — finds its token gone and writes
nothing more, so a candidate ends with exactly one set of stage rows.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.orm import Session

from evoforge.domain import CandidateStatus
from evoforge.errors import LeaseLostError, NotFoundError
from evoforge.store._convert import db_errors
from evoforge.store.leases import new_token
from evoforge.store.models import Candidate, StageRun

SUPERSEDED_HINT = "another attempt evaluates this candidate now (a retry after a worker was presumed dead)"


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


@db_errors
def begin_attempt(session: Session, candidate_id: int, worker: str) -> str | None:
    """A new attempt at a pending candidate: its token, or None when the candidate is finished."""
    token = new_token()
    result = session.execute(
        update(Candidate)
        .where(Candidate.id == candidate_id, Candidate.status == CandidateStatus.PENDING.value)
        .values(attempt_token=token, attempts=Candidate.attempts + 1, evaluated_by=worker[:255])
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        if session.get(Candidate, candidate_id) is None:
            raise NotFoundError(f"candidate {candidate_id} is not in the database", hint=SUPERSEDED_HINT)
        return None
    session.execute(
        delete(StageRun)
        .where(StageRun.candidate_id == candidate_id)
        .execution_options(synchronize_session=False)
    )
    return token


@db_errors
def holds_attempt(session: Session, candidate_id: int, token: str) -> bool:
    """True while ``token`` is the candidate's attempt and it is still pending (locks the row)."""
    result = session.execute(
        update(Candidate)
        .where(
            Candidate.id == candidate_id,
            Candidate.attempt_token == token,
            Candidate.status == CandidateStatus.PENDING.value,
        )
        .values(attempt_token=token)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def check_attempt(session: Session, candidate_id: int, token: str) -> None:
    """The fence of an attempt's writes: ``holds_attempt`` or ``LeaseLostError``."""
    if not holds_attempt(session, candidate_id, token):
        raise LeaseLostError(
            f"candidate {candidate_id}: this evaluation attempt was superseded", hint=SUPERSEDED_HINT
        )
