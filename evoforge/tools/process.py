"""The one place in evoforge that starts processes.

Every external program and every untrusted candidate runs through :func:`run`: an argv list (never a
shell), its own session (so the whole process group can be killed), a wall-clock timeout after which
the group is killed, resource limits applied in the child before ``exec`` (CPU time, address space,
file size, processes, open files), optionally another (unprivileged) user, and an optional scrubbed
environment. Output is *streamed*: the parent keeps at most :data:`KEPT_OUTPUT_BYTES` of each stream
(head and tail) and kills the group once the child has written more than its output limit, so a
flooding child never grows the verifier. The result is a frozen :class:`ProcessResult` that keeps the
(capped) raw output and says which limit, if any, ended the run.

Who sees only what it needs of the file system is :mod:`evoforge.tools.box`'s business; this module
only starts processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: environment variables a scrubbed child keeps (everything else — API keys included — is dropped)
SAFE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "PYTHONHASHSEED")
#: variable-name fragments that are never passed to a child, even when explicitly requested
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
#: bytes of each stream the parent keeps (half from the start, half from the end)
KEPT_OUTPUT_BYTES = 2_000_000
#: what a child may write to stdout and stderr together before its group is killed, by default
DEFAULT_OUTPUT_BYTES = 64 << 20
#: a killed child's pipes may be held open by a process that left the group: wait this long for EOF
_DRAIN_GRACE_S = 2.0
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Limits:
    """Resource limits of one child (``None`` = inherit). Applied with ``setrlimit`` before ``exec``,
    except ``output_bytes`` (stdout + stderr together), which the parent enforces while streaming.

    ``processes`` (``RLIMIT_NPROC``) binds only a process that is not root: the box runs children as
    an unprivileged user for that reason (see :mod:`evoforge.tools.box`).
    """

    cpu_seconds: int | None = None
    memory_bytes: int | None = None
    file_bytes: int | None = None
    processes: int | None = None
    open_files: int | None = None
    output_bytes: int | None = DEFAULT_OUTPUT_BYTES

    def describe(self) -> str:
        parts = []
        if self.cpu_seconds is not None:
            parts.append(f"{self.cpu_seconds} s CPU")
        if self.memory_bytes is not None:
            parts.append(f"{_size(self.memory_bytes)} memory")
        if self.file_bytes is not None:
            parts.append(f"{_size(self.file_bytes)} per file")
        if self.output_bytes is not None:
            parts.append(f"{_size(self.output_bytes)} output")
        if self.processes is not None:
            parts.append(f"{self.processes} processes")
        return ", ".join(parts) or "none"


#: limits for untrusted candidate code: a few CPU minutes, 4 GiB, 64 MiB files, few processes
SANDBOX_LIMITS = Limits(
    cpu_seconds=300,
    memory_bytes=4 << 30,
    file_bytes=64 << 20,
    processes=1024,
    open_files=256,
    output_bytes=DEFAULT_OUTPUT_BYTES,
)


@dataclass(frozen=True)
class ProcessResult:
    argv: tuple[str, ...]
    returncode: int | None  # None when killed on timeout
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    output_bytes: int = 0  # what the child wrote to stdout and stderr together (kept or not)
    output_exceeded: bool = False  # killed for writing more than its output limit
    limit_exceeded: str | None = None  # which limit ended the run, in words ("the 60 s CPU-time limit")

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_exceeded

    @property
    def output(self) -> str:
        """stdout and stderr together, for logs."""
        if self.stderr.strip():
            return f"{self.stdout}\n--- stderr ---\n{self.stderr}"
        return self.stdout


def scrubbed_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment with no secrets: the safe keys of ours, plus ``extra`` minus secrets."""
    env = {k: os.environ[k] for k in SAFE_ENV_KEYS if k in os.environ}
    for key, value in (extra or {}).items():
        if any(marker in key.upper() for marker in SECRET_MARKERS):
            continue
        env[key] = value
    return env


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent(parent_pid: int) -> None:
    """In the child: be killed when the thread that started it dies (a worker killed with -9 must not
    leave tools running); if the parent is already gone, exit at once."""
    if _LIBC is None:
        return
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} bytes"


def _limiter(limits: Limits | None) -> Callable[[], None]:
    parent_pid = os.getpid()
    pairs = (
        (
            # CPU: the soft limit sends SIGXCPU (recognisable); the hard one, 2 s later, SIGKILL
            (resource.RLIMIT_CPU, limits.cpu_seconds, 2),
            (resource.RLIMIT_AS, limits.memory_bytes, 0),
            (resource.RLIMIT_FSIZE, limits.file_bytes, 0),
            (resource.RLIMIT_NPROC, limits.processes, 0),
            (resource.RLIMIT_NOFILE, limits.open_files, 0),
        )
        if limits is not None
        else ()
    )

    def apply() -> None:  # runs in the child between fork and exec (after any change of user)
        _die_with_parent(parent_pid)
        for which, value, slack in pairs:
            if value is None:
                continue
            _, hard = resource.getrlimit(which)
            soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
            top = soft + slack if hard == resource.RLIM_INFINITY else min(soft + slack, hard)
            resource.setrlimit(which, (soft, top))

    return apply


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class _Capture:
    """One stream, kept as its first and last ``KEPT_OUTPUT_BYTES // 2`` bytes."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        half = KEPT_OUTPUT_BYTES // 2
        room = half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * half:  # trim in bulk, not per chunk
                del self.tail[: len(self.tail) - half]

    def text(self) -> str:
        half = KEPT_OUTPUT_BYTES // 2
        tail = bytes(self.tail[-half:]) if len(self.tail) > half else bytes(self.tail)
        cut = self.total - len(self.head) - len(tail)
        middle = f"\n… [{cut} bytes of output cut] …\n".encode() if cut > 0 else b""
        return (bytes(self.head) + middle + tail).decode(errors="replace")


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.close()


def _stream(
    proc: subprocess.Popen[bytes], timeout: float, output_limit: int | None
) -> tuple[_Capture, _Capture, bool, bool]:
    """Read both pipes until EOF, the deadline or the output limit; returns (out, err, timed_out, flooded)."""
    out, err = _Capture(), _Capture()
    deadline = time.monotonic() + timeout
    timed_out = flooded = False
    killed_at: float | None = None
    with selectors.DefaultSelector() as sel:
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            now = time.monotonic()
            if killed_at is None and now >= deadline:
                timed_out = True
                _kill_group(proc)
                killed_at = now
            if killed_at is not None and now - killed_at > _DRAIN_GRACE_S:
                break  # a process outside the group holds the pipe: stop waiting for it
            wait = (deadline - now) if killed_at is None else _DRAIN_GRACE_S
            for key, _ in sel.select(max(0.01, min(wait, 1.0))):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                key.data.add(chunk)
                if output_limit is not None and killed_at is None and out.total + err.total > output_limit:
                    flooded = True
                    _kill_group(proc)
                    killed_at = time.monotonic()
    return out, err, timed_out, flooded


_SIGNAL_LIMITS = {signal.SIGXCPU: "cpu", signal.SIGXFSZ: "file"}
_OUT_OF_MEMORY = ("bad_alloc", "out of memory", "memoryerror", "cannot allocate memory", "failed to allocate")


def _limit_exceeded(
    returncode: int | None,
    stderr: str,
    limits: Limits | None,
    timeout: float,
    timed_out: bool,
    flooded_past: int | None,
) -> str | None:
    if timed_out:
        return f"the {timeout:g} s wall-clock limit"
    if flooded_past is not None:
        return f"the {_size(flooded_past)} output limit"
    if returncode is None or limits is None:
        return None
    # a signal kills directly (-N) or through bubblewrap, which exits with 128 + N
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    try:
        kind = _SIGNAL_LIMITS.get(signal.Signals(number))
    except ValueError:
        kind = None
    if kind == "cpu" and limits.cpu_seconds is not None:
        return f"the {limits.cpu_seconds} s CPU-time limit"
    if kind == "file" and limits.file_bytes is not None:
        return f"the {_size(limits.file_bytes)} file-size limit"
    low = stderr[-4000:].lower() if returncode != 0 else ""
    if limits.file_bytes is not None and "file too large" in low:  # SIGXFSZ ignored: EFBIG instead
        return f"the {_size(limits.file_bytes)} file-size limit"
    if limits.memory_bytes is not None and any(word in low for word in _OUT_OF_MEMORY):
        return f"the {_size(limits.memory_bytes)} memory limit"
    return None


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    stdin_text: str | None = None,
    run_as: tuple[int, int] | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion or until ``timeout`` seconds, then kill its process group.

    ``env`` replaces the environment when given (use :func:`scrubbed_env` for untrusted code).
    ``run_as`` is a (uid, gid) to switch to before ``exec`` (root only; supplementary groups dropped).
    Output beyond ``limits.output_bytes`` (default :data:`DEFAULT_OUTPUT_BYTES`) kills the group.
    Raises ``FileNotFoundError`` when the executable does not exist (tool wrappers convert it).
    """
    args = tuple(str(a) for a in argv)
    output_limit = limits.output_bytes if limits is not None else DEFAULT_OUTPUT_BYTES
    start = time.monotonic()
    proc = subprocess.Popen(
        args,
        cwd=Path(cwd) if cwd is not None else None,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_limiter(limits),
        user=run_as[0] if run_as is not None else None,
        group=run_as[1] if run_as is not None else None,
        extra_groups=[] if run_as is not None else None,
    )
    feeder = None
    if stdin_text is not None:
        feeder = threading.Thread(target=_feed, args=(proc, stdin_text.encode()), daemon=True)
        feeder.start()
    try:
        out, err, timed_out, flooded = _stream(proc, timeout, output_limit)
        try:
            proc.wait(timeout=max(0.1, timeout - (time.monotonic() - start)) if not timed_out else 5)
        except subprocess.TimeoutExpired:
            # the pipes closed but the process lives on (it closed its own stdout): still a timeout
            timed_out = True
            _kill_group(proc)
            proc.wait()
    finally:
        # children that outlive their parent (daemonised, backgrounded) die with the group
        _kill_group(proc)
        for pipe in (proc.stdout, proc.stderr, proc.stdin):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seconds = time.monotonic() - start
    stderr = err.text()
    result = ProcessResult(
        argv=args,
        returncode=None if timed_out else proc.returncode,
        stdout=out.text(),
        stderr=stderr,
        seconds=seconds,
        timed_out=timed_out,
        output_bytes=out.total + err.total,
        output_exceeded=flooded,
        limit_exceeded=_limit_exceeded(
            proc.returncode, stderr, limits, timeout, timed_out, output_limit if flooded else None
        ),
    )
    log.debug(
        "ran %s in %.2fs (rc=%s, timed_out=%s, output=%d bytes%s)",
        args[0],
        seconds,
        result.returncode,
        timed_out,
        result.output_bytes,
        ", output limit hit" if flooded else "",
    )
    return result
