"""The benchmark's spinners: running between timed calls, asleep during them, out of everyone's way."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import RELU_C

from evoforge.config import KernelSettings
from evoforge.verifiers.kernel.awake import Awake
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.procs import Watch
from evoforge.verifiers.kernel.target import load_kernel_target

CPUS = sorted(os.sched_getaffinity(0))


def _state(tid: int) -> str:
    with open(f"/proc/self/task/{tid}/stat", "rb") as handle:
        return handle.read().rsplit(b")", 1)[1].split()[0].decode()


def _cpu_ns(watch: Watch, tids: frozenset[int]) -> int:
    return sum(watch.thread_cpu_ns(t) for t in tids)


def test_one_spinner_per_cpu_pinned_at_the_lowest_priority_and_gone_afterwards(tmp_path: Path) -> None:
    watch = Watch(os.getpid())
    before = watch.tids()
    with Awake(CPUS, tmp_path) as awake:
        spinners = watch.tids() - before
        assert awake.started == len(CPUS) == len(spinners)
        assert sorted(next(iter(os.sched_getaffinity(t))) for t in spinners) == CPUS
        assert all(len(os.sched_getaffinity(t)) == 1 for t in spinners)
        # SCHED_IDLE: any thread of normal priority on that CPU (a timed call's, the supervisor's) runs first
        assert {os.sched_getscheduler(t) for t in spinners} == {os.SCHED_IDLE}
    assert not (watch.tids() & spinners)


def test_spinners_use_their_cpus_between_calls_and_none_while_parked(tmp_path: Path) -> None:
    watch = Watch(os.getpid())
    before = watch.tids()
    with Awake(CPUS, tmp_path) as awake:
        spinners = watch.tids() - before
        time.sleep(0.02)
        start, began = _cpu_ns(watch, spinners), time.monotonic()
        time.sleep(0.2)
        spun = (_cpu_ns(watch, spinners) - start) / 1e9 / (time.monotonic() - began)
        # this test's own thread sleeps: the spinners have the CPUs (less whatever else runs here)
        assert spun > 0.3 * len(CPUS), f"spinners used {spun:.2f} CPUs"
        for _ in range(20):  # parked and woken as often as the rounds do it, without a lost wake-up
            with awake.parked():
                pass
        with awake.parked():
            # parked means out of the spin loop on return; a spinner preempted on its way into the
            # wait (it has the lowest priority) may show as runnable for a moment, never for long
            deadline = time.monotonic() + 0.05
            while {_state(t) for t in spinners} != {"S"} and time.monotonic() < deadline:
                time.sleep(0.001)
            assert {_state(t) for t in spinners} == {"S"}
            start = _cpu_ns(watch, spinners)
            time.sleep(0.1)
            assert _cpu_ns(watch, spinners) - start < 2_000_000
        start = _cpu_ns(watch, spinners)
        time.sleep(0.1)
        assert _cpu_ns(watch, spinners) - start > 10_000_000, "the spinners did not resume after the call"


def test_a_second_spinner_set_after_the_first_starts_again(tmp_path: Path) -> None:
    for _ in range(2):
        with Awake(CPUS, tmp_path) as awake:
            assert awake.started == len(CPUS)
            with awake.parked():
                pass


def test_the_benchmark_without_spinners_says_so(
    relu_problem: Path, kernel_settings: KernelSettings, tmp_path: Path
) -> None:
    """``benchmark_keep_awake=False`` (``bench/kernelbench.py --idle-gaps``): the old idle-gap timing,
    recorded as such — the setting reaches the benchmark child and nothing spins."""
    settings = kernel_settings.model_copy(update={"benchmark_keep_awake": False})
    target = load_kernel_target(relu_problem, settings, work_dir=tmp_path / "target")
    verdict = KernelVerifier(target, settings, tmp_path / "verify").verify(RELU_C)
    assert verdict.accepted, verdict.reason
    assert verdict.stages[-1].data["kept_awake"] is None
