"""Verilog-2001 parsing with pyverilog: preprocess, parse, summarise modules, generate text back.

The offline rewrite rules use this AST; targets and candidates are elaborated by slang
(:mod:`evoforge.tools.slang`), so a design pyverilog cannot parse (SystemVerilog) is still a target —
the rules then find nothing in it. :func:`preprocess` is the one preprocessing step both read.

pyverilog would run ``iverilog -E`` itself (outside the process choke point) and rebuild its LALR
tables on every parser construction; here the preprocessor runs through
:class:`evoforge.tools.iverilog.Iverilog` and the tables are pickled once into a cache directory.
:func:`parse_verilog` returns the AST and a :class:`ModuleInfo` per module (ports with evaluated
widths, instantiated module types, parameter defaults); :func:`generate_verilog` turns an AST back into text.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import platformdirs
from ply.yacc import NullLogger, yacc
from pyverilog import __version__ as _PYVERILOG_VERSION
from pyverilog.ast_code_generator.codegen import ASTCodeGenerator
from pyverilog.vparser import ast as vast
from pyverilog.vparser.lexer import VerilogLexer
from pyverilog.vparser.parser import ParseError, VerilogParser

from evoforge.domain import Port
from evoforge.errors import TargetError, ToolError, ToolNotFoundError, ToolTimeoutError
from evoforge.tools.iverilog import Iverilog

log = logging.getLogger(__name__)

PREPROCESS_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    ports: tuple[Port, ...]
    instances: tuple[str, ...]  # names of the module types instantiated inside (each once, in order)
    parameters: dict[str, int] = field(default_factory=dict)  # parameters/localparams with constant defaults


@dataclass(frozen=True, eq=False)
class ParsedVerilog:
    ast: vast.Source
    modules: dict[str, ModuleInfo]
    text: str  # the preprocessed source the AST was parsed from


# ---------------------------------------------------------------------------------------------
# Preprocessing


def preprocess(text: str, workdir: Path) -> str:
    """The text after the Verilog preprocessor (``iverilog -E`` in ``workdir``): what the parsers read."""
    return _preprocess(text, workdir)


def _preprocess(text: str, workdir: Path) -> str:
    try:
        return Iverilog().preprocess(text, cwd=workdir, timeout=PREPROCESS_TIMEOUT_S)
    except (ToolNotFoundError, ToolTimeoutError):
        raise
    except ToolError as exc:  # the preprocessor rejected the source: the user's input is at fault
        raise TargetError(
            exc.message.replace(
                "the Verilog preprocessor failed", "the Verilog preprocessor (iverilog -E) failed"
            ),
            hint="check `include files (they are looked up in the work directory) and `define macros",
        ) from exc


# ---------------------------------------------------------------------------------------------
# Parsing with cached tables


def _table_path() -> Path:
    cache = Path(platformdirs.user_cache_dir("evoforge", appauthor=False))
    return cache / f"pyverilog-{_PYVERILOG_VERSION}-parsetab.pickle"


class _CachedParser(VerilogParser):
    """VerilogParser whose LALR tables are read from (or written once to) a pickle."""

    _build_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, table: Path) -> None:  # mirrors VerilogParser.__init__ plus a pickle file
        self.lexer = VerilogLexer(error_func=self._lexer_error_func)
        self.lexer.build()
        self.tokens = self.lexer.tokens
        table.parent.mkdir(parents=True, exist_ok=True)
        with self._build_lock:
            if table.exists():
                self.parser = yacc(
                    module=self, method="LALR", debug=False, picklefile=str(table), errorlog=NullLogger()
                )
                return
            # build into a private file and rename, so concurrent processes never read a half-written one
            fd, tmp = tempfile.mkstemp(dir=table.parent, suffix=".tmp")
            os.close(fd)
            os.unlink(tmp)
            try:
                self.parser = yacc(
                    module=self, method="LALR", debug=False, picklefile=tmp, errorlog=NullLogger()
                )
                os.replace(tmp, table)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)

    def p_ioports(self, p: Any) -> None:
        "ioports : ioports COMMA ioport"
        # pyverilog 1.3 drops `signed` from a continued ANSI port (`input signed [3:0] a, b`) and
        # turns `output wire [3:0] p, q` into an earlier port's direction; a bare name repeats the
        # previous declaration exactly. The docstring (the grammar rule) is unchanged, so the
        # cached tables stay valid.
        if isinstance(p[3], str):
            prev = p[1][-1]
            line = p.lineno(3)
            first = type(prev.first)(
                name=p[3], width=copy.deepcopy(prev.first.width), signed=prev.first.signed, lineno=line
            )
            second = None
            if prev.second is not None:
                second = type(prev.second)(
                    name=p[3], width=copy.deepcopy(prev.second.width), signed=prev.second.signed, lineno=line
                )
            p[0] = (*p[1], vast.Ioport(first, second, lineno=line))
        else:
            p[0] = (*p[1], p[3])
        p.set_lineno(0, p.lineno(1))


_local = threading.local()


def _parser() -> _CachedParser:
    parser: _CachedParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _CachedParser(_table_path())
        _local.parser = parser
    return parser


def _syntax_error(exc: Exception, text: str) -> TargetError:
    message = str(exc)
    match = re.search(r"line:(\d+)", message)
    detail = re.sub(r"^.*?line:\d+(?: column:\d+)?:\s*", "", message)
    if match is None:
        return TargetError(
            f"Verilog syntax error: {detail}",
            hint="evoforge parses Verilog-2001 (no SystemVerilog); fix the source and retry",
        )
    line = int(match.group(1))
    lines = text.splitlines()
    shown = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return TargetError(
        f"Verilog syntax error at line {line}: {detail}" + (f" in `{shown}`" if shown else ""),
        hint="evoforge parses Verilog-2001 (no SystemVerilog); fix the source and retry",
    )


def parse_verilog(text: str, *, workdir: Path | None = None) -> ParsedVerilog:
    """Preprocess and parse ``text``; raises ``TargetError`` on a syntax or preprocessing error.

    ``workdir`` (default: a temporary directory) receives the preprocessor's files; `include
    directives are resolved relative to it.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="evoforge-vparse-") as tmp:
            pre = _preprocess(text, Path(tmp))
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        pre = _preprocess(text, workdir)
    return parse_preprocessed(pre)


def parse_preprocessed(text: str) -> ParsedVerilog:
    """Parse already-preprocessed Verilog (no macros, no includes) without running any program."""
    parser = _parser()
    parser.lexer.reset_lineno()
    try:
        tree = parser.parse(text)
    except ParseError as exc:
        raise _syntax_error(exc, text) from exc
    if tree is None:
        raise TargetError("the Verilog source is empty", hint="give a file that defines at least one module")
    modules: dict[str, ModuleInfo] = {}
    for definition in tree.description.definitions:
        if isinstance(definition, vast.ModuleDef):
            modules[definition.name] = module_info(definition)
    if not modules:
        raise TargetError(
            "the Verilog source defines no module", hint="give a file with a `module … endmodule`"
        )
    return ParsedVerilog(ast=tree, modules=modules, text=text)


def generate_verilog(tree: vast.Node) -> str:
    """Verilog text for an AST (or any node) with pyverilog's code generator."""
    return str(ASTCodeGenerator().visit(tree))


def top_candidates(parsed: ParsedVerilog) -> list[str]:
    """Modules that no other module instantiates, in source order."""
    used = {inst for info in parsed.modules.values() for inst in info.instances if inst != info.name}
    return [name for name in parsed.modules if name not in used]


# ---------------------------------------------------------------------------------------------
# Module summaries


def walk(node: Any) -> Iterator[Any]:
    """Every node under ``node`` (itself included), depth first, in source order."""
    yield node
    for child in node.children() or ():
        if child is not None:
            yield from walk(child)


def module_info(module: vast.ModuleDef) -> ModuleInfo:
    params = _parameters(module)
    ports = _ports(module, params)
    instances: list[str] = []
    for node in walk(module):
        if isinstance(node, vast.InstanceList) and node.module not in instances:
            instances.append(node.module)
    return ModuleInfo(name=module.name, ports=ports, instances=tuple(instances), parameters=params)


def _parameters(module: vast.ModuleDef) -> dict[str, int]:
    env: dict[str, int] = {}
    for node in walk(module):
        if isinstance(node, vast.Parameter) and not isinstance(node, vast.Supply):
            value = const_value(node.value, env)
            if value is not None:
                env[node.name] = value
    return env


def width_of(width: vast.Width | None, env: dict[str, int]) -> int | None:
    """The bit count of a ``[msb:lsb]`` range (1 when absent; None when not constant)."""
    if width is None:
        return 1
    msb, lsb = const_value(width.msb, env), const_value(width.lsb, env)
    if msb is None or lsb is None:
        return None
    return abs(msb - lsb) + 1


_DIRECTIONS: dict[type, str] = {vast.Input: "input", vast.Output: "output", vast.Inout: "inout"}


def _ports(module: vast.ModuleDef, env: dict[str, int]) -> tuple[Port, ...]:
    order: list[str] = []
    decls: dict[str, vast.Variable] = {}
    nets: dict[str, vast.Variable] = {}
    for item in module.portlist.ports if module.portlist else ():
        if isinstance(item, vast.Ioport):
            order.append(item.first.name)
            decls[item.first.name] = item.first
            if item.second is not None:
                nets[item.first.name] = item.second
        elif isinstance(item, vast.Port):
            order.append(item.name)
    for item in module.items or ():
        if isinstance(item, vast.Decl):
            for var in item.list:
                if type(var) in _DIRECTIONS:
                    decls.setdefault(var.name, var)
                elif isinstance(var, vast.Variable):
                    nets.setdefault(var.name, var)
    ports: list[Port] = []
    for name in order:
        var = decls.get(name)
        if var is None:
            raise TargetError(
                f"module {module.name}: port {name} has no input/output declaration",
                hint="declare every port's direction",
            )
        net = nets.get(name)
        width_node = var.width if var.width is not None else (net.width if net is not None else None)
        width = width_of(width_node, env)
        if width is None:
            raise TargetError(
                f"module {module.name}: the width of port {name} is not a constant expression",
                hint="use literal numbers or parameters with default values in port ranges",
            )
        signed = bool(var.signed) or bool(net is not None and net.signed)
        ports.append(Port(name=name, direction=_DIRECTIONS[type(var)], width=width, signed=signed))  # type: ignore[arg-type]
    return tuple(ports)


# ---------------------------------------------------------------------------------------------
# Constant expressions

_BINARY = {
    vast.Plus: lambda a, b: a + b,
    vast.Minus: lambda a, b: a - b,
    vast.Times: lambda a, b: a * b,
    vast.Divide: lambda a, b: int(a / b) if b else None,
    vast.Mod: lambda a, b: a % b if b else None,
    vast.Power: lambda a, b: a**b if 0 <= b < 64 else None,
    vast.Sll: lambda a, b: a << b if 0 <= b < 64 else None,
    vast.Sla: lambda a, b: a << b if 0 <= b < 64 else None,
    vast.Srl: lambda a, b: a >> b if b >= 0 else None,
    vast.Sra: lambda a, b: a >> b if b >= 0 else None,
    vast.LessThan: lambda a, b: int(a < b),
    vast.GreaterThan: lambda a, b: int(a > b),
    vast.LessEq: lambda a, b: int(a <= b),
    vast.GreaterEq: lambda a, b: int(a >= b),
    vast.Eq: lambda a, b: int(a == b),
    vast.NotEq: lambda a, b: int(a != b),
    vast.And: lambda a, b: a & b,
    vast.Or: lambda a, b: a | b,
    vast.Xor: lambda a, b: a ^ b,
    vast.Land: lambda a, b: int(bool(a) and bool(b)),
    vast.Lor: lambda a, b: int(bool(a) or bool(b)),
}
_RADIX = {"b": 2, "o": 8, "d": 10, "h": 16}


def int_literal(text: str) -> int | None:
    """The value of a Verilog integer literal (``12``, ``8'hff``, ``'sd3``); None with x/z digits."""
    text = text.replace("_", "").lower()
    match = re.fullmatch(r"(\d*)'(s?)([bodh])([0-9a-f]+)", text)
    try:
        if match is None:
            return int(text, 10)
        size, signed, radix, digits = match.groups()
        value = int(digits, _RADIX[radix])
        if size and signed and value >= 1 << (int(size) - 1):
            value -= 1 << int(size)
        return value
    except ValueError:
        return None


def const_value(node: Any, env: dict[str, int]) -> int | None:
    """Evaluate a constant expression over parameters ``env``; None when it is not constant."""
    if node is None:
        return None
    if isinstance(node, vast.Rvalue):
        return const_value(node.var, env)
    if isinstance(node, vast.IntConst):
        return int_literal(str(node.value))
    if isinstance(node, vast.Identifier):
        return env.get(node.name)
    if isinstance(node, vast.Uminus):
        value = const_value(node.right, env)
        return None if value is None else -value
    if isinstance(node, vast.Uplus):
        return const_value(node.right, env)
    if isinstance(node, vast.Cond):
        cond = const_value(node.cond, env)
        if cond is None:
            return None
        return const_value(node.true_value if cond else node.false_value, env)
    op = _BINARY.get(type(node))
    if op is not None:
        left, right = const_value(node.left, env), const_value(node.right, env)
        if left is None or right is None:
            return None
        result: int | None = op(left, right)
        return result
    return None
