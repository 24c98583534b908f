"""Timing a candidate against the reference in one process run (inside the benchmark child).

Both sides run on fresh inputs every round, in a random order per round, after a warm-up; the
median of each side is reported and the speed-up is their ratio from the same run. On the CPU the
clock is ``time.perf_counter`` as it was before the candidate was imported (``clock``). On a GPU:
CUDA events, an L2 flush (a write larger than the L2 cache) before every timed call, and a
device-wide synchronise before the end event is read, so that work left on another stream counts.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

Call = Callable[[list[Any]], Any]


@dataclass(frozen=True)
class Timing:
    reference_ms: float
    candidate_ms: float
    rounds: int
    reference_samples_ms: tuple[float, ...]
    candidate_samples_ms: tuple[float, ...]

    @property
    def speedup(self) -> float:
        return self.reference_ms / self.candidate_ms if self.candidate_ms > 0 else float("inf")


def time_cpu(
    reference: Call,
    candidate: Call,
    make_inputs: Callable[[int], list[Any]],
    *,
    clock: Callable[[], float],
    repeats: int,
    budget_s: float,
    seed: int,
    warmup: int = 2,
) -> Timing:
    """Median wall time of each side over up to ``repeats`` rounds (at least 5, within ``budget_s``)."""
    rng = random.Random(seed)
    for _ in range(warmup):
        inputs = make_inputs(rng.getrandbits(31))
        candidate(inputs)
        reference(inputs)
    samples: dict[str, list[float]] = {"reference": [], "candidate": []}
    sides = {"reference": reference, "candidate": candidate}
    start = clock()
    rounds = 0
    while rounds < repeats and (rounds < 5 or clock() - start < budget_s):
        order = list(sides)
        rng.shuffle(order)
        for side in order:
            inputs = make_inputs(rng.getrandbits(31))
            begin = clock()
            sides[side](inputs)
            samples[side].append((clock() - begin) * 1e3)
        rounds += 1
    return _timing(samples, rounds)


def time_cuda(
    reference: Call,
    candidate: Call,
    make_inputs: Callable[[int], list[Any]],
    *,
    repeats: int,
    budget_s: float,
    seed: int,
    warmup: int = 3,
) -> Timing:  # pragma: no cover - needs a GPU (tests run it when torch.cuda.is_available())
    """CUDA-event medians with an L2 flush before each call and a device-wide sync before reading."""
    rng = random.Random(seed)
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    l2_bytes = int(getattr(props, "L2_cache_size", 0) or 64 << 20)
    flush = torch.empty(max(2 * l2_bytes // 4, 1 << 20), dtype=torch.float32, device="cuda")
    for _ in range(warmup):
        inputs = make_inputs(rng.getrandbits(31))
        candidate(inputs)
        reference(inputs)
    torch.cuda.synchronize()
    samples: dict[str, list[float]] = {"reference": [], "candidate": []}
    sides = {"reference": reference, "candidate": candidate}
    wall = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    wall[0].record()
    rounds = 0
    while rounds < repeats:
        order = list(sides)
        rng.shuffle(order)
        for side in order:
            inputs = make_inputs(rng.getrandbits(31))
            flush.fill_(float(rounds))
            torch.cuda.synchronize()
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            sides[side](inputs)
            torch.cuda.synchronize()  # device-wide: work on any stream has finished
            end.record()
            end.synchronize()
            samples[side].append(begin.elapsed_time(end))
        rounds += 1
        wall[1].record()
        wall[1].synchronize()
        if rounds >= 5 and wall[0].elapsed_time(wall[1]) / 1e3 > budget_s:
            break
    return _timing(samples, rounds)


def _timing(samples: dict[str, list[float]], rounds: int) -> Timing:
    return Timing(
        reference_ms=statistics.median(samples["reference"]),
        candidate_ms=statistics.median(samples["candidate"]),
        rounds=rounds,
        reference_samples_ms=tuple(round(s, 4) for s in samples["reference"]),
        candidate_samples_ms=tuple(round(s, 4) for s in samples["candidate"]),
    )


def time_reference_cpu(
    call: Call, make_inputs: Callable[[int], list[Any]], *, clock: Callable[[], float], repeats: int = 10
) -> float:
    """Median milliseconds of the reference alone (the baseline's ``runtime_ms``)."""
    call(make_inputs(0))
    times = []
    for i in range(repeats):
        inputs = make_inputs(i + 1)
        begin = clock()
        call(inputs)
        times.append((clock() - begin) * 1e3)
    return statistics.median(times)
