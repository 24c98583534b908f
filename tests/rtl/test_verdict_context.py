"""The verdict context and the cache policy (issue 10, item 12; the fingerprint "cache hit" of item 10).

A stored verdict was reused when ``--assurance``, the formal budget, the induction depth, the reset
cycles or ``--test`` differed, and kernel runtimes across machines. Now every setting is in the key,
and a cached verdict is re-checked against the job's own requirements when it is applied. Real SQLite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from evoforge.agents.base import Proposal
from evoforge.config import KernelSettings, RtlSettings
from evoforge.domain import (
    Assurance,
    Metrics,
    Port,
    RtlInterface,
    SourceFile,
    StageResult,
    Target,
    TargetKind,
    Verdict,
    VerdictContext,
)
from evoforge.search import records
from evoforge.search.cache_policy import reuse_refusal
from evoforge.search.population import Member
from evoforge.store import repository
from evoforge.store.engine import open_store
from evoforge.store.models import CacheEntry
from evoforge.verifiers import verdict_context

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "rtl"
FAST_ENV = {
    "EVOFORGE_RTL__SIM_CYCLES": "1000",
    "EVOFORGE_RTL__SIM_SEEDS": "1",
    "EVOFORGE_RTL__EQUIVALENCE_TIMEOUT_S": "10",
    "EVOFORGE_RTL__EQUIVALENCE_BUDGET_S": "20",
}
SOURCE = (
    "module m(input clk, input rst, input a, output reg y);\n"
    "  always @(posedge clk) y <= rst ? 1'b0 : a;\n"
    "endmodule\n"
)
INTERFACE = RtlInterface(
    "m",
    (Port("clk", "input", 1), Port("rst", "input", 1), Port("a", "input", 1), Port("y", "output", 1)),
    clock="clk",
    reset="rst",
)


def _target(user_test: Path | None = None) -> Target:
    return Target(
        TargetKind.RTL,
        "m",
        (SourceFile("m.v", SOURCE),),
        rtl=INTERFACE,
        user_test=str(user_test) if user_test else None,
    )


def _context(
    settings: RtlSettings | None = None, user_test: Path | None = None, liberty: str = "L1"
) -> VerdictContext:
    return verdict_context.rtl_verdict_context(_target(user_test), settings or RtlSettings(), liberty)


@pytest.mark.parametrize(
    "change",
    [
        {"min_assurance": "proven"},
        {"equivalence_budget_s": 120.0},
        {"equivalence_timeout_s": 5.0},
        {"induction_depth": 4},
        {"bmc_depth": 40},
        {"reset_cycles": 5},
        {"sim_cycles": 8000},
        {"sim_seeds": 3},
        {"probe_cycles": 1000},
        {"deep_max_cycles": 1000},
        {"clock_period_ns": 5.0},
    ],
)
def test_every_setting_that_can_change_a_verdict_changes_the_key(change: dict[str, object]) -> None:
    base = _context()
    assert _context(RtlSettings(**change)).digest() != base.digest(), change
    assert _context().digest() == base.digest()


def test_the_liberty_and_the_interface_are_in_the_key() -> None:
    assert _context(liberty="L2").digest() != _context().digest()
    flipped = replace(_target(), rtl=replace(INTERFACE, reset_active_low=True))
    low = verdict_context.rtl_verdict_context(flipped, RtlSettings(), "L1")
    assert low.digest() != _context().digest()
    tools = dict(_context().tools)
    assert {"iverilog", "verilator", "yosys", "opensta", "cocotb", "c++", "python"} <= set(tools)


def test_the_user_test_is_in_the_key_by_content(tmp_path: Path) -> None:
    test = tmp_path / "test_m.py"
    test.write_text("import cocotb\n")
    first = _context(user_test=test)
    test.write_text("import cocotb  # the same path, another test\n")
    second = _context(user_test=test)
    assert first.user_test_sha256 and second.user_test_sha256
    assert len({_context().digest(), first.digest(), second.digest()}) == 3


def test_kernel_timings_are_keyed_by_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    here = verdict_context.kernel_verdict_context(KernelSettings(), "torch=2.13.0;triton=3.9", {})
    assert here.machine and "cores=" in here.machine and "cpu=" in here.machine
    monkeypatch.setattr(verdict_context.platform, "node", lambda: "another-host")
    there = verdict_context.kernel_verdict_context(KernelSettings(), "torch=2.13.0;triton=3.9", {})
    assert there.digest() != here.digest()
    threads = verdict_context.kernel_verdict_context(
        KernelSettings(cpu_threads=1), "torch=2.13.0;triton=3.9", {}
    )
    assert threads.digest() != there.digest()


# -- re-checked when applied ------------------------------------------------------------------------


def _accepted(assurance: Assurance, simulate_data: dict[str, object] | None = None) -> Verdict:
    stages = (
        StageResult("simulate", True, 1.0, data=dict(simulate_data or {})),
        StageResult("equivalence", True, 1.0, data={"assurance": str(assurance)}),
    )
    return Verdict(True, "timing", "accepted", Metrics(area_um2=1.0), stages, assurance)


def test_a_proven_job_never_takes_a_cached_simulated_verdict() -> None:
    proven = _context(RtlSettings(min_assurance="proven"))
    # even an entry that claims to have been made under this very context is checked on its content
    refusal = reuse_refusal(_accepted(Assurance.simulated(4096)), proven.to_dict(), proven)
    assert refusal and "below the required proven" in refusal
    assert reuse_refusal(_accepted(Assurance.proven()), proven.to_dict(), proven) is None


def test_a_users_test_is_never_skipped_for_a_source_seen_before(tmp_path: Path) -> None:
    test = tmp_path / "test_m.py"
    test.write_text("import cocotb\n")
    context = _context(user_test=test)
    without = _accepted(Assurance.proven())  # cached from a job that had no test
    assert reuse_refusal(without, context.to_dict(), context) == "the job's own test did not run on it"
    with_it = _accepted(Assurance.proven(), {"user_test_sha256": context.user_test_sha256})
    assert reuse_refusal(with_it, context.to_dict(), context) is None
    rejected_early = Verdict(False, "parse", "syntax error", Metrics(), (StageResult("parse", False, 0.1),))
    assert reuse_refusal(rejected_early, context.to_dict(), context) is None  # no test would have run


def test_an_entry_from_another_machine_or_requirement_is_refused() -> None:
    kernel = verdict_context.kernel_verdict_context(KernelSettings(), "torch=2.13.0", {})
    elsewhere = {**kernel.to_dict(), "machine": "host=other;cpu=x"}
    verdict = Verdict(
        True, "benchmark", "ok", Metrics(runtime_ms=1.0), (StageResult("benchmark", True, 1.0),)
    )
    assert reuse_refusal(verdict, elsewhere, kernel) is not None
    assert reuse_refusal(verdict, kernel.to_dict(), kernel) is None
    assert reuse_refusal(verdict, None, kernel) is not None


# -- through the store ------------------------------------------------------------------------------


def _job(store, target: Target) -> int:  # type: ignore[no-untyped-def]
    with store.transaction() as session:
        job = repository.create_job(
            session,
            kind="rtl",
            target_name=target.name,
            target_fingerprint=target.fingerprint,
            target_source=target.source,
            status="running",
        )
        return job.id


def test_the_store_answers_only_under_an_equal_context(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'cache.db'}")
    target = _target()
    default, proven = _context(), _context(RtlSettings(min_assurance="proven"))
    draft = Proposal(SOURCE.replace("rst ?", "rst  ?"), "test", "a draft", "none")
    parent = Member(candidate_id=None, source=SOURCE, metrics=Metrics())  # type: ignore[arg-type]

    first = _job(store, target)
    with store.transaction() as session:
        cid, cached = records.add_proposal(session, first, parent, draft, target.fingerprint, default)
        assert not cached
        records.finish_candidate(
            session, first, cid, _accepted(Assurance.simulated(4096)), target.fingerprint, default
        )

    for context, expected in ((default, True), (proven, False)):
        job = _job(store, target)
        with store.transaction() as session:
            _, cached = records.add_proposal(session, job, parent, draft, target.fingerprint, context)
        assert cached is expected, context.requirement
    with store.transaction() as session:
        entries = session.scalars(select(CacheEntry)).all()
        assert entries and all(e.context == default.to_dict() for e in entries)
        assert {e.context_digest for e in entries} == {default.digest()}
    store.close()


def test_a_probe_mismatch_is_not_counted_as_a_cache_hit(tmp_path: Path) -> None:
    # the fingerprint is computed by simulating the probe: a second candidate with the same wrong
    # trace cost the same simulation, so it is an evaluation, not a cache hit
    store = open_store(f"sqlite:///{tmp_path / 'fp.db'}")
    target = _target()
    context = _context()
    parent = Member(candidate_id=None, source=SOURCE, metrics=Metrics())  # type: ignore[arg-type]
    job = _job(store, target)
    wrong = Verdict(
        False,
        "simulate",
        "probe: output y differs at cycle 4",
        Metrics(),
        (StageResult("simulate", False, 0.2, data={"probe_mismatch": True, "functional_hash": "f" * 64}),),
        functional_hash="f" * 64,
    )
    with store.transaction() as session:
        for i in range(2):
            draft = Proposal(SOURCE.replace("1'b0", f"1'b{i} "), "test", "wrong", "none")
            cid, _ = records.add_proposal(session, job, parent, draft, target.fingerprint, context)
            records.finish_candidate(session, job, cid, wrong, target.fingerprint, context)
        row = repository.get_job(session, job)
        assert row.cache_hits == 0 and row.evaluated == 2
    store.close()


@pytest.mark.slow
def test_evoforge_run_with_a_stricter_assurance_evaluates_again(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    design = EXAMPLES / "tick_timer.v"
    env_args = ("--budget", "1", "--db", db, "--proposer", "offline", "--json")

    def run(*extra: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "evoforge.cli", "run", str(design), *env_args, *extra],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **FAST_ENV},
        )
        return json.loads(done.stdout)

    first = run()
    again = run()
    proven = run("--assurance", "proven")
    assert first["counts"]["cache_hits"] == 0  # type: ignore[index]
    assert again["counts"]["cache_hits"] == again["counts"]["proposed"]  # type: ignore[index]
    assert proven["counts"]["cache_hits"] == 0, proven["counts"]  # type: ignore[index]
    assert proven["counts"]["evaluated"] == proven["counts"]["proposed"]  # type: ignore[index]
