"""The ``simulate`` stage of the RTL cascade: probe fingerprint, cocotb differential test, user test.

1. The probe (:mod:`evoforge.verifiers.rtl.probe`): the candidate's output trace under the fixed
   stimulus; its hash is the functional fingerprint (``ctx.artifacts["functional_hash"]``). The
   original's trace is computed once per target and kept in ``ctx.reference["probe"]``. A trace that
   differs rejects the candidate with the first mismatching cycle.
2. The differential test (:mod:`evoforge.verifiers.rtl.cocotb_diff`): original and candidate side by
   side under ``sim_seeds`` × ``sim_cycles`` seeded corner-biased cycles with mid-run resets, every
   output compared every cycle (X where the original is 0/1 is a mismatch).
3. The user's cocotb test module, when the target has one, against the candidate alone.
Every simulation of candidate code runs in the sandbox with ``sim_timeout_s`` as its wall-clock limit,
and only after the candidate's compiled design was seen to call no system task outside
:data:`~evoforge.verifiers.rtl.probe.CANDIDATE_SYSTEM_CALLS` (no file or OS access, however spelt).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from evoforge.domain import StageResult, source_hash
from evoforge.errors import VerifierError
from evoforge.verifiers.rtl.cocotb_diff import SimOutcome, run_differential, run_user_test
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.front import policy_violations
from evoforge.verifiers.rtl.probe import (
    CANDIDATE_SYSTEM_CALLS,
    PROBE_SEED,
    Mismatch,
    ProbeTrace,
    first_mismatch,
    probe_trace,
)

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
    ctx.reference["probe"] = trace
    return trace


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

    detail = (
        f"probe {settings.probe_cycles} cycles + {len(seeds)} seeds × {settings.sim_cycles} cycles: "
        "outputs identical"
    )
    if ctx.target.user_test:
        user = run_user_test(
            ctx.candidate_source,
            ctx.top,
            Path(ctx.target.user_test),
            work / "user",
            timeout=settings.sim_timeout_s,
        )
        data["user_test_seconds"] = round(user.seconds, 3)
        if not user.passed:
            return _reject(
                start, f"user test {Path(ctx.target.user_test).name}: {user.error}", user.log, data
            )
        detail += f"; user test {Path(ctx.target.user_test).name} passed"
    return StageResult(STAGE, True, time.monotonic() - start, detail=detail, data=data)
