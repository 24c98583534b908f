"""The verdict context of each target kind: every setting a verdict or a metric can depend on.

A :class:`~evoforge.domain.VerdictContext` is part of every cache key (its digest), so nothing here
may be left out: a setting missing from the context lets a verdict reached under it answer a job run
under another. The settings are taken whole from the verifier's settings model (``model_dump``), so
a knob added later joins the key without anyone remembering to add it; paths are replaced by the
digest of what they point to (the liberty's content, the user's test module).

- RTL: the versions of every program that decides a verdict (Icarus, Verilator, Yosys, OpenSTA,
  cocotb, the C++ compiler of the Verilator runs, Python), the liberty digest, clock/reset and
  polarity, every ``RtlSettings`` knob (simulation lengths, formal budgets, induction depth, reset
  cycles, timeouts), the required assurance and the user's cocotb test (by content).
- Kernels: torch/Triton/compiler versions, every ``KernelSettings`` knob, and the machine the timings
  were taken on (host, CPU model, usable cores, the thread setting, the GPU if any): runtimes are
  never reused across machines.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from evoforge.config import KernelSettings, RtlSettings
from evoforge.domain import Target, TargetKind, VerdictContext


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def file_digest(path: str | Path | None) -> str | None:
    """sha256 of a file's bytes (``None`` for no file; ``missing:<name>`` when it cannot be read)."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return f"missing:{Path(path).name}"


def _settings_items(values: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in values.items()))


@functools.cache
def rtl_tool_versions() -> tuple[tuple[str, str], ...]:
    """(program, version) of everything that decides an RTL verdict (cached per process)."""
    from evoforge.tools.iverilog import Iverilog
    from evoforge.tools.opensta import OpenSta
    from evoforge.tools.verilator import Verilator
    from evoforge.tools.yosys import Yosys
    from evoforge.verifiers.rtl.deep_sim import compiler_version

    tools = [(t.name, str(t().version())) for t in (Iverilog, Verilator, Yosys, OpenSta)]
    tools += [
        ("cocotb", _package("cocotb")),
        ("c++", compiler_version()),
        ("python", platform.python_version()),
    ]
    return tuple(tools)


def rtl_verdict_context(target: Target, settings: RtlSettings, liberty_digest: str) -> VerdictContext:
    values = settings.model_dump()
    values["liberty"] = liberty_digest  # the content, not the path
    interface = target.rtl
    if interface is not None:
        values |= {
            "top": interface.top,
            "clock": interface.clock,
            "reset": interface.reset,
            "reset_active_low": interface.reset_active_low,
        }
    return VerdictContext(
        kind=TargetKind.RTL,
        tools=rtl_tool_versions(),
        settings=_settings_items(values),
        requirement=str(settings.minimum_assurance),
        user_test_sha256=file_digest(target.user_test),
    )


@functools.cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_identity(*, threads: int | None, gpu: str | None) -> str:
    """Where a timing was taken: host, CPU model, usable cores, thread setting and GPU."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 0
    parts = [
        f"host={platform.node()}",
        f"arch={platform.machine()}",
        f"cpu={_cpu_model()}",
        f"cores={cores}",
        f"threads={threads if threads is not None else 'all'}",
        f"gpu={gpu or 'none'}",
    ]
    return ";".join(parts)


def kernel_verdict_context(settings: KernelSettings, versions: str, probe: dict[str, Any]) -> VerdictContext:
    tools: list[tuple[str, str]] = []
    for item in versions.split(";"):
        name, _, version = item.partition("=")
        if name:
            tools.append((name, version))
    tools.append(("python", sys.version.split()[0]))
    gpu = probe.get("gpu_name") or ("cuda" if probe.get("cuda") else None)
    return VerdictContext(
        kind=TargetKind.KERNEL,
        tools=tuple(tools),
        settings=_settings_items(settings.model_dump()),
        requirement=f"custom_kernel={settings.require_custom_kernel}",
        machine=machine_identity(threads=settings.cpu_threads, gpu=str(gpu) if gpu else None),
    )
