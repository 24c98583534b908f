"""Mask select found on the word-level netlist: ``({W{~s}} & x) | ({W{s}} & y)`` in any spelling
(operands in either order, ``~s`` or ``!s``, ``assign`` or procedural, SystemVerilog) becomes
``s ? y : x`` — so synthesis (and the sharing rules) see a select between the two values.

On the netlist the site is an ``$or`` of two ``$and`` cells, each ANDing a data word with a word
whose low W bits are one select bit repeated (``{W{s}}``; zero above W when the context is wider),
the two select bits being s and its negation. The ``$or`` expression's text is replaced.

Why the result equals the original — the argument of
:mod:`~evoforge.agents.rtl_rules.mask_select`, checked on the cells: every cell is unsigned; the
mask is all ones on exactly one side, so the OR passes that side's data word; each data word is at
most W bits wide and one of them exactly W, so ``s ? y : x`` is W bits, unsigned, and the enclosing
context keeps its width (the masks' width W is still present as the wider data word's width).
"""

from __future__ import annotations

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.netlist_expr import condition
from evoforge.agents.rtl_rules.prefix_adder import _operands
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, module_pairs
from evoforge.tools.sv_syntax import Node
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist


def _mask(word: tuple[Bit, ...]) -> tuple[Bit, int] | None:
    """(bit, W) when ``word`` is one bit repeated W times, then zeros."""
    if not word or isinstance(word[0], str):
        return None
    bit = word[0]
    width = 0
    while width < len(word) and word[width] == bit:
        width += 1
    if any(b != "0" for b in word[width:]):
        return None
    return bit, width


def _negation(module: ModuleNetlist, a: Bit, b: Bit) -> Bit | None:
    """The select s when one of ``a``, ``b`` is s and the other ~s / !s (the one that is s)."""
    for plain, negated in ((a, b), (b, a)):
        found = module.driver(negated)
        if found is not None and found[0].type in ("$not", "$logic_not") and found[0].port("A") == (plain,):
            return plain
    return None


def _side(module: ModuleNetlist, cell: Cell) -> tuple[str, Bit, int, int] | None:
    """(data port, select bit, mask width, data width) of ``data & {W{bit}}``."""
    for data, mask in (("A", "B"), ("B", "A")):
        found = _mask(cell.port(mask))
        if found is not None:
            return data, found[0], found[1], cell.param(f"{data}_WIDTH")
    return None


def text_sites(design: Design, rule: str) -> list[TextSite]:
    sites: list[TextSite] = []
    for module_name, module, _ in module_pairs(design):
        for cell in module.cells:
            if cell.type != "$or" or cell.param("A_SIGNED") or cell.param("B_SIGNED"):
                continue
            site = _site(design, module_name, module, cell, rule)
            if site is not None:
                sites.append(site)
    return sites


def _site(design: Design, module_name: str, module: ModuleNetlist, cell: Cell, rule: str) -> TextSite | None:
    ands = []
    for port in ("A", "B"):
        found = module.driver(cell.port(port)[0]) if cell.port(port) else None
        if found is None or found[0].type != "$and" or found[0].port("Y") != cell.port(port):
            return None
        if found[0].param("A_SIGNED") or found[0].param("B_SIGNED"):
            return None
        ands.append(found[0])
    sides = [_side(module, a) for a in ands]
    if any(s is None for s in sides):
        return None
    (d0, s0, w0, x0), (d1, s1, w1, x1) = sides  # type: ignore[misc]
    select = _negation(module, s0, s1)
    if select is None or w0 != w1 or max(x0, x1) != w0:
        return None
    node = design.node_of(cell, "BinaryOrExpression")
    line = cell.line
    if node is None:
        decline(f"the masked OR on line {line} is not one written expression")
        return None
    texts = []
    for and_cell, data in zip(ands, (d0, d1), strict=True):
        and_node = _inner(design, node, and_cell)
        if and_node is None:
            decline(f"the masked OR on line {line}: an AND is not written inside it")
            return None
        left, right = _operands(design, and_node)
        texts.append(design.syntax.source(left if data == "A" else right))
    sel = condition(module, select)
    if sel is None or None in texts:
        decline(f"the masked OR on line {line}: its select has no name in the source")
        return None
    chosen = 1 if s1 == select else 0  # the side masked by s itself is taken when s is 1
    text = f"({sel} ? {texts[chosen]} : {texts[1 - chosen]})"
    assert node.start is not None and node.end is not None
    note = f"line {line}: the masked OR `{design.syntax.source(node)}` as `{text}`"
    return TextSite(
        rule,
        module_name,
        note,
        (sel,),
        (Edit(node.start, node.end, text),),
        key=f"{module_name}:{node.start}",
    )


def _inner(design: Design, node: Node, cell: Cell) -> Node | None:
    where = design.span(cell.src)
    if where is None:
        return None
    for child in design.syntax.walk(node):
        if (child.start, child.end) == where and child.kind == "BinaryAndExpression":
            return child
    return None
