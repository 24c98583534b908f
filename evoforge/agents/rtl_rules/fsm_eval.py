"""Exact two-state evaluation of the FSM subset of Verilog-2001 (unsigned, IEEE 1364-2005 §5.4 widths).

:class:`Evaluator` computes expression values with context-determined widths and executes blocking or
nonblocking statement trees (``begin/end``, ``if``, plain ``case``); anything else raises
:class:`Unsupported`, which makes FSM extraction give up. :func:`declarations` and :func:`parameters`
read a module's signal widths and constant parameters.
"""

from __future__ import annotations

from typing import Any

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules.ast_utils import walk_paths
from evoforge.tools.verilog_ast import const_value, int_literal, width_of


class Unsupported(Exception):
    """The design leaves the evaluated subset (extraction gives up)."""


# ---------------------------------------------------------------------------------------------
# Expression evaluation (two-state, unsigned, IEEE 1364-2005 §5.4 widths)

_CMP = {
    vast.Eq: lambda a, b: a == b,
    vast.NotEq: lambda a, b: a != b,
    vast.Eql: lambda a, b: a == b,
    vast.NotEql: lambda a, b: a != b,
    vast.LessThan: lambda a, b: a < b,
    vast.GreaterThan: lambda a, b: a > b,
    vast.LessEq: lambda a, b: a <= b,
    vast.GreaterEq: lambda a, b: a >= b,
}
_ARITH = {
    vast.And: lambda a, b: a & b,
    vast.Or: lambda a, b: a | b,
    vast.Xor: lambda a, b: a ^ b,
    vast.Xnor: lambda a, b: ~(a ^ b),
    vast.Plus: lambda a, b: a + b,
    vast.Minus: lambda a, b: a - b,
    vast.Times: lambda a, b: a * b,
}
_REDUCE = {
    vast.Uand: lambda v, w: int(v == (1 << w) - 1),
    vast.Unand: lambda v, w: int(v != (1 << w) - 1),
    vast.Uor: lambda v, w: int(v != 0),
    vast.Unor: lambda v, w: int(v == 0),
    vast.Uxor: lambda v, w: bin(v).count("1") & 1,
    vast.Uxnor: lambda v, w: 1 - (bin(v).count("1") & 1),
}


_CMP_TYPES: tuple[type[Any], ...] = tuple(_CMP)
_ARITH_TYPES: tuple[type[Any], ...] = tuple(_ARITH)
_REDUCE_TYPES: tuple[type[Any], ...] = tuple(_REDUCE)
_ONE_BIT: tuple[type[Any], ...] = (*_CMP_TYPES, vast.Land, vast.Lor, vast.Ulnot, *_REDUCE_TYPES)


def _literal(node: vast.IntConst) -> tuple[int, int]:
    text = str(node.value).replace("_", "").lower()
    value = int_literal(text)
    if value is None or "'s" in text or value < 0:
        raise Unsupported("x/z, signed or negative literal")
    if "'" in text:
        size = text.split("'", 1)[0]
        width = int(size) if size else 32
        return value & ((1 << width) - 1), width
    return value, 32


class Evaluator:
    """Evaluates expressions over ``env`` (signal → value); reads are recorded in ``reads``."""

    def __init__(self, widths: dict[str, int], params: dict[str, tuple[int, int]]) -> None:
        self.widths = widths
        self.params = params  # name → (value, width)

    def width(self, node: Any) -> int:
        if isinstance(node, vast.Rvalue | vast.Lvalue):
            return self.width(node.var)
        if isinstance(node, vast.IntConst):
            return _literal(node)[1]
        if isinstance(node, vast.Identifier):
            if node.name in self.params:
                return self.params[node.name][1]
            if node.name not in self.widths:
                raise Unsupported(f"unknown signal {node.name}")
            return self.widths[node.name]
        if isinstance(node, vast.Pointer):
            return 1
        if isinstance(node, vast.Partselect):
            msb, lsb = self.const(node.msb), self.const(node.lsb)
            return abs(msb - lsb) + 1
        if isinstance(node, vast.Concat):
            return sum(self.width(item) for item in node.list)
        if isinstance(node, vast.Repeat):
            return self.const(node.times) * self.width(node.value)
        if isinstance(node, _ONE_BIT):
            return 1
        if isinstance(node, vast.Unot):
            return self.width(node.right)
        if isinstance(node, _ARITH_TYPES):
            return max(self.width(node.left), self.width(node.right))
        if isinstance(node, vast.Cond):
            return max(self.width(node.true_value), self.width(node.false_value))
        if isinstance(node, vast.Sll | vast.Srl):
            return self.width(node.left)
        raise Unsupported(f"expression {type(node).__name__}")

    def const(self, node: Any) -> int:
        value = const_value(node, {k: v for k, (v, _) in self.params.items()})
        if value is None or value < 0:
            raise Unsupported("non-constant index")
        return value

    def value(self, node: Any, env: dict[str, int], ctx: int = 0) -> int:
        """The value of ``node`` evaluated in a context of ``ctx`` bits (0: self-determined)."""
        width = max(ctx, self.width(node))
        mask = (1 << width) - 1
        if isinstance(node, vast.Rvalue):
            return self.value(node.var, env, ctx)
        if isinstance(node, vast.IntConst):
            return _literal(node)[0]
        if isinstance(node, vast.Identifier):
            if node.name in self.params:
                return self.params[node.name][0]
            if node.name not in env:
                raise Unsupported(f"{node.name} read before it is assigned")
            return env[node.name]
        if isinstance(node, vast.Pointer):
            index = self.const(node.ptr)
            return (self.value(node.var, env) >> index) & 1
        if isinstance(node, vast.Partselect):
            msb, lsb = self.const(node.msb), self.const(node.lsb)
            if msb < lsb:
                raise Unsupported("ascending part select")
            return (self.value(node.var, env) >> lsb) & ((1 << (msb - lsb + 1)) - 1)
        if isinstance(node, vast.Concat):
            result = 0
            for item in node.list:
                result = (result << self.width(item)) | self.value(item, env)
            return result
        if isinstance(node, vast.Repeat):
            part, size = self.value(node.value, env), self.width(node.value)
            return int("".join([format(part, f"0{size}b")] * self.const(node.times)) or "0", 2)
        if isinstance(node, _CMP_TYPES):
            inner = max(self.width(node.left), self.width(node.right))
            return int(
                _CMP[type(node)](self.value(node.left, env, inner), self.value(node.right, env, inner))
            )
        if isinstance(node, vast.Land | vast.Lor):
            a, b = self.value(node.left, env) != 0, self.value(node.right, env) != 0
            return int(a and b) if isinstance(node, vast.Land) else int(a or b)
        if isinstance(node, vast.Ulnot):
            return int(self.value(node.right, env) == 0)
        if isinstance(node, _REDUCE_TYPES):
            return _REDUCE[type(node)](self.value(node.right, env), self.width(node.right))
        if isinstance(node, vast.Unot):
            return ~self.value(node.right, env, width) & mask
        if isinstance(node, _ARITH_TYPES):
            left, right = self.value(node.left, env, width), self.value(node.right, env, width)
            return _ARITH[type(node)](left, right) & mask
        if isinstance(node, vast.Cond):
            chosen = node.true_value if self.value(node.cond, env) else node.false_value
            return self.value(chosen, env, width)
        if isinstance(node, vast.Sll | vast.Srl):
            left, amount = self.value(node.left, env, width), self.value(node.right, env)
            return ((left << amount) if isinstance(node, vast.Sll) else (left >> amount)) & mask
        raise Unsupported(f"expression {type(node).__name__}")

    def truth(self, node: Any, env: dict[str, int]) -> bool:
        return self.value(node, env) != 0

    def assign(self, lhs: Any, rhs: Any, env: dict[str, int]) -> tuple[str, int]:
        target = lhs.var if isinstance(lhs, vast.Lvalue) else lhs
        if not isinstance(target, vast.Identifier) or target.name in self.params:
            raise Unsupported("only whole variables are assigned")
        size = self.width(target)
        return target.name, self.value(rhs, env, max(size, self.width(rhs))) & ((1 << size) - 1)

    def run(self, stmt: Any, env: dict[str, int], out: dict[str, int], *, blocking: bool) -> None:
        """Execute ``stmt``; assignments go to ``out`` (and to ``env`` too when blocking)."""
        if stmt is None:
            return
        if isinstance(stmt, vast.Block):
            for item in stmt.statements or ():
                self.run(item, env, out, blocking=blocking)
        elif isinstance(stmt, vast.BlockingSubstitution if blocking else vast.NonblockingSubstitution):
            if stmt.ldelay is not None or stmt.rdelay is not None:
                raise Unsupported("delay")
            name, value = self.assign(stmt.left, stmt.right, env)
            out[name] = value
            if blocking:
                env[name] = value
        elif isinstance(stmt, vast.IfStatement):
            branch = stmt.true_statement if self.truth(stmt.cond, env) else stmt.false_statement
            self.run(branch, env, out, blocking=blocking)
        elif type(stmt) is vast.CaseStatement:
            self.run(self.case_branch(stmt, env), env, out, blocking=blocking)
        else:
            raise Unsupported(f"statement {type(stmt).__name__}")

    def case_branch(self, stmt: vast.CaseStatement, env: dict[str, int]) -> Any:
        conds = [c for item in stmt.caselist for c in (item.cond or ())]
        size = max([self.width(stmt.comp), *(self.width(c) for c in conds)])
        selector = self.value(stmt.comp, env, size)
        default = None
        for item in stmt.caselist:
            if item.cond is None:
                default = item.statement
            elif any(self.value(c, env, size) == selector for c in item.cond):
                return item.statement
        return default


# ---------------------------------------------------------------------------------------------
# Module facts


def declarations(module: vast.ModuleDef, params: dict[str, int]) -> tuple[dict[str, int], set[str], set[str]]:
    """(width of every declared signal, names declared ``reg``/``integer``, port names); signed → refuse."""
    widths: dict[str, int] = {}
    regs: set[str] = set()
    ports: set[str] = set()
    for _, node in walk_paths(module):
        if isinstance(node, vast.Input | vast.Output | vast.Inout):
            ports.add(node.name)
        if isinstance(node, vast.Integer):
            widths[node.name] = 32
            regs.add(node.name)
        elif isinstance(node, vast.Variable | vast.Input | vast.Output | vast.Inout) and not isinstance(
            node, vast.Genvar
        ):
            if node.signed:
                widths[node.name] = -1  # signed: never evaluated
                continue
            if getattr(node, "dimensions", None) is not None:
                continue  # memories are not modelled
            width = width_of(node.width, params)
            if width is not None and widths.get(node.name, 0) != -1:
                widths[node.name] = max(widths.get(node.name, 1), width)
            if isinstance(node, vast.Reg):
                regs.add(node.name)
    return {k: v for k, v in widths.items() if v > 0}, regs, ports


def parameters(module: vast.ModuleDef) -> dict[str, tuple[int, int]]:
    """Constant parameters and localparams with their width (an untyped one takes its value's width)."""
    values: dict[str, int] = {}
    result: dict[str, tuple[int, int]] = {}
    for _, node in walk_paths(module):
        if isinstance(node, vast.Parameter) and not isinstance(node, vast.Supply) and not node.signed:
            value = const_value(node.value, values)
            if value is None or value < 0:
                continue
            values[node.name] = value
            try:
                if node.width is not None:
                    width = width_of(node.width, values) or 32
                else:
                    inner = node.value.var if isinstance(node.value, vast.Rvalue) else node.value
                    width = _literal(inner)[1] if isinstance(inner, vast.IntConst) else 32
            except Unsupported:
                continue
            result[node.name] = (value & ((1 << width) - 1), width)
    return result
