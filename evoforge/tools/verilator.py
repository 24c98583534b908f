"""Verilator, used for linting only (``--lint-only -sv -Wall``; Debian's 5.006 is too old for cocotb).

Errors and warnings are kept apart: the cascade rejects a candidate on errors only. Purely stylistic
warnings are switched off (:data:`STYLE_WARNINGS`) so that what remains is worth reading.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evoforge.errors import ToolTimeoutError
from evoforge.tools.base import ExternalTool, stopped_by_limit
from evoforge.tools.diagnostics import Diagnostic, parse_verilator

#: warnings about naming, layout and unused things — not about behaviour
STYLE_WARNINGS: tuple[str, ...] = (
    "DECLFILENAME",
    "UNUSEDSIGNAL",
    "UNUSEDPARAM",
    "UNUSEDGENVAR",
    "PINCONNECTEMPTY",
    "EOFNEWLINE",
    "VARHIDDEN",
    "GENUNNAMED",
    "PROCASSINIT",
    "MULTITOP",
)

_NEWER_WARNINGS = ("GENUNNAMED", "PROCASSINIT")


@dataclass(frozen=True)
class LintReport:
    ok: bool  # no errors (warnings do not make a report fail)
    errors: tuple[Diagnostic, ...]
    warnings: tuple[Diagnostic, ...]
    log: str

    @property
    def first_error(self) -> str:
        if self.errors:
            return str(self.errors[0])
        return "\n".join(self.log.strip().splitlines()[-3:])


class Verilator(ExternalTool):
    name = "verilator"
    executable = "verilator"
    package = "verilator"
    version_argv = ("--version",)

    def lint(
        self,
        sources: Sequence[Path],
        *,
        top: str,
        cwd: Path,
        timeout: float | None = None,
        extra_args: Sequence[str] = (),
    ) -> LintReport:
        """Lint ``sources`` with ``top`` as the top module; a timeout raises ``ToolTimeoutError``."""
        version = self.version().numbers
        # an unknown -Wno-X is itself an error, so codes newer than the installed version are left out
        style = [w for w in STYLE_WARNINGS if w not in _NEWER_WARNINGS or version >= (5, 30)]
        argv: list[str | os.PathLike[str]] = [
            "--lint-only",
            "-sv",  # SystemVerilog whatever the file's extension (as Icarus -g2012 and Yosys -sv)
            "-Wall",
            "-Wno-fatal",  # warnings are reported, not fatal; errors still fail the run
            *(f"-Wno-{w}" for w in style),
            "--top-module",
            top,
            *extra_args,
            *sources,
        ]
        result = self.run(argv, cwd=cwd, timeout=timeout)
        if result.timed_out:
            raise ToolTimeoutError(
                f"verilator did not finish within {result.seconds:.0f} s",
                hint="raise the tool timeout (rtl.tool_timeout_s)",
            )
        diagnostics = parse_verilator(result.stderr + "\n" + result.stdout)
        limit = stopped_by_limit("verilator", result)
        if limit is not None:
            diagnostics = (Diagnostic("", None, "error", limit), *diagnostics)
        errors = tuple(d for d in diagnostics if d.severity == "error")
        warnings = tuple(d for d in diagnostics if d.severity == "warning")
        if result.returncode != 0 and not errors and not warnings:
            errors = (Diagnostic("", None, "error", result.output.strip()[-500:] or "verilator failed"),)
        return LintReport(ok=not errors, errors=errors, warnings=warnings, log=result.output)
