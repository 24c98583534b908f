"""Timing statistics that survive a noisy neighbour, and the roofline; GPU timing in the worker.

:func:`summarise` turns interleaved rounds — reference, candidate and roofline kernel timed in a
random order each round, on the same fresh inputs, by the supervisor's clock — into a speed-up:
the **median of the per-round ratios** (a slow round slows both sides of its ratio), with its **95 %
confidence interval** (distribution-free, from the ratios' order statistics: :func:`median_interval`)
and the ratios' spread (interquartile range over median) stored beside it, and two refusals: an
interval wider than ``max_interval`` times the median is *unmeasured* (too noisy to call a win; more
rounds narrow the interval, the spread does not), and a candidate whose median time is below
``ROOFLINE_SLACK`` times the roofline kernel's best round (it only reads every input byte and writes
every output byte, on the same buffers, in the same run; noise can only slow it) is *unmeasured*
too — physics does not allow it, so the measurement is wrong. ``time_cuda`` is the GPU path (CUDA
events, an L2 flush, a device-wide synchronise before the end event), which runs inside the
candidate's worker.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
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
    """Median wall time of each side over up to ``repeats`` rounds (at least 5, within ``budget_s``).

    Both sides in one process: only for trusted code (torch eager beside ``torch.compile``); a
    candidate's C kernels are timed by ``bench`` (replayed alone), never here."""
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


#: the candidate may be this much faster than the roofline kernel before its time is refused (noise)
ROOFLINE_SLACK = 0.8


#: the confidence of the speed-up's interval
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """One benchmark's numbers; ``speedup`` is None when ``unmeasured`` says why."""

    reference_ms: float
    candidate_ms: float
    floor_ms: float | None
    ratio_median: float
    spread: float
    rounds: int
    unmeasured: str | None
    #: the 95 % confidence interval of ``ratio_median`` (None: too few rounds to have one)
    interval: tuple[float, float] | None = None

    @property
    def speedup(self) -> float | None:
        return None if self.unmeasured else self.ratio_median

    @property
    def roofline_speedup(self) -> float | None:
        """The largest speed-up memory traffic allows: reference time over the roofline kernel's best."""
        if not self.floor_ms:
            return None
        return self.reference_ms / self.floor_ms


def summarise(
    reference_ms: list[float],
    candidate_ms: list[float],
    floor_ms: list[float] | None,
    *,
    max_interval: float,
    other_cpus: float | None = None,
) -> Summary:
    """Paired per-round ratios, their median's interval, and the refusals (see the module docstring)."""
    rounds = min(len(reference_ms), len(candidate_ms))
    ratios = paired_ratios(reference_ms, candidate_ms)
    ratio = statistics.median(ratios)
    spread = relative_iqr(ratios)
    interval = median_interval(ratios)
    ref, cand = statistics.median(reference_ms), statistics.median(candidate_ms)
    # the roofline kernel's best round is the closest to the machine's limit; noise only slows it
    floor = min(floor_ms) if floor_ms else None
    unmeasured = None
    if interval is None:
        unmeasured = f"only {rounds} round(s) were timed: too few for a {CONFIDENCE:.0%} confidence interval"
    elif (width := interval_width(interval, ratio)) > max_interval:
        unmeasured = (
            f"too noisy to call: the {CONFIDENCE:.0%} confidence interval of the median speed-up is "
            f"{interval[0]:.3g}x to {interval[1]:.3g}x over {rounds} rounds, {width:.0%} "
            f"of the median (the limit is {max_interval:.0%}; the per-round speed-ups spread {spread:.0%})"
            + (
                " — another load on this machine?"
                if other_cpus is None
                else f"; other processes used {other_cpus:.1f} CPUs of this machine meanwhile"
            )
        )
    elif floor is not None and cand < ROOFLINE_SLACK * floor:
        unmeasured = (
            f"faster than the memory roofline allows: {cand:.4g} ms, while merely reading the inputs and "
            f"writing the outputs took {floor:.4g} ms in the same run (a bound of "
            f"{ref / (floor or 1.0):.2f}x over the reference; {ratio:.2f}x was claimed)"
        )
    return Summary(ref, cand, floor, ratio, spread, rounds, unmeasured, interval)


def paired_ratios(reference_ms: list[float], candidate_ms: list[float]) -> list[float]:
    return [r / c if c > 0 else float("inf") for r, c in zip(reference_ms, candidate_ms, strict=False)]


def median_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Distribution-free confidence interval of the median: the k-th smallest and k-th largest value,
    k the largest with P(B < k) <= (1 - confidence) / 2 for B ~ Binomial(n, 1/2) — the number of
    values below the true median. Assumes only independent rounds; None below 6 values (at 95 %)."""
    n = len(values)
    tail = Fraction((1.0 - confidence) / 2).limit_denominator(10**6)  # exact integers: any n
    k, below = 0, 0  # below = 2^n * P(B <= k - 1)
    while k < n and (below + math.comb(n, k)) * tail.denominator <= tail.numerator * 2**n:
        below += math.comb(n, k)
        k += 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def interval_width(interval: tuple[float, float], middle: float) -> float:
    """The interval's width as a fraction of the median it brackets."""
    return (interval[1] - interval[0]) / middle if middle > 0 else float("inf")


def relative_iqr(values: list[float]) -> float:
    if len(values) < 4:
        return 0.0 if len(set(values)) <= 1 else float("inf")
    q1, _q2, q3 = statistics.quantiles(values, n=4)
    middle = statistics.median(values)
    return (q3 - q1) / middle if middle > 0 else float("inf")


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
