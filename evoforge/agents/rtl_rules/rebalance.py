"""Rebalancing running compare-and-select chains (max/min, with or without an index) into trees.

Two matchers. :mod:`~evoforge.agents.rtl_rules.select_tree` finds max/min chains on Yosys's
word-level netlist, in any spelling (continuous assigns, ``if`` chains, ``for`` loops, SystemVerilog),
and re-drives the chain's output from a tree. The matcher below also carries payloads (an index
chosen with the maximum); its site is a run of statements in a combinational ``always`` block::

    acc = e0; idx = q0;                                    // the start: acc and every payload
    if (e1 > acc) begin acc = e1; idx = q1; end            // one step per element
    acc = (e2 > acc) ? e2 : acc;                           // (the ternary step, value only)
    …

which takes n-1 compare-and-select delays in series. It becomes a tournament tree of continuous
assignments (ceil(log2 n) levels) and ``acc = root; idx = root_idx;`` in place of the run.

Why the result equals the original. A step computes ``op(acc, e)`` where, for ``e > acc``,
``op(l, r) = (l >= r) ? l : r`` on (value, payload) pairs: it keeps the leftmost (earliest) of the
largest values. That operator is associative (both bracketings of three elements keep the
leftmost maximum), so any bracketing of the elements in their order gives the same pair; the tree
keeps the order and uses ``>=`` at every node. ``e >= acc`` steps keep the rightmost maximum (nodes
use ``>``); min chains mirror both. All steps must agree on the operator (with no payload only
max/min must agree: equal values are the same value). Values: every element has the accumulator's
signedness and is no wider, so comparing the extended values is comparing the numbers, and the
node wires (the accumulator's width and signedness) hold them exactly; payloads go through wires
of the payload's own type, which apply the same assignment conversion as the original. Elements
may not read anything the block assigns (they move out of the block into continuous assigns).
"""

from __future__ import annotations

import copy
import functools
import random
from dataclasses import dataclass
from typing import Any

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules import facts, select_tree
from evoforge.agents.rtl_rules.ast_utils import (
    Rewrite,
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

NAME = "rebalance"

# (compare class, element on the left?) → (kind, keeps the earliest on a tie)
_STEP_KINDS: dict[tuple[type, bool], tuple[str, bool]] = {
    (vast.GreaterThan, True): ("max", True),
    (vast.LessThan, False): ("max", True),
    (vast.GreaterEq, True): ("max", False),
    (vast.LessEq, False): ("max", False),
    (vast.LessThan, True): ("min", True),
    (vast.GreaterThan, False): ("min", True),
    (vast.LessEq, True): ("min", False),
    (vast.GreaterEq, False): ("min", False),
}
# (kind, keeps the earliest) → the node compare "left wins"
_NODE_COMPARE: dict[tuple[str, bool], type] = {
    ("max", True): vast.GreaterEq,
    ("max", False): vast.GreaterThan,
    ("min", True): vast.LessEq,
    ("min", False): vast.LessThan,
}


@dataclass
class _Step:
    acc: str
    kind: str
    keep_first: bool | None  # None: a value-only ternary step (either tie rule)
    element: Any
    payload: dict[str, Any]


def _blocking_target(stmt: Any) -> str | None:
    if (
        isinstance(stmt, vast.BlockingSubstitution)
        and isinstance(stmt.left.var, vast.Identifier)
        and stmt.ldelay is None
        and stmt.rdelay is None
    ):
        return str(stmt.left.var.name)
    return None


def _compare(cond: Any, acc: str | None) -> list[tuple[str, Any, str, bool]]:
    """Every reading (acc, element, kind, keep_first) of ``element CMP acc`` / ``acc CMP element``."""
    if type(cond) not in {k for k, _ in _STEP_KINDS}:
        return []
    found = []
    for element_left in (True, False):
        other, element = (cond.right, cond.left) if element_left else (cond.left, cond.right)
        if not isinstance(other, vast.Identifier) or (acc is not None and other.name != acc):
            continue
        if not (isinstance(element, vast.Identifier) and element.name == other.name):
            kind, first = _STEP_KINDS[(type(cond), element_left)]
            found.append((other.name, element, kind, first))
    return found


def _step(stmt: Any) -> _Step | None:
    if isinstance(stmt, vast.IfStatement) and stmt.false_statement is None:
        body = stmt.true_statement
        statements = list(body.statements) if isinstance(body, vast.Block) and body.scope is None else [body]
        targets = [_blocking_target(s) for s in statements]
        if None in targets or len(set(targets)) != len(targets):
            return None
        for name, element, kind, first in _compare(stmt.cond, None):
            assigned = {t: s.right.var for t, s in zip(targets, statements, strict=True) if t is not None}
            if name in assigned and expr_key(assigned.pop(name)) == expr_key(element):
                return _Step(name, kind, first, element, assigned)
        return None
    acc = _blocking_target(stmt)
    if acc is None or not isinstance(stmt.right.var, vast.Cond):
        return None
    cond = stmt.right.var
    arms = (expr_key(cond.true_value), expr_key(cond.false_value))
    for _, element, kind, _ in _compare(cond.cond, acc):
        if arms == (expr_key(element), acc):
            return _Step(acc, kind, None, element, {})
        if arms == (acc, expr_key(element)):  # `(e > acc) ? acc : e` keeps the smaller: the other kind
            return _Step(acc, "min" if kind == "max" else "max", None, element, {})
    return None


@dataclass
class _Chain:
    start: int  # first statement index of the run (its start assignments)
    stop: int  # one past the last step
    acc: str
    kind: str
    keep_first: bool
    elements: list[Any]
    payloads: dict[str, list[Any]]


def _chains(statements: list[Any]) -> list[_Chain]:
    found: list[_Chain] = []
    index = 0
    while index < len(statements):
        first = _step(statements[index])
        if first is None:
            index += 1
            continue
        steps = [first]
        stop = index + 1
        while stop < len(statements):
            step = _step(statements[stop])
            if step is None or step.acc != first.acc or set(step.payload) != set(first.payload):
                break
            if step.kind != first.kind:
                break
            steps.append(step)
            stop += 1
        chain = _with_start(statements, index, stop, steps)
        if chain is not None:
            found.append(chain)
        index = stop
    return found


def _with_start(statements: list[Any], index: int, stop: int, steps: list[_Step]) -> _Chain | None:
    acc, names = steps[0].acc, {steps[0].acc, *steps[0].payload}
    ties = {s.keep_first for s in steps} - {None}
    if len(ties) > 1 or (steps[0].payload and (not ties or any(s.keep_first is None for s in steps))):
        return None
    start_values: dict[str, Any] = {}
    start = index
    while start > 0 and len(start_values) < len(names):
        target = _blocking_target(statements[start - 1])
        if target not in names or target in start_values:
            break
        start_values[target] = statements[start - 1].right.var
        start -= 1
    if set(start_values) != names or len(steps) < 2:
        return None
    payloads = {p: [start_values[p], *(s.payload[p] for s in steps)] for p in steps[0].payload}
    elements = [start_values[acc], *(s.element for s in steps)]
    keep_first = bool(ties.pop()) if ties else True
    return _Chain(start, stop, acc, steps[0].kind, keep_first, elements, payloads)


# ---------------------------------------------------------------------------------------------
# Checks and the tree


def _combinational_blocks(module: vast.ModuleDef) -> list[tuple[int, vast.Block]]:
    out = []
    for index, item in enumerate(module.items):
        if not isinstance(item, vast.Always) or item.sens_list is None:
            continue
        if any(s.type in ("posedge", "negedge") for s in item.sens_list.list):
            continue
        if isinstance(item.statement, vast.Block) and item.statement.scope is None:
            out.append((index, item.statement))
    return out


def _safe(module: vast.ModuleDef, block: vast.Block, chain: _Chain) -> bool:
    sigs = facts.module_signals(module)
    signs = signal_signedness(module)
    assigned = {
        n.left.var.name
        for _, n in walk_paths(block)
        if isinstance(n, vast.Substitution) and isinstance(n.left.var, vast.Identifier)
    }
    acc = sigs.get(chain.acc)
    if acc is None or acc.width is None or acc.array:
        return False
    for element in chain.elements:
        width = facts.expr_width(element, sigs)
        if width is None or width > acc.width or signedness(element, signs) is not acc.signed:
            return False
    for name in chain.payloads:
        sig = sigs.get(name)
        if sig is None or sig.width is None or sig.array:
            return False
    everything = [*chain.elements, *(v for values in chain.payloads.values() for v in values)]
    return all(is_pure(e) and not assigned.intersection(identifiers(e)) for e in everything)


def _build(module: vast.ModuleDef, chain: _Chain) -> tuple[list[Any], dict[str, Any]]:
    """New module items (wires of the tree) and the root expression of the accumulator and payloads."""
    sigs = facts.module_signals(module)
    signs = signal_signedness(module)
    items: list[Any] = []
    taken: set[str] = set()

    def wire(base: str, sig: facts.Signal, expr: Any) -> vast.Identifier:
        name = base
        while name in taken or facts.fresh_name(module, name) != name:
            name = facts.fresh_name(module, name + "_")
        taken.add(name)
        assert sig.width is not None
        items.append(facts.declare(vast.Wire, name, sig.width, sig.signed))
        items.append(facts.assign(name, expr))
        return vast.Identifier(name)

    def leaf(base: str, sig: facts.Signal, expr: Any) -> Any:
        width = facts.expr_width(expr, sigs)
        simple = isinstance(expr, vast.Identifier | vast.IntConst)
        fits = width is not None and sig.width is not None and width <= sig.width
        if simple and fits and signedness(expr, signs) is sig.signed:
            return copy.deepcopy(expr)
        return wire(base, sig, expr)

    acc = sigs[chain.acc]
    names = [chain.acc, *chain.payloads]
    level: list[dict[str, Any]] = []
    for index, element in enumerate(chain.elements):
        node = {chain.acc: leaf(f"{chain.acc}_in{index}", acc, element)}
        for name, values in chain.payloads.items():
            node[name] = leaf(f"{name}_in{index}", sigs[name], values[index])
        level.append(node)
    compare = _NODE_COMPARE[(chain.kind, chain.keep_first)]
    depth = 0
    while len(level) > 1:
        depth += 1
        merged: list[dict[str, Any]] = []
        for pair in range(0, len(level) - 1, 2):
            left, right = level[pair], level[pair + 1]
            tag = f"l{depth}_{pair // 2}"
            pick = wire(
                f"{chain.acc}_{tag}_sel",
                facts.Signal("", 1, False, "wire", 0, 0, False),
                compare(copy.deepcopy(left[chain.acc]), copy.deepcopy(right[chain.acc])),
            )
            merged.append(
                {
                    n: wire(
                        f"{n}_{tag}",
                        sigs[n],
                        vast.Cond(copy.deepcopy(pick), copy.deepcopy(left[n]), copy.deepcopy(right[n])),
                    )
                    for n in names
                }
            )
        if len(level) % 2:
            merged.append(level[-1])
        level = merged
    return items, level[0]


def _rebalance(module: Any, *, block_index: int, acc: str) -> Any:
    """Re-find the chain of ``acc`` in block ``block_index`` and replace it (unchanged when gone)."""
    blocks = dict(_combinational_blocks(module))
    block = blocks.get(block_index)
    if block is None:
        return module
    chain = next((c for c in _chains(list(block.statements)) if c.acc == acc), None)
    if chain is None or not _safe(module, block, chain):
        return module
    items, root = _build(module, chain)
    module = copy.copy(module)
    new_items = list(module.items)
    always = copy.copy(new_items[block_index])
    statements = list(block.statements)
    replacement = [
        vast.BlockingSubstitution(vast.Lvalue(vast.Identifier(n)), vast.Rvalue(copy.deepcopy(root[n])))
        for n in [chain.acc, *chain.payloads]
    ]
    always.statement = vast.Block(tuple(statements[: chain.start] + replacement + statements[chain.stop :]))
    new_items[block_index] = always
    module.items = tuple(new_items[:block_index] + items + new_items[block_index:])
    return module


class Rebalance:
    name = NAME
    looks_for = "a running compare-and-select chain (max/min) or a long chain of one associative operator"

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]:
        rewrites: list[Rewrite] = []
        for path, module in module_definitions(parsed):
            for index, block in _combinational_blocks(module):
                for chain in _chains(list(block.statements)):
                    if not _safe(module, block, chain):
                        continue
                    n = len(chain.elements)
                    levels = (n - 1).bit_length()
                    extra = f" and {', '.join(chain.payloads)}" if chain.payloads else ""
                    note = (
                        f"rebalanced the running {chain.kind} of {n} values into {chain.acc}{extra} "
                        f"(module {module.name}, line {module.items[index].lineno}) from {n - 1} "
                        f"compare-and-select steps in series into a {levels}-level tree"
                    )
                    reads = [x for e in chain.elements for x in identifiers(e)]
                    rewrites.append(
                        Rewrite(
                            rule=NAME,
                            module=module.name,
                            path=path,
                            note=note,
                            touched=tuple(dict.fromkeys([chain.acc, *chain.payloads, *reads])),
                            transform=functools.partial(_rebalance, block_index=index, acc=chain.acc),
                        )
                    )
        return rewrites

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        """Max/min chains in any spelling, found on the word-level netlist (value only), except those
        whose output the statement matcher above rebuilds with its payloads."""
        try:
            covered = {r.touched[0] for r in self.apply(parse_verilog(design.text), rng)}
        except TargetError:
            covered = set()
        return [s for s in select_tree.text_sites(design, NAME) if s.touched[0] not in covered]


RULE = Rebalance()
