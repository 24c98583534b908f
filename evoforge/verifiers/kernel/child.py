"""Starting the harness in a sandboxed child and reading its one result line.

``run_harness`` writes the request to the child's stdin (seeds and sources included: never in a
file a candidate could have changed), starts the harness as ``python -I -B -m …`` (isolated: the
scratch directory is not on its import path, so a planted ``evoforge`` package is never imported),
waits for it within a wall-clock limit, and returns a :class:`ChildResult`: the harness's JSON
answer — the last line carrying this run's random nonce — or why there is none: killed on timeout
(a hang), or the process died (a crash, an out-of-memory kill). Used by the verifier process only.
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoforge.tools.process import SANDBOX_LIMITS, Limits
from evoforge.verifiers.kernel.harness import MARKER
from evoforge.verifiers.sandbox import run_untrusted

#: the kernel children import torch (and Triton, LLVM): more address space than an RTL simulation
KERNEL_LIMITS = Limits(
    cpu_seconds=900,
    memory_bytes=16 << 30,
    file_bytes=1 << 30,
    processes=SANDBOX_LIMITS.processes,
    open_files=1024,
)


@dataclass(frozen=True)
class ChildResult:
    ok: bool  # the harness answered (its answer may still say the candidate failed)
    answer: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False
    seconds: float = 0.0
    log: str = ""
    stopped_because: str = ""  # set when a time budget (not a hang) stopped it: what to say
    limit: str | None = None  # a resource limit of the box that stopped it (output, CPU, memory …)

    @property
    def failure(self) -> str:
        """Why there is no answer, in words."""
        if self.timed_out and self.stopped_because:
            return self.stopped_because
        if self.limit is not None and not self.timed_out:
            return f"was stopped at {self.limit} of its sandbox:\n{self.log[-1000:]}"
        if self.timed_out:
            return f"did not finish within {self.seconds:.0f} s (killed; a hang or far too slow)"
        return f"the process died without an answer:\n{self.log[-2000:]}"


def run_harness(
    mode: str,
    request: dict[str, Any],
    *,
    workdir: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
    limits: Limits | None = None,
    reads: tuple[Path, ...] = (),
) -> ChildResult:
    nonce = secrets.token_hex(16)
    payload = json.dumps({**request, "mode": mode, "nonce": nonce})
    done = run_untrusted(
        # -I: isolated (no working directory, PYTHONPATH or user site on the import path); -B: no .pyc
        [sys.executable, "-I", "-B", "-m", "evoforge.verifiers.kernel.harness"],
        workdir=workdir,
        timeout=timeout_s,
        env={"PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        limits=limits or KERNEL_LIMITS,
        stdin_text=payload,
        reads=reads,  # files outside the workdir the harness reads (the problem), read-only
    )
    log = done.output
    if done.timed_out:
        return ChildResult(False, timed_out=True, seconds=done.seconds, log=log)
    prefix = f"{MARKER} {nonce} "
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(prefix):
            answer = json.loads(line[len(prefix) :])
            return ChildResult(True, answer, seconds=done.seconds, log=log.replace(line, "")[-20000:])
    return ChildResult(
        False, seconds=done.seconds, log=f"exit code {done.returncode}\n{log}", limit=done.limit_exceeded
    )
