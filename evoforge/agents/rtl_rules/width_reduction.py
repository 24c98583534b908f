"""Width reduction: a register narrower than declared, when its value is provably bounded or its high
bits provably never reach anything.

Two analyses on one clocked ``always`` block that alone assigns an unsigned register ``r`` (W bits,
whole-register non-blocking assignments only):

* **Bounded value** (``cnt <= (cnt == 99) ? 0 : cnt + 1``, if/else, case, enables, up or down):
  the register is reset to a constant by the block's top-level ``if (reset)``; every assignment is
  a constant, ``r ± c`` or a ternary of those, and under the conditions on ``r`` of its path
  (``r == K``, ``r != K``, ``r < K``, …, negated on else branches) it yields a value in ``[0, M]``
  when ``r`` is in ``[0, M]``, without wrapping. By induction from the reset, ``r ≤ M`` in every
  reachable state, so ``clog2(M+1)`` bits hold it.
* **Unused high bits**: every read of ``r`` outside its own next-state is a bit or part select
  below bit k, and inside its next-state ``r`` only passes through operators whose low k bits
  depend only on their operands' low k bits (``+ - * & | ^ ~^ ~`` unary ``-``, the arms of ``?:``,
  the shifted operand of ``<<``). So ``r[k-1:0]`` evolves on its own and nothing reads the rest.

The rewrite is the same for both: ``r`` becomes a W-bit wire driven by a new k-bit register
``r_q`` (``assign r = r_q;`` zero-extends), and the block assigns ``r_q`` instead of ``r``. Every
read keeps its text, width and (unsigned) type: in the bounded case the wire equals the original
register in every reachable state (its value fits in k bits); in the high-bits case it equals it
in every bit that is read, and each next-state value truncated to k bits equals the original's
low k bits. Assumes the reset is applied before the outputs are compared, as the cascade does.
"""

from __future__ import annotations

import copy
import functools
import random
import re
from typing import Any

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules import facts
from evoforge.agents.rtl_rules.ast_utils import (
    Path,
    Rewrite,
    identifiers,
    module_definitions,
    node_at,
    walk_paths,
)
from evoforge.tools.verilog_ast import ParsedVerilog, const_value, module_info

NAME = "width_reduction"

Interval = tuple[int, int]

_RESET_NAME = re.compile(r"(?i)(rst|reset|clr|clear)")


# ---------------------------------------------------------------------------------------------
# Which register, which block


def _clocked(item: Any) -> bool:
    return (
        isinstance(item, vast.Always)
        and item.sens_list is not None
        and any(s.type in ("posedge", "negedge") for s in item.sens_list.list)
    )


def _candidates(module: vast.ModuleDef) -> list[tuple[int, str]]:
    """(item index of the clocked block, register name) for every register written only there."""
    sigs = facts.module_signals(module)
    out: list[tuple[int, str]] = []
    for index, item in enumerate(module.items):
        if not _clocked(item):
            continue
        names: list[str] = []
        for _, node in walk_paths(item):
            if (
                isinstance(node, vast.Substitution)
                and isinstance(node.left.var, vast.Identifier)
                and node.left.var.name not in names
            ):
                names.append(node.left.var.name)
        for name in names:
            sig = sigs.get(name)
            if sig is None or sig.kind != "reg" or sig.signed or sig.array or sig.width is None:
                continue
            if sig.width < 2 or sig.lsb != 0 or sig.msb != sig.width - 1:
                continue
            if _only_written_here(module, index, name):
                out.append((index, name))
    return out


def _only_written_here(module: vast.ModuleDef, index: int, name: str) -> bool:
    root: Path = (("items", index),)
    for path in facts.writes(module, name):
        if path[: len(root)] != root:
            return False
        sub = node_at(module, path[:-2])  # the Substitution holding the Lvalue holding the name
        if not isinstance(sub, vast.NonblockingSubstitution) or not isinstance(sub.left.var, vast.Identifier):
            return False
    return True


def _unwrap(stmt: Any) -> Any:
    while isinstance(stmt, vast.Block) and len(stmt.statements or ()) == 1:
        stmt = stmt.statements[0]
    return stmt


# ---------------------------------------------------------------------------------------------
# Bounded value


class _Bound:
    """Interval reasoning over one register's assignments, with the facts of each path."""

    def __init__(self, name: str, width: int, params: dict[str, int]) -> None:
        self.name, self.width, self.params = name, width, params

    def _const(self, node: Any) -> int | None:
        if isinstance(node, vast.Rvalue):
            return self._const(node.var)
        if isinstance(node, vast.IntConst):
            value = const_value(node, {})
            if value is None or value < 0 or value >= 1 << facts.literal_width(node):
                return None
            return value
        if isinstance(node, vast.Identifier) and node.name in self.params:
            value = self.params[node.name]
            return value if 0 <= value < 1 << 32 else None
        return None

    def _is_reg(self, node: Any) -> bool:
        return isinstance(node, vast.Identifier) and node.name == self.name

    def refine(self, cond: Any, truth: bool, box: Interval) -> Interval:
        lo, hi = box
        if isinstance(cond, vast.Ulnot):
            return self.refine(cond.right, not truth, box)
        if (isinstance(cond, vast.Land) and truth) or (isinstance(cond, vast.Lor) and not truth):
            return self.refine(cond.right, truth, self.refine(cond.left, truth, box))
        flip = {vast.LessThan: vast.GreaterThan, vast.GreaterThan: vast.LessThan}
        flip |= {vast.LessEq: vast.GreaterEq, vast.GreaterEq: vast.LessEq, vast.Eq: vast.Eq}
        flip |= {vast.NotEq: vast.NotEq}
        kind = type(cond)
        if kind not in flip:
            return box
        if self._is_reg(cond.left) and self._const(cond.right) is not None:
            c = self._const(cond.right)
        elif self._is_reg(cond.right) and self._const(cond.left) is not None:
            c, kind = self._const(cond.left), flip[kind]
        else:
            return box
        assert c is not None
        if not truth:
            kind = {
                vast.LessThan: vast.GreaterEq,
                vast.GreaterEq: vast.LessThan,
                vast.GreaterThan: vast.LessEq,
                vast.LessEq: vast.GreaterThan,
                vast.Eq: vast.NotEq,
                vast.NotEq: vast.Eq,
            }[kind]
        if kind is vast.Eq:
            return max(lo, c), min(hi, c)
        if kind is vast.NotEq:
            return (lo + 1 if c == lo else lo), (hi - 1 if c == hi else hi)
        if kind is vast.LessThan:
            return lo, min(hi, c - 1)
        if kind is vast.LessEq:
            return lo, min(hi, c)
        if kind is vast.GreaterThan:
            return max(lo, c + 1), hi
        return max(lo, c), hi

    def value(self, expr: Any, box: Interval) -> Interval | None:
        """The interval of an assigned value (None when it may leave [0, 2^W))."""
        if box[0] > box[1]:
            return box  # an unreachable path assigns nothing
        if isinstance(expr, vast.Rvalue):
            return self.value(expr.var, box)
        const = self._const(expr)
        if const is not None:
            return (const, const) if const < 1 << self.width else None
        if self._is_reg(expr):
            return box
        if isinstance(expr, vast.Cond):
            then = self.value(expr.true_value, self.refine(expr.cond, True, box))
            other = self.value(expr.false_value, self.refine(expr.cond, False, box))
            if then is None or other is None:
                return None
            return _hull(then, other)
        if isinstance(expr, vast.Plus | vast.Minus):
            left, right = expr.left, expr.right
            if isinstance(expr, vast.Plus) and self._is_reg(right):
                left, right = right, left
            step = self._const(right)
            if not self._is_reg(left) or step is None:
                return None
            lo, hi = (
                (box[0] + step, box[1] + step)
                if isinstance(expr, vast.Plus)
                else (box[0] - step, box[1] - step)
            )
            return (lo, hi) if lo >= 0 and hi < 1 << self.width else None
        return None

    def check(self, stmt: Any, box: Interval, bound: int) -> bool:
        """True when every assignment of the register under ``stmt`` stays in [0, bound]."""
        stmt = _unwrap(stmt)
        if stmt is None or box[0] > box[1]:
            return True
        if isinstance(stmt, vast.Block):
            return all(self.check(s, box, bound) for s in stmt.statements)
        if isinstance(stmt, vast.IfStatement):
            return self.check(stmt.true_statement, self.refine(stmt.cond, True, box), bound) and self.check(
                stmt.false_statement, self.refine(stmt.cond, False, box), bound
            )
        if isinstance(stmt, vast.CaseStatement) and type(stmt) is vast.CaseStatement:
            rest = box  # what reaches the next item: every earlier single value excluded
            for item in stmt.caselist:
                sub = rest
                if self._is_reg(stmt.comp) and item.cond is not None and len(item.cond) == 1:
                    sub = self.refine(vast.Eq(stmt.comp, item.cond[0]), True, rest)
                    rest = self.refine(vast.Eq(stmt.comp, item.cond[0]), False, rest)
                if not self.check(item.statement, sub, bound):
                    return False
            return True
        if isinstance(stmt, vast.Substitution):
            if not self._is_reg(stmt.left.var):
                return True
            value = self.value(stmt.right, box)
            return value is not None and value[0] >= 0 and value[1] <= bound
        # loops, event controls, anything else that may assign the register: give up
        return not any(self._is_reg(n) for _, n in walk_paths(stmt))


def _hull(a: Interval, b: Interval) -> Interval:
    if a[0] > a[1]:
        return b
    if b[0] > b[1]:
        return a
    return min(a[0], b[0]), max(a[1], b[1])


def _reset_value(always: vast.Always, name: str, bound: _Bound) -> int | None:
    """The constant a top-level ``if (reset)`` assigns the register (None without one)."""
    top = _unwrap(always.statement)
    if not isinstance(top, vast.IfStatement):
        return None
    cond = top.cond
    while isinstance(cond, vast.Ulnot | vast.Unot):
        cond = cond.right
    if not isinstance(cond, vast.Identifier) or not _RESET_NAME.search(cond.name):
        return None  # a register is only known to start in range after a reset the cascade applies
    branch = _unwrap(top.true_statement)
    statements = branch.statements if isinstance(branch, vast.Block) else (branch,)
    for stmt in statements:
        if isinstance(stmt, vast.Substitution) and bound._is_reg(stmt.left.var):
            return bound._const(stmt.right)
    return None


def _bounded_bits(module: vast.ModuleDef, index: int, name: str) -> int | None:
    sig = facts.module_signals(module)[name]
    assert sig.width is not None
    always = module.items[index]
    bound = _Bound(name, sig.width, module_info(module).parameters)
    reset = _reset_value(always, name, bound)
    if reset is None:
        return None
    candidates = sorted(
        {
            c
            for _, n in walk_paths(always)
            if (c := bound._const(n)) is not None and reset <= c < (1 << sig.width) - 1
        }
    )
    for limit in candidates:
        if bound.check(always.statement, (0, limit), limit):
            bits = max(1, limit.bit_length())
            return bits if bits < sig.width else None
    return None


# ---------------------------------------------------------------------------------------------
# Unused high bits

_LOW_CLOSED = (
    vast.Plus,
    vast.Minus,
    vast.Times,
    vast.And,
    vast.Or,
    vast.Xor,
    vast.Xnor,
    vast.Unot,
    vast.Uminus,
)


def _low_bits(module: vast.ModuleDef, index: int, name: str) -> int | None:
    sig = facts.module_signals(module)[name]
    assert sig.width is not None
    high = 0
    for path in facts.reads(module, name):
        parent = node_at(module, path[:-1])
        step = path[-1][0]
        if isinstance(parent, vast.Partselect) and step == "var":
            msb, lsb = const_value(parent.msb, {}), const_value(parent.lsb, {})
            if msb is None or lsb is None or msb < lsb or lsb < 0:
                return None
            high = max(high, msb + 1)
        elif isinstance(parent, vast.Pointer) and step == "var":
            bit = const_value(parent.ptr, {})
            if bit is None or bit < 0:
                return None
            high = max(high, bit + 1)
        elif not _in_own_next_state(module, path, name, index):
            return None
    return high if 0 < high < sig.width else None


def _in_own_next_state(module: vast.ModuleDef, path: Path, name: str, index: int) -> bool:
    """The read sits in ``name <= …`` of block ``index``, below low-bit-closed operators only."""
    if path[:1] != (("items", index),):
        return False
    for cut in range(len(path) - 1, 0, -1):
        node = node_at(module, path[:cut])
        step = path[cut][0]
        if isinstance(node, vast.Substitution):
            return (
                step == "right" and isinstance(node.left.var, vast.Identifier) and node.left.var.name == name
            )
        if isinstance(node, (vast.Rvalue, *_LOW_CLOSED)):
            continue
        if isinstance(node, vast.Cond) and step in ("true_value", "false_value"):
            continue
        if isinstance(node, vast.Sll | vast.Sla) and step == "left":
            continue
        return False
    return False


# ---------------------------------------------------------------------------------------------
# The rewrite


def _narrow(module: Any, *, name: str, bits: int, kind: str) -> Any:
    """Re-find the site in the current tree and narrow it (unchanged when the site is gone)."""
    sites = {(n, k): b for n, k, b, _ in _sites(module)}
    if sites.get((name, kind)) != bits:
        return module
    index = next(i for i, n in _candidates(module) if n == name)
    new = facts.fresh_name(module, f"{name}_q")
    module = copy.copy(module)
    module.portlist = copy.deepcopy(module.portlist)
    items = [copy.deepcopy(item) for item in module.items]
    for holder in [
        *(p for p in (module.portlist.ports if module.portlist else ()) if isinstance(p, vast.Ioport)),
        *items,
    ]:
        _reg_to_wire(holder, name)
    for _, node in walk_paths(items[index]):
        if isinstance(node, vast.Lvalue) and isinstance(node.var, vast.Identifier) and node.var.name == name:
            node.var = vast.Identifier(new)
    items[index:index] = [facts.declare(vast.Reg, new, bits, False), facts.assign(name, vast.Identifier(new))]
    module.items = tuple(items)
    return module


def _reg_to_wire(holder: Any, name: str) -> None:
    if isinstance(holder, vast.Ioport):
        if isinstance(holder.second, vast.Reg) and holder.second.name == name:
            old = holder.second
            holder.second = vast.Wire(name, width=old.width, signed=old.signed)
        return
    if isinstance(holder, vast.Decl):
        holder.list = tuple(
            vast.Wire(v.name, width=v.width, signed=v.signed) if type(v) is vast.Reg and v.name == name else v
            for v in holder.list
        )


def _sites(module: vast.ModuleDef) -> list[tuple[str, str, int, int]]:
    """(register, analysis, bits, block index) for every register that can be narrowed."""
    out: list[tuple[str, str, int, int]] = []
    for index, name in _candidates(module):
        bits = _bounded_bits(module, index, name)
        if bits is not None:
            out.append((name, "bounded", bits, index))
            continue
        bits = _low_bits(module, index, name)
        if bits is not None:
            out.append((name, "high-bits", bits, index))
    return out


class WidthReduction:
    name = NAME
    looks_for = "a register whose reachable values need fewer bits than it is declared with"

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]:
        rewrites: list[Rewrite] = []
        for path, definition in module_definitions(parsed):
            sigs = facts.module_signals(definition)
            for name, kind, bits, index in _sites(definition):
                width = sigs[name].width
                why = (
                    "its value provably stays within the reset-and-wrap range"
                    if kind == "bounded"
                    else "no read ever sees its high bits"
                )
                note = (
                    f"narrowed register {name} from {width} to {bits} bits in module {definition.name} "
                    f"(line {definition.items[index].lineno}): {why}; reads see it zero-extended"
                )
                touched = tuple(dict.fromkeys([name, *identifiers(definition.items[index])]))
                rewrites.append(
                    Rewrite(
                        rule=NAME,
                        module=definition.name,
                        path=path,
                        note=note,
                        touched=touched,
                        transform=functools.partial(_narrow, name=name, bits=bits, kind=kind),
                    )
                )
        return rewrites


RULE = WidthReduction()
