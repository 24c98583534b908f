"""`evoforge run problem.py --proposer llm` on a KernelBench problem, against a scripted endpoint.

The scripted model answers once with a library fallback (the quick check rejects it, so the coder is
asked to repair it), once with a wrong C kernel (ReLU with the wrong threshold) and once with a
correct one. The wrong one is rejected at correctness with the first mismatching elements in its
reason; the correct one is accepted with a measured speed-up; every request is an ``llm_calls`` row;
the prompts carry the kernel contract and the parent's measured speed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from kernel_relu import GOOD, PROBLEM, WRONG
from openai_script import MODEL, ScriptedServer, Step, fenced

from evoforge.domain import normalise_source

#: a library fallback: the quick check (static) rejects it and the coder is asked to repair it
FALLBACK = GOOD.replace("_lib.relu(out, x, x.numel())\n        return out", "return torch.relu(x)")

FAST_ENV = {
    "EVOFORGE_KERNEL__BENCHMARK_REPEATS": "5",
    "EVOFORGE_KERNEL__BENCHMARK_BUDGET_S": "3",
    "EVOFORGE_KERNEL__CPU_THREADS": "2",
    # a noisy shared machine must not turn this pipeline test's speed-up into "unmeasured" (the
    # interval gate itself is tested in tests/kernels)
    "EVOFORGE_KERNEL__MAX_INTERVAL": "1000",
    "EVOFORGE_LLM__BACKOFF_S": "0.05",
    "EVOFORGE_LLM__MAX_RETRIES": "1",
}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evoforge.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **FAST_ENV, "OPENAI_API_KEY": "sk-test"},
        timeout=600,
    )


@pytest.mark.slow
def test_llm_kernel_job_accepts_the_correct_c_kernel_and_rejects_the_wrong_one(tmp_path: Path) -> None:
    problem = tmp_path / "relu.py"
    problem.write_text(PROBLEM)
    db = tmp_path / "jobs.db"
    script = [
        Step(fenced(FALLBACK, "python", "Let torch do it."), role="coder"),
        Step(fenced(WRONG, "python", "One OpenMP pass."), role="coder"),
        Step(fenced(GOOD, "python", "One OpenMP pass."), role="coder"),
    ]
    with ScriptedServer(script, plan="1. One OpenMP SIMD pass over the buffer in C.") as server:
        done = run_cli(
            *("run", problem, "--proposer", "llm", "--budget", "2", "--workers", "1", "--json"),
            *("--base-url", server.url, "--model", MODEL, "--db", f"sqlite:///{db}"),
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded" and report["options"]["proposer"] == "llm"
    assert server.script == []  # both scripted answers were used

    sources = dict(sqlite3.connect(db).execute("SELECT id, source FROM candidates").fetchall())
    by_source = {normalise_source(sources[c["id"]]): c for c in report["candidates"]}
    good = by_source[normalise_source(GOOD)]
    wrong = by_source[normalise_source(WRONG)]
    assert good["status"] == "accepted" and good["origin"] == f"llm:{MODEL}", good.get("reason")
    assert good["metrics"].get("speedup") is not None and good["metrics"].get("runtime_ms") is not None
    assert wrong["status"] == "rejected" and wrong["rejected_stage"] == "correctness"
    assert "first mismatching elements" in wrong["reason"] and "expected" in wrong["reason"]

    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT candidate_id, role, prompt FROM llm_calls WHERE job_id = ? ORDER BY id", (report["job_id"],)
    ).fetchall()
    con.close()
    assert len(rows) == server.count() and report["llm"]["calls"] == len(rows)
    assert {good["id"], wrong["id"]} <= {r[0] for r in rows}
    coder_prompts = [r[2] for r in rows if r[1] == "coder"]
    assert coder_prompts and all("from evoforge.runtime import load_c" in p for p in coder_prompts)
    assert all("no CUDA GPU" in p and "elementwise" in p for p in coder_prompts)
    repairs = [r[2] for r in rows if r[1] == "repair"]
    assert len(repairs) == 1 and "it fails the static check" in repairs[0] and "torch.relu" in repairs[0]
