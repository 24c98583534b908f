"""A quick in-process harness for the GEMM/conv C templates: one instance against torch eager.

    .venv/bin/python bench/gemm_conv_harness.py level1_1_Square_matrix_multiplication_ [--params JSON]
        [--rounds 15] [--threads 2] [--call-budget 100] [--sizes NAME=VALUE ...]

The problem (``tests/fixtures/kernelbench/NAME.py``) is sized as the verifier sizes it (``--scale
auto`` at ``--call-budget``, or ``--sizes`` given by hand), the offline proposer's C instance is
rendered (its first proposal, or ``--params``) and both the candidate and the reference run in this
process, interleaved, on the same inputs; the medians and their ratio are printed with the load
average. This is for iterating on a template fast — it trusts the template source (no sandbox) and
checks only that the outputs agree; the numbers that count come from ``bench/kernelbench.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "tests" / "fixtures" / "kernelbench"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("--params", action="append", default=[], help="JSON parameters (repeatable)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--call-budget", type=float, default=100.0)
    parser.add_argument("--sizes", nargs="*", default=[], help="NAME=VALUE size constants")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    from evoforge.agents.base import ProposalRequest
    from evoforge.agents.kernel_templates.catalogue import load_templates
    from evoforge.agents.kernel_templates.proposer import OfflineKernelProposer, instantiate
    from evoforge.config import KernelSettings
    from evoforge.domain import Metrics
    from evoforge.verifiers.kernel.target import load_kernel_target, runnable_source

    torch.set_num_threads(args.threads)
    sizes = {k: int(v) for k, v in (s.rsplit("=", 1) for s in args.sizes)}
    settings = KernelSettings(
        scale="auto" if not sizes else "1",
        sizes=sizes or None,
        call_budget_ms=args.call_budget,
        cpu_threads=args.threads,
    )
    with tempfile.TemporaryDirectory(prefix="gemm-harness-") as tmp:
        target = load_kernel_target(PROBLEMS / f"{args.name}.py", settings, work_dir=Path(tmp))
        summary = target.kernel_summary or {}
        print("sizes:", (summary.get("scaling") or {}).get("note") or "as written")
        problem: dict[str, Any] = {}
        exec(compile(runnable_source(target), "problem", "exec"), problem)
        pattern = summary["patterns"][0]
        template = next(t for t in load_templates() if t.pattern == pattern["kind"] and t.backend == "c")
        sources = []
        if args.params:
            for text in args.params:
                sources.append(instantiate(template, pattern, json.loads(text), target.source, summary))
        else:
            request = ProposalRequest(
                target=target,
                parent_source=target.source,
                parent_metrics=Metrics(),
                feedback={},
                count=2,
                seed=0,
            )
            sources = [p.source for p in OfflineKernelProposer(backends=("c",)).propose(request)]
        torch.manual_seed(0)
        init = problem["get_init_inputs"]()
        reference = problem["Model"](*init)
        inputs = problem["get_inputs"]()
        for source in sources:
            print(source.splitlines()[0])
            module: dict[str, Any] = {}
            exec(compile(source, "candidate", "exec"), module)
            torch.manual_seed(0)
            candidate = module["ModelNew"](*init)
            candidate.load_state_dict(reference.state_dict())
            with torch.no_grad():
                want, got = reference(*inputs), candidate(*inputs)
                err = (want - got).abs().max().item() / max(want.abs().max().item(), 1e-30)
                times: dict[str, list[float]] = {"torch": [], "c": []}
                cpu: dict[str, list[float]] = {"torch": [], "c": []}
                for _ in range(args.rounds):
                    for side, model in (("torch", reference), ("c", candidate)):
                        start, start_cpu = time.perf_counter(), time.process_time()
                        model(*inputs)
                        times[side].append((time.perf_counter() - start) * 1e3)
                        cpu[side].append((time.process_time() - start_cpu) * 1e3)
            t_ms, c_ms = statistics.median(times["torch"]), statistics.median(times["c"])
            t_min, c_min = min(times["torch"]), min(times["c"])
            print(
                f"  rel.err {err:.1e}  median: torch {t_ms:.2f} ms  c {c_ms:.2f} ms  {t_ms / c_ms:.2f}x"
                f"  min: torch {t_min:.2f} ms  c {c_min:.2f} ms  {t_min / c_min:.2f}x"
                f"  cpu-time median: {statistics.median(cpu['torch']) / statistics.median(cpu['c']):.2f}x"
                f"  (load {os.getloadavg()[0]:.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
