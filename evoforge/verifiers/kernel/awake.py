"""Keep the benchmark's CPUs running between its timed calls, and out of the way during them.

Every timed call of the ``benchmark`` stage follows tens of milliseconds in which the supervisor
writes inputs, reads outputs and compares them, on one thread: the other CPUs idle. On this project's
machines (virtual CPUs whose idle driver halts them) a call that starts after such a gap is slower
than the same call back to back — torch's softmax at 4096×3072 took 1.36× its back-to-back time
after 20 ms idle, 1.02–1.07× when spinners ran through the end of the gap (``bench/idle_gap.py``);
in the benchmark, torch's sum over dim 1 took 14 ms against 9 ms (``docs/benchmarks.md``). Sides did
not pay alike, so ratios measured after a gap are biased.

:class:`Awake` holds one spinner thread per CPU of the stage (evoforge's C, in the supervisor; never
candidate code), pinned to its CPU at the lowest priority (``SCHED_IDLE``: any other thread on that CPU
takes it at once). The spinners run between timed calls; :meth:`Awake.parked` stops them all — and
returns only once every one has left its spin loop for its sleep — for the span of one timed call, so
no side's call shares its CPUs with them. Every side (reference, candidate, roofline kernel) is
timed the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator
from pathlib import Path

from evoforge import runtime

#: what a timed request is wrapped in (``Awake.parked``, or ``contextlib.nullcontext``: nothing spins)
Window = Callable[[], contextlib.AbstractContextManager[None]]

AWAKE_SOURCE = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#define MAX_SPINNERS 1024
enum { PARKED = 0, SPINNING = 1, EXITING = 2 };

static volatile int state = PARKED;
static int parked = 0, started = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER, asleep = PTHREAD_COND_INITIALIZER;
static pthread_t threads[MAX_SPINNERS];

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#else
    __asm__ volatile("" ::: "memory");
#endif
}

static void *spinner(void *arg) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)(intptr_t)arg, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    struct sched_param lowest = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &lowest);
    pthread_mutex_lock(&lock);
    for (;;) {
        if (state == EXITING) break;
        if (state == PARKED) {
            ++parked;
            pthread_cond_broadcast(&asleep);
            while (state == PARKED) pthread_cond_wait(&wake, &lock);
            --parked;
            continue;
        }
        pthread_mutex_unlock(&lock);
        while (__atomic_load_n(&state, __ATOMIC_RELAXED) == SPINNING) relax();
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    return 0;
}

static void set_state(int value) {
    pthread_mutex_lock(&lock);
    __atomic_store_n(&state, value, __ATOMIC_SEQ_CST);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
}

/* Park all spinners and wait until every one sleeps. */
void evoforge_awake_park(void) {
    pthread_mutex_lock(&lock);
    __atomic_store_n(&state, PARKED, __ATOMIC_SEQ_CST);
    while (parked < started) pthread_cond_wait(&asleep, &lock);
    pthread_mutex_unlock(&lock);
}

void evoforge_awake_spin(void) { set_state(SPINNING); }

/* One spinner per CPU in cpus[0..n): the number started (parked on return). */
int evoforge_awake_start(const int *cpus, int n) {
    for (int i = 0; i < n && started < MAX_SPINNERS; ++i) {
        if (pthread_create(&threads[started], 0, spinner, (void *)(intptr_t)cpus[i]) != 0) break;
        ++started;
    }
    evoforge_awake_park();
    return started;
}

void evoforge_awake_stop(void) {
    set_state(EXITING);
    for (int i = 0; i < started; ++i) pthread_join(threads[i], 0);
    started = parked = 0;
    __atomic_store_n(&state, PARKED, __ATOMIC_SEQ_CST);
}
"""


class Awake:
    """Spinners on ``cpus`` (see the module docstring); use as a context manager, spinning inside."""

    def __init__(self, cpus: list[int], build_dir: Path) -> None:
        self.cpus = list(cpus)
        self._lib = ctypes.CDLL(
            str(runtime.build_library(AWAKE_SOURCE, openmp=False, flags=(), directory=build_dir))
        )
        self._lib.evoforge_awake_start.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._lib.evoforge_awake_start.restype = ctypes.c_int
        self.started = 0

    def __enter__(self) -> Awake:
        array = (ctypes.c_int * len(self.cpus))(*self.cpus)
        self.started = int(self._lib.evoforge_awake_start(array, len(self.cpus)))
        self._lib.evoforge_awake_spin()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._lib.evoforge_awake_stop()
        self.started = 0

    @contextlib.contextmanager
    def parked(self) -> Iterator[None]:
        """Every spinner asleep inside the block (one timed call), spinning again after it."""
        self._lib.evoforge_awake_park()
        try:
            yield
        finally:
            self._lib.evoforge_awake_spin()
