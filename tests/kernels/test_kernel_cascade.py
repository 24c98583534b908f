"""The kernel cascade on small inline candidates: accepted C and Triton kernels, and clear rejections."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RELU_C, RELU_TRITON

from evoforge.config import KernelSettings
from evoforge.domain import Target
from evoforge.verifiers.kernel import seccomp
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.target import load_kernel_target


@pytest.fixture
def relu_target(relu_problem: Path, kernel_settings: KernelSettings, tmp_path: Path) -> Target:
    return load_kernel_target(relu_problem, kernel_settings, work_dir=tmp_path / "target")


@pytest.fixture
def verifier(relu_target: Target, kernel_settings: KernelSettings, tmp_path: Path) -> KernelVerifier:
    return KernelVerifier(relu_target, kernel_settings, tmp_path / "verify")


def test_c_candidate_is_accepted_and_timed_against_torch(verifier: KernelVerifier) -> None:
    seen: list[str] = []
    verdict = verifier.verify(RELU_C, on_stage=lambda r: seen.append(r.name))
    assert verdict.accepted, verdict.reason
    assert seen == ["static", "compile", "correctness", "resources", "benchmark"]
    bench = verdict.stages[-1]
    # an honest kernel is never refused as "faster than the roofline" (nor too noisy: max_interval is
    # lifted here); if it is, the detail says which and with the rounds' samples
    assert verdict.metrics.speedup is not None and verdict.metrics.speedup > 0, (bench.detail, bench.data)
    assert verdict.metrics.runtime_ms is not None and verdict.metrics.runtime_ms > 0
    assert bench.data["device"] == "cpu" and bench.data["unmeasured"] is None
    # the spread and the roofline bound are stored beside the speed-up; every timed call was checked
    assert bench.data["spread"] is not None and bench.data["roofline_speedup"] > 0
    assert bench.data["rounds"] >= 5 and bench.data["threads"] == len(bench.data["cpus"])
    # every call planned after the warm-ups is timed (it is replayed and checked anyway)
    assert bench.data["rounds"] == bench.data["checked_calls"] - bench.data["warmup_calls"]
    assert set(bench.data["round_seconds"]) >= {"inputs", "reference", "candidate", "floor", "compare"}
    assert bench.data["replay_seccomp"] is seccomp.available()
    # the CPUs were kept running between timed calls: one spinner on each (``awake``)
    assert bench.data["kept_awake"] == len(bench.data["cpus"])
    # each side's page faults in each timed call are stored beside its time (see test_kernel_faults)
    for side, times in bench.data["samples_ms"].items():
        assert len(bench.data["minor_faults"][side]) == len(bench.data["major_faults"][side]) == len(times)
    correctness = next(r for r in verdict.stages if r.name == "correctness")
    assert correctness.data["replayed"] and any("sign-flipped" in c for c in correctness.data["cases"])
    assert verdict.functional_hash and verdict.implementation_hash
    assert verifier.baseline().metrics.runtime_ms is not None
    assert verifier.baseline().metrics.speedup == 1.0  # the original against itself


def test_triton_candidate_is_checked_in_the_interpreter_and_not_timed_here(verifier: KernelVerifier) -> None:
    verdict = verifier.verify(RELU_TRITON)
    assert verdict.accepted, verdict.reason
    correctness = next(r for r in verdict.stages if r.name == "correctness")
    assert all(n >= 1 for n in correctness.data["launches"])
    resources = next(r for r in verdict.stages if r.name == "resources")
    assert resources.data["arch"] == "sm_90"
    assert verdict.metrics.registers is not None and verdict.metrics.registers > 0
    bench = verdict.stages[-1]
    assert "unmeasured" in bench.detail and bench.data["unmeasured"]
    assert verdict.metrics.speedup is None and verdict.metrics.runtime_ms is None  # never guessed


def test_wrong_candidate_is_rejected_with_the_first_mismatches(verifier: KernelVerifier) -> None:
    wrong = RELU_C.replace("* 2.0f + 1.0f", "* 2.0f + 1.001f")
    verdict = verifier.verify(wrong)
    assert not verdict.accepted and not verdict.error
    assert verdict.stage == "correctness"
    assert "trial 1: output 0" in verdict.reason and "expected" in verdict.reason
    assert verdict.stages[-1].data["mismatches"]


@pytest.mark.parametrize(
    ("source", "stage", "message"),
    [
        ("def broken(:\n", "static", "syntax error"),
        (RELU_C.replace("class ModelNew", "class NotIt"), "static", "defines no ModelNew"),
        (RELU_C.replace("o[i] = (x[i]", "o[i] = (x[i] +* 1"), "compile", "C compilation failed"),
        (
            RELU_C.replace(
                "_lib.relu2(out, x, x.numel())",
                "_lib.relu2(out, x, x.numel())\n        while True:\n            pass",
            ),
            "compile",
            "did not finish within",
        ),
    ],
)
def test_bad_candidates_get_a_stage_and_reason(
    relu_target: Target, tmp_path: Path, source: str, stage: str, message: str
) -> None:
    # the hang is killed after 20 s; the others get room for two torch start-ups on a loaded machine
    settings = KernelSettings(stage_timeout_s=20 if "while True" in source else 120)
    verdict = KernelVerifier(relu_target, settings, tmp_path / "v").verify(source)
    assert not verdict.accepted and not verdict.error
    assert verdict.stage == stage
    assert message in verdict.reason


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="with a GPU the candidate runs (test_kernel_gpu)"
)
def test_cuda_candidate_compiles_here_but_is_never_passed_without_a_gpu(verifier: KernelVerifier) -> None:
    from test_kernel_gpu import RELU_CUDA

    verdict = verifier.verify(RELU_CUDA)
    assert verdict.error and not verdict.accepted  # candidate status 'error': unverifiable, not wrong
    assert verdict.stage == "correctness" and "unverifiable here" in verdict.reason
    compiled = next(r for r in verdict.stages if r.name == "compile")
    assert "sm_90" in compiled.detail and verdict.metrics.registers is not None


def test_quick_check_runs_static_and_compile_only(verifier: KernelVerifier) -> None:
    assert verifier.quick_check(RELU_C).name == "compile"
    failed = verifier.quick_check("import torch\n")
    assert failed.name == "static" and not failed.ok
