"""Round trips through the store's repository functions on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import selectinload

from evoforge.domain import Assurance, Metrics, StageResult, TargetKind, Verdict, VerdictContext
from evoforge.errors import BadInputError, NotFoundError, StoreError
from evoforge.store import Candidate, Job, Store, open_store
from evoforge.store import repository as repo

CONTEXT_0_23 = VerdictContext(TargetKind.RTL, (("yosys", "0.23"),), ())
CONTEXT_0_40 = VerdictContext(TargetKind.RTL, (("yosys", "0.40"),), ())
CONTEXT_V = VerdictContext(TargetKind.RTL, (("yosys", "v"),), ())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


def _job(store: Store, **overrides: object) -> int:
    fields: dict[str, object] = {
        "kind": "rtl",
        "target_name": "adder",
        "target_fingerprint": "fp-adder",
        "target_source": "module adder(input a, output y); assign y = a; endmodule",
        "target_meta": {"top": "adder", "ports": [("a", "input", 1)], "clock": None},
        "options": {"budget": 4, "objectives": ["area_um2", "delay_ns"], "seed": 0},
    }
    fields.update(overrides)
    with store.transaction() as session:
        return repo.create_job(session, **fields).id  # type: ignore[arg-type]


def test_job_with_candidates_and_stage_runs_round_trips(store: Store) -> None:
    job_id = _job(store)
    big_log = "A" * 30_000 + "MIDDLE" + "Z" * 30_000
    with store.transaction() as session:
        job = repo.get_job(session, job_id)
        repo.set_job_baseline(session, job, Metrics(area_um2=100.0, cells=40, delay_ns=2.5))
        original = repo.add_candidate(session, job_id, source="orig", origin="original", source_hash="h0")
        child = repo.add_candidate(
            session,
            job_id,
            source="child",
            origin="offline:share",
            source_hash="h1",
            parent_id=original.id,
            note="shared the adder",
            generation=1,
        )
        parse = StageResult("parse", True, 0.01, log="ok\x00nul")
        synth = StageResult(
            "synthesis",
            True,
            0.5,
            metrics=Metrics(area_um2=50.0, cells=20),
            log=big_log,
            data={"path": ("a", "y"), "slack": float("nan"), "where": Path("/x")},
        )
        repo.record_stage(session, child.id, parse)
        repo.record_stage(session, child.id, synth)
        verdict = Verdict(
            accepted=True,
            stage="timing",
            reason="",
            metrics=Metrics(area_um2=50.0, cells=20, delay_ns=2.0),
            stages=(parse, synth),
            assurance=Assurance.bounded(20),
            functional_hash="f1",
            implementation_hash="i1",
        )
        repo.finish_candidate(session, child, verdict)
        repo.set_job_best(session, job, child.id)
        repo.bump_job_counts(session, job, proposed=2, evaluated=1, cache_hits=1)
        repo.bump_job_counts(session, job, evaluated=1, rejected=1)
        repo.set_job_status(session, job, "succeeded")
        child_id = child.id

    with store.transaction() as session:  # a fresh session reads what the database holds
        loaded = session.get(
            Job, job_id, options=[selectinload(Job.candidates).selectinload(Candidate.stage_runs)]
        )
        assert loaded is not None
        job = loaded
        assert job.status == "succeeded" and job.best_candidate_id == child_id
        assert job.baseline_metrics == {"area_um2": 100.0, "cells": 40, "delay_ns": 2.5}
        assert job.target_meta["ports"] == [["a", "input", 1]]
        assert job.options["objectives"] == ["area_um2", "delay_ns"]
        assert (job.proposed, job.evaluated, job.cache_hits, job.rejected) == (2, 2, 1, 1)
        assert job.created_at.tzinfo is UTC and job.updated_at >= job.created_at
        assert [c.origin for c in job.candidates] == ["original", "offline:share"]
        child = job.candidates[1]
        assert child.parent_id == job.candidates[0].id and child.generation == 1
        assert child.status == "accepted" and child.rejected_stage is None
        assert child.metrics == {"area_um2": 50.0, "cells": 20, "delay_ns": 2.0}
        assert Assurance.parse(child.assurance or "") == Assurance.bounded(20)
        assert (child.functional_hash, child.implementation_hash, child.cache_hit) == ("f1", "i1", None)
        runs = child.stage_runs
        assert [r.name for r in runs] == ["parse", "synthesis"]
        assert runs[0].log_excerpt == "ok\\x00nul"  # NUL escaped (PostgreSQL text cannot hold it)
        assert runs[1].metrics == {"area_um2": 50.0, "cells": 20}
        assert runs[1].data == {"path": ["a", "y"], "slack": None, "where": "/x"}
        log = runs[1].log_excerpt
        assert len(log) < 21_000 and log.startswith("AAAA") and log.endswith("ZZZZ")
        assert "MIDDLE" not in log and "characters cut" in log
        assert repo.count_candidates(session, job_id) == {
            "pending": 1,
            "accepted": 1,
            "rejected": 0,
            "error": 0,
        }


def test_rejected_and_error_verdicts(store: Store) -> None:
    job_id = _job(store)
    with store.transaction() as session:
        bad = repo.add_candidate(session, job_id, source="b", origin="llm:m", source_hash="hb")
        broken = repo.add_candidate(session, job_id, source="c", origin="llm:m", source_hash="hc")
        fail = StageResult("simulate", False, 0.2, detail="cycle 17: y=1 expected 0")
        repo.finish_candidate(
            session,
            bad,
            Verdict(False, "simulate", "mismatch at cycle 17", Metrics(), (fail,), functional_hash="fx"),
            cache_hit="functional",
            record_stages=True,
        )
        oops = StageResult("synthesis", False, 0.1, error=True, detail="yosys crashed")
        repo.finish_candidate(
            session, broken, Verdict(False, "synthesis", "yosys crashed", Metrics(), (oops,), error=True)
        )
    with store.transaction() as session:
        assert [c.status for c in repo.list_candidates(session, job_id)] == ["rejected", "error"]
        rejected = repo.list_candidates(session, job_id, status="rejected")[0]
        assert (rejected.rejected_stage, rejected.reason, rejected.cache_hit) == (
            "simulate",
            "mismatch at cycle 17",
            "functional",
        )
        assert [r.detail for r in rejected.stage_runs] == ["cycle 17: y=1 expected 0"]
        assert [c.id for c in repo.candidates_by_functional_hash(session, job_id, "fx")] == [rejected.id]
        with pytest.raises(BadInputError, match="cache hit kind"):
            bogus: Any = "bogus"
            repo.finish_candidate(session, rejected, Verdict(False, "x", "", Metrics(), ()), cache_hit=bogus)


def test_list_candidates_by_metric_best_first_unmeasured_last(store: Store) -> None:
    job_id = _job(store)
    with store.transaction() as session:
        for name, area, speed in [("a", 30.0, 1.5), ("b", None, None), ("c", 10.0, 3.0), ("d", 20.0, 0.5)]:
            cand = repo.add_candidate(session, job_id, source=name, origin="user", source_hash=name)
            cand.metrics = Metrics(area_um2=area, speedup=speed).to_dict()
        session.flush()
        by_area = repo.list_candidates(session, job_id, order_by="area_um2")
        assert [c.source for c in by_area] == ["c", "d", "a", "b"]
        by_speed = repo.list_candidates(session, job_id, order_by="speedup", limit=2)
        assert [c.source for c in by_speed] == ["c", "a"]
        assert [c.source for c in repo.candidates_by_source_hash(session, job_id, "d")] == ["d"]
        with pytest.raises(BadInputError, match="cannot order candidates by 'colour'") as info:
            repo.list_candidates(session, job_id, order_by="colour")
        assert "area_um2" in (info.value.hint or "")


def test_list_and_count_jobs(store: Store) -> None:
    first = _job(store)
    second = _job(store, kind="kernel", target_name="matmul", status="running")
    with store.transaction() as session:
        assert [j.id for j in repo.list_jobs(session)] == [second, first]  # newest first
        assert [j.id for j in repo.list_jobs(session, status="queued")] == [first]
        assert repo.list_jobs(session, limit=1)[0].id == second
        assert repo.get_job(session, second).claimed_at is not None
        counts = repo.count_jobs(session)
        assert counts["queued"] == 1 and counts["running"] == 1 and counts["failed"] == 0
        with pytest.raises(BadInputError, match="unknown job status 'done'"):
            repo.list_jobs(session, status="done")
        with pytest.raises(BadInputError, match="target kind"):
            repo.create_job(session, kind="fpga", target_name="x", target_fingerprint="f", target_source="s")
        with pytest.raises(BadInputError, match="cannot be 'succeeded'"):
            repo.create_job(
                session,
                kind="rtl",
                target_name="x",
                target_fingerprint="f",
                target_source="s",
                status="succeeded",
            )


def test_set_job_status_failed_keeps_error(store: Store) -> None:
    job_id = _job(store)
    with store.transaction() as session:
        repo.set_job_status(session, repo.get_job(session, job_id), "failed", error="baseline rejected")
    with store.transaction() as session:
        job = repo.get_job(session, job_id)
        assert (job.status, job.error) == ("failed", "baseline rejected")


def test_missing_ids_raise_not_found_with_hint(store: Store) -> None:
    with store.transaction() as session:
        with pytest.raises(NotFoundError, match="no job with id 9999") as info:
            repo.get_job(session, 9999)
        assert "evoforge jobs" in (info.value.hint or "")
        assert info.value.exit_code == 2
        with pytest.raises(NotFoundError, match="no candidate with id 77"):
            repo.get_candidate(session, 77)


def test_candidate_for_missing_job_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="add_candidate failed") as info, store.transaction() as session:
        repo.add_candidate(session, 4242, source="x", origin="user", source_hash="h")
    assert "FOREIGN KEY" in str(info.value)


def test_cache_put_twice_keeps_first_and_does_not_fail(store: Store) -> None:
    key = {
        "target_fingerprint": "fp",
        "hash_kind": "functional",
        "hash": "abc",
        "context": CONTEXT_0_23,
    }
    with store.transaction() as session:
        assert repo.find_cache(session, **key) is None  # type: ignore[arg-type]
        first = repo.put_cache(session, **key, verdict={"accepted": False, "stage": "simulate"})  # type: ignore[arg-type]
    with store.transaction() as session:  # the duplicate in a new transaction, as another job would
        again = repo.put_cache(session, **key, verdict={"accepted": True})  # type: ignore[arg-type]
        other = repo.put_cache(
            session,
            **{**key, "context": CONTEXT_0_40},
            verdict={"accepted": True},
        )  # type: ignore[arg-type]
    assert again.id == first.id and again.verdict == {"accepted": False, "stage": "simulate"}
    assert other.id != first.id
    with store.transaction() as session:
        found = repo.find_cache(session, **key)  # type: ignore[arg-type]
        assert found is not None and found.verdict["stage"] == "simulate"
        with pytest.raises(BadInputError, match="hash kind"):
            repo.put_cache(session, **{**key, "hash_kind": "colour"}, verdict={})  # type: ignore[arg-type]


def test_cache_put_duplicate_keeps_the_callers_transaction(store: Store) -> None:
    """The duplicate is ignored without rolling back the caller's other writes."""
    job_id = _job(store)
    key = {
        "target_fingerprint": "fp",
        "hash_kind": "source",
        "hash": "s1",
        "context": CONTEXT_V,
    }
    with store.transaction() as session:
        repo.put_cache(session, **key, verdict={"n": 1})  # type: ignore[arg-type]
    with store.transaction() as session:
        repo.add_candidate(session, job_id, source="kept", origin="user", source_hash="k")
        repo.put_cache(session, **key, verdict={"n": 2})  # type: ignore[arg-type]
    with store.transaction() as session:
        assert [c.source for c in repo.list_candidates(session, job_id)] == ["kept"]


def test_llm_calls_are_stored(store: Store) -> None:
    job_id = _job(store)
    with store.transaction() as session:
        cand = repo.add_candidate(session, job_id, source="x", origin="llm:m", source_hash="x")
        repo.record_llm_call(
            session, job_id=job_id, role="planner", model="m", prompt="plan please", reply="1. share"
        )
        repo.record_llm_call(
            session,
            job_id=job_id,
            candidate_id=cand.id,
            role="coder",
            model="m",
            prompt="code it",
            reply=None,
            prompt_tokens=12,
            latency_s=0.25,
            error="timeout",
        )
    with store.transaction() as session:
        calls = repo.list_llm_calls(session, job_id)
        assert [(c.role, c.reply, c.error) for c in calls] == [
            ("planner", "1. share", None),
            ("coder", None, "timeout"),
        ]
        assert [c.role for c in repo.list_llm_calls(session, job_id, candidate_id=cand.id)] == ["coder"]


def test_request_cancel_of_a_queued_job_cancels_it(store: Store) -> None:
    queued = _job(store)
    running = _job(store, status="running")
    with store.transaction() as session:
        assert repo.request_cancel(session, queued).status == "cancelled"
        job = repo.request_cancel(session, running)
        assert job.status == "running" and job.cancel_requested
        assert repo.claim_next_job(session, "w1") is None  # nothing claimable is left
        with pytest.raises(NotFoundError):
            repo.request_cancel(session, 31337)


def test_heartbeat_only_for_the_owning_worker(store: Store) -> None:
    _job(store)
    with store.transaction() as session:
        job = repo.claim_next_job(session, "w1")
        assert job is not None and job.worker == "w1" and job.status == "running"
        assert job.claimed_at is not None and job.claimed_at.tzinfo is UTC
        job_id = job.id
    with store.transaction() as session:
        assert repo.heartbeat(session, job_id, "w1")
        assert not repo.heartbeat(session, job_id, "w2")


def test_deleting_a_job_cascades(store: Store) -> None:
    job_id = _job(store)
    with store.transaction() as session:
        cand = repo.add_candidate(session, job_id, source="x", origin="user", source_hash="x")
        repo.record_stage(session, cand.id, StageResult("parse", True, 0.0))
        repo.record_llm_call(session, job_id=job_id, role="coder", model="m", prompt="p")
    with store.transaction() as session:
        session.delete(repo.get_job(session, job_id))
    with store.transaction() as session:
        assert repo.count_candidates(session, job_id)["pending"] == 0
        assert repo.list_llm_calls(session, job_id) == []
