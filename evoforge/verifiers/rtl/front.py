"""The cheap front of the RTL cascade: ``parse``, ``lint`` and ``interface``.

``parse`` enforces the candidate policy (no file or OS access from system tasks, no ``include``) and
elaborates with slang (:mod:`evoforge.tools.slang`: SystemVerilog, parameters evaluated) with the
original's top; ``lint`` runs every tool in its SystemVerilog mode — compiles with Icarus
(``-g2012``), lints with Verilator (``-sv``) and checks with Yosys (``read_verilog -sv``) that every
instantiated module is defined (an unresolved module would otherwise be a black box that formal tools
"prove" equal); ``interface`` requires the original's top with the same ports, widths, directions and
signedness.
"""

from __future__ import annotations

import re
import time

from evoforge.domain import Port, StageResult
from evoforge.errors import TargetError, ToolError, ToolTimeoutError
from evoforge.tools.iverilog import Iverilog
from evoforge.tools.slang import Elaboration, Slang
from evoforge.tools.verilator import Verilator
from evoforge.tools.verilog_ast import preprocess
from evoforge.tools.yosys import Yosys
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.probe import CANDIDATE_SYSTEM_CALLS, system_calls

#: system tasks a candidate may not name (prefixes: ``$fopen`` also covers ``$fopenw``/``$fopenr``);
#: a first, textual line of defence. The lint stage checks the compiled design against an allowlist,
#: which macros and token pasting cannot get around.
FORBIDDEN_SYSTEM_TASKS = (
    "fopen", "fclose", "fwrite", "fdisplay", "fmonitor", "fstrobe", "fscanf", "fgets", "fgetc", "fread",
    "fputc", "fflush", "fseek", "frewind", "rewind", "ftell", "feof", "ferror", "ungetc", "readmem",
    "writemem", "sreadmem", "system", "dump", "test$plusargs", "value$plusargs", "shm_",
)  # fmt: skip
_FORBIDDEN = re.compile(r"\$(" + "|".join(re.escape(t) for t in FORBIDDEN_SYSTEM_TASKS) + r")\w*")
_DIRECTIVES = re.compile(r"`\s*(include|line)\b|``")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_STRINGS = re.compile(r'"(?:\\.|[^"\\\n])*"')


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def policy_violations(source: str) -> list[str]:
    """What the candidate does that a rewrite must not: file/OS system tasks, ``include``."""
    # keep offsets (so line numbers stay right) while blanking comments and string contents
    blank = _COMMENTS.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)
    blank = _STRINGS.sub(lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', blank)
    found = []
    for match in _FORBIDDEN.finditer(blank):
        line = _line_of(blank, match.start())
        found.append(f"line {line}: {match.group(0)} (file/OS access is not allowed)")
    for match in _DIRECTIVES.finditer(blank):
        what = f"`{match.group(1)}" if match.group(1) else "`` (macro token pasting)"
        found.append(f"line {_line_of(blank, match.start())}: {what} (candidates must be self-contained)")
    return found


def run_parse(ctx: RtlContext) -> StageResult:
    start = time.monotonic()
    violations = policy_violations(ctx.candidate_source)
    if violations:
        return StageResult(
            "parse", False, time.monotonic() - start, detail="forbidden construct: " + "; ".join(violations)
        )
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
    """The candidate preprocessed and elaborated by slang with the original's top."""
    workdir = ctx.workdir / "parse"
    workdir.mkdir(parents=True, exist_ok=True)
    text = preprocess(ctx.candidate_source, workdir)
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
        original = ctx.write_original()
        ref = Verilator().lint([original], top=ctx.top, cwd=original.parent, timeout=timeout)
        original_errors = ctx.reference["verilator_original_errors"] = len(ref.errors)
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
