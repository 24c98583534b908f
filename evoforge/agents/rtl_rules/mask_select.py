"""Mask select: a masked OR of two values under complementary masks becomes a select.

``({W{~s}} & x) | ({W{s}} & y)`` (either operand order of ``|`` and ``&``, ``~s`` or ``!s``) is
rewritten to ``s ? y : x``. Yosys' ``share`` pass finds mutually exclusive multipliers only through
the ``$mux``/``$pmux`` cells that select between them, so the select form lets synthesis (and the
``resource_sharing`` rule, which then sees ``s ? c*d : a*b``) keep one operator.

Why the result equals the original (IEEE 1364-2005 §5.4-5.5), with ``s`` one bit wide:

* ``{W{s}}`` is all ones when ``s`` is 1 and all zeros when it is 0, and ``{W{~s}}`` (or
  ``{W{!s}}``) is its complement, so exactly one of the two ANDs passes its value and the OR
  returns it. X/Z on ``s`` differ between the forms; synthesis and the formal checks do not model them.
* Widths and signedness: a replication is unsigned and W bits wide, so the masked OR is unsigned
  and at least W bits; its bits above W are zero. The rule requires ``x`` and ``y`` to be unsigned,
  at most W bits, and one of them exactly W bits: then ``s ? y : x`` is unsigned, exactly W bits,
  zero-extends like the original, and the enclosing context keeps its width.
* Inlining: when the masked OR is the whole right-hand side of an assignment to a W-bit target
  and an arm is a W-bit unsigned wire driven by one unsigned expression ``e`` no wider than W and
  read nowhere else, the arm becomes ``e`` itself (so ``resource_sharing`` can see the operators):
  ``e`` is then evaluated in a context of exactly W bits, as it was in the wire's own assignment.
  The wire's now unread declaration is left in place (synthesis removes it).
* Sharing: when the two arms are then the same operator (``s ? c*d : a*b``), the proposal also
  shares it (``(s ? c : a) * (s ? d : b)``) under the conditions and argument of
  :mod:`~evoforge.agents.rtl_rules.resource_sharing` (ternary form), so one proposal does both.
"""

from __future__ import annotations

import copy
import functools
import random
from typing import Any

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules import facts
from evoforge.agents.rtl_rules.ast_utils import (
    Path,
    Rewrite,
    expr_key,
    identifiers,
    is_pure,
    module_definitions,
    node_at,
    signedness,
    walk_paths,
)
from evoforge.agents.rtl_rules.resource_sharing import share_select
from evoforge.agents.rtl_rules.text_sites import Design, TextSite
from evoforge.errors import TargetError
from evoforge.tools.verilog_ast import ParsedVerilog, const_value, parse_verilog

NAME = "mask_select"


def _strip(node: Any) -> Any:
    """The expression under Rvalue wrappers and one-item concatenations (``{x}`` equals ``x`` here)."""
    while True:
        if isinstance(node, vast.Rvalue):
            node = node.var
        elif isinstance(node, vast.Concat) and len(node.list) == 1:
            node = node.list[0]
        else:
            return node


def _mask(node: Any) -> tuple[Any, bool, int] | None:
    """``{W{c}}`` → (condition, negated, W) with ``~x``/``!x`` unwrapped to (x, True, W)."""
    node = _strip(node)
    if not isinstance(node, vast.Repeat):
        return None
    times = const_value(node.times, {})
    if times is None or times < 1:
        return None
    cond = _strip(node.value)
    negated = False
    if isinstance(cond, vast.Unot | vast.Ulnot):
        cond, negated = _strip(cond.right), True
    return cond, negated, times


def _masked(node: Any) -> tuple[Any, bool, int, Any] | None:
    """``{W{c}} & v`` or ``v & {W{c}}`` → (c, negated, W, v)."""
    node = _strip(node)
    if not isinstance(node, vast.And):
        return None
    for mask_side, value_side in ((node.left, node.right), (node.right, node.left)):
        mask = _mask(mask_side)
        if mask is not None and _mask(value_side) is None:
            return (*mask, value_side)
    return None


def _match(node: Any, sigs: dict[str, facts.Signal], signs: dict[str, bool]) -> tuple[Any, Any, Any] | None:
    """An ``|`` node that is a complementary masked select → (s, value when 0, value when 1)."""
    if not isinstance(node, vast.Or):
        return None
    left, right = _masked(node.left), _masked(node.right)
    if left is None or right is None:
        return None
    (lc, lneg, lw, lv), (rc, rneg, rw, rv) = left, right
    if lw != rw or lneg == rneg or expr_key(lc) != expr_key(rc):
        return None
    if facts.expr_width(lc, sigs) != 1 or not all(is_pure(n) for n in (lc, lv, rv)):
        return None
    widths = [facts.expr_width(v, sigs) for v in (lv, rv)]
    if any(w is None or w > lw for w in widths) or max(w for w in widths if w is not None) != lw:
        return None
    if any(signedness(v, signs) is not False for v in (lv, rv)):
        return None
    when0, when1 = (lv, rv) if lneg else (rv, lv)  # the negated mask passes its value when s is 0
    return lc, when0, when1


def _drivers(module: vast.ModuleDef) -> dict[str, list[Any]]:
    """Right-hand sides of continuous assignments (incl. net declaration assignments) per target name."""
    out: dict[str, list[Any]] = {}
    for _, node in walk_paths(module):
        if isinstance(node, vast.Assign) and isinstance(node.left.var, vast.Identifier):
            out.setdefault(node.left.var.name, []).append(node.right)
    return out


def _inlined(
    module: vast.ModuleDef, value: Any, width: int, sigs: dict[str, facts.Signal], signs: dict[str, bool]
) -> Any:
    """``value``, or its driver when it is a single-use W-bit unsigned wire with one narrow driver."""
    node = _strip(value)
    if not isinstance(node, vast.Identifier) or node.scope is not None:
        return value
    sig = sigs.get(node.name)
    if sig is None or sig.kind != "wire" or sig.signed or sig.array or sig.width != width:
        return value
    drivers = _drivers(module).get(node.name, [])
    if (
        len(drivers) != 1
        or len(facts.writes(module, node.name)) != 1
        or len(facts.reads(module, node.name)) != 1
    ):
        return value
    expr = _strip(drivers[0])
    expr_width = facts.expr_width(expr, sigs)
    if expr_width is None or expr_width > width or signedness(expr, signs) is not False or not is_pure(expr):
        return value
    return expr


class MaskSelect:
    name = NAME
    looks_for = "a product or sum whose operand is one of several values chosen by a select signal"

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]:
        rewrites: list[Rewrite] = []
        for root, definition in module_definitions(parsed):
            sigs = facts.module_signals(definition)
            signs = {name: sig.signed for name, sig in sigs.items()}
            taken: list[Path] = []
            for path, node in walk_paths(definition, root):
                if any(path[: len(t)] == t for t in taken):
                    continue  # inside a site already found: rewritten with it
                match = _match(node, sigs, signs)
                if match is None:
                    continue
                cond, when0, when1 = match
                width = facts.expr_width(when0, sigs) or 0
                width = max(width, facts.expr_width(when1, sigs) or 0)
                if _whole_rhs_of_width(parsed.ast, path, width, sigs):
                    when0 = _inlined(definition, when0, width, sigs, signs)
                    when1 = _inlined(definition, when1, width, sigs, signs)
                taken.append(path)
                shared = share_select(cond, when1, when0, signs)
                replacement = shared if shared is not None else vast.Cond(cond, when1, when0)
                transform = functools.partial(_rewrite, replacement=copy.deepcopy(replacement))
                touched = tuple(dict.fromkeys(identifiers(node) + identifiers(when0) + identifiers(when1)))
                also = " and shared one operator between its arms" if shared is not None else ""
                note = (
                    f"turned the masked OR of two values under complementary masks of "
                    f"{expr_key(cond)} into a select{also} (module {definition.name}, line {node.lineno})"
                )
                rewrites.append(
                    Rewrite(
                        rule=NAME,
                        module=definition.name,
                        path=path,
                        note=note,
                        touched=touched,
                        transform=transform,
                    )
                )
        return rewrites

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        """Masked ORs found on the word-level netlist (any spelling), for designs the expression
        matcher above cannot read or finds nothing in."""
        try:
            if self.apply(parse_verilog(design.text), rng):
                return []
        except TargetError:
            pass
        from evoforge.agents.rtl_rules import netlist_mask

        return netlist_mask.text_sites(design, NAME)


def _whole_rhs_of_width(root: Any, path: Path, width: int, sigs: dict[str, facts.Signal]) -> bool:
    """The node at ``path`` is the whole right-hand side of an assignment to a ``width``-bit target."""
    if len(path) < 2 or path[-1] != ("var", None):
        return False
    parent = node_at(root, path[:-2])
    holder = node_at(root, path[:-1])
    if not isinstance(holder, vast.Rvalue) or not isinstance(parent, vast.Assign | vast.Substitution):
        return False
    return bool(facts.expr_width(parent.left, sigs) == width)


def _rewrite(current: Any, *, replacement: Any) -> Any:
    if not isinstance(current, vast.Or):  # the site was checked when the rewrite was made
        raise ValueError(f"the masked OR at line {current.lineno} is no longer there")
    return copy.deepcopy(replacement)


RULE = MaskSelect()
