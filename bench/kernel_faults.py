"""Page faults and spread per side of the kernel benchmark: where does the timing noise come from?

    .venv/bin/python bench/kernel_faults.py [--only NAME ...] [--budget 1] [--repeats 20]

For each KernelBench-shaped problem (``tests/fixtures/kernelbench/``, at ``--scale auto``), the first
``--budget`` C template instances go through the full verifier cascade; for each accepted one this
prints, per side of the ``benchmark`` stage (torch eager = ``reference``, the C candidate replayed =
``candidate``, the roofline kernel = ``floor``): the median time of a timed call, the spread of those
times (interquartile range over median), and the page faults the side's process took during its timed
calls (minor and major; counted by the supervisor from ``/proc/PID/stat`` around each call) — then
the spread of the per-round speed-ups, which is what the benchmark refuses above 50 %. A side that
takes about one minor fault per 4 KiB of the bytes it writes is touching fresh memory on every call.

Prints the load average with the numbers: on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from evoforge.agents.base import ProposalRequest
from evoforge.agents.kernel_templates.proposer import OfflineKernelProposer
from evoforge.config import KernelSettings
from evoforge.domain import Metrics
from evoforge.errors import EvoforgeError
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.target import load_kernel_target

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "tests" / "fixtures" / "kernelbench"
DEFAULT = ["level1_19_ReLU", "level1_25_Swish", "level1_23_Softmax", "level1_36_RMSNorm_"]


def spread(values: list[float]) -> float:
    if len(values) < 4:
        return float("nan")
    q1, _, q3 = statistics.quantiles(values, n=4)
    middle = statistics.median(values)
    return (q3 - q1) / middle if middle else float("inf")


def report(data: dict[str, Any]) -> list[str]:
    samples, minor, major = (
        data.get("samples_ms") or {},
        data.get("minor_faults") or {},
        data.get("major_faults") or {},
    )
    lines = [
        f"  {'side':<10} {'median ms':>10} {'spread':>7} {'minor faults/call (median, max)':>32} {'major':>6}"
    ]
    for side in ("reference", "candidate", "floor"):
        times = samples.get(side) or []
        if not times:
            continue
        faults = minor.get(side) or [0]
        lines.append(
            f"  {side:<10} {statistics.median(times):>10.3f} {spread(times):>7.0%} "
            f"{statistics.median(faults):>22.0f} {max(faults):>9d} {sum(major.get(side) or [0]):>6d}"
        )
    ratios = [
        r / c
        for r, c in zip(samples.get("reference") or [], samples.get("candidate") or [], strict=False)
        if c
    ]
    lines.append(
        f"  speed-up {data.get('ratio')}x, per-round spread {spread(ratios):.0%} over {len(ratios)} rounds"
        + (f" — unmeasured: {data['unmeasured']}" if data.get("unmeasured") else "")
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="problem names (file stems)")
    parser.add_argument("--budget", type=int, default=1, help="template instances verified per problem")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per side")
    parser.add_argument(
        "--call-budget", type=float, default=100.0, help="ms per reference call at --scale auto"
    )
    parser.add_argument("--threads", type=int, default=None, help="threads of torch and the C kernels")
    args = parser.parse_args()
    settings = KernelSettings(
        scale="auto",
        call_budget_ms=args.call_budget,
        cpu_threads=args.threads,
        benchmark_repeats=args.repeats,
    )
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="kernel-faults-") as tmp:
        for name in args.only or DEFAULT:
            work = Path(tmp) / name
            try:
                target = load_kernel_target(PROBLEMS / f"{name}.py", settings, work_dir=work / "target")
            except EvoforgeError as exc:
                print(f"{name}: {exc.message.splitlines()[0]}")
                continue
            note = ((target.kernel_summary or {}).get("scaling") or {}).get("note") or "as written"
            print(f"{name} ({note})")
            request = ProposalRequest(
                target=target, parent_source=target.source, parent_metrics=Metrics(), feedback={},
                count=args.budget, seed=0,
            )  # fmt: skip
            verifier = KernelVerifier(target, settings, work / "verify")
            for proposal in OfflineKernelProposer(backends=("c",)).propose(request):
                verdict = verifier.verify(proposal.source)
                bench = next((r for r in verdict.stages if r.name == "benchmark"), None)
                print(f" {proposal.origin} (load {os.getloadavg()[0]:.2f})")
                if bench is None or not bench.data or "samples_ms" not in bench.data:
                    print(f"  not timed: {verdict.reason[:200]}")
                    continue
                print("\n".join(report(bench.data)))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
