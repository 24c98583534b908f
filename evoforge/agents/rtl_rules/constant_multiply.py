"""Strength reduction found on the word-level netlist: a ``$mul`` cell with a constant operand, in any
spelling (a literal or a ``parameter`` factor, ``assign`` or ``always``/``always_comb``, SystemVerilog),
becomes a function of shifts and adds in canonical signed-digit form, where that needs fewer adders
than Yosys's own expansion (:func:`~evoforge.agents.rtl_rules.strength_reduction.worth_it`).

The expression's text is replaced by a call ``evo_mul15_l7(x)`` of a function added to the module::

    function [W-1:0] evo_mul15_l7; input [W-1:0] x; evo_mul15_l7 = (x << 4) - x; endfunction

Why the result equals the original: the cell's ``Y_WIDTH`` W is the width of the expression's
context; the product contributes ``c·x mod 2^W`` (unsigned; signed cells are left alone), and the
function returns that many bits: ``Σ dᵢ·(x << i) = c·x`` for the CSD digits dᵢ of c, and modulo
2^W each side's low W bits depend only on x's low W bits. The operand is a self-determined leaf
(a name, a select, a concatenation) of the context's signedness, so passing it to the W-bit formal
extends it as the context did (the argument of :mod:`~evoforge.agents.rtl_rules.prefix_adder`).
"""

from __future__ import annotations

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.prefix_adder import _operand, _operands
from evoforge.agents.rtl_rules.strength_reduction import csd_digits, worth_it
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, fresh_name, module_pairs


def _const(bits: tuple[object, ...]) -> int | None:
    if not bits or any(not isinstance(b, str) or b not in "01" for b in bits):
        return None
    return sum(1 << i for i, b in enumerate(bits) if b == "1")


def text_sites(design: Design, rule: str) -> list[TextSite]:
    sites: list[TextSite] = []
    taken: set[str] = set()
    for module_name, module, module_node in module_pairs(design):
        spans: dict[tuple[int, int], list[object]] = {}
        for cell in module.cells:
            where = design.span(cell.src)
            if where is not None:
                spans.setdefault(where, []).append(cell)
        for cell in module.cells:
            if cell.type != "$mul" or cell.param("A_SIGNED") or cell.param("B_SIGNED"):
                continue
            a, b = _const(cell.port("A")), _const(cell.port("B"))
            if (a is None) == (b is None):
                continue
            value = a if a is not None else b
            assert value is not None
            if not worth_it(value):
                continue
            where = design.span(cell.src)
            node = design.node_of(cell, "MultiplyExpression")
            line = design.line_of(where[0]) if where else 0
            if where is None or node is None or len(spans.get(where, ())) != 1:
                decline(f"the product by {value} on line {line} is not one written expression")
                continue
            left, right = _operands(design, node)
            operand_node = right if a is not None else left
            width = cell.param("Y_WIDTH")
            own = cell.param("B_WIDTH") if a is not None else cell.param("A_WIDTH")
            found = _operand(design, module, operand_node, own, False, width)
            if isinstance(found, str):
                decline(f"line {line}: {found}")
                continue
            name = fresh_name(design, f"evo_mul{value}_l{line}")
            while name in taken:
                name += "_"
            taken.add(name)
            digits = csd_digits(value)
            terms = ""
            for k, (shift, digit) in enumerate(digits):
                term = "x" if shift == 0 else f"(x << {shift})"
                terms += term if k == 0 else (f" + {term}" if digit > 0 else f" - {term}")
            body = [
                f"// evoforge strength_reduction: x * {value} at {width} bits in canonical signed digits",
                f"function [{width - 1}:0] {name};",
                f"  input [{width - 1}:0] x;",
                f"  {name} = {terms};",
                "endfunction",
            ]
            assert node.start is not None and node.end is not None
            edits = (
                Edit(node.start, node.end, f"{name}({found.text})"),
                design.after_header(module_node, body),
            )
            note = (
                f"line {line}: `{design.syntax.source(node)}` as {len(digits)} shifted terms "
                f"({terms.replace('x', found.text)}) instead of {bin(value).count('1')}"
            )
            sites.append(
                TextSite(rule, module_name, note, (found.text,), edits, key=f"{module_name}:{where[0]}")
            )
    return sites
