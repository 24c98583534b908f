"""Leases, fencing, stage rows of a re-run, NUL bytes and learned entries (issue 11, items 5–9),
on SQLite and — with EVOFORGE_TEST_POSTGRES_URL — PostgreSQL."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from evoforge.domain import Metrics, StageResult, Verdict
from evoforge.errors import LeaseLostError
from evoforge.store import Store, leases
from evoforge.store import repository as repo
from evoforge.store.learned import list_learned, put_learned
from evoforge.store.models import Job, LlmCall, StageRun

NUL = "\x00"


def _job(store: Store) -> int:
    with store.transaction() as session:
        return repo.create_job(
            session, kind="rtl", target_name="t", target_fingerprint="fp", target_source="module t; endmodule"
        ).id


def _age_heartbeat(store: Store, job_id: int, seconds: float) -> None:
    """Set the heartbeat ``seconds`` into the past of the database's clock (a paused worker)."""
    with store.transaction() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(heartbeat_at=leases.db_clock(session, -seconds))
        )


def test_a_worker_paused_past_its_lease_cannot_write(any_store: Store) -> None:
    store = any_store
    job_id = _job(store)
    with store.transaction() as session:
        first = repo.claim_next_job(session, "w1")
        assert first is not None and first.lease_token
        token1 = first.lease_token
    w1 = store.fenced(lambda s: leases.check_lease(s, job_id, token1))
    with w1.transaction() as session:  # while it holds the lease, its writes pass
        repo.set_job_best(session, repo.get_job(session, job_id), None)
    _age_heartbeat(store, job_id, 120)  # SIGSTOP past the stale timeout
    with store.transaction() as session:
        assert leases.requeue_stale_jobs(session, stale_after_s=60) == [job_id]
        second = repo.claim_next_job(session, "w2")
        assert second is not None and second.id == job_id and second.lease_token != token1
    # SIGCONT: the first worker goes on where it was — and every write of it is refused, unapplied
    with pytest.raises(LeaseLostError, match="lease was lost"), w1.transaction() as session:
        repo.set_job_status(session, repo.get_job(session, job_id), "succeeded")
    with pytest.raises(LeaseLostError), w1.transaction() as session:
        repo.record_stage(session, 1, StageResult("parse", True, 0.1))
    with store.transaction() as session:
        job = repo.get_job(session, job_id)
        assert job.status == "running" and job.worker == "w2"
        assert session.scalar(select(func.count()).select_from(StageRun)) == 0


def test_leases_run_on_the_database_clock(any_store: Store) -> None:
    store = any_store
    job_id = _job(store)
    with store.transaction() as session:
        repo.claim_next_job(session, "w")
    with store.transaction() as session:
        stamped = repo.get_job(session, job_id).heartbeat_at
        now = leases.database_time(session)
    assert stamped is not None and abs((now - stamped).total_seconds()) < 5
    _age_heartbeat(store, job_id, 30)
    with store.transaction() as session:
        assert leases.requeue_stale_jobs(session, stale_after_s=60) == []  # 30 s silent: still alive
        assert leases.requeue_stale_jobs(session, stale_after_s=10) == [job_id]
        job = repo.get_job(session, job_id)
        session.refresh(job)
        assert job.status == "queued" and job.lease_token is None


def test_the_stale_check_ignores_the_machines_clock(
    any_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose clock runs 10 minutes late neither loses nor steals a lease by it."""
    import evoforge.store.models as models

    store = any_store
    _job(store)
    with store.transaction() as session:
        repo.claim_next_job(session, "w")
    late = models.utcnow() - timedelta(minutes=10)
    monkeypatch.setattr(models, "utcnow", lambda: late)
    with store.transaction() as session:
        assert leases.requeue_stale_jobs(session, stale_after_s=60) == []


def test_a_new_lease_holder_starts_unfinished_candidates_afresh(any_store: Store) -> None:
    store = any_store
    job_id = _job(store)
    with store.transaction() as session:
        repo.claim_next_job(session, "w1")
        done = repo.add_candidate(session, job_id, source="a", origin="offline:x", source_hash="h1")
        pending = repo.add_candidate(session, job_id, source="b", origin="offline:y", source_hash="h2")
        for cid in (done.id, pending.id):
            repo.record_stage(session, cid, StageResult("static", True, 0.1))
            repo.record_stage(session, cid, StageResult("compile", True, 0.2))
        repo.finish_candidate(session, done, Verdict(True, "compile", "ok", Metrics(cells=3), ()))
        done_id, pending_id = done.id, pending.id
    _age_heartbeat(store, job_id, 120)  # kill -9 of the worker mid-candidate
    with store.transaction() as session:
        leases.requeue_stale_jobs(session, 60)
        assert repo.claim_next_job(session, "w2") is not None

    def names(cid: int) -> list[str]:
        with store.transaction() as session:
            return [r.name for r in repo.get_candidate(session, cid).stage_runs]

    assert names(done_id) == ["static", "compile"]  # finished: kept
    assert names(pending_id) == []  # unfinished: its rows go, the re-run writes one set
    with store.transaction() as session:  # a resume (take_lease) does the same
        repo.record_stage(session, pending_id, StageResult("static", True, 0.1))
        leases.take_lease(session, job_id, "run")
    assert names(pending_id) == []


def test_nul_bytes_are_cleaned_once_at_the_store_boundary(any_store: Store) -> None:
    """Issue 11 item 9: a NUL in an attacker's message failed the job on PostgreSQL."""
    store = any_store
    job_id = _job(store)
    with store.transaction() as session:
        cand = repo.add_candidate(
            session, job_id, source=f"module m{NUL};", origin=f"llm:{NUL}", source_hash="h", note=NUL
        )
        repo.record_stage(
            session,
            cand.id,
            StageResult(
                "parse", False, 0.1, detail=f"bad{NUL}", log=f"log{NUL}", data={f"k{NUL}": [f"v{NUL}", 1.5]}
            ),
        )
        verdict = Verdict(False, "parse", f"reason {NUL} here", Metrics(), ())
        repo.finish_candidate(session, cand, verdict)
        repo.record_llm_call(session, job_id=job_id, role="coder", model="m", prompt=NUL, reply=f"r{NUL}")
        repo.set_job_status(session, repo.get_job(session, job_id), "failed", error=f"boom{NUL}")
        cid = cand.id
    with store.transaction() as session:
        cand = repo.get_candidate(session, cid)
        stage = cand.stage_runs[0]
        call = session.scalars(select(LlmCall)).one()
        texts = [cand.source, cand.origin, cand.note, cand.reason, stage.detail, stage.log_excerpt]
        texts += [call.prompt, call.reply or "", repo.get_job(session, job_id).error or ""]
        assert all(NUL not in t and "\\x00" in t for t in texts), texts
        assert stage.data == {"k\\x00": ["v\\x00", 1.5]}


def test_learned_entries_are_shared_rows_and_a_bad_one_is_skipped(
    any_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    from evoforge.kb import make_learned
    from evoforge.search.learned_store import learned_entries, open_knowledge, save_learned

    store = any_store
    entry = make_learned(
        domain="rtl", target="m", before="assign y = a * 2;", after="assign y = a << 1;", origin="offline:x"
    )
    assert save_learned(store, entry) and not save_learned(store, entry)  # one row per rewrite
    with store.transaction() as session:
        assert put_learned(session, "learned-bad", domain="rtl", data={"id": "learned-bad"})
        assert [i for i, _ in list_learned(session)] == [entry.id, "learned-bad"]
    with caplog.at_level(logging.WARNING):
        assert [e.id for e in learned_entries(store)] == [entry.id]
    assert "learned-bad (store) skipped" in caplog.text
    kb = open_knowledge(store)  # what a job starts with: the good entry, no failure
    assert [e.id for e in kb.learned] == [entry.id]
    other = make_learned(domain="rtl", target="n", before="a", after="b", origin="offline:y")
    assert kb.add_learned(other)
    assert {e.id for e in learned_entries(store)} == {entry.id, other.id}
