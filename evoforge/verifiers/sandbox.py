"""Runs untrusted candidate code (simulations, compiled kernels, Python) in a box.

The box itself — its own unprivileged user, only the file system it needs (read-only except its
scratch directory), no network, its own PID namespace, CPU-time/memory/file-size/output/process
limits, a wall-clock kill of the whole process group and an environment scrubbed of secrets — lives
in :mod:`evoforge.tools.box`, because the external tools that read candidate text (iverilog, Yosys,
Verilator, OpenSTA, nvcc) run in the same box and ``tools`` may not import ``verifiers``. This module
is what the cascades call for candidate code: the candidate limits and the isolation report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from evoforge.tools import box, process
from evoforge.tools.box import Isolation, isolation, isolation_report
from evoforge.tools.process import Limits, ProcessResult

__all__ = ["Isolation", "isolation", "isolation_report", "run_untrusted"]


def run_untrusted(
    argv: Sequence[str | os.PathLike[str]],
    *,
    workdir: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    stdin_text: str | None = None,
    reads: Sequence[Path] = (),
) -> ProcessResult:
    """Run candidate code ``argv`` inside ``workdir`` in the strongest box this machine allows.

    ``limits`` default to :data:`~evoforge.tools.process.SANDBOX_LIMITS`; ``reads`` are files or
    directories outside ``workdir`` the child may read (read-only).
    """
    chosen = limits if limits is not None else process.SANDBOX_LIMITS
    return box.run_boxed(
        argv, workdir=workdir, timeout=timeout, limits=chosen, env=env, reads=reads, stdin_text=stdin_text
    )
