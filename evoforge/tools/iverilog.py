"""Icarus Verilog: ``iverilog`` (compile, preprocess), its preprocessor ``ivlpp`` and ``vvp``.

``Iverilog.compile`` returns an :class:`IverilogResult` with parsed diagnostics; ``preprocess`` runs
``iverilog -E`` and returns the text. :class:`Ivlpp` runs the preprocessor directly, with no macro
predefined, the include directories it is given and line markers (``-L``), which say which files
were really included — the RTL source policy rests on them. Simulations of candidate code do not run
here: the sandbox runs ``vvp`` (see ``evoforge.verifiers.sandbox``); :class:`Vvp` only locates and
probes it.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from evoforge.errors import ToolError, ToolNotFoundError, ToolTimeoutError
from evoforge.tools.base import ExternalTool, read_capped, stopped_by_limit, write_text
from evoforge.tools.diagnostics import Diagnostic, parse_icarus
from evoforge.tools.process import Limits, ProcessResult

log = logging.getLogger(__name__)

__all__ = ["LANGUAGE_FLAG", "Diagnostic", "Iverilog", "IverilogResult", "Ivlpp", "IvlppRun", "Vvp"]

#: the language generation every compile uses (the lint, probe and simulation benches alike)
LANGUAGE_FLAG = "-g2012"

#: the preprocessor reads user text and expands macros: a bomb must end fast and small
PREPROCESS_LIMITS = Limits(
    cpu_seconds=10,
    memory_bytes=1 << 30,
    file_bytes=2 << 20,
    processes=8,
    open_files=64,
    output_bytes=1 << 20,
)


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

    def blames_input(self, result: ProcessResult) -> bool:
        # Icarus reports some input errors, then trips an assertion (a 2^30-entry memory: "pin count
        # exceeds …", then abort): a rejection of the design, not a broken installation
        return any(d.severity == "error" and d.line is not None for d in parse_icarus(result.stderr))

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
        limit = stopped_by_limit("iverilog", result)
        if limit is not None:
            diagnostics = (Diagnostic("", None, "error", limit), *diagnostics)
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
            first = str(diagnostics[0]) if diagnostics else result.output.strip()[-500:] or "no output"
            first = stopped_by_limit("iverilog -E", result) or first
            raise ToolError(
                f"the Verilog preprocessor failed: {first}",
                hint="fix the `include/`define directives (include files are looked up next to the file)",
            )
        return read_capped(out)


class Vvp(ExternalTool):
    name = "vvp"
    executable = "vvp"
    package = "iverilog"
    version_argv = ("-V",)


@dataclass(frozen=True)
class IvlppRun:
    ok: bool
    text: str  # the preprocessed text, with `line markers (empty when not ok)
    log: str
    seconds: float
    limit_exceeded: str | None  # which limit stopped it ("the 16 MiB file-size limit"), if one did
    returncode: int | None = 0


@functools.cache
def _find_ivlpp(iverilog: str) -> str | None:
    """``ivlpp`` lives in Icarus' library directory (``<prefix>/lib[/<multiarch>]/ivl/ivlpp``)."""
    prefix = Path(iverilog).resolve().parent.parent
    for pattern in ("lib/ivl/ivlpp", "lib/*/ivl/ivlpp", "lib64/ivl/ivlpp"):
        for found in sorted(prefix.glob(pattern)):
            if os.access(found, os.X_OK):
                return str(found)
    return None


class Ivlpp(ExternalTool):
    """Icarus' preprocessor, run directly: no predefined macros, explicit include dirs, line markers."""

    name = "ivlpp"
    executable = "ivlpp"
    package = "iverilog"
    version_argv = ("-V",)
    default_timeout = 30.0

    def path(self) -> str:
        iverilog = shutil.which("iverilog")
        found = _find_ivlpp(iverilog) if iverilog else None
        if found is None:
            raise ToolNotFoundError(
                "Icarus Verilog's preprocessor (ivlpp) was not found next to iverilog",
                hint="install Icarus Verilog (Debian/Ubuntu: apt-get install iverilog)",
            )
        return found

    def available(self) -> bool:
        iverilog = shutil.which("iverilog")
        return bool(iverilog and _find_ivlpp(iverilog))

    def preprocess_marked(
        self,
        text: str,
        *,
        cwd: Path,
        include_dirs: Sequence[Path] = (),
        timeout: float | None = None,
        limits: Limits = PREPROCESS_LIMITS,
    ) -> IvlppRun:
        """``ivlpp -L`` of ``text`` in ``cwd``; includes resolve in ``include_dirs`` only (read-only).

        Relative includes are also looked up next to the input, i.e. in ``cwd``, which holds nothing
        but the input: callers check the markers for what was included.
        """
        cwd.mkdir(parents=True, exist_ok=True)
        source = write_text(cwd / "ivlpp_in.v", text)
        config = write_text(cwd / "ivlpp.cfg", "".join(f"I:{Path(d).resolve()}\n" for d in include_dirs))
        out = cwd / "ivlpp_out.v"
        out.unlink(missing_ok=True)
        dirs = tuple(Path(d).resolve() for d in include_dirs)
        result = self.run(
            ["-L", f"-F{config.name}", f"-o{out.name}", source.name],
            cwd=cwd,
            timeout=timeout,
            limits=limits,
            reads=dirs,
        )
        if not result.ok or not out.is_file():
            return IvlppRun(
                False, "", result.output, result.seconds, result.limit_exceeded, result.returncode
            )
        # the file-size limit bounds the file; never read more than that
        text = read_capped(out, (limits.file_bytes or 1 << 30) + 1)
        return IvlppRun(True, text, result.output, result.seconds, None)
