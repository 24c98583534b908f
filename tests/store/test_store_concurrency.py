"""Several workers on one SQLite file: each job claimed once, no "database is locked"."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState

from evoforge.domain import Metrics, StageResult, TargetKind, VerdictContext
from evoforge.store import Store, open_store
from evoforge.store import repository as repo

CONTEXT_V1 = VerdictContext(TargetKind.RTL, (("yosys", "v1"),), ())

JOBS = 24


def _queue_jobs(store: Store, n: int) -> list[int]:
    with store.transaction() as session:
        return [
            repo.create_job(
                session,
                kind="rtl",
                target_name=f"t{i}",
                target_fingerprint="fp",
                target_source="module t; endmodule",
            ).id
            for i in range(n)
        ]


def _work(url: str, worker: str) -> list[int]:
    """Claim jobs until none is left; for each write candidates, stage runs and a shared cache entry."""
    claimed: list[int] = []
    with open_store(url) as store:
        while True:
            with store.transaction() as session:
                job = repo.claim_next_job(session, worker)
                if job is None:
                    return claimed
                claimed.append(job.id)
            with store.transaction() as session:
                for i in range(3):
                    cand = repo.add_candidate(
                        session, job.id, source=f"s{i}", origin="user", source_hash=f"h{i}"
                    )
                    repo.record_stage(
                        session, cand.id, StageResult("parse", True, 0.0, metrics=Metrics(cells=i))
                    )
                repo.put_cache(
                    session,
                    target_fingerprint="fp",
                    hash_kind="source",
                    hash="shared",  # every worker races to write the same key
                    context=CONTEXT_V1,
                    verdict={"by": worker},
                )
                repo.bump_job_counts(session, job, proposed=3, evaluated=3)
                repo.set_job_status(session, job, "succeeded")


def _check(store: Store, job_ids: list[int], claims: dict[str, list[int]]) -> None:
    everything = Counter(j for ids in claims.values() for j in ids)
    assert sorted(everything) == sorted(job_ids)
    assert set(everything.values()) == {1}, f"a job was claimed twice: {everything}"
    with store.transaction() as session:
        for job_id in job_ids:
            job = repo.get_job(session, job_id)
            assert (job.status, job.proposed, job.evaluated) == ("succeeded", 3, 3)
            assert job.worker in claims and job_id in claims[job.worker]
            assert repo.count_candidates(session, job_id)["pending"] == 3
        hit = repo.find_cache(
            session,
            target_fingerprint="fp",
            hash_kind="source",
            hash="shared",
            context=CONTEXT_V1,
        )
        assert hit is not None and hit.verdict["by"] in claims


def test_claim_next_job_from_two_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    with open_store(url) as store:
        job_ids = _queue_jobs(store, JOBS)
        claims: dict[str, list[int]] = {}
        errors: list[BaseException] = []

        def run(worker: str) -> None:
            try:
                claims[worker] = _work(url, worker)
            except BaseException as exc:  # re-raised in the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(f"thread-{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        _check(store, job_ids, claims)


def _work_in_child(url: str, worker: str, results: multiprocessing.Queue) -> None:
    try:
        results.put((worker, _work(url, worker)))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((worker, repr(exc)))


def test_claim_next_job_from_two_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'procs.db'}"
    with open_store(url) as store:
        job_ids = _queue_jobs(store, JOBS)
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        procs = [ctx.Process(target=_work_in_child, args=(url, f"proc-{i}", results)) for i in range(2)]
        for proc in procs:
            proc.start()
        outcomes = dict(results.get(timeout=60) for _ in procs)
        for proc in procs:
            proc.join(10)
        failures = {w: o for w, o in outcomes.items() if not isinstance(o, list)}
        assert failures == {}
        _check(store, job_ids, outcomes)


def test_a_lost_race_moves_on_to_the_next_job(tmp_path: Path) -> None:
    """Another worker takes the chosen job between this worker's SELECT and UPDATE."""
    with open_store(f"sqlite:///{tmp_path / 'race.db'}") as store:
        first, second = _queue_jobs(store, 2)
        stolen: list[int] = []
        with store.sessions() as slow:

            @event.listens_for(slow, "do_orm_execute")
            def _steal(state: ORMExecuteState) -> None:
                if state.is_update and not stolen:
                    with store.transaction() as fast:
                        job = repo.claim_next_job(fast, "fast")
                        stolen.append(job.id if job else -1)

            job = repo.claim_next_job(slow, "slow")
            slow.commit()
        assert stolen == [first]
        assert job is not None and (job.id, job.worker) == (second, "slow")
        with store.transaction() as session:
            assert repo.get_job(session, first).worker == "fast"
