"""nvcc: compile CUDA C++ to a cubin for one GPU architecture and read ``ptxas -v``'s resource report.

Found on PATH first, then ``/usr/local/cuda/bin``, then in the ``nvidia`` PyPI packages of the
running Python environment (``nvidia-cuda-nvcc``: ``site-packages/nvidia/cu13/bin/nvcc``, which
``scripts/setup.sh`` installs when no nvcc exists). Nothing here needs a GPU.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evoforge.errors import ToolTimeoutError
from evoforge.tools.base import ExternalTool, ToolVersion
from evoforge.tools.cuobjdump import KernelResources, parse_ptxas_log, release_version

#: where a CUDA toolkit installs nvcc when it is not on PATH
TOOLKIT_CANDIDATES = ("/usr/local/cuda/bin/nvcc",)


def find_nvcc() -> str | None:
    """PATH, then the usual toolkit location, then the ``nvidia`` wheels of this Python environment."""
    found = shutil.which("nvcc")
    if found:
        return found
    for candidate in TOOLKIT_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    for entry in sys.path:
        root = Path(entry) / "nvidia"
        if not root.is_dir():
            continue
        for nvcc in sorted(root.glob("cu*/bin/nvcc"), reverse=True):
            return str(nvcc)
    return None


@dataclass(frozen=True)
class NvccRun:
    ok: bool
    log: str  # everything nvcc printed (ptxas -v report or the diagnostics)
    seconds: float
    cubin: Path | None
    kernels: tuple[KernelResources, ...]
    argv: tuple[str, ...]

    @property
    def cubin_sha256(self) -> str | None:
        if self.cubin is None or not self.cubin.exists():
            return None
        return hashlib.sha256(self.cubin.read_bytes()).hexdigest()

    @property
    def errors(self) -> str:
        """The error lines of the log (and the lines under them), or its tail when none is marked."""
        lines = [ln for ln in self.log.splitlines() if re.search(r"\berror\b|fatal", ln, re.I)]
        if lines:
            return "\n".join(lines[:20])
        return "\n".join(self.log.strip().splitlines()[-10:])


class Nvcc(ExternalTool):
    name = "nvcc"
    executable = "nvcc"
    package = "nvidia-cuda-toolkit (or pip install nvidia-cuda-nvcc; scripts/setup.sh does it)"
    version_argv = ("--version",)
    default_timeout = 300.0

    def __init__(self, executable: str | None = None, timeout: float | None = None) -> None:
        super().__init__(executable or find_nvcc() or "nvcc", timeout)

    def version(self) -> ToolVersion:
        return release_version(self.name, self.path())

    def compile_cubin(
        self,
        source: Path,
        *,
        arch: int,
        out: Path,
        flags: Sequence[str] = (),
        include_dirs: Sequence[Path | str] = (),
        timeout: float | None = None,
    ) -> NvccRun:
        """``nvcc -arch=sm_<arch> -cubin -Xptxas -v`` of ``source`` into ``out``; a timeout raises."""
        source, out = source.resolve(), out.resolve()
        args = [
            f"-arch=sm_{arch}",
            "-cubin",
            "-Xptxas",
            "-v",
            *flags,
            *(f"-I{Path(d).resolve()}" for d in include_dirs),
            "-o",
            str(out),
            str(source),
        ]
        if out.exists():
            out.unlink()
        result = self.run(args, cwd=source.parent, timeout=timeout)
        if result.timed_out:
            raise ToolTimeoutError(
                f"nvcc did not finish compiling {source.name} within {result.seconds:.0f} s (killed)",
                hint="raise the compile timeout, or include fewer/lighter headers",
            )
        log = (result.stdout + "\n" + result.stderr).strip()
        ok = result.ok and out.exists()
        return NvccRun(
            ok=ok,
            log=log,
            seconds=result.seconds,
            cubin=out if ok else None,
            kernels=tuple(parse_ptxas_log(log)) if ok else (),
            argv=result.argv,
        )
