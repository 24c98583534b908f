"""What an idle gap before a call costs on this machine, and what keeps it away.

    .venv/bin/python bench/idle_gap.py [--rounds 30] [--gap-ms 20] [--threads 2]

One process, torch eager (OpenMP threads sleeping when idle, freed memory kept, as in the
benchmark's children) on two KernelBench-sized operations: softmax over 4096×3072 and a sum over
dim 1 of 128×512×511. Before each timed call, one of:

- ``back to back``: nothing (the inputs rewritten, as in every mode);
- ``idle``: ``--gap-ms`` of sleep with every CPU idle (what the benchmark did before ``awake``);
- ``spin N ms``: the same gap, its last N ms spent by evoforge's spinners (``awake.Awake``, one per
  CPU, lowest priority) — N = the whole gap is what the benchmark now does.

The spinners are parked (asleep) during every timed call. Prints each mode's median and its ratio to
``back to back`` measured in the same run; each mode runs in two blocks of ``--rounds``/2 calls
(blocks shuffled; the first 3 calls of a block, which follow another mode, are not kept).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: calls at the start of each block of one mode that are not kept
SETTLING = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    libc = ctypes.CDLL(None)
    libc.mallopt(-4, 0)  # M_MMAP_MAX: freed memory is kept (no call faults fresh pages in)
    libc.mallopt(-1, ctypes.c_int(2**31 - 1))  # M_TRIM_THRESHOLD
    import torch

    sys.path.insert(0, str(ROOT))
    from evoforge.verifiers.kernel.awake import Awake

    torch.set_num_threads(args.threads)
    gap = args.gap_ms / 1e3
    cases = {
        "softmax 4096×3072": (torch.randn(4096, 3072), lambda x: torch.softmax(x, dim=-1)),
        "sum dim 1 128×512×511": (torch.randn(128, 512, 511), lambda x: torch.sum(x, dim=1, keepdim=True)),
    }
    spins = [1.0, 5.0, args.gap_ms]
    modes = ["back to back", "idle", *[f"spin {s:g} ms" for s in spins]]
    cpus = sorted(os.sched_getaffinity(0))[: args.threads]
    with tempfile.TemporaryDirectory() as tmp, Awake(cpus, Path(tmp)) as awake:
        for name, (source, op) in cases.items():
            x = source.clone()
            times: dict[str, list[float]] = {m: [] for m in modes}
            for _ in range(3):  # warm: the heap and the thread pool
                op(x)
            # modes in blocks (a block's first calls, after another mode's gaps, are not kept), each
            # mode twice in a shuffled order of blocks
            blocks = modes * 2
            random.shuffle(blocks)
            for mode in blocks:
                for index in range(args.rounds // 2 + SETTLING):
                    with awake.parked():
                        x.copy_(source)
                        if mode == "idle":
                            time.sleep(gap)
                        elif mode.startswith("spin"):
                            time.sleep(max(0.0, gap - float(mode.split()[1]) / 1e3))
                    if mode.startswith("spin"):
                        time.sleep(float(mode.split()[1]) / 1e3)  # the spinners run meanwhile
                    with awake.parked():
                        begin = time.perf_counter()
                        op(x)
                        seconds = time.perf_counter() - begin
                    if index >= SETTLING:
                        times[mode].append(seconds * 1e3)
            base = statistics.median(times["back to back"])
            print(
                f"{name} ({args.rounds} rounds, {args.threads} threads, gap {args.gap_ms:g} ms, load "
                f"{os.getloadavg()[0]:.2f})"
            )
            for mode in modes:
                median = statistics.median(times[mode])
                print(f"  {mode:>14}: median {median:6.2f} ms   {median / base:5.2f}× back to back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
