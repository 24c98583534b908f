"""Strength reduction: a multiplication by a constant becomes shifts, additions and subtractions in
canonical signed-digit form (``15*x`` → ``(x << 4) - x``), proposed where it needs fewer adders than
yosys' own expansion (one shifted partial product per 1 bit of the constant: 15 → 4 terms, CSD → 2).

Why the result equals the original (IEEE 1364-2005 §5.4-5.5): the product sits in the context of an
assignment (reached from its right-hand side through context-determined operators only), so ``x``
is extended to the context width W before it is multiplied, and ``x << k`` extends it to the same W
before it shifts. Modulo 2^W, ``c*x = Σ dᵢ·(x << i)`` for the CSD digits dᵢ ∈ {-1, 0, 1} of c. The
rewrite removes the constant from the context, so the rule requires that this does not change its
signedness (``x`` is unsigned, or the constant is signed: the AND over the rest stays the same) and
that it does not narrow the context (the constant is no wider than the target or some other
operand) — or, when it does (``23 * d`` with an unsized 32-bit constant), that every operator of
the context passes only low bits upwards (``+ - * & | ^ ~ <<`` and ``?:`` arms), so the target's
bits, all at or below the narrower width, are the same.
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Iterator
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
    signal_signedness,
    signedness,
    walk_paths,
)
from evoforge.agents.rtl_rules.text_sites import Design, TextSite
from evoforge.errors import TargetError
from evoforge.tools.verilog_ast import ParsedVerilog, const_value, parse_verilog

NAME = "strength_reduction"


def csd_digits(value: int) -> list[tuple[int, int]]:
    """(shift, ±1) for the non-zero canonical signed digits of ``value`` > 0, highest first."""
    digits: list[tuple[int, int]] = []
    shift = 0
    while value:
        if value & 1:
            digit = 2 - (value & 3)  # 1 when the next bit is 0, -1 when it starts a run of 1s
            digits.append((shift, digit))
            value -= digit
        value >>= 1
        shift += 1
    return list(reversed(digits))


def worth_it(value: int) -> bool:
    """CSD needs fewer partial products than the plain binary expansion yosys builds."""
    return value > 0 and len(csd_digits(value)) < bin(value).count("1")


def _shifted(x: Any, shift: int) -> Any:
    operand = copy.deepcopy(x)
    return operand if shift == 0 else vast.Sll(operand, vast.IntConst(str(shift)))


def shift_add(x: Any, value: int) -> Any:
    """``x * value`` as CSD shifts and adds/subtracts (the top digit is always +1)."""
    digits = csd_digits(value)
    result = _shifted(x, digits[0][0])
    for shift, digit in digits[1:]:
        term = _shifted(x, shift)
        result = vast.Plus(result, term) if digit > 0 else vast.Minus(result, term)
    return result


def _split(node: vast.Times, env: dict[str, int]) -> tuple[Any, Any, int] | None:
    """(constant operand, other operand, value) of a product by a constant."""
    for const, other in ((node.left, node.right), (node.right, node.left)):
        if isinstance(const, vast.IntConst):
            value = const_value(const, env)
            if value is not None and value > 0 and const_value(other, env) is None:
                return const, other, value
    return None


def _context_products(root: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    """Products reached from ``root`` through context-determined operators only."""
    if isinstance(root, vast.Times):
        yield path, root
    for attr in ("var", "left", "right", "true_value", "false_value"):
        child = getattr(root, attr, None)
        if child is not None and any(child is c for c in facts.context_operands(root)):
            yield from _context_products(child, (*path, (attr, None)))


_LOW_CLOSED = (vast.Rvalue, vast.Plus, vast.Minus, vast.Times, vast.And, vast.Or, vast.Xor, vast.Xnor)
_LOW_CLOSED_UNARY = (vast.Unot, vast.Uminus, vast.Uplus, vast.Sll, vast.Sla, vast.Cond)


def _low_closed(root: Any) -> bool:
    """Every operator of the context passes only low bits upwards (``+ - * & | ^ ~ <<``, ``?:`` arms)."""
    inner = facts.context_operands(root)
    if not inner:
        return True
    if not isinstance(root, _LOW_CLOSED + _LOW_CLOSED_UNARY):
        return False
    return all(_low_closed(child) for child in inner)


class StrengthReduction:
    name = NAME
    looks_for = "a multiplication by a constant, or a division/modulo by a power of two"

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]:
        rewrites: list[Rewrite] = []
        for root, module in module_definitions(parsed):
            sigs = facts.module_signals(module)
            signs = signal_signedness(module)
            for path, node in walk_paths(module, root):
                if isinstance(node, vast.Assign | vast.Substitution):
                    target = facts.expr_width(node.left, sigs)
                    if target is not None:
                        rewrites += self._sites(module, node, (*path, ("right", None)), target, sigs, signs)
        return rewrites

    def _sites(
        self,
        module: vast.ModuleDef,
        assignment: Any,
        rhs_path: Path,
        target: int,
        sigs: dict[str, facts.Signal],
        signs: dict[str, bool],
    ) -> list[Rewrite]:
        rhs = assignment.right
        leaves = list(facts.context_leaves(rhs))
        out: list[Rewrite] = []
        for path, product in _context_products(rhs, rhs_path):
            split = _split(product, {})
            if split is None or not worth_it(split[2]) or not is_pure(split[1]):
                continue
            const, other, value = split
            rest = [facts.expr_width(leaf, sigs) for leaf in leaves if leaf is not const]
            if any(w is None for w in rest):
                continue
            narrows = facts.literal_width(const) > max([target, *(w or 0 for w in rest)])
            if narrows and not _low_closed(rhs):
                continue  # the constant decides the context width and something reads the high bits
            if signedness(other, signs) is not False and signedness(const, signs) is not True:
                continue  # a signed operand times an unsigned constant: the context's signedness would flip
            lhs = identifiers(assignment.left)
            digits = len(csd_digits(value))
            note = (
                f"replaced {expr_key(product)} in the assignment to {', '.join(lhs)} (module {module.name}, "
                f"line {product.lineno}) by {digits} canonical-signed-digit shift/add terms instead of "
                f"{bin(value).count('1')} partial products"
            )
            out.append(
                Rewrite(
                    rule=NAME,
                    module=module.name,
                    path=path,
                    note=note,
                    touched=tuple(dict.fromkeys([*lhs, *identifiers(other)])),
                    transform=functools.partial(_reduce, value=value),
                )
            )
        return out

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        """Products by constants found on the word-level netlist (any spelling), for designs the
        expression matcher above cannot read or finds nothing in."""
        try:
            if self.apply(parse_verilog(design.text), rng):
                return []
        except TargetError:
            pass
        from evoforge.agents.rtl_rules import constant_multiply

        return constant_multiply.text_sites(design, NAME)


def _reduce(node: Any, *, value: int) -> Any:
    split = _split(node, {}) if isinstance(node, vast.Times) else None
    if split is None or split[2] != value:
        return node  # the site changed under another rewrite: leave it
    return shift_add(split[1], value)


RULE = StrengthReduction()
