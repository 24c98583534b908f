"""Who runs a job: claims, leases on the database clock, fencing tokens, requeueing stale jobs.

A worker holds a running job through a *lease*: a random token written on the job row when it claims
the job (or takes it over, ``evoforge run --resume``) and a heartbeat stamped with the database's
own clock — never a machine's, so that workers on several machines compare times of one clock. A
running job whose heartbeat is older than the stale timeout is put back in the queue, which clears
its token.

Fencing: every transaction of a run opens with :func:`renew_lease`, an UPDATE of the heartbeat
conditional on the token. It proves the lease and, being a write, locks the job row (PostgreSQL) or
the database (SQLite) until commit, so a requeue cannot slip in between the check and the run's own
writes. A worker that finds its token gone — it was paused or cut off past its lease and the job was
given to another — gets ``LeaseLostError`` and writes nothing more. Issue 14's executors reuse
these functions (the lease is the job's; a task carries the token).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    delete,
    func,
    literal,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from evoforge.domain import CandidateStatus, JobStatus
from evoforge.errors import LeaseLostError
from evoforge.store._convert import db_errors
from evoforge.store.models import Candidate, Job, StageRun, UtcDateTime

#: the origin of a job's original design among its candidates (``search.report.ORIGINAL``)
ORIGINAL_ORIGIN = "original"
LEASE_LOST_HINT = "another worker took the job over after this one missed its heartbeats; it finishes it"


def new_token() -> str:
    return secrets.token_hex(16)


def db_clock(session: Session, offset_s: float = 0.0) -> ColumnElement[datetime]:
    """The database's current UTC time (plus ``offset_s``) as an SQL expression."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # the text format SQLAlchemy stores (microseconds: milliseconds + "000"), so values compare
        return type_coerce(
            func.strftime("%Y-%m-%d %H:%M:%f000", "now", f"{offset_s:+.3f} seconds"), UtcDateTime()
        )
    now: ColumnElement[Any] = func.now()
    if offset_s:
        now = now + literal(timedelta(seconds=offset_s))
    return type_coerce(now, UtcDateTime())


@db_errors
def database_time(session: Session) -> datetime:
    """The database clock's current time (what heartbeats are stamped with)."""
    value = session.scalar(select(db_clock(session)))
    assert value is not None
    return value


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


@db_errors
def reset_unfinished_stages(session: Session, job_id: int) -> int:
    """Delete the stage rows of the job's unfinished candidates (they are evaluated again, afresh).

    Unfinished: ``pending`` candidates, and an original design whose baseline did not complete. Run
    by whoever takes the lease, before evaluating anything: the previous holder is fenced out, so
    its rows cannot come back. Returns the number of rows deleted.
    """
    unfinished = select(Candidate.id).where(
        Candidate.job_id == job_id,
        or_(
            Candidate.status == CandidateStatus.PENDING.value,
            (Candidate.origin == ORIGINAL_ORIGIN) & (Candidate.status != CandidateStatus.ACCEPTED.value),
        ),
    )
    result = session.execute(
        delete(StageRun)
        .where(StageRun.candidate_id.in_(unfinished))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


@db_errors
def claim_next_job(session: Session, worker: str, *, gpus: int = 0) -> Job | None:
    """Atomically move the oldest queued job to ``running`` under a new lease; None when none is queued.

    The UPDATE is conditional on the job still being queued and checked by its row count, so two
    workers never get the same job. The lease token is ``job.lease_token``. Commit soon after: on
    SQLite this holds the write lock. A worker that offers no GPU (``gpus=0``) skips jobs that need
    one (``needs_gpu``): they wait for a worker that has one.
    """
    is_postgres = session.get_bind().dialect.name == "postgresql"
    for _ in range(100):  # each lost race means another worker took a job
        stmt = (
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED.value, Job.cancel_requested.is_(False))
            .where(Job.needs_gpu.is_(False) if gpus <= 0 else true())
            .order_by(Job.id)
            .limit(1)
        )
        if is_postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        job_id = session.scalar(stmt)
        if job_id is None:
            return None
        now = db_clock(session)
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
            .values(
                status=JobStatus.RUNNING.value,
                worker=worker,
                lease_token=new_token(),
                claimed_at=now,
                heartbeat_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) == 1:
            reset_unfinished_stages(session, job_id)
            return session.get(Job, job_id, populate_existing=True)
    return None


@db_errors
def take_lease(session: Session, job_id: int, worker: str) -> str:
    """Make ``worker`` the holder of job ``job_id`` whatever its state (a resume); the new token.

    Whoever held it before is fenced out from its next write on.
    """
    token = new_token()
    now = db_clock(session)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status=JobStatus.RUNNING.value,
            worker=worker,
            lease_token=token,
            claimed_at=now,
            heartbeat_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        from evoforge.store.repository import get_job

        get_job(session, job_id)  # raises NotFoundError naming the id
    reset_unfinished_stages(session, job_id)
    return token


@db_errors
def renew_lease(session: Session, job_id: int, token: str) -> bool:
    """Stamp the heartbeat if ``token`` still holds the job (and lock its row until commit)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_token == token)
        .values(heartbeat_at=db_clock(session))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def check_lease(session: Session, job_id: int, token: str) -> None:
    """The fence: ``renew_lease`` or ``LeaseLostError``."""
    if not renew_lease(session, job_id, token):
        raise LeaseLostError(f"job {job_id}: this worker's lease was lost", hint=LEASE_LOST_HINT)


@db_errors
def heartbeat(session: Session, job_id: int, worker: str) -> bool:
    """Record that ``worker`` is alive on the job; False if the job is no longer its own."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status == JobStatus.RUNNING.value)
        .values(heartbeat_at=db_clock(session))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


@db_errors
def requeue_stale_jobs(session: Session, stale_after_s: float) -> list[int]:
    """Running jobs silent for ``stale_after_s`` (database clock): back to ``queued``, or ``cancelled``
    when a cancel was asked for; their lease token is cleared. Returns the ids moved.

    On PostgreSQL a job whose row is locked — its holder is inside a write right now — is skipped.
    """
    cutoff = db_clock(session, -stale_after_s)
    stmt = select(Job.id, Job.cancel_requested).where(
        Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < cutoff
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    moved: list[int] = []
    for job_id, cancel in session.execute(stmt).all():
        status = JobStatus.CANCELLED if cancel else JobStatus.QUEUED
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < cutoff)
            .values(status=status.value, worker=None, lease_token=None, updated_at=db_clock(session))
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) == 1:
            moved.append(job_id)
    return moved


@db_errors
def fail_if_held(session: Session, job_id: int, token: str, error: str) -> bool:
    """End the job ``failed`` with ``error`` if ``token`` still holds it and it has not ended."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.lease_token == token,
            Job.status.in_((JobStatus.RUNNING.value, JobStatus.QUEUED.value)),
        )
        .values(status=JobStatus.FAILED.value, error=error, updated_at=db_clock(session))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1
