"""The ``benchmark`` stage, in the supervisor: time what was checked, check what was timed.

For a C candidate, in three phases that never overlap a candidate process with another:

1. the worker (the candidate's Python) makes a launch plan for every call — a random number of
   warm-up calls, then the timed ones — each on fresh inputs; it is then killed;
2. the reference's worker (torch eager, the problem's code only) and the replay process (the
   candidate's kernels only) are started, pinned to the same CPUs, with the same thread count;
3. rounds: new inputs (made here, from seeds nobody else sees), then — in a random order — the
   reference's call, the candidate's replayed call and the roofline kernel, each timed by this
   process's clock around one request. Between the timed requests the CPUs are kept running by
   evoforge's own spinners (``awake``), asleep during each request: no side is timed after an idle
   gap (on virtual CPUs that halt when idle, such a call ran up to 1.8× slower, not alike per side).
   Every call's outputs are compared with the reference's outputs for the same inputs (collected
   from its worker after the round), so a candidate that switches after N calls is rejected at the
   first mismatch; the kernel's process must not use the CPU between or after its calls.

The time budget bounds the planning (at most half of it, but never fewer than ``MIN_PLANNED_TIMED``
timed calls); up to ``MORE_ROUNDS`` times ``repeats`` calls are planned. The rounds then replay,
check and time the planned calls in order: at least ``repeats`` of them (and ``MIN_PLANNED_TIMED``),
and more only while the speed-up's confidence interval is wider than ``max_interval`` and the budget
lasts — a noisy machine gets more rounds, a quiet one stops early. A planned call never replayed was
never timed either, so every timed call is a checked one.

The statistics (``timing.summarise``) turn the rounds into a speed-up, its confidence interval,
spread and the roofline bound, or into *unmeasured* with the reason. GPU candidates are timed
inside their worker instead (``time_gpu``; see ``docs/security.md``).
"""

from __future__ import annotations

import contextlib
import ctypes
import random
import resource
import statistics
import time
from typing import Any

import torch

from evoforge.verifiers.kernel import plan, procs, timing
from evoforge.verifiers.kernel.awake import Awake
from evoforge.verifiers.kernel.checks import first_mismatch
from evoforge.verifiers.kernel.outcome import CandidateFailure
from evoforge.verifiers.kernel.replay_host import ReplayHost, Slot, layout
from evoforge.verifiers.kernel.supervise import prepare

#: replay buffers are taken from this many slots at random: no call can count on its addresses
SLOTS = 3
#: heap faulted in for the reference's outputs and temporaries, in slot sizes (a slot holds one call's
#: inputs, outputs and the candidate's temporaries): torch's 64-byte-aligned blocks do not fit the
#: holes freed ones leave, so the heap walks upwards for a few calls before its layout repeats
RESERVE_SLOTS = 8
#: ... but never more than this (nor a quarter of the memory cap): a larger problem's faults are counted
RESERVE_MAX_BYTES = 1 << 30
#: the reference's untimed calls before the rounds: until two in a row take fewer faults than this
QUIET_FAULTS = 64
REFERENCE_WARMUPS_MAX = 10
#: the share of the time budget the candidate's worker may spend making plans
PLANNING_SHARE = 0.5
#: timed calls always planned (and so replayed and checked) however slow the planning: a candidate
#: that switches after N calls must get past this many to escape, and then every call timed was full work
MIN_PLANNED_TIMED = 15
#: planned calls, as a multiple of ``repeats``: the rounds a noisy machine may need to narrow the interval
MORE_ROUNDS = 3


def mode_benchmark(request: dict[str, Any]) -> dict[str, Any]:
    stage = prepare(request)
    _keep_freed_memory()
    tolerance = dict(request.get("tolerance") or {})
    rng = random.Random(request["seeds"][0])
    warmups = rng.randint(2, 6)
    repeats = int(request["repeats"])
    budget_s = float(request["budget_s"])
    max_interval = float(request.get("max_interval") or 0.5)
    seeds = [rng.getrandbits(31) for _ in range(warmups + MORE_ROUNDS * repeats)]
    phases = {"begin": time.monotonic()}

    # 1. the candidate's Python: one plan per call (within part of the budget), then it is gone
    plans, libraries = _plans(stage, seeds, warmups, budget_s * PLANNING_SHARE, phases)

    # 2. the reference's process and the kernels' process, side by side
    reference = stage.reference_worker()
    host = ReplayHost(
        workdir=stage.workdir, libraries=libraries, cpus=stage.cpus, env=stage.env(role="replay")
    )
    spinners = contextlib.ExitStack()
    try:
        host.start()
        phases["processes_started"] = time.monotonic()
        # the CPUs are kept running between timed calls (each side's call then starts as it would
        # back to back, not after the supervisor's idle gap), and left to the call during it
        awake = (
            spinners.enter_context(Awake(stage.cpus, stage.workdir / "build" / "awake"))
            if request.get("keep_awake", True)
            else None
        )
        host.window = reference.window = awake.parked if awake is not None else contextlib.nullcontext
        size = max(layout(p)[1] for p, _ in plans)
        # no timed call faults its memory in: the replay's slots are pre-faulted when mapped, the
        # reference's heap here (its inputs' memory when mapped); the faults are counted all the same
        slots = [host.new_slot(size) for _ in range(SLOTS)]
        reserved = _settle_reference(reference, stage.inputs(seeds[0], benchmark=True), size)
        phases["reference_settled"] = time.monotonic()
        samples: dict[str, list[float]] = {"reference": [], "candidate": [], "floor": []}
        # page faults (minor, major) of each side's process during each timed call
        faults: dict[str, list[tuple[int, int]]] = {"reference": [], "candidate": [], "floor": []}
        cpu_per_wall: list[float] = []
        laps = Laps()
        others = procs.OtherLoad(w for w in (reference.watch, host.watch) if w is not None)
        for index, (seed, (call_plan, state)) in enumerate(zip(seeds, plans, strict=False)):
            if _enough(samples, max(repeats, MIN_PLANNED_TIMED), max_interval, phases["begin"] + budget_s):
                break
            laps.start()
            # every planned call after the warm-ups is timed: it is replayed and checked anyway, and
            # its three timed calls are a small part of a round (inputs made, buffers written,
            # outputs collected and compared: ``round_seconds``)
            timed = index >= warmups
            label = _label(index, warmups)
            inputs = stage.inputs(seed, benchmark=True)
            laps.lap("inputs")
            prepared = host.prepare(call_plan, inputs, state, _pick(rng, slots))
            if index == 0:
                host.warm(prepared)
            laps.lap("prepare")
            order = ["reference", "candidate", "floor"]
            rng.shuffle(order)
            seconds: dict[str, float] = {}
            faulted: dict[str, tuple[int, int]] = {}
            got: list[torch.Tensor] = []
            for side in order:
                if side == "reference":  # each side's inputs are written just before its call
                    seconds[side], faulted[side] = reference.timed_run(reference.place(inputs))
                elif side == "floor":
                    host.write(prepared)
                    floor = host.floor(prepared)
                    if floor.problems:
                        raise CandidateFailure(f"{label}: {'; '.join(floor.problems)}")
                    seconds[side], faulted[side] = floor.seconds, floor.faults
                else:
                    result = host.run(prepared, settle_s=0.01)
                    if result.problems:
                        raise CandidateFailure(
                            f"{label}: the kernel's work did not end when its call returned: "
                            + "; ".join(result.problems)
                        )
                    if result.mutated:
                        raise CandidateFailure(f"{label}: the kernels modified input(s) {result.mutated}")
                    seconds[side], got, faulted[side] = result.seconds, result.outputs, result.faults
                    cpu_per_wall.append(result.cpu_ms / 1e3 / result.seconds if result.seconds > 0 else 0.0)
                laps.lap(side)
            expected = reference.collect()
            laps.lap("collect")
            failure = first_mismatch(expected, got, tolerance)
            laps.lap("compare")
            if failure is not None:
                raise CandidateFailure(f"{label}: {failure[0]} (the outputs of timed calls are compared too)")
            if timed:
                for side, value in seconds.items():
                    samples[side].append(value * 1e3)
                    faults[side].append(faulted[side])
        phases["rounds_done"] = time.monotonic()
        other_cpus = others.cpus()
        summary = timing.summarise(
            samples["reference"],
            samples["candidate"],
            samples["floor"],
            max_interval=max_interval,
            other_cpus=other_cpus,
        )
        return {
            "ok": True,
            "device": stage.device,
            "reference_ms": round(summary.reference_ms, 6),
            "candidate_ms": round(summary.candidate_ms, 6),
            "floor_ms": None if summary.floor_ms is None else round(summary.floor_ms, 6),
            "ratio": round(summary.ratio_median, 4),
            "speedup": None if summary.speedup is None else round(summary.speedup, 4),
            "spread": round(summary.spread, 4),
            "interval": None if summary.interval is None else [round(v, 4) for v in summary.interval],
            "roofline_speedup": None
            if summary.roofline_speedup is None
            else round(summary.roofline_speedup, 3),
            "unmeasured": summary.unmeasured,
            "rounds": summary.rounds,
            "checked_calls": warmups + summary.rounds,
            "planned_calls": len(plans),
            "warmup_calls": warmups,
            "threads": stage.threads,
            "cpus": stage.cpus,
            "cpu_per_wall": round(max(cpu_per_wall), 3) if cpu_per_wall else None,
            "other_cpus": None if other_cpus is None else round(other_cpus, 2),
            "replay_seccomp": host.seccomp,
            "kept_awake": None if awake is None else awake.started,
            "reference_heap_reserved_bytes": reserved,
            "samples_ms": {k: [round(v, 4) for v in vs] for k, vs in samples.items()},
            "minor_faults": {k: [f[0] for f in fs] for k, fs in faults.items()},
            "major_faults": {k: [f[1] for f in fs] for k, fs in faults.items()},
            "phase_seconds": {k: round(v - phases["begin"], 2) for k, v in phases.items() if k != "begin"},
            "round_seconds": {k: round(v, 3) for k, v in laps.totals.items()},
        }
    finally:
        spinners.close()
        host.close()
        reference.close()


def _keep_freed_memory() -> None:
    """This process (evoforge's code only) makes and drops a call's worth of tensors every round:
    keep freed memory for the next round instead of returning it and faulting fresh pages in (the
    timed processes get the same through ``MALLOC_MMAP_MAX_``/``MALLOC_TRIM_THRESHOLD_``)."""
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_max = -1, -4
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, ctypes.c_int(2**31 - 1))


def _enough(samples: dict[str, list[float]], repeats: int, max_interval: float, deadline: float) -> bool:
    """Stop the rounds: ``repeats`` timed and the interval narrow enough, or the budget spent after them."""
    if len(samples["candidate"]) < repeats:
        return False
    if time.monotonic() > deadline:
        return True
    ratios = timing.paired_ratios(samples["reference"], samples["candidate"])
    interval = timing.median_interval(ratios)
    return interval is not None and timing.interval_width(interval, statistics.median(ratios)) <= max_interval


class Laps:
    """Where the rounds' wall time goes (inputs made, buffers written, each side's call with its
    checks, outputs collected and compared): what keeps more rounds from fitting in the budget."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._last = time.monotonic()

    def start(self) -> None:
        self._last = time.monotonic()

    def lap(self, key: str) -> None:
        now = time.monotonic()
        self.totals[key] = self.totals.get(key, 0.0) + now - self._last
        self._last = now


def _settle_reference(reference: Any, inputs: list[Any], slot_bytes: int) -> int:
    """Fault the reference's heap in and call it (untimed) until its calls take no page faults.

    Its calls then run on memory already mapped, as the replay's do (slots pre-faulted when
    mapped); the faults of every timed call are still counted, per side. Returns the bytes reserved
    (0 when the memory cap did not allow them: the warm-up calls still settle the heap)."""
    cap = resource.getrlimit(resource.RLIMIT_AS)[0]
    nbytes = min(RESERVE_SLOTS * slot_bytes, RESERVE_MAX_BYTES)
    if cap != resource.RLIM_INFINITY:
        nbytes = min(nbytes, cap // 4)
    reserved = reference.reserve(nbytes)
    specs, quiet = reference.place(inputs), 0
    for _ in range(REFERENCE_WARMUPS_MAX):
        _, (minor, _major) = reference.timed_run(specs)
        quiet = quiet + 1 if minor < QUIET_FAULTS else 0
        if quiet >= 2:
            break
    return reserved


def _plans(
    stage: Any, seeds: list[int], warmups: int, budget_s: float, phases: dict[str, float]
) -> tuple[list[tuple[dict[str, Any], bytes]], dict[str, Any]]:
    """The candidate worker's plan for each call — all of them, or as many as ``budget_s`` allows
    (never fewer than the warm-ups and ``MIN_PLANNED_TIMED`` timed calls); the worker is killed
    before this returns."""
    session = stage.worker()
    phases["worker_started"] = started = time.monotonic()
    plans: list[tuple[dict[str, Any], bytes]] = []
    try:
        for index, seed in enumerate(seeds):
            if index >= warmups + MIN_PLANNED_TIMED and time.monotonic() - started > budget_s:
                break
            label = _label(index, warmups)
            inputs = stage.inputs(seed, benchmark=True)
            call = session.forward(inputs, label=label)
            if call.mutated:
                raise CandidateFailure(f"{label}: the candidate modified its input(s) {call.mutated}")
            sizes = [v.numel() * v.element_size() if isinstance(v, torch.Tensor) else None for v in inputs]
            named = {str(launch.get("library")) for launch in (call.plan or {}).get("launches", [])}
            problem_text = plan.check_plan(
                call.plan, inputs=sizes, libraries=named & set(session.libraries), blob_bytes=len(call.state)
            )
            if problem_text:
                raise CandidateFailure(f"{label}: {problem_text}")
            assert call.plan is not None
            plans.append((call.plan, call.state))
        phases["plans_made"] = time.monotonic()
        return plans, dict(session.libraries)
    finally:
        session.close()


def _label(index: int, warmups: int) -> str:
    return f"warm-up call {index + 1}" if index < warmups else f"timed call {index - warmups + 1}"


def _pick(rng: random.Random, slots: list[Slot]) -> Slot:
    return slots[rng.randrange(len(slots))]


def mode_benchmark_gpu(request: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - needs a GPU
    """GPU candidates: CUDA-event timing inside the candidate's worker (see docs/security.md)."""
    stage = prepare(request)
    session = stage.worker()
    try:
        answer, _ = session.request(
            {
                "op": "time_gpu",
                "seeds": list(request["seeds"]),
                # a 95 % interval needs 6 rounds; as many as a C candidate's, at least
                "repeats": max(int(request["repeats"]), MIN_PLANNED_TIMED),
                "budget_s": float(request["budget_s"]),
                "init_seed": request["init_seed"],
            }
        )
    finally:
        session.close()
    if not answer.get("ok"):
        raise CandidateFailure(str(answer.get("detail")))
    ref, cand = answer["reference_samples_ms"], answer["candidate_samples_ms"]
    summary = timing.summarise(ref, cand, None, max_interval=float(request.get("max_interval") or 0.5))
    return {
        "ok": True,
        "device": "cuda",
        "reference_ms": round(summary.reference_ms, 6),
        "candidate_ms": round(summary.candidate_ms, 6),
        "floor_ms": None,
        "ratio": round(summary.ratio_median, 4),
        "speedup": None if summary.speedup is None else round(summary.speedup, 4),
        "spread": round(summary.spread, 4),
        "interval": None if summary.interval is None else [round(v, 4) for v in summary.interval],
        "roofline_speedup": None,
        "unmeasured": summary.unmeasured,
        "rounds": summary.rounds,
        "threads": stage.threads,
        "timed_in": "the candidate's worker (GPU)",
        "samples_ms": {"reference": ref, "candidate": cand},
    }
