"""Base class of the external-program wrappers: executable lookup, version probe, timed runs.

Each subclass wraps one program (``Iverilog``, ``Verilator``, ``Yosys``, ``OpenSta``); it builds argv
lists, calls :func:`evoforge.tools.process.run` and parses the program's output into a typed result.
A missing executable raises ``ToolNotFoundError`` naming the package that provides it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from evoforge.errors import ToolError, ToolNotFoundError
from evoforge.tools import process
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
    ) -> ProcessResult:
        """Run the program with ``args``; a missing executable raises ``ToolNotFoundError``."""
        argv = [self.path(), *map(str, args)]
        try:
            result = process.run(
                argv,
                timeout=timeout if timeout is not None else self.timeout,
                cwd=cwd,
                env=env,
                limits=limits,
                stdin_text=stdin_text,
            )
        except FileNotFoundError as exc:
            raise ToolNotFoundError(f"{self.name} could not be started: {exc}") from exc
        except OSError as exc:
            raise ToolError(f"{self.name} could not be started: {exc}") from exc
        if result.returncode is not None and -result.returncode in CRASH_SIGNALS:
            # a crash of the tool is the verifier's failure, not a verdict on its input
            raise ToolError(
                f"{self.name} crashed ({signal.Signals(-result.returncode).name}): "
                f"{(result.stderr or result.stdout).strip()[-500:]}",
                hint=f"check the {self.name} installation (run it by hand on the same input)",
            )
        return result


#: signals by which a program dies of its own bug (resource limits kill with SIGKILL/SIGXCPU instead)
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE})


@functools.cache
def _probe_version(name: str, path: str, argv: tuple[str, ...]) -> ToolVersion:
    result = process.run([path, *argv], timeout=30)
    text = (result.stdout + "\n" + result.stderr).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", first)
    numbers = tuple(int(g) for g in match.groups() if g is not None) if match else ()
    return ToolVersion(name=name, text=first, numbers=numbers)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
