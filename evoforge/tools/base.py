"""Base class of the external-program wrappers: executable lookup, version probe, timed runs.

Each subclass wraps one program (``Iverilog``, ``Verilator``, ``Yosys``, ``OpenSta``); it builds argv
lists, runs the program and parses its output into a typed result. Every run reads user or candidate
text, so it runs in the box (:func:`evoforge.tools.box.run_boxed`): its working directory is the only
writable place, files elsewhere it must read are named in ``reads``, its environment is scrubbed and
it has the :data:`~evoforge.tools.box.TOOL_LIMITS`. Version probes read no user text and run
unboxed, with a scrubbed environment. A missing executable raises ``ToolNotFoundError`` naming the
package that provides it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from evoforge.errors import ToolError, ToolNotFoundError
from evoforge.tools import box, process
from evoforge.tools.process import Limits, ProcessResult


@dataclass(frozen=True)
class ToolVersion:
    name: str
    text: str  # the first line the program printed about itself
    numbers: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.name} {'.'.join(map(str, self.numbers)) or self.text}"


class ExternalTool:
    """One external program. Subclasses set ``name``, ``executable``, ``package`` and ``version_argv``."""

    name: ClassVar[str]
    executable: ClassVar[str]
    package: ClassVar[str]  # the Debian package that provides it (for the error message)
    version_argv: ClassVar[tuple[str, ...]] = ("--version",)
    default_timeout: ClassVar[float] = 120.0

    def __init__(self, executable: str | None = None, timeout: float | None = None) -> None:
        self.executable_path = executable or self.executable
        self.timeout = timeout if timeout is not None else self.default_timeout

    def path(self) -> str:
        found = shutil.which(self.executable_path)
        if found is None:
            raise ToolNotFoundError(
                f"{self.name} is not installed ('{self.executable_path}' is not on PATH)",
                hint=f"install it (Debian/Ubuntu: apt-get install {self.package}) or run the README's setup",
            )
        return found

    def available(self) -> bool:
        return shutil.which(self.executable_path) is not None

    def version(self) -> ToolVersion:
        return _probe_version(self.name, self.path(), self.version_argv)

    def run(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        stdin_text: str | None = None,
        reads: Sequence[Path] = (),
    ) -> ProcessResult:
        """Run the program with ``args`` in the box, ``cwd`` its scratch directory (default: a fresh one).

        ``reads``: files or directories outside ``cwd`` it reads (a liberty file, say). ``limits``
        default to :data:`~evoforge.tools.box.TOOL_LIMITS` with the timeout as the CPU limit.
        A missing executable raises ``ToolNotFoundError``.
        """
        argv = [self.path(), *map(str, args)]
        # an existing file named by absolute path on the command line is an input: the box shows it
        reads = (*reads, *(Path(a) for a in argv[1:] if os.path.isabs(a) and os.path.isfile(a)))
        seconds = timeout if timeout is not None else self.timeout
        if limits is None:
            cpu = min(box.TOOL_LIMITS.cpu_seconds or math.inf, math.ceil(seconds))
            limits = dataclasses.replace(box.TOOL_LIMITS, cpu_seconds=int(cpu))
        try:
            if cwd is None:
                with tempfile.TemporaryDirectory(prefix=f"evoforge-{self.name}-") as tmp:
                    result = box.run_boxed(
                        argv, workdir=Path(tmp), timeout=seconds, limits=limits, env=env, reads=reads,
                        stdin_text=stdin_text,
                    )  # fmt: skip
                    return self._checked(result)
            result = box.run_boxed(
                argv, workdir=Path(cwd), timeout=seconds, limits=limits, env=env, reads=reads,
                stdin_text=stdin_text,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise ToolNotFoundError(f"{self.name} could not be started: {exc}") from exc
        except OSError as exc:
            raise ToolError(f"{self.name} could not be started: {exc}") from exc
        return self._checked(result)

    def blames_input(self, result: ProcessResult) -> bool:
        """Whether a crash followed a diagnosis of the input (then it is the input's failure)."""
        return False

    def _checked(self, result: ProcessResult) -> ProcessResult:
        crash = crash_signal(result)
        if crash is not None and result.limit_exceeded is None and not self.blames_input(result):
            # a crash of the tool is the verifier's failure, not a verdict on its input (a resource
            # limit of the box, which may also end in SIGABRT, is the input's: the wrappers say so)
            raise ToolError(
                f"{self.name} crashed ({crash.name}): {(result.stderr or result.stdout).strip()[-500:]}",
                hint=f"check the {self.name} installation (run it by hand on the same input)",
            )
        return result


#: signals by which a program dies of its own bug (resource limits kill with SIGKILL/SIGXCPU instead)
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE})


def crash_signal(result: ProcessResult) -> signal.Signals | None:
    """The crash signal a program died of: ``-N`` when run directly, ``128 + N`` through bubblewrap."""
    code = result.returncode
    if code is None:
        return None
    number = -code if code < 0 else code - 128 if 128 < code < 160 else 0
    return next((s for s in CRASH_SIGNALS if s == number), None)


def stopped_by_limit(name: str, result: ProcessResult) -> str | None:
    """Why ``name`` was stopped by a resource limit of its box, in words; None when none stopped it."""
    if result.limit_exceeded is None or result.timed_out:
        return None
    return (
        f"{name} was stopped at {result.limit_exceeded} of its sandbox "
        "(the design is too large, or it does not terminate)"
    )


@functools.cache
def _probe_version(name: str, path: str, argv: tuple[str, ...]) -> ToolVersion:
    result = process.run([path, *argv], timeout=30, env=process.scrubbed_env())
    text = (result.stdout + "\n" + result.stderr).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", first)
    numbers = tuple(int(g) for g in match.groups() if g is not None) if match else ()
    return ToolVersion(name=name, text=first, numbers=numbers)


#: how much of a file a boxed tool wrote the verifier reads back (its log, say)
READ_BACK_BYTES = 8 << 20


def read_capped(path: Path, limit: int = READ_BACK_BYTES) -> str:
    """A file a boxed child wrote, read without following a link it planted and never more than
    ``limit`` bytes (head and tail); "" when it is missing or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return ""
        data = handle.read(limit + 1)
        if len(data) > limit:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - limit // 2))
            data = data[: limit // 2] + f"\n… [{size - limit} bytes cut] …\n".encode() + handle.read()
    return data.decode(errors="replace")


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
