"""A quick in-process harness for the C templates (GEMM, conv, reductions, ...): instances against
torch eager and evoforge's roofline kernel.

    .venv/bin/python bench/gemm_conv_harness.py level1_1_Square_matrix_multiplication_ [--params JSON]
        [--rounds 15] [--threads 2] [--call-budget 100] [--sizes NAME=VALUE ...]

The problem (``tests/fixtures/kernelbench/NAME.py``) is sized as the verifier sizes it (``--scale
auto`` at ``--call-budget``, or ``--sizes`` given by hand), the offline proposer's C instance is
rendered (its first proposal, or ``--params``) and both the candidate and the reference run in this
process, interleaved in a shuffled order with the roofline kernel (reads every input byte, writes
every output byte), on the same inputs rewritten before each call; the medians and their ratio are
printed with the load average. As in the benchmark, freed memory is kept (no call faults fresh
pages in) and OpenMP threads sleep when idle (torch's and the kernels' runtimes are two pools on the
same CPUs: spinning, each slows the other). This is for iterating on a template fast — it trusts the
template source (no sandbox) and checks only that the outputs agree; the numbers that count come
from ``bench/kernelbench.py``, whose timed sides run in their own processes on inputs another process
has just written (there every side is slower, and not by the same factor).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
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
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    libc = ctypes.CDLL(None)
    libc.mallopt(-4, 0)  # M_MMAP_MAX: no block of its own per large tensor (freed memory is kept)
    libc.mallopt(-1, ctypes.c_int(2**31 - 1))  # M_TRIM_THRESHOLD: the heap never shrinks
    import torch

    from evoforge import runtime
    from evoforge.agents.base import ProposalRequest
    from evoforge.agents.kernel_templates.catalogue import load_templates
    from evoforge.agents.kernel_templates.proposer import OfflineKernelProposer, instantiate
    from evoforge.config import KernelSettings
    from evoforge.domain import Metrics
    from evoforge.verifiers.kernel.replay_host import FLOOR_SOURCE
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
        originals = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        floor_lib = ctypes.CDLL(
            str(runtime.build_library(FLOOR_SOURCE, openmp=True, flags=(), directory=Path(tmp)))
        )
        models = {"torch": reference}
        for source in sources:
            module: dict[str, Any] = {}
            exec(compile(source, "candidate", "exec"), module)
            torch.manual_seed(0)
            models[source.splitlines()[0]] = module["ModelNew"](*init)
            models[source.splitlines()[0]].load_state_dict(reference.state_dict())
        with torch.no_grad():
            want = reference(*inputs)
            tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
            out = torch.empty_like(want)
            pointer, size = ctypes.c_void_p, ctypes.c_int64

            def floor() -> None:
                floor_lib.evoforge_floor(
                    (pointer * len(tensors))(*[x.data_ptr() for x in tensors]),
                    (size * len(tensors))(*[x.numel() * x.element_size() for x in tensors]),
                    len(tensors),
                    (pointer * 1)(out.data_ptr()),
                    (size * 1)(out.numel() * out.element_size()),
                    1,
                )

            sides: dict[str, Any] = {name: (lambda m=model: m(*inputs)) for name, model in models.items()}
            sides["roofline kernel"] = floor
            for name, model in models.items():
                got = model(*inputs)
                err = (want - got).abs().max().item() / max(want.abs().max().item(), 1e-30)
                print(f"{name}\n  rel.err {err:.1e}")
            times: dict[str, list[float]] = {name: [] for name in sides}
            order = list(sides)
            for round_ in range(args.rounds):
                random.Random(round_).shuffle(order)
                for name in order:
                    for x, original in zip(inputs, originals, strict=True):
                        if isinstance(x, torch.Tensor):
                            x.copy_(original)
                    start = time.perf_counter()
                    sides[name]()
                    times[name].append((time.perf_counter() - start) * 1e3)
        torch_ms = statistics.median(times["torch"])
        for name, values in times.items():
            ms = statistics.median(values)
            print(f"{ms:9.2f} ms  torch/this {torch_ms / ms:5.2f}x  min {min(values):.2f} ms  {name}")
        print(f"(load {os.getloadavg()[0]:.2f}, {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
