"""The supervisor's child processes: starting them, hardening them, and watching them from outside.

:func:`spawn` starts ``python -I -m <module>`` (isolated: no current directory, ``PYTHONPATH`` or
user site on the import path, so nothing a candidate wrote can stand in for the verifier's code)
with one end of a socket pair, its output in a log file, in the supervisor's process group (a
killed stage takes them along). It starts processes with ``subprocess`` itself, not through
``evoforge.tools.process``: it runs inside the stage's sandbox, under its limits already.

:func:`harden` is what a child runs first, before any candidate code: die with the supervisor,
pin to the verifier's CPUs, drop every capability (so that even as root it cannot read or write the
supervisor's memory, which :func:`protect_supervisor` made undumpable). :class:`Watch` reads a
child's threads and CPU time from ``/proc`` — kernel state the child cannot write. Standard library
only (the replay process uses :func:`harden`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_CAPBSET_DROP = 1, 4, 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAP_VERSION_3 = 0x20080522
_LAST_CAP = 63
#: one clock tick of /proc/<pid>/stat, in nanoseconds
TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
#: a worker's or replay process's output beyond this (or the box's file-size limit) rejects the candidate
OUTPUT_LIMIT_BYTES = 64 * 2**20


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def protect_supervisor() -> None:
    """Make this process undumpable: other processes without CAP_SYS_PTRACE cannot read its memory."""
    _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def harden(cpus: Iterable[int] | None = None) -> None:
    """First thing a child does: die with its parent, pin its CPUs, drop all capabilities."""
    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    for cap in range(_LAST_CAP + 1):  # fails quietly without CAP_SETPCAP (then there is nothing to drop)
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (two 32-bit words each): none
    libc.capset(header, data)


def capabilities() -> int:
    """This process's effective capability set (bits), as ``/proc/self/status`` shows it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


@dataclass
class Child:
    """A started child: its process, and the log file its output goes to."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL and reap (the child cannot start processes of its own: its filter forbids it)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log(self, limit: int = 6000) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(max(0, self.log_path.stat().st_size - limit))
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def output_limit(self) -> str | None:
        """Said when the child's log reached the output limit: the box's file-size limit (writes past it
        fail) or ``OUTPUT_LIMIT_BYTES``, whichever is smaller; None otherwise."""
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        cap = OUTPUT_LIMIT_BYTES if soft == resource.RLIM_INFINITY else min(soft, OUTPUT_LIMIT_BYTES)
        try:
            size = self.log_path.stat().st_size
        except OSError:
            return None
        if size < cap:
            return None
        return (
            f"wrote {size / 2**20:.0f} MiB to stdout/stderr: it reached the output limit of its sandbox "
            f"({cap / 2**20:.0f} MiB)"
        )

    def exit_text(self) -> str:
        code = self.process.poll()
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exit code {code}"


def spawn(
    module: str, args: list[str], *, fd: int, workdir: Path, env: Mapping[str, str], label: str
) -> Child:
    """Start ``python -I -m module args`` with descriptor ``fd`` inherited, output to ``label.log``."""
    log_path = workdir / f"{label}.log"
    log = log_path.open("wb")
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=dict(env),
            pass_fds=(fd,),
            close_fds=True,
        )
    finally:
        log.close()
    return Child(process, log_path)


class Watch:
    """A child's threads and CPU time, read from ``/proc`` (kernel state, not the child's)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tasks = f"/proc/{pid}/task"

    def threads(self) -> int:
        return len(self.tids())

    def tids(self) -> frozenset[int]:
        """The ids of the process's live threads (ids are handed out in turn, not soon reused)."""
        try:
            return frozenset(int(t) for t in os.listdir(self._tasks))
        except FileNotFoundError:
            return frozenset()

    def process_cpu_ns(self) -> int:
        """User and system time of the whole process, exited threads included (clock-tick resolution)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return 0
        return (int(fields[11]) + int(fields[12])) * TICK_NS  # utime, stime (fields 14 and 15)

    def faults(self) -> tuple[int, int]:
        """Minor and major page faults of the whole process so far (exited threads included)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return 0, 0
        return int(fields[7]), int(fields[9])  # minflt, majflt (fields 10 and 12)

    def thread_cpu_ns(self, tid: int) -> int:
        """Nanoseconds on a CPU of one thread (0 once it has ended)."""
        try:
            with open(f"{self._tasks}/{tid}/schedstat", "rb") as handle:
                return int(handle.read().split()[0])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            return 0

    def settle(self, limit_s: float, tids: Iterable[int] | None = None) -> bool:
        """Wait (at most ``limit_s``) until no thread (of ``tids``, or of the process) is running.

        The kernel adds a running thread's CPU time to what ``/proc`` shows only at a scheduler tick
        or when the thread stops running: a thread still on a CPU may show up to a tick (4 ms at
        HZ=250) less than it used. Once every thread sleeps, the figures are exact."""
        deadline = time.monotonic() + limit_s
        while True:
            try:
                listed = [int(t) for t in os.listdir(self._tasks)] if tids is None else list(tids)
            except FileNotFoundError:
                return True
            if not any(self._state(tid) == b"R" for tid in listed):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0002)

    def _state(self, tid: int) -> bytes:
        try:
            with open(f"{self._tasks}/{tid}/stat", "rb") as handle:
                return handle.read().rsplit(b")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return b"X"

    def cpu_ns(self) -> int:
        """Nanoseconds on a CPU, summed over the live threads (precise; exited threads drop out)."""
        total = 0
        try:
            tids = os.listdir(self._tasks)
        except FileNotFoundError:
            return 0
        for tid in tids:
            try:
                with open(f"{self._tasks}/{tid}/schedstat", "rb") as handle:
                    total += int(handle.read().split()[0])
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                continue  # the thread ended while we looked
        return total


class OtherLoad:
    """CPUs' worth of work done on this machine by processes other than the watched ones (and this
    one) between :meth:`__init__` and :meth:`cpus` — the noisy neighbour, measured: all CPUs' busy
    time from ``/proc/stat`` less the watched processes' own. Clock-tick resolution, so meant for
    spans of a second or more."""

    def __init__(self, watches: Iterable[Watch]) -> None:
        self._watches = list(watches)
        self._start = self._sample()

    def _sample(self) -> tuple[float, int, int]:
        ours = sum(w.process_cpu_ns() for w in self._watches)
        times = os.times()
        ours += int((times.user + times.system) * 1e9)
        return time.monotonic(), _machine_busy_ns(), ours

    def cpus(self) -> float | None:
        """The others' average CPUs over the span (None when ``/proc/stat`` cannot be read)."""
        end = self._sample()
        wall = end[0] - self._start[0]
        if wall <= 0 or end[1] < 0 or self._start[1] < 0:
            return None
        others = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return max(0.0, others / 1e9 / wall)


def _machine_busy_ns() -> int:
    """All CPUs' non-idle time so far (user, nice, system, irq, softirq, steal), or -1."""
    try:
        with open("/proc/stat", "rb") as handle:
            fields = handle.readline().split()
    except OSError:
        return -1
    if not fields or fields[0] != b"cpu":
        return -1
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) * TICK_NS
