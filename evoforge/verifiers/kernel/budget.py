"""Time and memory a stage child may use, derived from the reference's own time and the settings.

A candidate far slower than the reference (a naive triple loop at a GEMM's size) must be stopped
with a reason — "slower than 20× torch eager" — not by the run's wall clock after the stage limit
has burnt half of every budget. :func:`stage_budget` gives the wall-clock limit of one child: a
start-up allowance plus, for every candidate call the mode makes, ``slow_factor`` times the
reference's measured time per call (and the reference's own calls), never more than
``stage_timeout_s``. :func:`child_limits` carries ``memory_limit_gib`` into the sandbox limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evoforge.config import KernelSettings
from evoforge.verifiers.kernel.scaling import child_limits

__all__ = ["Budget", "child_limits", "stage_budget"]

#: importing torch (and Triton), loading the problem and the candidate on a busy machine
STARTUP_S = 60.0
#: what the compile stage allows the C compiler (a template compiles in seconds)
C_COMPILE_S = 60.0
#: the harness's own work per call (making inputs, digests, saving the trial's tensors), in reference
#: calls: what a call costs besides the candidate's compute
HARNESS_CALLS = 10
#: correctness's calls besides the trials: the re-run, the in-place change and the four transformed
#: inputs of ``checks.TRANSFORMS`` (the re-run has no reference call)
CORRECTNESS_EXTRA_CALLS = 6
#: the benchmark's calls planned whatever its time budget: at most 6 warm-ups + ``bench.MIN_PLANNED_TIMED``
BENCHMARK_MIN_CALLS = 6 + 15
#: calls of (candidate, reference) a mode makes, besides the benchmark's own time budget (``None``:
#: from the trials). A C candidate's call runs twice: in its worker (the plan) and replayed alone.
_CALLS: dict[str, tuple[int | None, int]] = {
    "compile": (2, 1),
    "candidate": (None, 0),
    "correctness": (None, 0),
    "benchmark": (2 * BENCHMARK_MIN_CALLS, BENCHMARK_MIN_CALLS),
}


@dataclass(frozen=True)
class Budget:
    seconds: float
    limited: bool  # True when the reference's time (not stage_timeout_s) set the limit
    reason: str  # what to say when a child is stopped by it

    def failure(self, seconds: float) -> str:
        return (
            self.reason
            if self.limited
            else f"did not finish within {seconds:.0f} s (killed; a hang or far too slow)"
        )


def stage_budget(mode: str, settings: KernelSettings, probe: dict[str, Any], *, backend: str = "c") -> Budget:
    """The wall-clock limit of one ``mode`` child (``compile``, ``candidate``, ``reference``, …).

    ``compile`` also makes one probe call, so a far-too-slow C kernel is stopped there: it gets
    ``C_COMPILE_S`` for the C compiler; other backends (nvcc, Triton) keep the compile limit.
    """
    cap = settings.stage_timeout_s
    ref_ms = probe.get("runtime_ms")
    if mode not in _CALLS or not isinstance(ref_ms, int | float) or ref_ms <= 0:
        return Budget(cap, False, "")
    cand_calls, ref_calls = _CALLS[mode]
    if mode == "correctness":  # one child: the candidate's calls (planned and replayed) and the reference's
        cand_calls = 2 * (settings.trials + CORRECTNESS_EXTRA_CALLS)
        ref_calls = settings.trials + CORRECTNESS_EXTRA_CALLS - 1
    elif cand_calls is None:
        cand_calls = settings.trials + 1
    per_call_s = (settings.slow_factor + HARNESS_CALLS) * ref_ms / 1e3
    work_s = cand_calls * per_call_s + ref_calls * ref_ms / 1e3
    if mode == "benchmark":
        work_s += settings.benchmark_budget_s
    if mode == "compile":
        work_s += (
            min(C_COMPILE_S, settings.compile_timeout_s) if backend == "c" else settings.compile_timeout_s
        )
    seconds = STARTUP_S + work_s
    if seconds >= cap:
        return Budget(cap, False, "")
    reason = (
        f"was too slow: stopped after {seconds:.0f} s, the budget of this stage ({cand_calls} call(s) at "
        f"{settings.slow_factor:g}× the reference's {ref_ms:.4g} ms each, plus the checks' own work and "
        f"{STARTUP_S:.0f} s to start"
        + (f", the {settings.benchmark_budget_s:g} s timing budget" if mode == "benchmark" else "")
        + (
            (f", {C_COMPILE_S:.0f} s for the C compiler" if backend == "c" else ", the compile limit")
            if mode == "compile"
            else ""
        )
        + "): far slower than torch eager, or hung"
    )
    return Budget(seconds, True, reason)
