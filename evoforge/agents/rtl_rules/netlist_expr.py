"""Verilog text for small pieces of a word-level netlist, in the source's own names.

:func:`condition` prints a one-bit select (``op == 2'b01``, ``!(a < b) && en`` …) from the cells that
compute it, down to named signals and constants; :func:`word` prints a word as a named signal, a
slice, a constant or a concatenation of those. Everything printed is unsigned and each comparison
gets operands of the cell's own widths, so the printed expression has the cell's value under
Verilog's width rules (IEEE 1364-2005 §5.4: both operands of a comparison are extended to the wider
one, zero-extended when unsigned — as Yosys's cells do). Anything else (signed cells, arithmetic
inside a condition, unnamed words) gives None: the caller then declines its site.

A printed piece reads named signals' *final* values (the netlist identifies a name with the last
value assigned to it), so it belongs outside procedural code, in a continuous assignment.
"""

from __future__ import annotations

from evoforge.tools.yosys_netlist import Bit, ModuleNetlist

MAX_DEPTH = 8
_COMPARES = {
    "$eq": "==",
    "$ne": "!=",
    "$lt": "<",
    "$le": "<=",
    "$gt": ">",
    "$ge": ">=",
    "$eqx": "===",
    "$nex": "!==",
}
_LOGIC = {"$logic_and": "&&", "$logic_or": "||", "$and": "&", "$or": "|", "$xor": "^"}


def word(module: ModuleNetlist, bits: tuple[Bit, ...]) -> str | None:
    return module.expr_of(bits)


def condition(module: ModuleNetlist, bit: Bit, depth: int = 0) -> str | None:
    """The one-bit value ``bit`` as an expression (None when it cannot be printed exactly)."""
    if isinstance(bit, str):
        return {"0": "1'b0", "1": "1'b1"}.get(bit)
    named = module.text_of((bit,))
    if named is not None:
        return named
    found = module.driver(bit)
    if found is None or depth > MAX_DEPTH:
        return None
    cell = found[0]
    if len(cell.port("Y")) != 1 or cell.port("Y")[0] != bit:
        return None
    if cell.param("A_SIGNED") or cell.param("B_SIGNED"):
        return None
    kind = cell.type
    if kind in _COMPARES:
        a, b = word(module, cell.port("A")), word(module, cell.port("B"))
        return None if a is None or b is None else f"({a} {_COMPARES[kind]} {b})"
    if kind in ("$logic_not", "$not") and len(cell.port("A")) == 1:
        inner = condition(module, cell.port("A")[0], depth + 1)
        return None if inner is None else f"!{inner}"
    if kind == "$logic_not":
        inner = word(module, cell.port("A"))
        return None if inner is None else f"({inner} == 0)"
    if kind in ("$reduce_or", "$reduce_bool"):
        inner = word(module, cell.port("A"))
        return None if inner is None else f"(|{inner})"
    if kind == "$reduce_and":
        inner = word(module, cell.port("A"))
        return None if inner is None else f"(&{inner})"
    if kind in _LOGIC and len(cell.port("A")) == 1 and len(cell.port("B")) == 1:
        a = condition(module, cell.port("A")[0], depth + 1)
        b = condition(module, cell.port("B")[0], depth + 1)
        return None if a is None or b is None else f"({a} {_LOGIC[kind]} {b})"
    return None
