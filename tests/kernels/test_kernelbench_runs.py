"""Issue 15.1/15.4/15.7/15.8 through the real command, on KernelBench-shaped problems at their
GPU-scale sizes: a clear refusal as written, scaled runs whose sizes are recorded with the job and
shown beside the result, matmul/GEMM/conv jobs that finish within their budget, and ``bench``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evoforge.cli.bench import summarise

KB = Path(__file__).resolve().parents[1] / "fixtures" / "kernelbench"
#: fewer timed rounds; a smaller call budget keeps the scaled problems quick on a shared machine
FAST_ENV = {"EVOFORGE_KERNEL__BENCHMARK_REPEATS": "6", "EVOFORGE_KERNEL__BENCHMARK_BUDGET_S": "4"}


def evoforge(*args: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evoforge.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **FAST_ENV},
        timeout=timeout,
    )


def test_bench_summary_is_kernelbench_s() -> None:
    rows = [
        {"correct": True, "speedup": 2.0, "compile": {"works": True, "speedup": 1.25}},
        {"correct": True, "speedup": 1.2, "compile": {"works": False, "reason": "no compiler"}},
        {"correct": True, "speedup": 0.5},
        {"correct": False, "speedup": None},
        {"status": "unusable"},
    ]
    s = summarise(rows)
    assert s["problems"] == 5 and s["correct"] == 3 and s["correctness_rate"] == pytest.approx(0.6)
    assert s["fast_1"] == pytest.approx(2 / 5) and s["fast_1.5"] == pytest.approx(1 / 5)
    assert s["geomean_speedup_vs_eager"] == pytest.approx((2.0 * 1.2 * 0.5) ** (1 / 3))
    assert s["geomean_speedup_vs_compile"] == pytest.approx(1.6) and s["compile_measured"] == 1


@pytest.mark.slow
def test_conv_bias_relu_as_written_is_a_clear_refusal_not_a_crash(tmp_path: Path) -> None:
    problem = KB / "level2_1_Conv2D_ReLU_BiasAdd.py"
    candidate = tmp_path / "c.py"
    candidate.write_text("raise SystemExit('never imported')\n")
    done = evoforge("verify", problem, candidate, "--scale", "none", "--memory-limit", "4", "--json")
    assert done.returncode == 2, done.stderr  # bad input, not 1 (rejected) or a crash
    error = json.loads(done.stdout)  # --json: the error as the one JSON object
    assert error["kind"] == "TargetError" and error["exit_code"] == 2
    assert "128×64×128×128" in error["error"] and "GiB" in error["error"] and "--scale" in error["hint"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "problem",
    [
        "level2_12_Gemm_Multiply_LeakyReLU.py",
        "level1_1_Square_matrix_multiplication_.py",
        "level2_1_Conv2D_ReLU_BiasAdd.py",
    ],
)
def test_gemm_matmul_conv_runs_finish_scaled_within_budget(problem: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'e.db'}"
    started = time.monotonic()
    done = evoforge("run", KB / problem, "--budget", "2", "--call-budget", "30", "--db", db, "--json")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded"
    # progress on stderr even with --json, stage by stage
    assert "correctness:" in done.stderr and "benchmark:" in done.stderr
    scaling = report["options"]["scaling"]
    assert "the problem says" in scaling["note"] and scaling["constants"]
    pinned = report["options"]["kernel"]["sizes"]
    assert pinned == {n: c["timed"] for n, c in scaling["constants"].items()}
    accepted = [c for c in report["candidates"] if c["status"] == "accepted"]
    assert accepted, [(c["origin"], c["rejected_stage"], c["reason"]) for c in report["candidates"]]
    assert all(c["origin"].endswith(".c") for c in report["candidates"])  # no GPU: C only
    # timed, or honestly unmeasured (a busy machine widens the interval past the limit): never neither
    assert all(c["metrics"].get("runtime_ms") for c in accepted)
    assert all(c["metrics"].get("speedup") or "unmeasured" in c["reason"] for c in accepted), [
        (c["metrics"], c["reason"]) for c in accepted
    ]
    shown = evoforge("show", str(report["job_id"]), "--db", db)
    assert "sizes: timed at" in shown.stdout
    assert seconds < 900


@pytest.mark.slow
def test_bench_over_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    shutil.copy(KB / "level1_19_ReLU.py", folder)
    (folder / "cumsum.py").write_text(
        "import torch\nimport torch.nn as nn\n\nclass Model(nn.Module):\n    def forward(self, x):\n"
        "        return torch.cumsum(x, dim=1)\n\nbatch_size = 64\ndim = 256\n\n"
        "def get_inputs():\n    return [torch.rand(batch_size, dim)]\n\n"
        "def get_init_inputs():\n    return []\n"
    )
    (folder / "broken.py").write_text("import torch\n")
    db = f"sqlite:///{tmp_path / 'b.db'}"
    done = evoforge(
        "bench", folder, "--budget", "1", "--call-budget", "20", "--no-compile", "--db", db, "--json"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(done.stdout)
    rows = {r["problem"]: r for r in payload["problems"]}
    assert rows["broken.py"]["status"] == "unusable" and "defines no" in rows["broken.py"]["reason"]
    assert rows["cumsum.py"]["proposed"] == 0 and "cumsum" in rows["cumsum.py"]["no_template"]
    relu = rows["level1_19_ReLU.py"]
    assert relu["sizes"].startswith("timed at ") and "the problem says 4096×393216" in relu["sizes"]
    # timed, or honestly unmeasured (a busy machine widens the interval past the limit): never neither
    assert relu["correct"] and ((relu["speedup"] or 0) > 0 or relu.get("unmeasured")), relu
    summary = payload["summary"]
    assert summary["problems"] == 3 and summary["correct"] == 1
    assert summary["correctness_rate"] == pytest.approx(1 / 3)
    assert "[1/3]" in done.stderr  # progress on stderr with --json


@pytest.mark.slow
def test_torch_compile_baseline_beside_eager(relu_problem: Path, tmp_path: Path) -> None:
    from evoforge.config import KernelSettings
    from evoforge.verifiers.kernel.compiled import compile_baseline
    from evoforge.verifiers.kernel.target import load_kernel_target

    settings = KernelSettings(benchmark_repeats=6, benchmark_budget_s=4)
    target = load_kernel_target(relu_problem, settings, work_dir=tmp_path / "t")
    result = compile_baseline(target, settings, tmp_path / "c")
    if shutil.which("g++") is None and shutil.which("c++") is None:
        assert result["works"] is False and "torch.compile" in result["reason"]
        return
    assert result["works"] is True, result
    assert result["eager_ms"] > 0 and result["compiled_ms"] > 0 and result["compile_s"] > 0
    assert result["speedup"] == pytest.approx(result["eager_ms"] / result["compiled_ms"])
