"""The ``simulate`` stage of the RTL cascade: probe fingerprint, cocotb differential test, user test.

1. The probe (:mod:`evoforge.verifiers.rtl.probe`): the candidate's output trace under the fixed
   stimulus; its hash is the functional fingerprint (``ctx.artifacts["functional_hash"]``). The
   original's trace is computed once per target and kept in ``ctx.reference["probe"]``. A trace that
   differs rejects the candidate with the first mismatching cycle.
2. The differential test (:mod:`evoforge.verifiers.rtl.cocotb_diff`): original and candidate side by
   side under ``sim_seeds`` × ``sim_cycles`` seeded corner-biased cycles with mid-run resets, every
   output compared every cycle (X where the original is 0/1 is a mismatch).
3. The deep run (:mod:`evoforge.verifiers.rtl.deep_sim`): when the state horizon of the two designs
   (:mod:`evoforge.verifiers.rtl.horizon`) is longer than the differential test's uninterrupted
   window, both run side by side in Verilator from reset for up to the horizon (at most
   ``deep_max_cycles`` per seed, within ``deep_budget_s``), so that a difference hidden at cycle
   5,000 or 100,000 is found. ``ctx.artifacts["simulated_cycles"]`` records the longest stretch after
   reset that every seed of one simulation covered; the equivalence stage labels the verdict with it.
4. The user's cocotb test module, when the target has one, against the candidate alone; its content
   hash goes into the stage data (``user_test_sha256``), so a cached verdict says which test it passed.
The original's probe trace must show the design doing something (``probe.vacuity``): a trace whose
outputs never change while the reset is released vouches for nothing, and the stage fails.
A candidate that reads simulation time or random numbers (``probe.SIMULATION_ONLY_CALLS``) is
refused before anything runs: it could behave one way in every simulated window and another later.
Every simulation of candidate code runs in the sandbox with ``sim_timeout_s`` as its wall-clock limit,
and only after the candidate's compiled design was seen to call no system task outside
:data:`~evoforge.verifiers.rtl.probe.CANDIDATE_SYSTEM_CALLS` (no file or OS access, however spelt).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from evoforge.domain import Assurance, StageResult, source_hash
from evoforge.errors import EvoforgeError, VerifierError
from evoforge.tools.iverilog import Iverilog
from evoforge.verifiers.rtl import deep_sim
from evoforge.verifiers.rtl.cocotb_diff import SimOutcome, run_differential, run_user_test
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.front import policy_violations
from evoforge.verifiers.rtl.horizon import Horizon, horizon_for
from evoforge.verifiers.rtl.probe import (
    CANDIDATE_SYSTEM_CALLS,
    PROBE_SEED,
    Mismatch,
    ProbeTrace,
    first_mismatch,
    probe_rows,
    probe_trace,
    simulation_only_calls,
    vacuity,
)
from evoforge.verifiers.verdict_context import file_digest

log = logging.getLogger(__name__)

STAGE = "simulate"


def reference_probe(ctx: RtlContext) -> ProbeTrace:
    """The original's probe trace, computed once per target (shared through ``ctx.reference``)."""
    cached = ctx.reference.get("probe")
    if isinstance(cached, ProbeTrace) and len(cached.rows) == ctx.settings.probe_cycles:
        return cached
    trace = probe_trace(
        ctx.original_source,
        ctx.interface,
        ctx.workdir / "simulate" / "probe_original",
        cycles=ctx.settings.probe_cycles,
        reset_cycles=ctx.settings.reset_cycles,
        timeout=ctx.settings.sim_timeout_s,
    )
    if not trace.ok:
        raise VerifierError(
            f"the original design does not simulate: {trace.error}",
            hint="check the target with iverilog (and the --clock/--reset choice)",
        )
    rows = probe_rows(ctx.interface, cycles=ctx.settings.probe_cycles, reset_cycles=ctx.settings.reset_cycles)
    empty = vacuity(trace, ctx.interface, rows)
    if empty is not None:
        empty = _still_vacuous(ctx, empty)
    if empty is not None:
        raise VerifierError(f"the original design's simulation shows nothing: {empty}")
    ctx.reference["probe"] = trace
    return trace


#: how long the original runs alone, once, when its probe shows no change (rare events need time)
VACUITY_CYCLES = 20_000


def _still_vacuous(ctx: RtlContext, why: str) -> str | None:
    """A quiet probe may only be short: run the original alone for longer (once per target, its output
    kept well under the captured-output limit) and decide on that."""
    row_chars = 20 + sum(p.width + 1 for p in ctx.interface.outputs)
    cycles = max(ctx.settings.probe_cycles, min(VACUITY_CYCLES, 1_000_000 // row_chars))
    if cycles <= ctx.settings.probe_cycles:
        return why
    rows = probe_rows(
        ctx.interface, cycles=cycles, reset_cycles=ctx.settings.reset_cycles, seed=PROBE_SEED + 1
    )
    longer = probe_trace(
        ctx.original_source,
        ctx.interface,
        ctx.workdir / "simulate" / "probe_original_long",
        cycles=cycles,
        reset_cycles=ctx.settings.reset_cycles,
        timeout=ctx.settings.sim_timeout_s,
        rows=rows,
    )
    if not longer.ok:
        return why
    return vacuity(longer, ctx.interface, rows)


def differential_seeds(ctx: RtlContext) -> list[int]:
    """Seeds for the differential test: from the run seed (``ctx.reference["run_seed"]``, else the
    target), mixed with the candidate's source hash; never the probe's seed."""
    run_seed = ctx.reference.get("run_seed", ctx.target.fingerprint)
    candidate = source_hash(ctx.candidate_source)
    seeds: list[int] = []
    for i in range(ctx.settings.sim_seeds):
        digest = hashlib.sha256(f"{run_seed}:{candidate}:{i}".encode()).digest()
        seed = int.from_bytes(digest[:4], "big")
        seeds.append(seed if seed != PROBE_SEED else seed + 1)
    return seeds


def _simulation_only(ctx: RtlContext, work: Path) -> list[str]:
    """The simulation-only calls of the candidate, read after preprocessing (macros cannot hide one)."""
    work.mkdir(parents=True, exist_ok=True)
    try:
        text = Iverilog().preprocess(ctx.candidate_source, cwd=work, timeout=ctx.settings.tool_timeout_s)
    except EvoforgeError:
        return []  # the probe's compile reports what is wrong with the text
    return simulation_only_calls(text)


def deep_seeds(ctx: RtlContext) -> list[int]:
    """Seeds of the deep run: like :func:`differential_seeds`, from another stream."""
    run_seed = ctx.reference.get("run_seed", ctx.target.fingerprint)
    candidate = source_hash(ctx.candidate_source)
    digests = (
        hashlib.sha256(f"deep:{run_seed}:{candidate}:{i}".encode()).digest()
        for i in range(ctx.settings.sim_seeds)
    )
    return [int.from_bytes(d[:4], "big") for d in digests]


def differential_window(ctx: RtlContext) -> int:
    """Cycles after reset that the differential test runs without another reset, at least (its first
    seed re-asserts reset no earlier than 85 % of the way; see ``cocotb_bench.mid_run_resets``)."""
    cycles, reset = ctx.settings.sim_cycles, ctx.settings.reset_cycles
    if ctx.interface.reset is None:
        return cycles
    return max(0, cycles * 85 // 100 - reset)


def _mismatch_of(outcome: SimOutcome) -> Mismatch | None:
    m = outcome.mismatch
    if not m:
        return None
    return Mismatch(int(m["cycle"]), str(m["signal"]), str(m["expected"]), str(m["got"]), str(m["inputs"]))


def _reject(
    start: float, detail: str, log_text: str = "", data: dict[str, object] | None = None
) -> StageResult:
    seconds = time.monotonic() - start
    return StageResult(STAGE, False, seconds, detail=detail, log=log_text[-20_000:], data=dict(data or {}))


def run_simulate(ctx: RtlContext) -> StageResult:
    start = time.monotonic()
    settings = ctx.settings
    if not ctx.interface.outputs:
        raise VerifierError(
            f"the target {ctx.top!r} has no outputs to compare", hint="check the --top choice"
        )
    violations = policy_violations(ctx.candidate_source)
    if violations:  # the parse stage rejects these too; never simulate them even if called alone
        return _reject(start, "forbidden construct: " + "; ".join(violations))
    work = ctx.workdir / "simulate"
    timed = _simulation_only(ctx, work)
    if timed:
        return _reject(
            start,
            f"{', '.join(timed)} reads the simulator's time or random numbers, which hardware does not have "
            "(synthesis sees an undriven wire): the design could act one way in every simulated window "
            "and another later. Compute it from inputs and registers instead",
        )

    reference = reference_probe(ctx)
    probe = probe_trace(
        ctx.candidate_source,
        ctx.interface,
        work / "probe",
        cycles=settings.probe_cycles,
        reset_cycles=settings.reset_cycles,
        timeout=settings.sim_timeout_s,
        allowed_calls=CANDIDATE_SYSTEM_CALLS,
    )
    if not probe.ok:
        return _reject(start, f"probe: {probe.error}", probe.compile_log, {"timed_out": probe.timed_out})
    ctx.artifacts["functional_hash"] = probe.hash
    data: dict[str, object] = {"functional_hash": probe.hash, "probe_seconds": round(probe.seconds, 3)}
    if probe.hash != reference.hash:
        mismatch = first_mismatch(reference, probe, ctx.interface)
        if mismatch is not None:
            data["probe_mismatch"] = True  # wrong on the fixed probe: the fingerprint alone decides
            return _reject(start, f"probe: {mismatch.describe()}", data=data)
        log.info("probe trace differs only where the original is X; continuing")

    seeds = differential_seeds(ctx)
    data["seeds"] = seeds
    diff = run_differential(
        ctx.original_source,
        ctx.candidate_source,
        ctx.interface,
        work / "diff",
        cycles=settings.sim_cycles,
        reset_cycles=settings.reset_cycles,
        seeds=seeds,
        timeout=settings.sim_timeout_s,
    )
    data.update(diff_seconds=round(diff.seconds, 3), cycles_run=diff.cycles_run)
    mismatch = _mismatch_of(diff)
    if mismatch is not None:
        seed = diff.mismatch["seed"] if diff.mismatch else "?"
        return _reject(start, f"differential test (seed {seed}): {mismatch.describe()}", diff.log, data=data)
    if not diff.passed:
        return _reject(start, f"differential test: {diff.error or 'failed'}", diff.log, data=data)

    window = differential_window(ctx)
    detail = f"probe {settings.probe_cycles} cycles + {len(seeds)} seeds × {settings.sim_cycles} cycles"
    horizon = horizon_for(ctx) if ctx.interface.sequential else None
    simulated = window
    if horizon is not None:
        data["horizon"] = horizon.to_dict()
        skip = _deep_run_skipped(ctx, horizon, window)
        if skip:
            detail += f"; no deep run ({skip})"
        else:
            deep = _deep_run(ctx, horizon, work / "deep")
            data.update(deep_sim.describe(deep))
            if deep.mismatch is not None:
                how = "replayed in Icarus" if deep.replayed else "two-valued, not replayed"
                why = f"deep run (seed {deep.mismatch_seed}, Verilator, {how}): {deep.mismatch.describe()}"
                return _reject(start, why, deep.log, data=data)
            if deep.error:
                log.warning("deep run of %s could not run: %s", ctx.top, deep.error)
                detail += f"; deep run not available ({deep.error[:200]})"
            else:
                simulated = max(simulated, deep.covered)
                budget = ", budget spent" if deep.out_of_budget else ""
                detail += f" + deep run {len(deep.seeds)} seeds × {deep.covered} cycles (Verilator{budget})"
        detail += f"; state horizon {horizon.describe()}"
    data["simulated_cycles"] = simulated
    ctx.artifacts["simulated_cycles"] = simulated
    detail += ": outputs identical"
    if ctx.target.user_test:
        user = run_user_test(
            ctx.candidate_source,
            ctx.top,
            Path(ctx.target.user_test),
            work / "user",
            timeout=settings.sim_timeout_s,
        )
        data["user_test_seconds"] = round(user.seconds, 3)
        data["user_test_sha256"] = file_digest(ctx.target.user_test)
        if not user.passed:
            return _reject(
                start, f"user test {Path(ctx.target.user_test).name}: {user.error}", user.log, data
            )
        detail += f"; user test {Path(ctx.target.user_test).name} passed"
    return StageResult(STAGE, True, time.monotonic() - start, detail=detail, data=data)


def _deep_run_skipped(ctx: RtlContext, horizon: Horizon, window: int) -> str:
    """Why the deep run is not needed (empty: run it).

    It runs when it can reach the horizon and the differential test did not, and — when the horizon
    is beyond ``deep_max_cycles`` — only if the job accepts ``sampled`` evidence: then no simulation
    can meet a higher requirement and only a formal proof will, so the cost is not spent.
    """
    settings = ctx.settings
    if horizon.covered_by(window):
        return "the differential test already reaches the horizon"
    if settings.deep_max_cycles <= 0:
        return "deep_max_cycles is 0"
    reachable = horizon.cycles is not None and horizon.cycles <= settings.deep_max_cycles
    if not reachable and settings.minimum_assurance.rank > Assurance.SAMPLED_RANK:
        return (
            f"the horizon is beyond deep_max_cycles={settings.deep_max_cycles}; only a formal proof can "
            f"meet the required {settings.minimum_assurance}"
        )
    return ""


def _deep_run(ctx: RtlContext, horizon: Horizon, workdir: Path) -> deep_sim.DeepRun:
    settings = ctx.settings
    wanted = horizon.cycles if horizon.cycles is not None else settings.deep_max_cycles
    return deep_sim.run_deep(
        ctx.original_source,
        ctx.candidate_source,
        ctx.interface,
        workdir,
        cycles=min(wanted, settings.deep_max_cycles),
        reset_cycles=settings.reset_cycles,
        seeds=deep_seeds(ctx),
        budget_s=settings.deep_budget_s,
        timeout=settings.sim_timeout_s,
        cache_dir=ctx.cache_dir,
    )
