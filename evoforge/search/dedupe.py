"""Drafts met before: the memory that spares a repeated draft every check and every evaluation.

One :class:`DraftRegistry` per job run knows each draft by its source hash and its canonical hash
(``search/canonical.py``: a renaming of internal signals is the same draft), in this job and — through
the cross-job cache, keyed by (target, hash, verdict context) — in every earlier job of the same
target. It serves three callers:

- the proposer, before any check: ``claim(source)`` is False for a draft met before (also earlier in
  the same round, while it is not a candidate yet), which the proposer then hands over unchecked;
- the proposer's quick check: ``quick_checker(check)`` runs parse/lint/interface (or static/compile)
  once per source and stores the result (in memory and as a ``quick`` cache entry for later jobs);
- the loop, when it records a draft: ``resolve(session, source)`` says whether it repeats a candidate
  (its id and, once finished, its verdict), repeats a draft whose quick check failed, or is new.

The cache is reached only through ``_find``/``_put`` below, keyed by the verdict context's digest; a
verdict found across jobs is re-checked against the job's own requirements before it answers a draft
(``cache_policy.reuse_refusal``: the required assurance, the user's test, the machine).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from evoforge.domain import (
    CandidateStatus,
    Metrics,
    StageResult,
    Target,
    Verdict,
    VerdictContext,
    source_hash,
)
from evoforge.search.cache_policy import reuse_refusal
from evoforge.search.canonical import canonical_hash
from evoforge.search.duplicates import DraftKey, Resolution, finished_verdict
from evoforge.store import repository
from evoforge.store.cache import CacheHashKind
from evoforge.store.engine import Store
from evoforge.store.models import Candidate, Job

log = logging.getLogger(__name__)

Checker = Callable[[str], StageResult]


@dataclass
class _Known:
    candidate_id: int | None = None
    quick: StageResult | None = None


class DraftRegistry:
    """The drafts of one job (and the cross-job cache), by source and canonical hash. Thread-safe."""

    def __init__(self, store: Store, target: Target, *, job_id: int, context: VerdictContext) -> None:
        self.store = store
        self.target = target
        self.job_id = job_id
        self.context = context  # every setting a verdict depends on (part of every cache key)
        self._lock = threading.Lock()
        self._keys: dict[str, DraftKey] = {}
        self._known: dict[str, _Known] = {}  # by "s:"+source hash and "c:"+canonical hash
        self._claimed: set[str] = set()
        self.quick_runs = 0
        self.quick_reused = 0
        self.repeats = 0

    # -- hashes ----------------------------------------------------------------------------------

    def key(self, source: str) -> DraftKey:
        digest = source_hash(source, self.target.kind)
        with self._lock:
            known = self._keys.get(digest)
        if known is not None:
            return known
        try:
            canonical = canonical_hash(source, self.target)
        except Exception:  # a canonicaliser bug must not cost the draft: the source hash still holds
            log.exception("canonical hash failed; keeping the source hash only")
            canonical = None
        key = DraftKey(digest, canonical)
        with self._lock:
            self._keys[digest] = key
        return key

    @staticmethod
    def _slots(key: DraftKey) -> list[str]:
        return [f"s:{key.source_hash}"] + ([f"c:{key.canonical_hash}"] if key.canonical_hash else [])

    def load(self) -> None:
        """Learn the job's existing candidates (a resumed job, or the original design)."""
        with self.store.transaction() as session:
            rows = session.execute(
                select(Candidate.id, Candidate.source, Candidate.canonical_hash, Candidate.duplicate_of)
                .where(Candidate.job_id == self.job_id)
                .order_by(Candidate.id)
            ).all()
        for cid, source, canonical, duplicate_of in rows:
            if duplicate_of is None:
                digest = source_hash(source, self.target.kind)
                key = DraftKey(digest, canonical) if canonical else self.key(source)
                with self._lock:
                    self._keys.setdefault(digest, key)
                self.note_candidate(cid, key)

    # -- the proposer's side ---------------------------------------------------------------------

    def claim(self, source: str) -> bool:
        """True the first time this draft (or a renaming of it) is met; False for a repeat."""
        slots = self._slots(self.key(source))
        with self._lock:
            if any(s in self._claimed or s in self._known for s in slots):
                self.repeats += 1
                return False
            self._claimed.update(slots)
            return True

    def quick_checker(self, check: Checker) -> Checker:
        """``check`` run once per source: results are kept (memory and cache) and handed back."""

        def cached(source: str) -> StageResult:
            key = self.key(source)
            with self._lock:
                known = self._known.get(f"s:{key.source_hash}")
                if known is not None and known.quick is not None:
                    self.quick_reused += 1
                    return known.quick
            stored = self._stored_quick(key)
            if stored is not None:
                with self._lock:
                    self.quick_reused += 1
                    self._known.setdefault(f"s:{key.source_hash}", _Known()).quick = stored
                return stored
            result = check(source)
            with self._lock:
                self.quick_runs += 1
            if not result.error:
                with self._lock:
                    self._known.setdefault(f"s:{key.source_hash}", _Known()).quick = result
                self._store_quick(key, result)
            return result

        return cached

    def _stored_quick(self, key: DraftKey) -> StageResult | None:
        with self.store.transaction() as session:
            cached = _find(session, self.target.fingerprint, "quick", key.source_hash, self.context)
            found = cached[0] if cached is not None else None
        if found is None:
            return None
        stage = found.get("stage") or {}
        return StageResult(
            name=stage.get("name", "quick"),
            ok=bool(stage.get("ok")),
            seconds=0.0,
            metrics=Metrics.from_dict(stage.get("metrics")),
            detail=stage.get("detail", ""),
            data=stage.get("data") or {},
            cached=True,
        )

    def _store_quick(self, key: DraftKey, result: StageResult) -> None:
        stage = {
            "name": result.name,
            "ok": result.ok,
            "seconds": result.seconds,
            "detail": result.detail,
            "metrics": result.metrics.to_dict(),
            "data": result.data,
        }
        try:
            with self.store.transaction() as session:
                _put(
                    session, self.target.fingerprint, "quick", key.source_hash, self.context, {"stage": stage}
                )
        except Exception:  # storing is a saving for later jobs, never a reason to lose the draft
            log.exception("could not store a quick-check result")

    # -- the loop's side -------------------------------------------------------------------------

    def resolve(self, session: Session, source: str) -> Resolution:
        """What ``source`` repeats, if anything: a candidate (this job, then earlier jobs), a failed
        quick check, or nothing (``new``)."""
        from evoforge.search.records import verdict_from_dict

        key = self.key(source)
        with self._lock:
            hits = [(slot, self._known.get(slot)) for slot in self._slots(key)]
        for slot, known in hits:
            if known is not None and known.candidate_id is not None:
                by: Literal["source", "canonical"] = "source" if slot.startswith("s:") else "canonical"
                original = session.get(Candidate, known.candidate_id)
                verdict = finished_verdict(session, original) if original is not None else None
                return Resolution("duplicate", key, by, known.candidate_id, verdict)
        cross = self._cross_job(session, key)
        if cross is not None:
            by_kind, data = cross
            original_id = data.get("candidate_id") or self._earlier_candidate(session, key, by_kind)
            return Resolution("duplicate", key, by_kind, original_id, verdict_from_dict(data))
        quick = hits[0][1].quick if hits and hits[0][1] is not None else None
        if quick is not None and not quick.ok:
            return Resolution("quick", key, "quick", quick=quick)
        return Resolution("new", key)

    def _cross_job(
        self, session: Session, key: DraftKey
    ) -> tuple[Literal["source", "canonical"], dict[str, Any]] | None:
        fp = self.target.fingerprint
        found = self._reusable(_find(session, fp, "source", key.source_hash, self.context))
        if found is not None:
            return "source", found
        if key.canonical_hash:
            found = self._reusable(_find(session, fp, "canonical", key.canonical_hash, self.context))
            if found is not None:
                return "canonical", found
        return None

    def _reusable(self, found: tuple[dict[str, Any], dict[str, Any] | None] | None) -> dict[str, Any] | None:
        """A cached verdict that may answer this job (re-checked against its requirements), else None."""
        from evoforge.search.records import verdict_from_dict

        if found is None:
            return None
        data, entry_context = found
        refusal = reuse_refusal(verdict_from_dict(data), entry_context, self.context)
        if refusal is not None:
            log.info("cached verdict not reused: %s", refusal)
            return None
        return data

    def _earlier_candidate(self, session: Session, key: DraftKey, by: str) -> int | None:
        column = Candidate.source_hash if by == "source" else Candidate.canonical_hash
        value = key.source_hash if by == "source" else key.canonical_hash
        return session.scalar(
            select(Candidate.id)
            .join(Job, Job.id == Candidate.job_id)
            .where(
                Job.target_fingerprint == self.target.fingerprint,
                column == value,
                Candidate.duplicate_of.is_(None),
                Candidate.status != CandidateStatus.PENDING.value,
            )
            .order_by(Candidate.id)
            .limit(1)
        )

    def note_candidate(self, candidate_id: int, key: DraftKey) -> None:
        """``candidate_id`` is now the draft with ``key`` (later repeats link to it)."""
        with self._lock:
            for slot in self._slots(key):
                known = self._known.setdefault(slot, _Known())
                if known.candidate_id is None:
                    known.candidate_id = candidate_id
                self._claimed.add(slot)

    def remember_verdict(self, session: Session, candidate_id: int, key: DraftKey, verdict: Verdict) -> None:
        """Store a finished candidate's verdict under its canonical hash, for later jobs."""
        from evoforge.search.records import verdict_to_dict

        if verdict.error or not key.canonical_hash:
            return
        _put(
            session,
            self.target.fingerprint,
            "canonical",
            key.canonical_hash,
            self.context,
            {**verdict_to_dict(verdict), "candidate_id": candidate_id},
        )


# -- the cache, through two small functions (keyed by the verdict context) --------------------------


def _find(
    session: Session, target_fp: str, kind: CacheHashKind, digest: str, context: VerdictContext
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """(the stored value, the context it was stored under) or None."""
    entry = repository.find_cache(
        session, target_fingerprint=target_fp, hash_kind=kind, hash=digest, context=context
    )
    return (dict(entry.verdict), entry.context) if entry is not None else None


def _put(
    session: Session,
    target_fp: str,
    kind: CacheHashKind,
    digest: str,
    context: VerdictContext,
    value: dict[str, Any],
) -> None:
    repository.put_cache(
        session,
        target_fingerprint=target_fp,
        hash_kind=kind,
        hash=digest,
        context=context,
        verdict=value,
    )
