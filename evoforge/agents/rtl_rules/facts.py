"""Module facts the word-level rules share: declared signals, expression widths, reads, drivers, new items.

Widths follow IEEE 1364-2005 §5.4: :func:`expr_width` is an expression's self-determined width and
:func:`operand_contexts` the context width every context-determined operand is evaluated at.
Everything returns None when it cannot be decided, and the rules then leave the site alone.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules.ast_utils import ONE_BIT_OPERATORS, Path, walk_paths
from evoforge.tools.verilog_ast import const_value, module_info, width_of


@dataclass(frozen=True)
class Signal:
    name: str
    width: int | None  # None: not a constant range
    signed: bool
    kind: str  # input, output, inout, wire, reg, integer, parameter
    msb: int | None
    lsb: int | None
    array: bool  # a memory (reg [7:0] m [0:3])


_KINDS: dict[type, str] = {
    vast.Input: "input",
    vast.Output: "output",
    vast.Inout: "inout",
    vast.Reg: "reg",
    vast.Wire: "wire",
    vast.Integer: "integer",
}


def module_signals(module: vast.ModuleDef) -> dict[str, Signal]:
    """Every port, net, variable and parameter of ``module`` (reg/wire kind wins over direction)."""
    params = module_info(module).parameters
    table: dict[str, Signal] = {}
    for _, node in walk_paths(module):
        if isinstance(node, vast.Parameter):
            width = width_of(node.width, params) if node.width is not None else None
            table[node.name] = Signal(node.name, width, bool(node.signed), "parameter", None, None, False)
            continue
        kind = _KINDS.get(type(node))
        if kind is None:
            continue
        if isinstance(node, vast.Integer):
            table[node.name] = Signal(node.name, 32, True, kind, 31, 0, False)
            continue
        width_node = node.width
        msb = const_value(width_node.msb, params) if width_node is not None else 0
        lsb = const_value(width_node.lsb, params) if width_node is not None else 0
        width = width_of(width_node, params)
        array = bool(getattr(node, "dimensions", None))
        old = table.get(node.name)
        if old is not None:
            if old.width is not None and width_node is None:
                width, msb, lsb = old.width, old.msb, old.lsb  # `output q; reg [3:0] q;` keeps [3:0]
            signed = old.signed or bool(node.signed)
            kind = kind if kind in ("reg", "wire", "integer") else old.kind
            array = array or old.array
        else:
            signed = bool(node.signed)
        table[node.name] = Signal(node.name, width, signed, kind, msb, lsb, array)
    return table


def is_port(module: vast.ModuleDef, name: str) -> bool:
    return any(info.name == name for info in module_info(module).ports)


# ---------------------------------------------------------------------------------------------
# Widths


def literal_width(node: vast.IntConst) -> int:
    text = str(node.value).replace("_", "")
    if "'" in text and text.split("'")[0]:
        return int(text.split("'")[0])
    return 32


_CONTEXT_BINARY = (
    vast.Plus,
    vast.Minus,
    vast.Times,
    vast.Divide,
    vast.Mod,
    vast.And,
    vast.Or,
    vast.Xor,
    vast.Xnor,
)
_ONE_BIT = ONE_BIT_OPERATORS
_SHIFTS = (vast.Sll, vast.Srl, vast.Sla, vast.Sra, vast.Power)
_CONTEXT_UNARY = (vast.Uminus, vast.Uplus, vast.Unot)


def expr_width(node: Any, sigs: dict[str, Signal]) -> int | None:
    """The self-determined width of an expression (None when unknown)."""
    if isinstance(node, vast.Rvalue | vast.Lvalue):
        return expr_width(node.var, sigs)
    if isinstance(node, vast.IntConst):
        return literal_width(node)
    if isinstance(node, vast.Identifier):
        sig = sigs.get(node.name)
        if sig is None or sig.array or node.scope is not None:
            return None
        return sig.width if sig.kind != "parameter" or sig.width is not None else None
    if isinstance(node, _ONE_BIT):
        return 1
    if isinstance(node, _CONTEXT_BINARY):
        return _max(expr_width(node.left, sigs), expr_width(node.right, sigs))
    if isinstance(node, _SHIFTS):
        return expr_width(node.left, sigs)
    if isinstance(node, _CONTEXT_UNARY):
        return expr_width(node.right, sigs)
    if isinstance(node, vast.Cond):
        return _max(expr_width(node.true_value, sigs), expr_width(node.false_value, sigs))
    if isinstance(node, vast.Concat):
        parts = [expr_width(item, sigs) for item in node.list]
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
    if isinstance(node, vast.Repeat):
        times = const_value(node.times, {})
        inner = expr_width(node.value, sigs)
        return None if times is None or inner is None else times * inner
    if isinstance(node, vast.Partselect):
        msb, lsb = const_value(node.msb, {}), const_value(node.lsb, {})
        return None if msb is None or lsb is None else abs(msb - lsb) + 1
    if isinstance(node, vast.Pointer) and isinstance(node.var, vast.Identifier):
        sig = sigs.get(node.var.name)
        return 1 if sig is not None and not sig.array else None
    return None


def _max(*values: int | None) -> int | None:
    if any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


def context_operands(node: Any) -> list[Any]:
    """The operands evaluated in the same width context as ``node`` itself."""
    if isinstance(node, vast.Rvalue | vast.Lvalue):
        return [node.var]
    if isinstance(node, _CONTEXT_BINARY):
        return [node.left, node.right]
    if isinstance(node, _SHIFTS):
        return [node.left]
    if isinstance(node, _CONTEXT_UNARY):
        return [node.right]
    if isinstance(node, vast.Cond):
        return [node.true_value, node.false_value]
    return []


def context_leaves(node: Any) -> Iterator[Any]:
    """The operands that decide a context's width and signedness (and are extended to it)."""
    inner = context_operands(node)
    if not inner:
        yield node
        return
    for child in inner:
        yield from context_leaves(child)


def context_width(root: Any, sigs: dict[str, Signal], target: int | None = 0) -> int | None:
    """The width the context rooted at ``root`` is evaluated at (``target``: the assigned width)."""
    widths = [expr_width(leaf, sigs) for leaf in context_leaves(root)]
    return _max(target, *widths)


# ---------------------------------------------------------------------------------------------
# Reads, drivers, items


def _lvalue_ids(module: vast.ModuleDef, kinds: tuple[type, ...] = (vast.Lvalue,)) -> set[int]:
    ids: set[int] = set()
    for _, node in walk_paths(module):
        if isinstance(node, kinds):
            ids.update(id(sub) for _, sub in walk_paths(node))
    return ids


def reads(module: vast.ModuleDef, name: str) -> list[Path]:
    """Paths of every Identifier ``name`` outside an lvalue (port connections count as reads)."""
    written = _lvalue_ids(module)
    return [
        path
        for path, node in walk_paths(module)
        if isinstance(node, vast.Identifier) and node.name == name and id(node) not in written
    ]


def writes(module: vast.ModuleDef, name: str) -> list[Path]:
    """Paths of every Identifier ``name`` in an lvalue or a port connection (which may drive it)."""
    written = _lvalue_ids(module, (vast.Lvalue, vast.PortArg))
    return [
        path
        for path, node in walk_paths(module)
        if isinstance(node, vast.Identifier) and node.name == name and id(node) in written
    ]


def fresh_name(module: vast.ModuleDef, base: str) -> str:
    used = {n.name for _, n in walk_paths(module) if hasattr(n, "name") and isinstance(n.name, str)}
    if base not in used:
        return base
    index = 1
    while f"{base}_{index}" in used:
        index += 1
    return f"{base}_{index}"


def width_node(width: int) -> vast.Width | None:
    return None if width == 1 else vast.Width(vast.IntConst(str(width - 1)), vast.IntConst("0"))


def declare(kind: type, name: str, width: int, signed: bool) -> vast.Decl:
    return vast.Decl((kind(name, width=width_node(width), signed=signed),))


def assign(name: str, expr: Any) -> vast.Assign:
    return vast.Assign(vast.Lvalue(vast.Identifier(name)), vast.Rvalue(copy.deepcopy(expr)))


def insert_items(module: vast.ModuleDef, index: int, items: list[Any]) -> None:
    old = list(module.items)
    module.items = tuple(old[:index] + items + old[index:])
