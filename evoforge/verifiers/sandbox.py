"""Runs untrusted candidate code (simulations, compiled kernels, Python) in a box.

A child process in its own session and scratch directory, with CPU-time, memory, file-size, open-file
and process-count limits, a wall-clock kill of the whole process group, an environment scrubbed of
secrets (no API keys), and — where ``unshare`` can make one — an empty network namespace.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from evoforge.tools import process
from evoforge.tools.process import SANDBOX_LIMITS, Limits, ProcessResult


@functools.cache
def _network_isolation_prefix() -> tuple[str, ...]:
    """``unshare`` arguments that give the child no network, or () where that is not allowed."""
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


def run_untrusted(
    argv: Sequence[str | os.PathLike[str]],
    *,
    workdir: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    limits: Limits = SANDBOX_LIMITS,
    isolate_network: bool = True,
) -> ProcessResult:
    """Run ``argv`` inside ``workdir`` with limits, a scrubbed env and (if possible) no network."""
    workdir.mkdir(parents=True, exist_ok=True)
    child_env = process.scrubbed_env({"HOME": str(workdir), "TMPDIR": str(workdir), **(env or {})})
    prefix = _network_isolation_prefix() if isolate_network else ()
    return process.run(
        [*prefix, *map(str, argv)], timeout=timeout, cwd=workdir, env=child_env, limits=limits
    )
