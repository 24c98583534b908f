"""Candidate evaluation as a task: ``evaluate(target, verdict context, source, slot)``.

The task needs nothing from the process that submits it. Its arguments are values: a reference to
the target (the digest of its evaluation spec in the blob store, ``specs.py``), the verdict context
the job runs under, the candidate's source, and the candidate's *slot* (database URL, job, candidate,
the job's lease token). Wherever it runs — a thread of the submitting process, a Ray worker on
another machine — it opens the store, rebuilds the verifier from the spec (once per process), checks
that this machine's verifier has the job's verdict context, and then writes through the store:

1. ``begin_attempt``: a fresh attempt token on the candidate, earlier attempts' stage rows deleted
   (a candidate already finished is not evaluated again);
2. each stage row as the stage ends, fenced by the job's lease and the attempt token;
3. the verdict, in the same fence (``records.finish_candidate``: status, hashes, the cache).

So a retried task (its Ray worker killed mid-candidate) leaves one set of stage rows, and a driver
killed after a task finished loses nothing: ``evoforge run --resume`` finds the candidate finished.
A process keeps what it built (stores by URL, verifiers by spec and context) for the next task; the
local executor registers the verifier and store it already has instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from evoforge.config import Settings
from evoforge.domain import Metrics, StageResult, TargetKind, Verdict, VerdictContext
from evoforge.errors import LeaseLostError, VerifierError
from evoforge.search import records
from evoforge.store import attempts, leases
from evoforge.store.blobs import SqlBlobStore
from evoforge.store.engine import Store, open_store

log = logging.getLogger(__name__)

#: verifiers a process keeps (one per job it has evaluated for, the most recent ones)
MAX_VERIFIERS = 8


# -- the verdict context, in one place -------------------------------------------------------------


def context_digest(context: VerdictContext) -> str:
    """The digest of a verdict context (what cache keys carry)."""
    return context.digest()


def own_context(verifier: Any) -> VerdictContext:
    """The verdict context this process's ``verifier`` judges under."""
    context: VerdictContext = verifier.verdict_context()
    return context


def _flat(context: VerdictContext) -> dict[str, str]:
    """The context as ``{what: value}``, one entry per tool, setting and field (for comparing)."""
    flat = {f"tool {name}": version for name, version in context.tools}
    flat |= {f"setting {name}": value for name, value in context.settings}
    for field in ("kind", "requirement", "user_test_sha256", "machine"):
        flat[field.replace("_", " ")] = str(context.to_dict()[field])
    return flat


def context_difference(job: VerdictContext, own: VerdictContext) -> str | None:
    """What differs between the job's context and this worker's (None: it may judge the job)."""
    if own == job:
        return None
    theirs, mine = _flat(job), _flat(own)
    diff = [
        f"{name}: {mine.get(name, 'absent')!r} here, {theirs.get(name, 'absent')!r} in the job"
        for name in sorted(theirs.keys() | mine.keys())
        if theirs.get(name) != mine.get(name)
    ]
    more = f" (and {len(diff) - 4} more)" if len(diff) > 4 else ""
    return (
        "; ".join(diff[:4]) + more
        if diff
        else f"digest {own.digest()[:12]} here, {job.digest()[:12]} in the job"
    )


@dataclass(frozen=True)
class TargetRef:
    """A job's target as a task sees it: its evaluation spec by digest, and what placement needs."""

    spec_digest: str
    fingerprint: str
    kind: TargetKind
    needs_gpu: bool = False


@dataclass(frozen=True)
class CandidateSlot:
    """Where a task writes: the store (URL), the job and its lease token, the candidate."""

    database_url: str
    job_id: int
    candidate_id: int
    lease_token: str | None  # None: an unfenced run (tests, tools)


@dataclass(frozen=True)
class EvaluationOutcome:
    """What a task reports back (the verdict is already in the store)."""

    candidate_id: int
    verdict: Verdict | None  # None: the candidate had been finished before this attempt
    attempt: int
    worker: str
    seconds_total: float  # inside the task, from its start to its return
    seconds_cascade: float  # the verifier's own time (stages, their set-up and clean-up)
    seconds_store: float  # spent in store transactions


# -- what a process keeps between tasks ------------------------------------------------------------


class _Runtime:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stores: dict[str, Store] = {}
        self.verifiers: dict[tuple[str, str], Any] = {}
        self.built: set[tuple[str, str]] = set()  # keys of the verifiers built here (not registered)
        self.settings: Settings | None = None

    def store(self, url: str) -> Store:
        with self.lock:
            if url not in self.stores:
                self.stores[url] = open_store(url)
            return self.stores[url]

    def verifier(self, store: Store, target: TargetRef, context: VerdictContext) -> Any:
        key = (target.spec_digest, context_digest(context))
        with self.lock:
            known = self.verifiers.get(key)
            if known is not None:
                return known
            verifier = _build_verifier(store, target, self.settings or Settings())
            difference = context_difference(context, own_context(verifier))
            if difference is not None:
                _discard(verifier)
                raise VerifierError(
                    f"this worker ({worker_identity()}) would judge under another verdict context than the "
                    f"job's: {difference}",
                    hint="install the same tool versions on every worker (see docs/deploy.md)",
                )
            while len(self.verifiers) >= MAX_VERIFIERS:  # the oldest job's verifier goes first
                oldest = next(iter(self.verifiers))
                evicted = self.verifiers.pop(oldest)
                if oldest in self.built:  # one registered by a running job is that job's to clean
                    self.built.discard(oldest)
                    _discard(evicted)
            self.verifiers[key] = verifier
            self.built.add(key)
            return verifier


def _discard(verifier: Any) -> None:
    """Remove the scratch of a verifier this process built and no longer keeps (its job's files)."""
    work_root = getattr(verifier, "work_root", None)
    if work_root is not None:
        shutil.rmtree(work_root, ignore_errors=True)


_RUNTIME = _Runtime()


def register_store(url: str, store: Store) -> None:
    """Let tasks of this process use ``store`` for ``url`` (the local executor's own store)."""
    with _RUNTIME.lock:
        _RUNTIME.stores[url] = store


def register_verifier(target: TargetRef, context: VerdictContext, verifier: Any) -> None:
    """Let tasks of this process use a verifier already built for ``target`` under ``context``."""
    key = (target.spec_digest, context_digest(context))
    with _RUNTIME.lock:
        _RUNTIME.verifiers[key] = verifier
        _RUNTIME.built.discard(key)


def forget_verifier(target: TargetRef, context: VerdictContext) -> None:
    with _RUNTIME.lock:
        _RUNTIME.verifiers.pop((target.spec_digest, context_digest(context)), None)


def _build_verifier(store: Store, target: TargetRef, settings: Settings) -> Any:
    from evoforge.search.impl_cache import StoredImplementationCache
    from evoforge.search.jobs import make_verifier
    from evoforge.search.specs import load_evaluation_spec

    spec = load_evaluation_spec(SqlBlobStore(store), target.spec_digest, settings)
    verifier = make_verifier(spec.target, spec.settings)
    verifier.implementation_cache = StoredImplementationCache(
        store,
        target_fingerprint=target.fingerprint,
        context_digest=context_digest(own_context(verifier)),
    )
    return verifier


def worker_identity() -> str:
    """``host:pid``, with the Ray node when this process is a Ray worker."""
    where = f"{socket.gethostname()}:{os.getpid()}"
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        with contextlib.suppress(Exception):  # not inside a Ray worker after all
            where += f" ray-node {ray.get_runtime_context().get_node_id()[:12]}"
    return where


# -- the task --------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.store_s = 0.0

    @contextmanager
    def store(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.store_s += time.perf_counter() - start


def evaluate(
    target: TargetRef, context: VerdictContext, source: str, slot: CandidateSlot
) -> EvaluationOutcome:
    """Run the cascade on ``source`` for the candidate in ``slot`` and store what it finds.

    Raises ``LeaseLostError`` when the job's lease or this attempt was taken over (nothing more was
    written), and ``EvoforgeError`` when the task could not start (store, spec, verdict context);
    a verifier crash inside the cascade is stored as an ``error`` verdict, not raised.
    """
    started = time.perf_counter()
    clock = _Clock()
    worker = worker_identity()
    with clock.store():
        store = _RUNTIME.store(slot.database_url)
    verifier = _RUNTIME.verifier(store, target, context)
    job_fence = _job_fence(slot)
    with clock.store(), store.fenced(job_fence).transaction() as session:
        token = attempts.begin_attempt(session, slot.candidate_id, worker)
        count = _attempt_count(session, slot.candidate_id)
    if token is None:
        log.info("candidate %s was finished before; not evaluated again", slot.candidate_id)
        return EvaluationOutcome(
            slot.candidate_id, None, count, worker, time.perf_counter() - started, 0.0, 0.0
        )
    attempt_token = token

    def fence(session: Any) -> None:
        job_fence(session)
        attempts.check_attempt(session, slot.candidate_id, attempt_token)

    fenced = store.fenced(fence)

    def on_stage(result: StageResult) -> None:
        with clock.store(), fenced.transaction() as session:
            records.record_stage(session, slot.candidate_id, result)

    cascade_start = time.perf_counter()
    store_before = clock.store_s
    try:
        verdict = verifier.verify(source, on_stage=on_stage, label=f"c{slot.candidate_id}")
    except LeaseLostError:
        raise
    except Exception as exc:  # the verifier crashed outside a stage: the candidate is 'error'
        log.exception("evaluation of candidate %s crashed", slot.candidate_id)
        verdict = Verdict(False, "verify", f"verifier crashed: {exc}", Metrics(), (), error=True)
    cascade_s = time.perf_counter() - cascade_start - (clock.store_s - store_before)
    with clock.store(), fenced.transaction() as session:
        records.finish_candidate(
            session, slot.job_id, slot.candidate_id, verdict, target.fingerprint, own_context(verifier)
        )
    return EvaluationOutcome(
        slot.candidate_id, verdict, count, worker, time.perf_counter() - started, cascade_s, clock.store_s
    )


def _job_fence(slot: CandidateSlot) -> Callable[[Any], None]:
    token = slot.lease_token
    if token is None:
        return lambda session: None
    return lambda session: leases.check_lease(session, slot.job_id, token)


def _attempt_count(session: Any, candidate_id: int) -> int:
    from evoforge.store.models import Candidate

    candidate = session.get(Candidate, candidate_id, populate_existing=True)
    return int(candidate.attempts) if candidate is not None else 0
