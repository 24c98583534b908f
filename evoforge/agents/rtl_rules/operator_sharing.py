"""Operator sharing on the word-level netlist: arithmetic that a select makes mutually exclusive is
computed once, whatever the spelling (``?:``, ``if``/``else``, ``case`` with literal or
``parameter``/``localparam`` labels, ``always @*``, ``always @(a or b or op)``, ``always_comb``).

The site is a ``$mux``/``$pmux`` cell M (the select) at least two of whose data words are each the
whole output of an arithmetic cell C of one class — ``+``, ``*``, ``<<`` or ``>>`` for
``resource_sharing``; ``+`` and ``-`` mixed for ``addsub_sharing`` — with the same width W, unsigned,
read by M and nothing else, and written as one expression in the text. The patch adds, before the
item that holds the first expression::

    wire [W-1:0] evo_sh_x   = c1 ? a1 : c2 ? a2 : a3;   // each arm's left operand, by its select
    wire [W-1:0] evo_sh_y   = c1 ? b1 : c2 ? b2 : b3;
    wire         evo_sh_sub = c2;                       // the arms that subtract
    wire [W-1:0] evo_sh     = evo_sh_x + (evo_sh_y ^ {W{evo_sh_sub}}) + evo_sh_sub;

and replaces each arm's expression text by ``evo_sh`` (an explicit sensitivity list gets ``or evo_sh``).

Why the result equals the original. Each arm's condition cᵢ is the select of M that passes Cᵢ's word
(``S`` or ``!S`` of a ``$mux``, ``S[i]`` of a ``$pmux``, whose selects are exclusive), printed from the
netlist in the source's names (:mod:`~evoforge.agents.rtl_rules.netlist_expr`); operands likewise.
Whenever M passes Cᵢ's word, cᵢ holds, the operand selects pass Cᵢ's operands (zero-extended to W
as the unsigned cell does), and ``x + (y ^ {W{s}}) + s`` is ``x + y`` for s = 0 and ``x - y`` mod
2^W for s = 1, so ``evo_sh`` equals Cᵢ's value; when M passes another word, Cᵢ's value is not used,
because M is its only reader. In the text, the expression's value reaches only what the netlist
cell's output reaches (one expression, one cell, one reader), so replacing the text replaces the
cell. The expression contributed a W-bit unsigned value to its context and ``evo_sh`` is a W-bit
unsigned wire: the context keeps its width. Conditions and operands are continuous expressions of
named signals' final values, which are the values the netlist cells read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.netlist_expr import condition, word
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, fresh_name, module_pairs
from evoforge.tools.sv_syntax import Node
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist

_CLASSES = {"$add": "+", "$sub": "+", "$mul": "*", "$shl": "<<", "$sshl": "<<", "$shr": ">>"}
_EXPR = {
    "$add": "AddExpression",
    "$sub": "SubtractExpression",
    "$mul": "MultiplyExpression",
    "$shl": "LogicalShiftLeftExpression",
    "$sshl": "ArithmeticShiftLeftExpression",
    "$shr": "LogicalShiftRightExpression",
}


@dataclass(frozen=True)
class _Arm:
    cell: Cell
    condition: str | None  # None: the select's default (no condition needed when it is last)
    node: Node


def _fanout(module: ModuleNetlist) -> Callable[[int], int]:
    """How many places read a bit: cells (once per connection) and the module's ports."""
    port_bits = {b for p in module.ports for b in module.nets[p].bits if isinstance(b, int)}
    return lambda bit: len(module.readers(bit)) + (bit in port_bits)


def _words(cell: Cell) -> list[tuple[tuple[Bit, ...], tuple[str, int] | None]]:
    """Each data word of a select with how it is chosen: ("S", 1/0) for a $mux, ("S", i) for a $pmux."""
    if cell.type == "$mux":
        return [(cell.port("B"), ("mux", 1)), (cell.port("A"), ("mux", 0))]
    width = cell.param("WIDTH")
    b = cell.port("B")
    out: list[tuple[tuple[Bit, ...], tuple[str, int] | None]] = [
        (b[i * width : (i + 1) * width], ("pmux", i)) for i in range(len(cell.port("S")))
    ]
    out.append((cell.port("A"), None))
    return out


def text_sites(design: Design, rule: str, mixed: bool) -> list[TextSite]:
    """Sharing sites: ``mixed`` False — one operator (resource_sharing); True — + with - (addsub_sharing)."""
    sites: list[TextSite] = []
    names: set[str] = set()
    for module_name, module, node in module_pairs(design):
        fanout = _fanout(module)
        spans: dict[tuple[int, int], int] = {}
        for cell in module.cells:
            where = design.span(cell.src)
            if where is not None:
                spans[where] = spans.get(where, 0) + 1
        for select in module.cells:
            if select.type not in ("$mux", "$pmux"):
                continue
            site = _site(design, module_name, module, node, select, fanout, spans, rule, mixed, names)
            if site is not None:
                sites.append(site)
    return sites


def _site(
    design: Design,
    module_name: str,
    module: ModuleNetlist,
    module_node: Node,
    select: Cell,
    fanout: Callable[[int], int],
    spans: dict[tuple[int, int], int],
    rule: str,
    mixed: bool,
    taken: set[str],
) -> TextSite | None:
    arms: list[tuple[Cell, tuple[str, int] | None]] = []
    for data, how in _words(select):
        found = module.driver(data[0]) if data and isinstance(data[0], int) else None
        if found is None or found[0].type not in _CLASSES or found[0].port("Y") != data:
            continue
        cell = found[0]
        if any(fanout(b) != 1 for b in data if isinstance(b, int)):
            continue
        arms.append((cell, how))
    if len(arms) < 2:
        return None
    groups: dict[tuple[str, int], list[tuple[Cell, tuple[str, int] | None]]] = {}
    for cell, how in arms:
        if cell.param("A_SIGNED") or cell.param("B_SIGNED"):
            continue
        key = (_CLASSES[cell.type] if mixed else cell.type, cell.param("Y_WIDTH"))
        groups.setdefault(key, []).append((cell, how))
    for (klass, width), members in groups.items():
        types = {c.type for c, _ in members}
        if len(members) < 2 or (mixed and types != {"$add", "$sub"}) or (not mixed and len(types) != 1):
            continue
        patched = _patch(design, module, module_node, select, members, width, spans, taken)
        if isinstance(patched, str):
            decline(f"{len(members)} exclusive {klass} operators (line {members[0][0].line}): {patched}")
            continue
        edits, touched, shared = patched
        lines = sorted({c.line for c, _ in members if c.line})
        what = "adder/subtractor" if mixed else f"{klass} operator"
        note = (
            f"one {width}-bit {what} ({shared}) for the {len(members)} exclusive operations on lines {lines}"
        )
        return TextSite(rule, module_name, note, touched, tuple(edits), key=f"{module_name}:{select.name}")
    return None


def _patch(
    design: Design,
    module: ModuleNetlist,
    module_node: Node,
    select: Cell,
    members: list[tuple[Cell, tuple[str, int] | None]],
    width: int,
    spans: dict[tuple[int, int], int],
    taken: set[str],
) -> tuple[list[Edit], tuple[str, ...], str] | str:
    syntax = design.syntax
    nodes: list[Node] = []
    for cell, _ in members:
        where = design.span(cell.src)
        if where is None or spans.get(where, 0) != 1:
            return "an operation is written once for several cells (a loop or a macro)"
        node = design.node_of(cell, _EXPR[cell.type])
        if node is None:
            return "an operation is not one written expression"
        nodes.append(node)
    conditions: list[str | None] = []
    for _cell, how in members:
        if how is None:
            conditions.append(None)
            continue
        kind, index = how
        bit = select.port("S")[0] if kind == "mux" else select.port("S")[index]
        text = condition(module, bit)
        if text is None:
            return "a select condition cannot be written in the source's names"
        conditions.append(text if (kind == "pmux" or index == 1) else f"!{text}")
    order = sorted(range(len(members)), key=lambda i: conditions[i] is None)  # the default last
    if sum(c is None for c in conditions) > 1:
        return "two arms are the default"
    lefts, rights = [], []
    for cell, _ in members:
        a, b = word(module, cell.port("A")), word(module, cell.port("B"))
        if a is None or b is None:
            return "an operand has no name in the source"
        lefts.append(a)
        rights.append(b)
    base = fresh_name(design, "evo_sh")
    while base in taken:
        base += "_"
    taken.add(base)

    def chain(values: list[str]) -> str:
        parts = [f"{conditions[i]} ? {values[i]} : " for i in order[:-1]]
        return "".join(parts) + values[order[-1]]

    top = width - 1
    lines = [f"wire [{top}:0] {base}_x = {chain(lefts)};", f"wire [{top}:0] {base}_y = {chain(rights)};"]
    cell_types = [c.type for c, _ in members]
    op = _CLASSES[cell_types[0]]
    if "$sub" in cell_types:
        subs = [conditions[i] for i, t in enumerate(cell_types) if t == "$sub"]
        if any(s is None for s in subs):
            adds = [conditions[i] for i, t in enumerate(cell_types) if t != "$sub"]
            if any(a is None for a in adds):
                return "the arms' conditions cannot tell additions from subtractions"
            sub_expr = "!(" + " || ".join(str(a) for a in adds) + ")"
        else:
            sub_expr = " || ".join(str(s) for s in subs)
        lines.append(f"wire {base}_sub = {sub_expr};")
        lines.append(
            f"wire [{top}:0] {base} = {base}_x + ({base}_y ^ {{{width}{{{base}_sub}}}}) + {base}_sub;"
        )
    else:
        lines.append(f"wire [{top}:0] {base} = {base}_x {op} {base}_y;")
    item = _item_of(design, module_node, nodes[0])
    if item is None or item.start is None:
        return "the first operation is not inside a module item"
    indent = design.indent_of(item)
    edits = [Edit(item.start, item.start, "".join(f"{line}\n{indent}" for line in lines))]
    for node in nodes:
        assert node.start is not None and node.end is not None
        edits.append(Edit(node.start, node.end, base))
    blocks = {a.index: a for n in nodes for a in syntax.ancestors(n) if a.kind == "AlwaysBlock"}
    for block in blocks.values():
        edit = _sensitivity(design, block, base)
        if isinstance(edit, str):
            return edit
        if edit is not None:
            edits.append(edit)
    touched = tuple(dict.fromkeys([*lefts, *rights]))
    return edits, touched, base


def _item_of(design: Design, module_node: Node, node: Node) -> Node | None:
    for ancestor in design.syntax.ancestors(node):
        if design.syntax.parent(ancestor) is module_node:
            return ancestor
    return None


def _sensitivity(design: Design, block: Node, name: str) -> Edit | str | None:
    """``or name`` in an explicit level-sensitive event list (None when the block needs nothing)."""
    syntax = design.syntax
    control = next((n for n in syntax.walk(block) if n.kind.startswith("EventControl")), None)
    if control is None:
        return None
    text = syntax.source(control) or ""
    if "*" in text:
        return None
    if "posedge" in text or "negedge" in text:
        return None  # a clocked block reads the wire at the clock edge
    close = [t for t in syntax.tokens(control) if t.kind == "Token:CloseParenthesis"]
    if not close or close[-1].start is None:
        return "the block's event list cannot be extended"
    return Edit(close[-1].start, close[-1].start, f" or {name}")
