"""Beyond one machine (issue 14), the store's part: blobs, the implementation results table,
evaluation attempts and GPU-aware claims, on SQLite and — with EVOFORGE_TEST_POSTGRES_URL — PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from evoforge.domain import Metrics, StageResult
from evoforge.errors import BadInputError, LeaseLostError, NotFoundError, StoreError
from evoforge.store import Store, attempts, leases
from evoforge.store import repository as repo
from evoforge.store.blobs import SqlBlobStore, materialise
from evoforge.store.implementations import find_implementation_results, put_implementation_results
from evoforge.store.models import Blob, Job, StageRun


def _job(store: Store, *, needs_gpu: bool = False) -> int:
    with store.transaction() as session:
        job = repo.create_job(
            session, kind="rtl", target_name="t", target_fingerprint="fp", target_source="module t; endmodule"
        )
        job.needs_gpu = needs_gpu
        return job.id


def _candidate(store: Store, job_id: int) -> int:
    with store.transaction() as session:
        return repo.add_candidate(
            session, job_id, source="module t; endmodule", origin="test", source_hash="h"
        ).id


def test_blobs_are_content_addressed_idempotent_and_checked(any_store: Store, tmp_path: Path) -> None:
    blobs = SqlBlobStore(any_store)
    data = b"library (x) {}\n\x00\xff binary is fine"
    digest = blobs.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert blobs.put(data) == digest  # a second put of the same bytes is a no-op
    assert blobs.get(digest) == data and blobs.has(digest)
    with any_store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Blob)) == 1
    missing = hashlib.sha256(b"other").hexdigest()
    assert not blobs.has(missing)
    with pytest.raises(NotFoundError, match="not in the store"):
        blobs.get(missing)
    with pytest.raises(BadInputError, match="not a blob digest"):
        blobs.get("../../etc/passwd")
    # bytes changed behind the store's back are refused, not handed on
    with any_store.transaction() as session:
        session.execute(update(Blob).where(Blob.digest == digest).values(data=b"tampered"))
    with pytest.raises(StoreError, match="does not match its digest"):
        blobs.get(digest)


def test_materialise_keeps_the_name_and_refetches_a_tampered_copy(any_store: Store, tmp_path: Path) -> None:
    blobs = SqlBlobStore(any_store)
    digest = blobs.put(b"import cocotb\n")
    path = materialise(blobs, digest, tmp_path, "test_mine.py")
    assert path.name == "test_mine.py" and path.read_bytes() == b"import cocotb\n"
    path.write_bytes(b"import os; os.system('evil')\n")  # another process scribbled on the cache
    assert materialise(blobs, digest, tmp_path, "test_mine.py").read_bytes() == b"import cocotb\n"
    for bad in ("../escape.py", "a/b.py", "..", ""):
        with pytest.raises(BadInputError):
            materialise(blobs, digest, tmp_path, bad)


def test_implementation_results_are_shared_and_the_first_stays(any_store: Store) -> None:
    key = {"target_fingerprint": "fp", "implementation_hash": "impl1", "context_digest": "c" * 64}
    first = StageResult(
        "timing", True, 1.5, Metrics(delay_ns=2.0), detail="slack 8 ns", data={"path": ["a", "b"]}
    )
    second = StageResult("timing", True, 9.0, Metrics(delay_ns=5.0), detail="another measurement")
    with any_store.transaction() as session:
        put_implementation_results(session, results={"timing": first}, **key)
    with any_store.transaction() as session:  # a second worker races to store the same implementation
        put_implementation_results(session, results={"timing": second}, **key)
    with any_store.transaction() as session:
        found = find_implementation_results(session, **key)
        other_context = find_implementation_results(session, **{**key, "context_digest": "d" * 64})
    assert found["timing"].metrics.delay_ns == 2.0 and found["timing"].data == {"path": ["a", "b"]}
    assert other_context == {}  # a result under another verdict context never answers


def test_a_retried_attempt_discards_the_dead_attempts_rows_and_fences_it_out(any_store: Store) -> None:
    job_id = _job(any_store)
    cid = _candidate(any_store, job_id)
    with any_store.transaction() as session:
        dead = attempts.begin_attempt(session, cid, "host:1")
    assert dead is not None
    dead_fence = any_store.fenced(lambda s: attempts.check_attempt(s, cid, dead))
    with dead_fence.transaction() as session:
        repo.record_stage(session, cid, StageResult("parse", True, 0.1))
        repo.record_stage(session, cid, StageResult("lint", True, 0.1))
    with any_store.transaction() as session:  # the worker died; the retry begins
        retry = attempts.begin_attempt(session, cid, "host:2")
    assert retry is not None and retry != dead
    with any_store.transaction() as session:
        assert session.scalar(select(func.count()).where(StageRun.candidate_id == cid)) == 0
        candidate = repo.get_candidate(session, cid)
        assert candidate.attempts == 2 and candidate.evaluated_by == "host:2"
    with pytest.raises(LeaseLostError, match="superseded"), dead_fence.transaction() as session:
        repo.record_stage(session, cid, StageResult("simulate", True, 0.1))  # the presumed-dead one wakes
    retry_fence = any_store.fenced(lambda s: attempts.check_attempt(s, cid, retry))
    with retry_fence.transaction() as session:
        repo.record_stage(session, cid, StageResult("parse", True, 0.1))
        repo.get_candidate(session, cid).status = "accepted"
    with any_store.transaction() as session:
        assert [r.name for r in session.scalars(select(StageRun).where(StageRun.candidate_id == cid))] == [
            "parse"
        ]
        assert attempts.begin_attempt(session, cid, "host:3") is None  # finished: not evaluated again
    with pytest.raises(LeaseLostError), retry_fence.transaction() as session:  # nor written after it ended
        repo.record_stage(session, cid, StageResult("lint", True, 0.1))
    with pytest.raises(NotFoundError), any_store.transaction() as session:
        attempts.begin_attempt(session, 999_999, "host:4")


def test_a_worker_without_a_gpu_leaves_gpu_jobs_queued(any_store: Store) -> None:
    gpu_job = _job(any_store, needs_gpu=True)
    cpu_job = _job(any_store)
    with any_store.transaction() as session:
        claimed = repo.claim_next_job(session, "cpu-only", gpus=0)
        assert claimed is not None and claimed.id == cpu_job  # the older GPU job is skipped
    with any_store.transaction() as session:
        assert repo.claim_next_job(session, "cpu-only", gpus=0) is None
        assert repo.get_job(session, gpu_job).status == "queued"
    with any_store.transaction() as session:
        claimed = repo.claim_next_job(session, "gpu-worker", gpus=1)
        assert claimed is not None and claimed.id == gpu_job and claimed.worker == "gpu-worker"
    with any_store.transaction() as session:
        assert session.scalar(select(Job.needs_gpu).where(Job.id == gpu_job)) is True
        assert leases.requeue_stale_jobs(session, stale_after_s=3600) == []
