"""Runs untrusted candidate code (simulations, compiled kernels, Python) in a box.

A child process in its own session and scratch directory, with CPU-time, memory, file-size, open-file
and process-count limits, a wall-clock kill of the whole process group, and an environment scrubbed
of secrets (no API keys). Where bubblewrap (``bwrap``) works, the child also sees the whole file
system read-only except its scratch directory, has no network and its own PID namespace; where only
``unshare`` works it gets no network; where neither works it runs with the limits alone and a warning
is logged once (``isolation()`` says which).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from evoforge.tools import process
from evoforge.tools.process import SANDBOX_LIMITS, Limits, ProcessResult

log = logging.getLogger(__name__)


@functools.cache
def _bwrap() -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    try:
        probe = process.run([*_bwrap_prefix(bwrap, Path("/tmp")), "true"], timeout=10)
    except OSError:
        return None
    return bwrap if probe.ok else None


def _bwrap_prefix(bwrap: str, workdir: Path) -> list[str]:
    return [
        bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--tmpfs", "/dev/shm", "--bind", str(workdir), str(workdir), "--unshare-net", "--unshare-pid",
        "--die-with-parent", "--new-session", "--chdir", str(workdir),
    ]  # fmt: skip


@functools.cache
def _unshare_prefix() -> tuple[str, ...]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for prefix in ((unshare, "-n"), (unshare, "-r", "-n")):
        try:
            probe = process.run([*prefix, "true"], timeout=10)
        except OSError:
            continue
        if probe.ok:
            return prefix
    return ()


@functools.cache
def isolation() -> str:
    """``filesystem+network`` (bwrap), ``network`` (unshare) or ``limits-only``."""
    if _bwrap():
        return "filesystem+network"
    if _unshare_prefix():
        log.warning("bubblewrap (bwrap) is unavailable: candidates can write outside their directory")
        return "network"
    log.warning("neither bwrap nor unshare works here: candidates run with resource limits only")
    return "limits-only"


def run_untrusted(
    argv: Sequence[str | os.PathLike[str]],
    *,
    workdir: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    limits: Limits = SANDBOX_LIMITS,
    stdin_text: str | None = None,
) -> ProcessResult:
    """Run ``argv`` inside ``workdir`` with limits, a scrubbed env and the strongest isolation here."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    child_env = process.scrubbed_env({"HOME": str(workdir), "TMPDIR": str(workdir), **(env or {})})
    level = isolation()
    bwrap = _bwrap()
    if level == "filesystem+network" and bwrap is not None:
        prefix: Sequence[str] = _bwrap_prefix(bwrap, workdir)
    elif level == "network":
        prefix = _unshare_prefix()
    else:
        prefix = ()
    return process.run(
        [*prefix, *map(str, argv)],
        timeout=timeout,
        cwd=workdir,
        env=child_env,
        limits=limits,
        stdin_text=stdin_text,
    )
