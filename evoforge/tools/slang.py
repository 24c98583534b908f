"""slang (through pyslang) as the RTL front end: parse and elaborate Verilog-2005 / SystemVerilog.

slang implements IEEE 1800-2017 in full, so the SystemVerilog that engineers write (``logic``,
``always_ff``, ``typedef enum``, packed structs, ``$clog2`` in port ranges, ``int`` loops, ``++``,
compound assignments …) elaborates with its parameters evaluated. :class:`Slang` runs the elaboration
in a child Python process (``python -I -m evoforge.tools.slang``): the text is untrusted, and a
generate bomb or a deep recursion must hit a process limit, not the service. The child prints one JSON
object; :class:`Elaboration` is its typed form: the modules defined, the top(s) slang elaborated, each
top's ports (evaluated widths, direction, signedness), parameters and instantiated module types, and
the errors with their line, the construct slang names and the source line.

The input is text that has been preprocessed already (macros expanded, includes resolved by the
project's preprocessing policy): this module does no file access of its own beyond reading its input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoforge.domain import Port
from evoforge.errors import TargetError, ToolError, ToolTimeoutError
from evoforge.tools.base import ExternalTool, write_text
from evoforge.tools.process import Limits, scrubbed_env

#: slang's generate/instance limits, tighter than its defaults: a design that needs more is refused
MAX_GENERATE_STEPS = 65_536
MAX_INSTANCE_ARRAY = 4_096
MAX_INSTANCE_DEPTH = 64
MAX_REPORTED_ERRORS = 20
CHILD_LIMITS = Limits(cpu_seconds=120, memory_bytes=2 << 30, file_bytes=16 << 20, open_files=64)
INPUT_NAME = "design.sv"


@dataclass(frozen=True)
class SlangDiagnostic:
    line: int
    column: int
    message: str
    code: str  # slang's name for the problem, e.g. "UnknownModule", "ExpectedExpression"
    source_line: str = ""
    syntax: bool = False  # found while parsing (a syntax error), not while elaborating

    def __str__(self) -> str:
        shown = f" in `{self.source_line.strip()}`" if self.source_line.strip() else ""
        where = f"syntax error at line {self.line}" if self.syntax else f"line {self.line}"
        return f"{where}: {self.message}{shown}"


@dataclass(frozen=True)
class ModuleSummary:
    """An elaborated top: ports with evaluated widths, integral parameters, module types it uses."""

    name: str
    line: int
    ports: tuple[Port, ...]
    instances: tuple[str, ...]  # module types instantiated anywhere below it (each once, in order)
    parameters: dict[str, int]
    unsupported_ports: tuple[str, ...] = ()  # "name: why" for ports a test bench cannot drive as bits


@dataclass(frozen=True)
class Elaboration:
    definitions: tuple[str, ...]  # every module defined, in source order
    tops: tuple[str, ...]  # the top(s) slang elaborated (the requested one, or the uninstantiated ones)
    modules: dict[str, ModuleSummary]  # per elaborated top
    errors: tuple[SlangDiagnostic, ...]
    warnings: int

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def first_error(self) -> str:
        return str(self.errors[0]) if self.errors else ""


# ---------------------------------------------------------------------------------------------
# The child: elaboration with pyslang (runs in its own process)


def _flags(ast: Any) -> Any:
    flags = ast.CompilationFlags
    # lenient where the three tools are: the lint stage, not slang, is the arbiter of what is legal
    return (
        flags.AllowUseBeforeDeclare
        | flags.RelaxEnumConversions
        | flags.AllowHierarchicalConst
        | flags.AllowUnnamedGenerate
        | flags.AllowMergingAnsiPorts
        | flags.AllowBareValParamAssignment
    )


def _port(symbol: Any) -> tuple[Port | None, str | None]:
    from pyslang import ast

    name = str(symbol.name)
    if not isinstance(symbol, ast.PortSymbol):
        return (
            None,
            f"{name}: {str(symbol.kind).split('.')[-1]} ports (interfaces, multi-ports) are not supported",
        )
    direction = {"In": "input", "Out": "output", "InOut": "inout"}.get(str(symbol.direction).split(".")[-1])
    if direction is None:
        return None, f"{name}: direction {str(symbol.direction).split('.')[-1].lower()} is not supported"
    kind = symbol.type
    if kind.isUnpackedArray or not kind.isIntegral:
        return None, f"{name}: type {kind} is not a packed bit vector"
    return Port(name=name, direction=direction, width=int(kind.bitWidth), signed=bool(kind.isSigned)), None  # type: ignore[arg-type]


def _summary(instance: Any, line: int) -> ModuleSummary:
    from pyslang import ast

    body = instance.body
    ports: list[Port] = []
    unsupported: list[str] = []
    for symbol in body.portList:
        port, problem = _port(symbol)
        if port is not None:
            ports.append(port)
        if problem is not None:
            unsupported.append(problem)
    parameters: dict[str, int] = {}
    for param in body.parameters:
        if isinstance(param, ast.ParameterSymbol) and param.type.isIntegral:
            try:
                parameters[str(param.name)] = int(param.value)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                continue
    used: list[str] = []

    def visit(symbol: Any) -> bool:
        if isinstance(symbol, ast.InstanceSymbol):
            name = str(symbol.definition.name)
            if name not in used:
                used.append(name)
        return True

    body.visit(visit)
    return ModuleSummary(str(instance.name), line, tuple(ports), tuple(used), parameters, tuple(unsupported))


def elaborate_in_process(text: str, top: str | None = None) -> dict[str, Any]:
    """Elaborate ``text`` with pyslang and return the JSON-ready summary (the child's output)."""
    import pyslang
    from pyslang import ast, syntax

    options = ast.CompilationOptions()
    options.flags = _flags(ast)
    options.maxGenerateSteps = MAX_GENERATE_STEPS
    options.maxInstanceArray = MAX_INSTANCE_ARRAY
    options.maxInstanceDepth = MAX_INSTANCE_DEPTH
    if top:
        options.topModules = {top}
    bag = pyslang.Bag([options])
    tree = syntax.SyntaxTree.fromText(text, INPUT_NAME)
    compilation = ast.Compilation(bag)
    compilation.addSyntaxTree(tree)
    manager = compilation.sourceManager
    lines = text.splitlines()
    root = compilation.getRoot()
    diagnostics = compilation.getAllDiagnostics()
    engine = pyslang.DiagnosticEngine(manager)
    parsing = {(str(d.code), d.location.offset) for d in tree.diagnostics}
    errors: list[dict[str, Any]] = []
    warnings = 0
    for diag in diagnostics:
        if not diag.isError():
            warnings += 1
            continue
        line = int(manager.getLineNumber(diag.location)) if diag.location.buffer.id else 0
        column = int(manager.getColumnNumber(diag.location)) if line else 0
        message = engine.formatMessage(diag) if hasattr(engine, "formatMessage") else str(diag.code)
        errors.append(
            {
                "line": line,
                "column": column,
                "message": str(message),
                "code": str(diag.code).removeprefix("DiagCode(").removesuffix(")"),
                "source_line": lines[line - 1][:200] if 0 < line <= len(lines) else "",
                "syntax": (str(diag.code), diag.location.offset) in parsing,
            }
        )
    errors.sort(key=lambda e: (e["line"] or 1 << 30, e["column"]))
    definitions: list[tuple[int, str]] = []
    for definition in compilation.getDefinitions():
        if str(getattr(definition, "definitionKind", "")).endswith("Module"):
            loc = definition.location
            definitions.append(
                (int(manager.getLineNumber(loc)) if loc.buffer.id else 0, str(definition.name))
            )
    definitions.sort()
    line_of = {name: line for line, name in definitions}
    modules = {}
    for instance in root.topInstances:
        summary = _summary(instance, line_of.get(str(instance.name), 0))
        modules[summary.name] = {
            "line": summary.line,
            "ports": [vars(p) for p in summary.ports],
            "instances": list(summary.instances),
            "parameters": summary.parameters,
            "unsupported_ports": list(summary.unsupported_ports),
        }
    return {
        "definitions": [name for _, name in definitions],
        "tops": [str(i.name) for i in root.topInstances],
        "modules": modules,
        "errors": errors[:MAX_REPORTED_ERRORS],
        "error_count": len(errors),
        "warnings": warnings,
    }


def elaboration_from_json(data: dict[str, Any]) -> Elaboration:
    modules = {
        name: ModuleSummary(
            name=name,
            line=int(m["line"]),
            ports=tuple(
                Port(p["name"], p["direction"], int(p["width"]), bool(p["signed"])) for p in m["ports"]
            ),
            instances=tuple(m["instances"]),
            parameters={str(k): int(v) for k, v in m["parameters"].items()},
            unsupported_ports=tuple(m.get("unsupported_ports", ())),
        )
        for name, m in data["modules"].items()
    }
    errors = tuple(
        SlangDiagnostic(
            int(e["line"]),
            int(e["column"]),
            str(e["message"]),
            str(e["code"]),
            str(e["source_line"]),
            bool(e.get("syntax")),
        )
        for e in data["errors"]
    )
    return Elaboration(
        tuple(data["definitions"]), tuple(data["tops"]), modules, errors, int(data["warnings"])
    )


# ---------------------------------------------------------------------------------------------
# The tool


class Slang(ExternalTool):
    """The pyslang elaborator, run as ``python -I -m evoforge.tools.slang`` in a child process."""

    name = "slang"
    executable = sys.executable
    package = "python3 (pyslang is a pip dependency of evoforge)"
    version_argv = ("-I", "-c", "import pyslang; print('pyslang', pyslang.__version__)")
    default_timeout = 60.0

    def elaborate(
        self, text: str, *, cwd: Path, top: str | None = None, timeout: float | None = None
    ) -> Elaboration:
        """Elaborate preprocessed ``text`` (written to ``cwd``); a timeout raises ``ToolTimeoutError``."""
        source = write_text(cwd / INPUT_NAME, text)
        args: list[str] = ["-I", "-m", "evoforge.tools.slang", source.name]
        if top:
            args += ["--top", top]
        result = self.run(args, cwd=cwd, timeout=timeout, env=scrubbed_env(), limits=CHILD_LIMITS)
        if result.timed_out:
            raise ToolTimeoutError(
                f"elaborating the design (slang) did not finish within {result.seconds:.0f} s",
                hint="a very large generate or instance array? raise rtl.tool_timeout_s if it is legitimate",
            )
        if not result.ok:
            tail = "\n".join(result.stderr.strip().splitlines()[-3:])
            raise TargetError(
                f"elaborating the design (slang) failed: {tail or f'exit status {result.returncode}'}",
                hint="the design may exceed the elaboration limits (memory, CPU time, generate steps)",
            )
        try:
            return elaboration_from_json(json.loads(result.stdout))
        except (ValueError, KeyError, TypeError) as exc:
            raise ToolError(f"the slang child printed no valid summary: {exc}") from exc


def main(argv: Sequence[str]) -> int:
    """The child's entry point: elaborate the file ``argv[0]`` and print the summary as JSON."""
    args = list(argv)
    top = None
    if "--top" in args:
        at = args.index("--top")
        top = args[at + 1]
        del args[at : at + 2]
    text = Path(args[0]).read_text(errors="replace")
    sys.stdout.write(json.dumps(elaborate_in_process(text, top)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
