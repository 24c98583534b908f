"""Resource sharing: one arithmetic operator for operations that a select makes mutually exclusive.

Rewrites ``s ? (a OP b) : (c OP d)`` to ``(s ? a : c) OP (s ? b : d)`` for OP in ``* + - << >> <<< >>>``,
also through nested ternaries (``s1 ? x*y : s2 ? u*v : p*q`` → one multiplier) and through
``if``/``else`` chains and plain ``case`` statements (with a default) whose every branch assigns the
same variable with that operator (``if (s) y = a+b; else y = c+d;`` → ``y = (s ? a : c) + (s ? b : d);``).

Why the result equals the original (IEEE 1364-2005 §5.4-5.5):

* Ternary form. ``+ - *`` and the left operand of shifts are context-determined: the original and
  the rewrite contain the same operands in the same context, so every operand is extended to the
  same width W; signedness is the AND over the same operand set, so the extension kind is the same
  too. Shift amounts are self-determined and always read as unsigned; ``(s ? b : d)`` extends b and
  d to a common width, which keeps their values only when the extension is zero-fill, so every
  shift amount must be unsigned.
* If/else and case form. Each branch was computed at max(lhs width, its own operand widths) and the merged
  assignment at max over all branches: widths differ, but the low ``len(lhs)`` bits of ``+ - * <<``
  and of an arithmetic ``>>>`` depend only on the low bits of the equally extended operands. The
  extension kind matches only if every branch has the same signedness — hence the rule that all
  operations at a site are all signed or all unsigned (checked for the ternary form as well, to
  stay conservative). A logical ``>>`` of a signed value shifts in extension bits, so there it
  must be unsigned.
* Selects: ``if (c)`` and ``c ? :`` agree on 0/1 selects; they differ only for x/z, which
  synthesis and the formal checks do not model.
"""

from __future__ import annotations

import copy
import functools
import random
from dataclasses import dataclass
from typing import Any

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules import operator_sharing
from evoforge.agents.rtl_rules.ast_utils import (
    Path,
    Rewrite,
    children_with_steps,
    expr_key,
    identifiers,
    is_pure,
    module_definitions,
    signal_signedness,
    signedness,
    walk_paths,
)
from evoforge.agents.rtl_rules.text_sites import Design, TextSite
from evoforge.errors import TargetError
from evoforge.tools.verilog_ast import ParsedVerilog, parse_verilog

NAME = "resource_sharing"

#: the operators worth sharing, with their Verilog symbol
SHARED_OPS: dict[type, str] = {
    vast.Times: "*",
    vast.Plus: "+",
    vast.Minus: "-",
    vast.Sll: "<<",
    vast.Srl: ">>",
    vast.Sla: "<<<",
    vast.Sra: ">>>",
}
_COMMUTATIVE = (vast.Times, vast.Plus)
_SHIFTS = (vast.Sll, vast.Srl, vast.Sla, vast.Sra)
_SUBSTITUTIONS = (vast.BlockingSubstitution, vast.NonblockingSubstitution)
_STATEMENT_SITES = (vast.IfStatement, vast.CaseStatement)


# ---------------------------------------------------------------------------------------------
# Select trees: the structure of nested ternaries / if-else chains, with the operations at the leaves


@dataclass
class _Leaf:
    op: Any  # the operator node (Times, Plus, …) or any other expression


@dataclass
class _Branch:
    cond: Any
    then: _Tree
    other: _Tree


_Tree = _Leaf | _Branch


def _expr_tree(node: Any) -> _Tree:
    if isinstance(node, vast.Rvalue):
        return _expr_tree(node.var)
    if isinstance(node, vast.Cond):
        return _Branch(node.cond, _expr_tree(node.true_value), _expr_tree(node.false_value))
    return _Leaf(node)


def _unwrap(stmt: Any) -> Any:
    while isinstance(stmt, vast.Block) and stmt.scope is None and len(stmt.statements or ()) == 1:
        stmt = stmt.statements[0]
    return stmt


@dataclass
class _StmtTree:
    tree: _Tree
    kind: type  # BlockingSubstitution or NonblockingSubstitution
    lvalue: Any
    lkey: str


def _stmt_tree(stmt: Any, signs: dict[str, bool]) -> _StmtTree | None:
    """The select tree of an if/else chain or case whose every branch assigns one variable (else None)."""
    stmt = _unwrap(stmt)
    if isinstance(stmt, _SUBSTITUTIONS):
        if stmt.ldelay is not None or stmt.rdelay is not None:
            return None
        return _StmtTree(_expr_tree(stmt.right), type(stmt), stmt.left, expr_key(stmt.left))
    if isinstance(stmt, vast.IfStatement) and stmt.false_statement is not None:
        return _join(
            stmt.cond, _stmt_tree(stmt.true_statement, signs), _stmt_tree(stmt.false_statement, signs)
        )
    if type(stmt) is vast.CaseStatement:
        return _case_tree(stmt, signs)
    return None


def _join(cond: Any, then: _StmtTree | None, other: _StmtTree | None) -> _StmtTree | None:
    if then is None or other is None or then.kind is not other.kind or then.lkey != other.lkey:
        return None
    return _StmtTree(_Branch(cond, then.tree, other.tree), then.kind, then.lvalue, then.lkey)


def _case_tree(stmt: vast.CaseStatement, signs: dict[str, bool]) -> _StmtTree | None:
    """A plain ``case`` as a priority chain of ``==`` selects ending in its default.

    ``case`` compares with ``===`` at the width of the widest item; with an unsigned selector every
    comparison is unsigned, so zero-extending to another width keeps the values and ``==`` agrees
    for 0/1 selectors (casez/casex wildcards are not handled).
    """
    if signedness(stmt.comp, signs) is not False:
        return None
    items = [item for item in stmt.caselist if item.cond is not None]
    defaults = [item for item in stmt.caselist if item.cond is None]
    if len(defaults) != 1 or not items:
        return None
    result = _stmt_tree(defaults[0].statement, signs)
    for item in reversed(items):
        tests = [vast.Eq(copy.deepcopy(stmt.comp), copy.deepcopy(value)) for value in item.cond]
        cond = tests[0]
        for test in tests[1:]:
            cond = vast.Lor(cond, test)
        result = _join(cond, _stmt_tree(item.statement, signs), result)
        if result is None:
            return None
    return result


def _leaves(tree: _Tree) -> list[Any]:
    if isinstance(tree, _Leaf):
        return [tree.op]
    return _leaves(tree.then) + _leaves(tree.other)


def _conds(tree: _Tree) -> list[Any]:
    if isinstance(tree, _Leaf):
        return []
    return [tree.cond, *_conds(tree.then), *_conds(tree.other)]


# ---------------------------------------------------------------------------------------------
# Site checks


def _shareable(tree: _Tree, signs: dict[str, bool], *, statement_form: bool) -> type | None:
    """The operator class shared at this tree, or None when sharing is not provably equal/useful."""
    leaves = _leaves(tree)
    if len(leaves) < 2:
        return None
    op = type(leaves[0])
    if op not in SHARED_OPS or any(type(leaf) is not op for leaf in leaves):
        return None
    if not all(is_pure(node) for node in (*leaves, *_conds(tree))):
        return None
    leaf_signs = {signedness(leaf, signs) for leaf in leaves}
    if len(leaf_signs) != 1 or None in leaf_signs:
        return None  # mixed (or unknown) signedness: the merged context would change extensions
    if op in _SHIFTS and any(signedness(leaf.right, signs) is not False for leaf in leaves):
        return None  # shift amounts must zero-extend inside the shared amount mux
    if statement_form and op is vast.Srl and leaf_signs != {False}:
        return None
    return op


def _align(tree: _Tree) -> None:
    """Swap operands of commutative leaves so equal operands line up (fewer mux inputs)."""
    leaves = _leaves(tree)
    if not isinstance(leaves[0], _COMMUTATIVE):
        return
    lefts, rights = {expr_key(leaves[0].left)}, {expr_key(leaves[0].right)}
    for leaf in leaves[1:]:
        lk, rk = expr_key(leaf.left), expr_key(leaf.right)
        if (lk not in lefts and rk in lefts) or (rk not in rights and lk in rights):
            leaf.left, leaf.right = leaf.right, leaf.left
            lk, rk = rk, lk
        lefts.add(lk)
        rights.add(rk)


def _mux(tree: _Tree, side: str) -> Any:
    """The select tree with each leaf replaced by its ``side`` operand; equal arms collapse."""
    if isinstance(tree, _Leaf):
        return copy.deepcopy(getattr(tree.op, side))
    then, other = _mux(tree.then, side), _mux(tree.other, side)
    if expr_key(then) == expr_key(other):
        return then
    return vast.Cond(copy.deepcopy(tree.cond), then, other)


def _shared(tree: _Tree, op: type) -> Any:
    _align(tree)
    return op(_mux(tree, "left"), _mux(tree, "right"))


# ---------------------------------------------------------------------------------------------
# The rule


class ResourceSharing:
    name = NAME
    looks_for = "two or more arithmetic operators in mutually exclusive branches of one selection"

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]:
        rewrites: list[Rewrite] = []
        for root, definition in module_definitions(parsed):
            signs = signal_signedness(definition)
            self._visit(definition, root, definition.name, signs, [], rewrites)
        return rewrites

    def _visit(
        self, node: Any, path: Path, module: str, signs: dict[str, bool], lhs: list[str], out: list[Rewrite]
    ) -> None:
        if isinstance(node, vast.Assign | vast.Substitution):
            lhs = identifiers(node.left)
        site = self._site(node, path, module, signs, lhs)
        if site is None:
            for step, child in children_with_steps(node):
                self._visit(child, (*path, step), module, signs, lhs, out)
            return
        out.append(site)
        # the selects of this site are rewritten as a whole; its operands and conditions may hold more sites
        stmt = _stmt_tree(node, signs) if isinstance(node, _STATEMENT_SITES) else None
        tree = stmt.tree if stmt is not None else _expr_tree(node)
        inner = {id(n) for n in (*_leaves(tree), *_conds(tree))}
        for sub_path, sub in walk_paths(node, path):
            if id(sub) in inner:
                self._visit(sub, sub_path, module, signs, lhs, out)

    def _site(
        self, node: Any, path: Path, module: str, signs: dict[str, bool], lhs: list[str]
    ) -> Rewrite | None:
        if isinstance(node, vast.Cond):
            tree, statement = _expr_tree(node), False
            where = f"the select driving {', '.join(lhs) or 'an expression'}"
        elif isinstance(node, _STATEMENT_SITES):
            stmt = _stmt_tree(node, signs)
            if stmt is None:
                return None
            tree, statement = stmt.tree, True
            lhs = identifiers(stmt.lvalue)
            kind = "if/else chain" if isinstance(node, vast.IfStatement) else "case statement"
            where = f"the {kind} assigning {', '.join(lhs)}"
        else:
            return None
        op = _shareable(tree, signs, statement_form=statement)
        if op is None:
            return None
        count = len(_leaves(tree))
        if statement:
            transform = functools.partial(_rewrite_statement, op=op, signs=signs)
        else:
            transform = functools.partial(_rewrite_expression, op=op)
        touched = tuple(dict.fromkeys([*lhs, *(n for leaf in _leaves(tree) for n in identifiers(leaf))]))
        note = (
            f"shared one '{SHARED_OPS[op]}' among {count} mutually exclusive operations in {where} "
            f"(module {module}, line {node.lineno}) by selecting its operands instead of its results"
        )
        return Rewrite(rule=NAME, module=module, path=path, note=note, touched=touched, transform=transform)


def share_select(cond: Any, then: Any, other: Any, signs: dict[str, bool]) -> Any | None:
    """``cond ? then : other`` with its operator shared (ternary form above); None when not shareable."""
    tree = _Branch(copy.deepcopy(cond), _Leaf(copy.deepcopy(then)), _Leaf(copy.deepcopy(other)))
    op = _shareable(tree, signs, statement_form=False)
    return None if op is None else _shared(tree, op)


def _rewrite_expression(current: Any, *, op: type) -> Any:
    return _shared(_expr_tree(current), op)


def _rewrite_statement(current: Any, *, op: type, signs: dict[str, bool]) -> Any:
    now = _stmt_tree(current, signs)
    if now is None:  # the site was checked when the rewrite was made; a changed tree is a bug
        raise ValueError(
            f"the if/else site at line {current.lineno} no longer has the shape it was found with"
        )
    rhs = _shared(now.tree, op)
    return now.kind(copy.deepcopy(now.lvalue), vast.Rvalue(rhs), lineno=current.lineno)

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        """The same sharing found on the word-level netlist (any spelling, SystemVerilog too), for
        designs the statement matcher above cannot read or finds nothing in."""
        try:
            if self.apply(parse_verilog(design.text), rng):
                return []
        except TargetError:
            pass
        return operator_sharing.text_sites(design, NAME, mixed=False)


RULE = ResourceSharing()
