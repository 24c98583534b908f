"""The cheap front of the RTL cascade: ``parse``, ``lint`` and ``interface``.

``parse`` applies the source policy (:mod:`evoforge.verifiers.rtl.source_policy`: no control bytes,
no ``include``, no file or OS access from system tasks, no translate pragmas, checked on the text
after one preprocessing in the sandbox), puts the one elaborated text every later tool reads in place
of the candidate's text, and elaborates it with slang (:mod:`evoforge.tools.slang`: SystemVerilog,
parameters evaluated) with the original's top; ``lint`` runs every tool in its SystemVerilog mode —
compiles with Icarus (``-g2012``), lints with Verilator (``-sv``) and checks with Yosys
(``read_verilog -sv``) that every instantiated module is defined (an unresolved module would
otherwise be a black box that formal tools "prove" equal); ``interface`` requires the original's top
with the same ports, widths, directions and signedness.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from evoforge.domain import Port, StageResult
from evoforge.errors import TargetError, ToolError, ToolTimeoutError
from evoforge.tools.iverilog import Iverilog
from evoforge.tools.slang import Elaboration, Slang
from evoforge.tools.verilator import Verilator
from evoforge.tools.yosys import Yosys
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.probe import CANDIDATE_SYSTEM_CALLS, system_calls
from evoforge.verifiers.rtl.source_policy import FORBIDDEN_SYSTEM_TASKS, elaborate, policy_violations

__all__ = ["FORBIDDEN_SYSTEM_TASKS", "policy_violations", "run_interface", "run_lint", "run_parse"]


def run_parse(ctx: RtlContext) -> StageResult:
    start = time.monotonic()
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="elaborate-", dir=ctx.workdir))
    try:
        elaborated = elaborate(ctx.candidate_source, role="candidate", workdir=scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not elaborated.ok:
        return StageResult(
            "parse",
            False,
            time.monotonic() - start,
            detail="forbidden construct: " + "; ".join(elaborated.refusals),
        )
    ctx.artifacts["submitted_source"] = ctx.candidate_source
    ctx.candidate_source = elaborated.text  # from here on every tool reads the elaborated text
    try:
        design = elaborate_candidate(ctx)
    except (TargetError, ToolTimeoutError) as exc:
        return StageResult("parse", False, time.monotonic() - start, detail=exc.message)
    if ctx.top not in design.definitions:
        defined = ", ".join(sorted(design.definitions)) or "none"
        return StageResult(
            "parse",
            False,
            time.monotonic() - start,
            detail=f"the candidate does not define the top module {ctx.top!r} (it defines: {defined})",
        )
    if design.errors:
        more = f" (and {len(design.errors) - 1} more)" if len(design.errors) > 1 else ""
        return StageResult("parse", False, time.monotonic() - start, detail=design.first_error + more)
    ctx.artifacts["elaboration"] = design
    return StageResult("parse", True, time.monotonic() - start, detail=f"{len(design.definitions)} module(s)")


def elaborate_candidate(ctx: RtlContext) -> Elaboration:
    """The candidate's elaborated text (preprocessed once, by the source policy) elaborated by slang
    with the original's top."""
    workdir = ctx.workdir / "parse"
    workdir.mkdir(parents=True, exist_ok=True)
    text = ctx.candidate_source
    return Slang().elaborate(text, cwd=workdir, top=ctx.top, timeout=ctx.settings.tool_timeout_s)


def _hierarchy_script(top: str) -> str:
    return f"read_verilog -sv -defer candidate.v\nhierarchy -check -top {top}\n"


def run_lint(ctx: RtlContext) -> StageResult:
    start = time.monotonic()
    path = ctx.write_candidate()
    cwd = path.parent
    logs: list[str] = []
    timeout = ctx.settings.tool_timeout_s
    try:
        compiled = Iverilog().compile([path], output=cwd / "lint.vvp", top=ctx.top, cwd=cwd, timeout=timeout)
        logs.append(compiled.log)
        if not compiled.ok:
            first = compiled.diagnostics[0].message if compiled.diagnostics else compiled.log.strip()[-400:]
            return StageResult(
                "lint", False, time.monotonic() - start, detail=f"iverilog: {first}", log="\n".join(logs)
            )
        vvp_text = (cwd / "lint.vvp").read_text(errors="replace")
        calls = sorted({n for n, _ in system_calls(vvp_text, path.name) if n not in CANDIDATE_SYSTEM_CALLS})
        if calls:
            return StageResult(
                "lint",
                False,
                time.monotonic() - start,
                detail=f"calls system tasks a candidate may not use: {', '.join(calls)}",
                log="\n".join(logs),
            )
        hierarchy = Yosys().run_script(_hierarchy_script(ctx.top), cwd=cwd, timeout=timeout, name="hierarchy")
        logs.append(hierarchy.log)
        if not hierarchy.ok:
            return StageResult(
                "lint",
                False,
                time.monotonic() - start,
                detail=f"yosys: {hierarchy.error}",
                log="\n".join(logs),
            )
        lint = Verilator().lint([path], top=ctx.top, cwd=cwd, timeout=timeout)
        logs.append(lint.log)
    except ToolError as exc:
        return StageResult("lint", False, time.monotonic() - start, error=True, detail=str(exc))
    original_errors = ctx.reference.get("verilator_original_errors")
    if original_errors is None:
        if ctx.candidate_source == ctx.original_source:  # the original's own baseline: just linted
            original_errors = len(lint.errors)
        else:
            original = ctx.write_original()
            ref = Verilator().lint([original], top=ctx.top, cwd=original.parent, timeout=timeout)
            original_errors = len(ref.errors)
        ctx.reference["verilator_original_errors"] = original_errors
    if lint.errors and not original_errors:
        error = lint.errors[0]
        return StageResult(
            "lint",
            False,
            time.monotonic() - start,
            detail=f"verilator: line {error.line}: {error.message}",
            log="\n".join(logs),
        )
    detail = f"{len(lint.warnings)} verilator warning(s)" if lint.warnings else "clean"
    if lint.errors:
        detail += " (verilator errors ignored: the original does not lint cleanly either)"
    return StageResult("lint", True, time.monotonic() - start, detail=detail, log="\n".join(logs))


def _describe(port: Port) -> str:
    signed = " signed" if port.signed else ""
    return (
        f"{port.direction}{signed} [{port.width - 1}:0] {port.name}"
        if port.width > 1
        else (f"{port.direction}{signed} {port.name}")
    )


def interface_differences(original: tuple[Port, ...], candidate: tuple[Port, ...]) -> list[str]:
    before = {p.name: p for p in original}
    after = {p.name: p for p in candidate}
    problems = [f"port {name!r} is missing" for name in before if name not in after]
    problems += [f"port {name!r} is new" for name in after if name not in before]
    for name, old in before.items():
        new = after.get(name)
        if new is not None and new != old:
            problems.append(f"port {name!r}: original '{_describe(old)}', candidate '{_describe(new)}'")
    return problems


def run_interface(ctx: RtlContext) -> StageResult:
    start = time.monotonic()
    design = ctx.artifacts.get("elaboration") or elaborate_candidate(ctx)
    summary = design.modules[ctx.top]
    candidate_ports = summary.ports
    problems = interface_differences(ctx.interface.ports, candidate_ports)
    problems += [f"port {p}" for p in summary.unsupported_ports]
    if problems:
        return StageResult("interface", False, time.monotonic() - start, detail="; ".join(problems))
    return StageResult(
        "interface", True, time.monotonic() - start, detail=f"{len(candidate_ports)} ports match the original"
    )
