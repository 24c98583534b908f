"""Icarus Verilog: ``iverilog`` (compile, preprocess) and ``vvp`` (its runtime).

``Iverilog.compile`` returns an :class:`IverilogResult` with parsed diagnostics; ``preprocess`` runs
``iverilog -E`` and returns the text. Simulations of candidate code do not run here: the sandbox runs
``vvp`` (see ``evoforge.verifiers.sandbox``); :class:`Vvp` only locates and probes it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from evoforge.errors import ToolError, ToolTimeoutError
from evoforge.tools.base import ExternalTool, write_text
from evoforge.tools.diagnostics import Diagnostic, parse_icarus

log = logging.getLogger(__name__)

__all__ = ["LANGUAGE_FLAG", "Diagnostic", "Iverilog", "IverilogResult", "Vvp"]

#: the language generation every compile uses (the lint, probe and simulation benches alike)
LANGUAGE_FLAG = "-g2012"


@dataclass(frozen=True)
class IverilogResult:
    ok: bool
    diagnostics: tuple[Diagnostic, ...]
    log: str
    seconds: float

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")

    @property
    def first_error(self) -> str:
        """The first error as one line (or the log's tail when none was parsed)."""
        if self.errors:
            return str(self.errors[0])
        return "\n".join(self.log.strip().splitlines()[-3:])


class Iverilog(ExternalTool):
    name = "iverilog"
    executable = "iverilog"
    package = "iverilog"
    version_argv = ("-V",)

    def compile(
        self,
        sources: Sequence[Path],
        *,
        output: Path,
        top: str | None = None,
        cwd: Path,
        timeout: float | None = None,
        extra_args: Sequence[str] = (),
    ) -> IverilogResult:
        """Compile ``sources`` to the vvp file ``output``; a timeout raises ``ToolTimeoutError``.

        Sources are read as SystemVerilog (``-g2012``): Verilog-2005 designs compile the same, and the
        SystemVerilog design subset (``logic``, ``always_ff``, ``'0`` …) compiles at all.
        """
        argv: list[str | os.PathLike[str]] = [LANGUAGE_FLAG, "-o", output]
        if top:
            argv += ["-s", top]
        argv += [*extra_args, *sources]
        result = self.run(argv, cwd=cwd, timeout=timeout)
        if result.timed_out:
            raise ToolTimeoutError(
                f"iverilog did not finish within {result.seconds:.0f} s",
                hint="raise the tool timeout (rtl.tool_timeout_s)",
            )
        text = result.stderr + ("\n" + result.stdout if result.stdout.strip() else "")
        diagnostics = parse_icarus(text)
        if result.ok:  # "sorry" that did not stop the compile: a limitation it worked around, not an error
            diagnostics = tuple(
                replace(d, severity="warning") if "sorry:" in d.message else d for d in diagnostics
            )
        return IverilogResult(
            ok=result.ok and not any(d.severity == "error" for d in diagnostics),
            diagnostics=diagnostics,
            log=result.output,
            seconds=result.seconds,
        )

    def preprocess(self, text: str, *, cwd: Path, timeout: float | None = None) -> str:
        """The text after ``iverilog -E`` (macros expanded, includes resolved relative to ``cwd``)."""
        source = write_text(cwd / "preprocess_in.v", text)
        out = cwd / "preprocess_out.v"
        result = self.run(["-E", "-o", out.name, source.name], cwd=cwd, timeout=timeout)
        if result.timed_out:
            raise ToolTimeoutError(f"iverilog -E did not finish within {result.seconds:.0f} s")
        if not result.ok or not out.exists():
            diagnostics = parse_icarus(result.stderr)
            first = str(diagnostics[0]) if diagnostics else result.output.strip() or "no output"
            raise ToolError(
                f"the Verilog preprocessor failed: {first}",
                hint="fix the `include/`define directives (include files are looked up next to the file)",
            )
        return out.read_text(errors="replace")


class Vvp(ExternalTool):
    name = "vvp"
    executable = "vvp"
    package = "iverilog"
    version_argv = ("-V",)
