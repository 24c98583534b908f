"""Issue 15.4: a candidate far slower than the reference is stopped by a budget derived from the
reference's own time, with that reason — not by the stage's wall-clock limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.config import KernelSettings
from evoforge.verifiers.kernel.budget import HARNESS_CALLS, STARTUP_S, stage_budget
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.target import load_kernel_target

SPIN_C = '''
import torch
import torch.nn as nn
from evoforge.runtime import load_c

_lib = load_c(r"""
#include <stdint.h>
void relu2(float *o, const float *x, int64_t n) {
    for (volatile int64_t spin = 0; spin < (int64_t)1 << 40; ++spin) { }
    for (int64_t i = 0; i < n; ++i) o[i] = (x[i] > 0.0f ? x[i] : 0.0f) * 2.0f + 1.0f;
}""")


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        _lib.relu2(out, x, x.numel())
        return out
'''


def test_budget_follows_the_reference_time() -> None:
    settings = KernelSettings(stage_timeout_s=600, slow_factor=20, trials=3)
    fast = stage_budget("candidate", settings, {"runtime_ms": 10.0})
    assert fast.limited and fast.seconds == pytest.approx(STARTUP_S + 4 * (20 + HARNESS_CALLS) * 0.010)
    assert "20× the reference's 10 ms" in fast.reason and "4 call(s)" in fast.reason
    slow = stage_budget("candidate", settings, {"runtime_ms": 20_000.0})
    assert not slow.limited and slow.seconds == 600  # the stage limit is the smaller one
    assert not stage_budget("reference", settings, {"runtime_ms": 10.0}).limited  # no candidate code
    assert not stage_budget("candidate", settings, {}).limited  # no reference time: the stage limit
    compile_c = stage_budget("compile", settings, {"runtime_ms": 10.0})
    assert compile_c.limited and "for the C compiler" in compile_c.reason
    nvcc = stage_budget("compile", settings, {"runtime_ms": 10.0}, backend="cuda")
    assert nvcc.seconds > settings.compile_timeout_s and "the compile limit" in nvcc.reason
    bench = stage_budget("benchmark", settings, {"runtime_ms": 10.0})
    assert bench.seconds > settings.benchmark_budget_s and "timing budget" in bench.reason


def test_one_correctness_child_and_the_benchmark_count_every_planned_and_replayed_call() -> None:
    settings = KernelSettings(stage_timeout_s=600, slow_factor=20, trials=3)
    correctness = stage_budget("correctness", settings, {"runtime_ms": 10.0})
    # (3 trials + re-run + in-place + 4 transformed) planned and replayed; 8 reference calls
    assert correctness.limited and "18 call(s)" in correctness.reason
    assert correctness.seconds == pytest.approx(STARTUP_S + 18 * (20 + HARNESS_CALLS) * 0.010 + 8 * 0.010)
    bench = stage_budget("benchmark", settings, {"runtime_ms": 10.0})
    assert "42 call(s)" in bench.reason  # up to 6 warm-ups + 15 timed calls, planned and replayed


@pytest.mark.slow
def test_far_too_slow_candidate_is_stopped_with_the_reason(relu_problem: Path, tmp_path: Path) -> None:
    settings = KernelSettings(stage_timeout_s=400, benchmark_repeats=6, benchmark_budget_s=4)
    target = load_kernel_target(relu_problem, settings, work_dir=tmp_path / "t")
    verifier = KernelVerifier(target=target, settings=settings, work_root=tmp_path / "v")
    verdict = verifier.verify(SPIN_C)
    assert not verdict.accepted and not verdict.error
    stopped = verdict.stages[-1]
    assert stopped.name in ("compile", "correctness"), verdict.reason
    assert "too slow" in stopped.detail and "× the reference's" in stopped.detail
    assert stopped.seconds < 250  # the budget (start-up, the C compile, 30 × the reference), not 400 s
