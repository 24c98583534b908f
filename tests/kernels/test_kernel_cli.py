"""`evoforge verify` and `evoforge run` on KernelBench problems, through the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import RELU_C

#: max_interval lifted: a loaded machine must not turn this contract test's speed-up into "unmeasured"
FAST_ENV = {
    "EVOFORGE_KERNEL__BENCHMARK_REPEATS": "6",
    "EVOFORGE_KERNEL__BENCHMARK_BUDGET_S": "4",
    "EVOFORGE_KERNEL__MAX_INTERVAL": "1000",
}


def evoforge(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evoforge.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **FAST_ENV},
        timeout=600,
    )


def test_verify_json_contract_and_exit_codes(relu_problem: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text(RELU_C)
    done = evoforge("verify", relu_problem, good, "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["verdict"] == "accepted" and payload["stage"] == "benchmark"
    assert [s["name"] for s in payload["stages"]] == [
        "static",
        "compile",
        "correctness",
        "resources",
        "benchmark",
    ]
    assert set(payload["metrics"]) >= {"runtime_ms", "speedup"}
    assert payload["improvement"]["speedup"] == payload["metrics"]["speedup"]
    assert "runtime_ms" in payload["baseline"]

    wrong = tmp_path / "wrong.py"
    wrong.write_text(RELU_C.replace("2.0f + 1.0f", "2.0f"))
    done = evoforge("verify", relu_problem, wrong, "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["stage"] == "correctness"


def test_bad_problem_exits_2_with_a_message(tmp_path: Path) -> None:
    problem = tmp_path / "p.py"
    problem.write_text("import torch\nclass Model(torch.nn.Module):\n    pass\n")
    done = evoforge("verify", problem, problem)
    assert done.returncode == 2
    assert "defines no get_inputs, get_init_inputs" in done.stderr
    assert "hint:" in done.stderr
