"""The one place in evoforge that starts processes.

Every external program and every untrusted candidate runs through :func:`run`: an argv list (never a
shell), its own session (so the whole process group can be killed), a wall-clock timeout after which
the group is killed, optional resource limits applied in the child before ``exec``, and an optional
scrubbed environment. The result is a frozen :class:`ProcessResult` that keeps the raw output.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: environment variables a scrubbed child keeps (everything else — API keys included — is dropped)
SAFE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "PYTHONHASHSEED")
#: variable-name fragments that are never passed to a child, even when explicitly requested
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
OUTPUT_LIMIT_CHARS = 2_000_000


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to a child with ``setrlimit`` (``None`` = inherit)."""

    cpu_seconds: int | None = None
    memory_bytes: int | None = None
    file_bytes: int | None = None
    processes: int | None = None
    open_files: int | None = None


#: limits for untrusted candidate code: a few CPU minutes, 4 GiB, 64 MiB files, few processes
SANDBOX_LIMITS = Limits(
    cpu_seconds=300,
    memory_bytes=4 << 30,
    file_bytes=64 << 20,
    processes=1024,
    open_files=256,
)


@dataclass(frozen=True)
class ProcessResult:
    argv: tuple[str, ...]
    returncode: int | None  # None when killed on timeout
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

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


def _limiter(limits: Limits | None) -> Callable[[], None]:
    parent_pid = os.getpid()

    def apply() -> None:  # runs in the child between fork and exec
        _die_with_parent(parent_pid)
        if limits is None:
            return
        pairs = (
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_AS, limits.memory_bytes),
            (resource.RLIMIT_FSIZE, limits.file_bytes),
            (resource.RLIMIT_NPROC, limits.processes),
            (resource.RLIMIT_NOFILE, limits.open_files),
        )
        for which, value in pairs:
            if value is not None:
                resource.setrlimit(which, (value, value))

    return apply


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _truncate(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT_CHARS:
        return text
    return text[:OUTPUT_LIMIT_CHARS] + f"\n… [{len(text) - OUTPUT_LIMIT_CHARS} characters cut]"


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    stdin_text: str | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion or until ``timeout`` seconds, then kill its process group.

    ``env`` replaces the environment when given (use :func:`scrubbed_env` for untrusted code).
    Raises ``FileNotFoundError`` when the executable does not exist (tool wrappers convert it).
    """
    args = tuple(str(a) for a in argv)
    start = time.monotonic()
    proc = subprocess.Popen(
        args,
        cwd=Path(cwd) if cwd is not None else None,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
        preexec_fn=_limiter(limits),
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(input=stdin_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        stdout, stderr = proc.communicate()
    finally:
        # children that outlive their parent (daemonised, backgrounded) die with the group
        if proc.poll() is not None:
            _kill_group(proc)
    seconds = time.monotonic() - start
    result = ProcessResult(
        argv=args,
        returncode=None if timed_out else proc.returncode,
        stdout=_truncate(stdout or ""),
        stderr=_truncate(stderr or ""),
        seconds=seconds,
        timed_out=timed_out,
    )
    log.debug("ran %s in %.2fs (rc=%s, timed_out=%s)", args[0], seconds, result.returncode, timed_out)
    return result
