"""AST plumbing shared by the RTL rewrite rules: node paths, rewrites, signal types, expression facts.

A :class:`Rewrite` names one site by its path from the ``Source`` root (attribute name and tuple
index per step) and carries a ``transform`` that builds the replacement from the node found there.
:func:`apply_rewrites` deep-copies the tree and applies several rewrites deepest-first, so a rewrite
inside another rewrite's operand does not move the outer site.
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from pyverilog.vparser import ast as vast

from evoforge.tools.verilog_ast import ParsedVerilog, generate_verilog

#: one step from a node to a child: (attribute name, index in a tuple attribute or None)
Step = tuple[str, int | None]
Path = tuple[Step, ...]


@dataclass(frozen=True)
class Rewrite:
    rule: str
    module: str
    path: Path
    note: str  # one sentence: what is rewritten, where
    touched: tuple[str, ...]  # signals the rewrite changes or reads (for critical-path preference)
    transform: Callable[[Any], Any]  # node at ``path`` → replacement node


class Rule(Protocol):
    name: str
    looks_for: str  # the kind of site, said when a design has none

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]: ...


@dataclass(frozen=True)
class RuleOutcome:
    """What one rule made of one design: its sites, or why it has none."""

    rule: str
    sites: int
    reason: str  # empty when the rule applies; "no site: …" or "site found but …" otherwise

    @property
    def applied(self) -> bool:
        return self.sites > 0

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "applied": self.applied, "sites": self.sites, "reason": self.reason}


_DECLINES: ContextVar[list[str] | None] = ContextVar("rtl_rule_declines", default=None)


def decline(reason: str) -> None:
    """A rule found a candidate site but its exactness argument does not hold there (says why)."""
    bucket = _DECLINES.get()
    if bucket is not None and reason not in bucket:
        bucket.append(reason)


@contextlib.contextmanager
def collecting_declines() -> Iterator[list[str]]:
    """The reasons :func:`decline` records while the block runs."""
    bucket: list[str] = []
    token = _DECLINES.set(bucket)
    try:
        yield bucket
    finally:
        _DECLINES.reset(token)


# ---------------------------------------------------------------------------------------------
# Paths


def children_with_steps(node: Any) -> Iterator[tuple[Step, Any]]:
    """The AST children of ``node`` with the step that reaches each (lineno and strings skipped)."""
    for attr, value in vars(node).items():
        if isinstance(value, vast.Node):
            yield (attr, None), value
        elif isinstance(value, tuple | list):
            for index, item in enumerate(value):
                if isinstance(item, vast.Node):
                    yield (attr, index), item


def walk_paths(node: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every node under ``node`` with its path, parents before children, in source order."""
    yield path, node
    for step, child in children_with_steps(node):
        yield from walk_paths(child, (*path, step))


def node_at(root: Any, path: Path) -> Any:
    node = root
    for attr, index in path:
        node = getattr(node, attr) if index is None else getattr(node, attr)[index]
    return node


def replace_at(root: Any, path: Path, new: Any) -> None:
    parent = node_at(root, path[:-1])
    attr, index = path[-1]
    if index is None:
        setattr(parent, attr, new)
        return
    items = list(getattr(parent, attr))
    items[index] = new
    old = getattr(parent, attr)
    setattr(parent, attr, type(old)(items) if isinstance(old, tuple | list) else tuple(items))


def apply_rewrites(tree: vast.Source, rewrites: Sequence[Rewrite]) -> vast.Source:
    """A deep copy of ``tree`` with every rewrite applied (deepest sites first)."""
    result = copy.deepcopy(tree)
    for rewrite in sorted(rewrites, key=lambda r: len(r.path), reverse=True):
        replace_at(result, rewrite.path, rewrite.transform(node_at(result, rewrite.path)))
    return result


# ---------------------------------------------------------------------------------------------
# Expression facts


def expr_key(node: Any) -> str:
    """Structural identity of an expression (its generated text)."""
    return " ".join(generate_verilog(node).split())


def identifiers(node: Any) -> list[str]:
    names: list[str] = []
    for _, sub in walk_paths(node):
        if isinstance(sub, vast.Identifier) and sub.name not in names:
            names.append(sub.name)
    return names


_PURE_SYSTEM_CALLS = frozenset({"signed", "unsigned"})


def is_pure(node: Any) -> bool:
    """True when evaluating ``node`` twice is the same as once (no function or task calls)."""
    for _, sub in walk_paths(node):
        if isinstance(sub, vast.FunctionCall):
            return False
        if isinstance(sub, vast.SystemCall) and sub.syscall not in _PURE_SYSTEM_CALLS:
            return False
    return True


def signal_signedness(module: vast.ModuleDef) -> dict[str, bool]:
    """Whether each port, net, variable and parameter declared in ``module`` is signed."""
    table: dict[str, bool] = {}
    for _, node in walk_paths(module):
        if isinstance(node, vast.Integer):
            table[node.name] = True
        elif isinstance(node, vast.Variable) and not isinstance(node, vast.Genvar):
            table[node.name] = table.get(node.name, False) or bool(node.signed)
        elif isinstance(node, vast.Parameter):
            if node.signed or node.width is not None:
                table[node.name] = bool(node.signed)
            else:  # an untyped parameter takes the type of its value
                value = signedness(node.value, table)
                if value is not None:
                    table[node.name] = value
    return table


#: operators whose result is one unsigned bit (comparisons, logical and reduction operators)
ONE_BIT_OPERATORS: tuple[type[Any], ...] = (
    vast.LessThan,
    vast.GreaterThan,
    vast.LessEq,
    vast.GreaterEq,
    vast.Eq,
    vast.NotEq,
    vast.Eql,
    vast.NotEql,
    vast.Land,
    vast.Lor,
    vast.Ulnot,
    vast.Uand,
    vast.Unand,
    vast.Uor,
    vast.Unor,
    vast.Uxor,
    vast.Uxnor,
)
_UNSIGNED_RESULT = (*ONE_BIT_OPERATORS, vast.Concat, vast.Repeat, vast.Partselect, vast.Pointer)
_SHIFTS = (vast.Sll, vast.Srl, vast.Sla, vast.Sra)


def signedness(node: Any, table: dict[str, bool]) -> bool | None:
    """Verilog-2001 expression signedness (IEEE 1364 §5.5.1); None when it cannot be decided."""
    if isinstance(node, vast.Rvalue):
        return signedness(node.var, table)
    if isinstance(node, vast.IntConst):
        text = str(node.value).replace("_", "").lower()
        # unsized, unbased decimals are signed integers; based literals are signed only with 's'
        return "'" not in text or "'s" in text
    if isinstance(node, vast.Identifier):
        return None if node.scope is not None else table.get(node.name)
    if isinstance(node, _UNSIGNED_RESULT):
        return False
    if isinstance(node, vast.SystemCall):
        return {"signed": True, "unsigned": False}.get(node.syscall)
    if isinstance(node, vast.Cond):
        return _all(signedness(node.true_value, table), signedness(node.false_value, table))
    if isinstance(node, (*_SHIFTS, vast.Power)):
        return signedness(node.left, table)  # a shift amount or exponent never affects signedness
    if isinstance(node, vast.UnaryOperator):
        return signedness(node.right, table)
    if isinstance(node, vast.Operator):
        return _all(signedness(node.left, table), signedness(node.right, table))
    return None


def _all(*values: bool | None) -> bool | None:
    if any(v is None for v in values):
        return None
    return all(values)


def module_definitions(parsed: ParsedVerilog) -> Iterator[tuple[Path, vast.ModuleDef]]:
    """Every module of a parsed source with its path from the root (the site address rules use)."""
    for index, definition in enumerate(parsed.ast.description.definitions):
        if isinstance(definition, vast.ModuleDef):
            yield (("description", None), ("definitions", index)), definition
