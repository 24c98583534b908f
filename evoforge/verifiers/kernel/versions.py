"""The versions a kernel verdict depends on: torch, Triton, the C compiler and nvcc (cached per process)."""

from __future__ import annotations

import functools
import shutil
from importlib import metadata

from evoforge.tools import process


def _package(name: str) -> str:
    try:
        return f"{name}={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"{name}=absent"


def _first_line(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return f"{argv[0]}=absent"
    try:
        done = process.run(argv, timeout=30, env=process.scrubbed_env())
    except OSError:
        return f"{argv[0]}=absent"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return f"{argv[0]}={lines[-1 if argv[0].endswith('nvcc') else 0].strip() if lines else '?'}"


@functools.cache
def kernel_tool_versions() -> str:
    return ";".join(
        [
            _package("torch"),
            _package("triton"),
            _first_line(["cc", "--version"]),
            _first_line(["nvcc", "--version"]),
        ]
    )
