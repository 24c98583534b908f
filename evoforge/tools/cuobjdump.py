"""cuobjdump: per-kernel resource usage (registers, shared, local memory) of a cubin.

The system CUDA toolkit may not have it; the Triton wheel ships one under
``triton/backends/nvidia/bin/``, which is preferred (found without importing Triton). Also home to
:func:`parse_ptxas_log`, the parser of ``ptxas -v`` output shared by the Triton and nvcc paths.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from evoforge.errors import ToolError
from evoforge.tools import process
from evoforge.tools.base import ExternalTool, ToolVersion


@dataclass(frozen=True)
class KernelResources:
    """One kernel's resources; ``spill_bytes`` is None when the source does not say (cuobjdump)."""

    symbol: str  # as the cubin names it (mangled for CUDA C++)
    registers: int
    # static shared memory (dynamic ``extern __shared__`` is a launch parameter); cuobjdump's figure
    # adds the 1 KiB sm_90 reserves per block when a kernel uses shared memory, ptxas's does not
    shared_bytes: int
    local_bytes: int  # per-thread local memory: the stack frame, where spills go
    spill_bytes: int | None = None


@functools.cache
def release_version(name: str, path: str) -> ToolVersion:
    """The ``release X.Y`` CUDA tools print for ``--version`` (their first line has no number)."""
    text = process.run([path, "--version"], timeout=30, env=process.scrubbed_env()).stdout
    match = re.search(r"release (\d+)\.(\d+)", text)
    line = match.group(0) if match else (text.strip().splitlines() or [""])[-1]
    return ToolVersion(name=name, text=line, numbers=tuple(int(g) for g in match.groups()) if match else ())


def triton_bin_dir() -> Path | None:
    """``triton/backends/nvidia/bin`` of the installed Triton wheel, or None."""
    spec = importlib.util.find_spec("triton")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "backends" / "nvidia" / "bin"
        if path.is_dir():
            return path
    return None


class Cuobjdump(ExternalTool):
    name = "cuobjdump"
    executable = "cuobjdump"
    package = "triton (pip; ships cuobjdump in triton/backends/nvidia/bin)"
    version_argv = ("--version",)
    default_timeout = 60.0

    def __init__(self, executable: str | None = None, timeout: float | None = None) -> None:
        if executable is None:
            bundled = triton_bin_dir()
            if bundled is not None and (bundled / "cuobjdump").exists():
                executable = str(bundled / "cuobjdump")
            else:
                executable = shutil.which("cuobjdump") or "cuobjdump"
        super().__init__(executable, timeout)

    def version(self) -> ToolVersion:
        return release_version(self.name, self.path())

    def resource_usage(self, cubin: Path) -> list[KernelResources]:
        """``cuobjdump -res-usage`` of ``cubin``, one entry per kernel."""
        result = self.run(["-res-usage", cubin.name], cwd=cubin.parent)
        if not result.ok:
            raise ToolError(f"cuobjdump -res-usage {cubin.name} failed:\n{result.output.strip()[-2000:]}")
        return parse_res_usage(result.stdout)


_FUNCTION = re.compile(r"^\s*Function (\S+?):?\s*$", re.M)
_FIELD = re.compile(r"\b(REG|SHARED|LOCAL|STACK):(\d+)")


def parse_res_usage(text: str) -> list[KernelResources]:
    """Parse ``cuobjdump -res-usage`` output (``Function name:`` then ``REG:n STACK:n SHARED:n LOCAL:n``)."""
    kernels = []
    matches = list(_FUNCTION.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        fields = {k: int(v) for k, v in _FIELD.findall(text[match.end() : end])}
        kernels.append(
            KernelResources(
                symbol=match.group(1),
                registers=fields.get("REG", 0),
                shared_bytes=fields.get("SHARED", 0),
                local_bytes=max(fields.get("LOCAL", 0), fields.get("STACK", 0)),
            )
        )
    return kernels


_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
_PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", re.M)
_USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


def parse_ptxas_log(text: str) -> list[KernelResources]:
    """Parse ``ptxas -v`` output: one entry per ``Compiling entry function`` block."""
    kernels = []
    starts = list(_ENTRY.finditer(text))
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        block = text[match.end() : end]
        props = _PROPS.search(block)
        used = _USED.search(block)
        kernels.append(
            KernelResources(
                symbol=match.group(1),
                registers=int(used.group(1)) if used else 0,
                shared_bytes=int(used.group(2)) if used and used.group(2) else 0,
                local_bytes=int(props.group(1)) if props else 0,
                spill_bytes=int(props.group(2)) if props else 0,
            )
        )
    return kernels


def demangle_base(symbol: str) -> str:
    """The unqualified function name of an Itanium-mangled symbol (``_Z5scalePKfPfi`` → ``scale``)."""
    if not symbol.startswith("_Z"):
        return symbol
    rest = symbol[2:]
    nested = rest.startswith("N")
    if nested:
        rest = rest[1:]
    name = symbol
    while True:
        match = re.match(r"(?:L)?(\d+)", rest)
        if not match:
            break
        length = int(match.group(1))
        start = match.end()
        name = rest[start : start + length]
        rest = rest[start + length :]
        if not nested:
            break
        if not rest[:1].isdigit():  # "E" ends the nested name, "I" starts template arguments
            break
    return name
