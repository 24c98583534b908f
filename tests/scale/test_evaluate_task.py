"""Candidate evaluation as a task (issue 14, items 1–3 without Ray): ``evaluate`` needs nothing from
the submitting process, writes its own rows once per attempt, and a job's files travel as blobs."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from evoforge.config import KernelSettings, RtlSettings, Settings
from evoforge.domain import DEFAULT_RTL_OBJECTIVES, JobStatus, StageResult, TargetKind, VerdictContext
from evoforge.errors import ConfigError, VerifierError
from evoforge.search import evaluate, jobs
from evoforge.search.executor import (
    STAGE_NEEDS,
    Capabilities,
    EvaluationTask,
    LocalExecutor,
    TaskFactory,
    make_executor,
    task_resources,
)
from evoforge.search.specs import load_evaluation_spec, put_evaluation_spec
from evoforge.search.stored import load_stored_job
from evoforge.store import attempts, leases, repository
from evoforge.store.blobs import SqlBlobStore
from evoforge.store.engine import Store, open_store
from evoforge.store.models import CacheEntry, Candidate, ImplementationResult, StageRun
from evoforge.tools.liberty import generic_liberty_path
from evoforge.verifiers.kernel.cascade import KERNEL_CASCADE
from evoforge.verifiers.rtl.cascade import RTL_CASCADE
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

COUNTER = """\
module counter(input clk, input rst, input en, input [7:0] d, output reg [7:0] cnt, output [7:0] y);
  reg [7:0] acc;
  always @(posedge clk)
    if (rst) begin cnt <= 8'd0; acc <= 8'd0; end
    else begin cnt <= (cnt == 8'd250) ? cnt : cnt + 8'd1; acc <= en ? acc ^ d : acc; end
  assign y = acc + cnt;
endmodule
"""
# the same logic with its internal register renamed: equivalent, so accepted
COUNTER_RENAMED = COUNTER.replace("acc", "mix")
USER_TEST = """\
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge


@cocotb.test()
async def counts_after_reset(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.en.value = 0
    dut.d.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)
    await FallingEdge(dut.clk)
    assert int(dut.cnt.value) == 5, f"cnt is {int(dut.cnt.value)} after 5 cycles"
"""
FAST = RtlSettings(sim_cycles=300, sim_seeds=1, probe_cycles=100, equivalence_timeout_s=30)


def _job_with_files(tmp_path: Path) -> tuple[Store, Settings, int, list[Path]]:
    """A running job on ``counter`` with a user test and its own liberty (a renamed generic one)."""
    design, test, liberty = tmp_path / "counter.v", tmp_path / "test_counts.py", tmp_path / "mylib.lib"
    design.write_text(COUNTER)
    test.write_text(USER_TEST)
    liberty.write_text(
        re.sub(r"library\s*\(\s*\w+\s*\)", "library (mylib)", generic_liberty_path().read_text())
    )
    rtl = FAST.model_copy(update={"liberty": liberty})
    settings = Settings(data_dir=tmp_path / "machine-a", rtl=rtl, db=f"sqlite:///{tmp_path / 'jobs.db'}")
    target = load_rtl_target([design], RtlTargetOptions(user_test=test), workdir=tmp_path / "load")
    store = open_store(settings.database_url)
    job_id = jobs.create_job(store, target, settings, DEFAULT_RTL_OBJECTIVES, status=JobStatus.RUNNING)
    return store, settings, job_id, [design, test, liberty]


def _tasks(store: Store, settings: Settings, job_id: int) -> tuple[TaskFactory, VerdictContext]:
    """What ``run_job`` hands the loop: the job's task factory (its lease taken) and its context."""
    with store.transaction() as session:
        token = leases.take_lease(session, job_id, "test")
    stored = load_stored_job(store, job_id, settings)
    verifier = jobs.make_verifier(stored.target, stored.settings)
    ref, context = jobs._prepare_tasks(store, stored.target, stored.settings, verifier, gpu=False)
    evaluate.forget_verifier(ref, context)  # as on another machine: rebuilt from the blobs
    return TaskFactory(ref, context, jobs.task_database_url(store), job_id, token), context


def _candidate(store: Store, job_id: int, source: str) -> int:
    with store.transaction() as session:
        return repository.add_candidate(
            session, job_id, source=source, origin="test", source_hash=source[:20]
        ).id


def _stage_rows(store: Store, cid: int) -> list[tuple[int, str]]:
    with store.transaction() as session:
        rows = session.scalars(select(StageRun).where(StageRun.candidate_id == cid).order_by(StageRun.id))
        return [(r.id, r.name) for r in rows]


def test_a_task_in_a_fresh_process_needs_nothing_local(tmp_path: Path) -> None:
    store, settings, job_id, files = _job_with_files(tmp_path)
    with store.transaction() as session:
        options = repository.get_job(session, job_id).options
    assert str(tmp_path) not in repr(options)  # no path of this machine in the job
    factory, context = _tasks(store, settings, job_id)
    cid = _candidate(store, job_id, COUNTER_RENAMED)
    for path in files:  # the files and this machine's caches are gone: only the store remains
        path.unlink()
    task_file = tmp_path / "task.pickle"
    task_file.write_bytes(pickle.dumps(factory.task(cid, COUNTER_RENAMED)))
    other_machine = {**os.environ, "EVOFORGE_DATA_DIR": str(tmp_path / "machine-b")}
    script = (
        "import pickle, sys; from evoforge.search.executor import run_task; "
        "out = run_task(pickle.load(open(sys.argv[1], 'rb'))); print(out.verdict.status.value, out.worker)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(task_file)],
        capture_output=True,
        text=True,
        env=other_machine,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    status, worker = done.stdout.split()[0], done.stdout.split(maxsplit=1)[1]
    assert status == "accepted"
    with store.transaction() as session:
        candidate = session.get(Candidate, cid)
        assert candidate is not None and candidate.status == "accepted" and candidate.attempts == 1
        assert candidate.evaluated_by == worker.strip() and f":{os.getpid()}" not in worker
        runs = {r.name: r for r in session.scalars(select(StageRun).where(StageRun.candidate_id == cid))}
    assert list(runs) == [name for name, _ in RTL_CASCADE]
    assert runs["simulate"].detail.endswith("user test test_counts.py passed")  # the test came as a blob
    # the other machine fetched the job's liberty: its verdict context (liberty digest) matched the job's
    assert (tmp_path / "machine-b" / "cache" / "blobs").is_dir()
    with store.transaction() as session:  # its verdict is cached under the job's context, kept readable
        entries = session.scalars(select(CacheEntry).where(CacheEntry.hash_kind == "source")).all()
        assert [(e.context_digest, e.context) for e in entries] == [(context.digest(), context.to_dict())]
        impl = session.scalars(select(ImplementationResult)).all()
        assert impl and {r.context_digest for r in impl} == {context.digest()}


def test_a_retry_leaves_one_set_of_rows_and_a_finished_candidate_is_not_evaluated_again(
    tmp_path: Path,
) -> None:
    store, settings, job_id, _ = _job_with_files(tmp_path)
    factory, _ = _tasks(store, settings, job_id)
    broken = "module counter(input clk; endmodule\n"  # rejected at parse: a short cascade
    cid = _candidate(store, job_id, broken)
    with store.transaction() as session:  # an attempt that died after two stages
        dead = attempts.begin_attempt(session, cid, "elsewhere:1")
        assert dead is not None
        repository.record_stage(session, cid, StageResult("parse", True, 0.1))
        repository.record_stage(session, cid, StageResult("lint", True, 0.1))
    outcome = evaluate.evaluate(factory.target, factory.context, broken, factory.task(cid, broken).slot)
    assert outcome.verdict is not None and outcome.verdict.stage == "parse" and not outcome.verdict.accepted
    assert outcome.attempt == 2
    rows = _stage_rows(store, cid)
    assert [name for _, name in rows] == ["parse"]
    again = evaluate.evaluate(factory.target, factory.context, broken, factory.task(cid, broken).slot)
    assert again.verdict is None and _stage_rows(store, cid) == rows  # finished: nothing re-run


def test_a_worker_whose_tools_differ_refuses_to_judge(tmp_path: Path) -> None:
    store, settings, job_id, _ = _job_with_files(tmp_path)
    factory, context = _tasks(store, settings, job_id)
    cid = _candidate(store, job_id, COUNTER_RENAMED)
    name, version = context.tools[0]
    patched = ((name, version + "-patched"), *context.tools[1:])
    other = dataclasses.replace(factory, context=dataclasses.replace(context, tools=patched))
    task = other.task(cid, COUNTER_RENAMED)
    scratch = Settings().work_dir()  # where a task of this process builds its verifier
    before = set(scratch.glob("evoforge-*"))
    with pytest.raises(VerifierError, match="another verdict context") as caught:
        evaluate.evaluate(task.target, task.context, task.source, task.slot)
    assert set(scratch.glob("evoforge-*")) == before  # the refusing verifier's scratch is gone
    # the message names what differs, with both values
    assert f"tool {name}: {version!r} here, {version + '-patched'!r} in the job" in caught.value.message
    with store.transaction() as session:
        candidate = session.get(Candidate, cid)
        assert candidate is not None and candidate.status == "pending" and candidate.attempts == 0
    assert _stage_rows(store, cid) == []
    # through the executor the failure is the candidate's outcome, not a crash of the loop
    finished = list(LocalExecutor().run([task], parallel=1))
    assert isinstance(finished[0][1], VerifierError)


def test_the_spec_carries_every_field_of_the_target(tmp_path: Path) -> None:
    store, settings, job_id, _ = _job_with_files(tmp_path)
    stored = load_stored_job(store, job_id, settings)
    blobs = SqlBlobStore(store)
    digest = put_evaluation_spec(blobs, stored.target, stored.settings)
    assert put_evaluation_spec(blobs, stored.target, stored.settings) == digest  # canonical
    spec = load_evaluation_spec(blobs, digest, Settings(data_dir=tmp_path / "machine-c"))
    for field in dataclasses.fields(stored.target):
        if field.name != "user_test":  # a path of each machine; the same bytes
            assert getattr(spec.target, field.name) == getattr(stored.target, field.name), field.name
    assert spec.target.user_test and stored.target.user_test
    assert Path(spec.target.user_test).read_bytes() == Path(stored.target.user_test).read_bytes()
    assert Path(spec.target.user_test).name == "test_counts.py"
    assert spec.target.fingerprint == stored.target.fingerprint
    assert spec.settings.rtl.model_dump(exclude={"liberty"}) == stored.settings.rtl.model_dump(
        exclude={"liberty"}
    )
    assert spec.settings.rtl.liberty and spec.settings.rtl.liberty.read_text().count("library (mylib)") == 1


def test_stage_needs_name_every_stage_and_only_gpu_jobs_ask_for_a_gpu() -> None:
    assert list(STAGE_NEEDS[TargetKind.RTL]) == [name for name, _ in RTL_CASCADE]
    assert list(STAGE_NEEDS[TargetKind.KERNEL]) == [name for name, _ in KERNEL_CASCADE]
    assert task_resources(TargetKind.KERNEL, needs_gpu=True).gpus == 1
    assert task_resources(TargetKind.KERNEL, needs_gpu=False).gpus == 0
    assert task_resources(TargetKind.RTL, needs_gpu=True).gpus == 0  # no RTL stage uses a GPU
    with pytest.raises(ConfigError, match="local"):
        make_executor("dask")


def test_a_gpu_job_fails_fast_where_there_is_no_gpu(tmp_path: Path) -> None:
    executor = LocalExecutor()
    if executor.capabilities().gpus:
        pytest.skip("this machine has a GPU")
    settings = Settings(data_dir=tmp_path / "data", kernel=KernelSettings(require_gpu=True))
    store = open_store(f"sqlite:///{tmp_path / 'gpu.db'}")
    with store.transaction() as session:
        job = repository.create_job(
            session, kind="kernel", target_name="k", target_fingerprint="fp", target_source="x = 1\n"
        )
        job.needs_gpu = True
        job_id = job.id
    with pytest.raises(ConfigError, match="must be timed on a GPU"):
        jobs.run_job(store, job_id, settings, executor=executor)
    with store.transaction() as session:
        job = repository.get_job(session, job_id)
        assert job.status == "failed" and "has none" in (job.error or "")


def test_tasks_are_values(tmp_path: Path) -> None:
    """A task pickles (what Ray ships) and equals itself after the trip."""
    store, settings, job_id, _ = _job_with_files(tmp_path)
    factory, _ = _tasks(store, settings, job_id)
    task = factory.task(_candidate(store, job_id, COUNTER_RENAMED), COUNTER_RENAMED)
    assert pickle.loads(pickle.dumps(task)) == task and isinstance(task, EvaluationTask)


class _GpuMachine(LocalExecutor):
    """The GPU fake: a local executor on a machine that has one (this one has none)."""

    def capabilities(self) -> Capabilities:
        return Capabilities(gpus=1, where="a machine with a GPU")


def test_a_worker_advertises_what_its_executor_offers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data", db=f"sqlite:///{tmp_path / 'q.db'}")
    store = open_store(settings.database_url)
    with store.transaction() as session:
        job = repository.create_job(
            session, kind="kernel", target_name="k", target_fingerprint="fp", target_source="x = 1\n"
        )
        job.needs_gpu = True
        job_id = job.id
    ran: list[tuple[int, str]] = []

    def fake_run_job(store: Store, job_id: int, settings: Settings, **kwargs: object) -> None:
        ran.append((job_id, type(kwargs["executor"]).__name__))
        with store.transaction() as session:
            repository.set_job_status(session, repository.get_job(session, job_id), JobStatus.SUCCEEDED)

    monkeypatch.setattr(jobs, "run_job", fake_run_job)
    if LocalExecutor().capabilities().gpus == 0:
        assert jobs.Worker(store, settings, executor=LocalExecutor()).run_once() is None
        assert ran == [] and _status(store, job_id) == "queued"
    assert jobs.Worker(store, settings, executor=_GpuMachine()).run_once() == job_id
    assert ran == [(job_id, "_GpuMachine")] and _status(store, job_id) == "succeeded"


def _status(store: Store, job_id: int) -> str:
    with store.transaction() as session:
        return repository.get_job(session, job_id).status
