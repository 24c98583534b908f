"""The cross-job verdict cache: entries keyed by (target fingerprint, hash kind, hash, verdict context).

The verdict context (:class:`~evoforge.domain.VerdictContext`) lists every setting a verdict depends
on; the key holds its digest and the entry keeps the context itself. A lookup only finds an entry made
under an equal context; whether a found verdict may answer a job is still the caller's check (the
search loop re-checks it against the job's requirements). Functions take a ``Session`` first; the
caller commits. ``put_cache`` never fails on a duplicate key, also when two processes race to write
the same entry.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evoforge.domain import VerdictContext
from evoforge.errors import BadInputError, StoreError
from evoforge.store._convert import DB_HINT, db_errors, jsonable
from evoforge.store.models import CACHE_HASH_KINDS, CacheEntry, utcnow

CacheHashKind = Literal["source", "functional", "implementation", "canonical", "quick"]
_CACHE_KEY = ("target_fingerprint", "hash_kind", "hash", "context_digest")


def _check_hash_kind(hash_kind: str) -> None:
    if hash_kind not in CACHE_HASH_KINDS:
        raise BadInputError(f"unknown cache hash kind {hash_kind!r}", hint=f"use one of: {CACHE_HASH_KINDS}")


@db_errors
def find_cache(
    session: Session,
    *,
    target_fingerprint: str,
    hash_kind: CacheHashKind,
    hash: str,
    context: VerdictContext,
) -> CacheEntry | None:
    _check_hash_kind(hash_kind)
    stmt = select(CacheEntry).where(
        CacheEntry.target_fingerprint == target_fingerprint,
        CacheEntry.hash_kind == hash_kind,
        CacheEntry.hash == hash,
        CacheEntry.context_digest == context.digest(),
    )
    return session.scalars(stmt).one_or_none()


@db_errors
def put_cache(
    session: Session,
    *,
    target_fingerprint: str,
    hash_kind: CacheHashKind,
    hash: str,
    context: VerdictContext,
    verdict: dict[str, Any],
) -> CacheEntry:
    """Insert a cache entry unless its key exists (the first verdict stays); returns the stored entry.

    Race-free: ``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL, an IntegrityError
    caught inside a SAVEPOINT elsewhere.
    """
    _check_hash_kind(hash_kind)
    key = {
        "target_fingerprint": target_fingerprint,
        "hash_kind": hash_kind,
        "hash": hash,
        "context_digest": context.digest(),
    }
    values = {**key, "context": context.to_dict(), "verdict": jsonable(verdict), "created_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        session.execute(insert(CacheEntry).values(**values).on_conflict_do_nothing(index_elements=_CACHE_KEY))
    else:
        try:
            with session.begin_nested():
                session.add(CacheEntry(**values))
        except IntegrityError:
            pass
    entry = find_cache(
        session,
        target_fingerprint=target_fingerprint,
        hash_kind=hash_kind,
        hash=hash,
        context=context,
    )
    if entry is None:  # pragma: no cover - the row was just inserted or already there
        raise StoreError("a cache entry vanished right after it was written", hint=DB_HINT)
    return entry
