"""What the kernel benchmark's timed window holds besides the kernel, on a small problem.

    .venv/bin/python bench/timing_overhead.py [--calls 200] [--write]

ReLU on 256×4096 fp32 (4 MB in, 4 MB out), on this machine's CPUs:

1. ``torch.relu`` in this process, back to back and after a 2 ms pause (the benchmark's calls are
   isolated: other work runs between them), under both OpenMP wait policies;
2. the reference worker's timed call (``WorkerSession.timed_run``: the clock the benchmark uses for
   torch eager, IPC round trip included);
3. the benchmark stage itself on a C ReLU: each side's per-round times (torch eager, the replayed
   candidate, the roofline kernel), as the verifier measured them.

Minimum and median per row. The ratio of a small problem's speed-up is mostly these fixed costs;
the roofline kernel's row should be the lowest of the three if it is a true floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _doc import write_section

SECTION = "## Timing overhead of the kernel benchmark (issue 15)"
PROBLEM = """\
import torch


class Model(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(256, 4096)]


def get_init_inputs():
    return []
"""
CANDIDATE = '''\
import torch
from evoforge.runtime import load_c

_lib = load_c(r"""
#include <stdint.h>
void relu(float *out, const float *x, int64_t n) {
    #pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
""")


class ModelNew(torch.nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        _lib.relu(out, x, x.numel())
        return out
'''
IN_PROCESS = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
x = torch.randn(256, 4096)
for _ in range(50):
    torch.relu(x)
for pause in (0.0, 0.002):
    samples = []
    for _ in range(int(sys.argv[1])):
        if pause:
            time.sleep(pause)
        begin = time.perf_counter()
        torch.relu(x)
        samples.append((time.perf_counter() - begin) * 1e3)
    print(pause, *samples)
"""


def _row(label: str, samples: list[float]) -> str:
    return f"| {label} | {min(samples):.3f} | {statistics.median(samples):.3f} |"


def in_process(calls: int, threads: int) -> list[str]:
    rows = []
    for policy in ("ACTIVE", "PASSIVE"):
        env = dict(os.environ, OMP_WAIT_POLICY=policy, OMP_NUM_THREADS=str(threads))
        out = subprocess.run(
            [sys.executable, "-c", IN_PROCESS, str(calls), str(threads)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in out.splitlines():
            pause, *values = line.split()
            what = "back to back" if float(pause) == 0 else "after a 2 ms pause"
            rows.append(_row(f"torch.relu in process, {what}, OMP {policy}", [float(v) for v in values]))
    return rows


def reference_worker(calls: int, work: Path) -> list[str]:
    import torch

    from evoforge.verifiers.kernel.session import WorkerSession
    from evoforge.verifiers.kernel.supervise import child_env

    problem = work / "problem.py"
    problem.write_text(PROBLEM)
    cpus = sorted(os.sched_getaffinity(0))
    session = WorkerSession(
        role="reference", workdir=work, backend="c", cpus=cpus, env=child_env(len(cpus), role="reference")
    )
    try:
        session.setup(problem=str(problem), init_seed=1, device="cpu")
        session.reserve(64 << 20)
        x = torch.randn(256, 4096)
        samples = [session.timed_run(session.place([x]))[0] * 1e3 for _ in range(calls)]
    finally:
        session.close()
    return [_row("reference worker's timed call (torch eager + IPC)", samples)]


def benchmark_stage(work: Path) -> tuple[list[str], str]:
    from evoforge.config import KernelSettings
    from evoforge.verifiers.kernel.cascade import KernelVerifier
    from evoforge.verifiers.kernel.target import load_kernel_target

    settings = KernelSettings(benchmark_repeats=40, benchmark_budget_s=20.0, max_interval=1000.0)
    problem = work / "relu.py"
    problem.write_text(PROBLEM)
    target = load_kernel_target(problem, settings, work_dir=work / "target")
    verdict = KernelVerifier(target, settings, work / "verify").verify(CANDIDATE)
    if not verdict.accepted:
        raise SystemExit(f"timing_overhead: the C ReLU was rejected: {verdict.reason}")
    data = verdict.stages[-1].data
    names = {"reference": "torch eager", "candidate": "C ReLU (replayed)", "floor": "roofline kernel"}
    rows = [_row(f"benchmark stage: {names[k]}", v) for k, v in data["samples_ms"].items()]
    outcome = data.get("unmeasured") or f"speed-up {data['speedup']:.2f}x"
    return rows, f"{data['rounds']} rounds; {outcome}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--write", action="store_true", help="replace this section of docs/benchmarks.md")
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="timing-overhead-") as tmp:
        work = Path(tmp)
        rows = in_process(args.calls, threads)
        rows += reference_worker(args.calls, work)
        stage_rows, stage_note = benchmark_stage(work)
    load = os.getloadavg()[0]
    text = "\n".join(
        [
            SECTION,
            "",
            f"`.venv/bin/python bench/timing_overhead.py --calls {args.calls}` — ReLU on 256×4096 fp32, "
            f"{threads} thread(s), load average {load:.1f}. Benchmark stage: {stage_note}.",
            "",
            "| what is timed | min ms | median ms |",
            "|---|---|---|",
            *rows,
            *stage_rows,
            "",
        ]
    )
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
