"""Re-driving one signal in place: the edits that make a combinationally driven signal equal a new
expression, whatever construct drives it (``assign``, net declaration assignment, ``always @*``,
``always @(a or b)``, ``always_comb``), leaving every other line of the user's text as it was."""

from __future__ import annotations

from evoforge.agents.rtl_rules.text_sites import Design, Edit
from evoforge.tools.sv_syntax import Node

_BLOCKS = ("AlwaysBlock", "AlwaysCombBlock")
_ASSIGN = ("AssignmentExpression", "NonblockingAssignmentExpression")


def _drivers(design: Design, module: Node, name: str) -> list[tuple[str, Node]]:
    """Every construct that writes ``name``: ("assign", the right-hand side), ("decl", the
    initializer), ("block", the always block) — one entry per construct."""
    syntax = design.syntax
    out: list[tuple[str, Node]] = []
    blocks: set[int] = set()
    for node in syntax.of_kind(*_ASSIGN, within=module):
        left = next((c for c in syntax.children(node) if not c.is_token), None)
        if left is None or not any(
            n.kind == "Token:Identifier" and n.value == name for n in syntax.walk(left)
        ):
            continue
        block = next(
            (
                a
                for a in syntax.ancestors(node)
                if a.kind in (*_BLOCKS, "AlwaysFFBlock", "InitialBlock", "ContinuousAssign")
            ),
            None,
        )
        if block is None:
            out.append(("other", node))
        elif block.kind == "ContinuousAssign":
            right = [c for c in syntax.children(node) if not c.is_token][-1]
            simple = left.kind == "IdentifierName"
            out.append(("assign" if simple else "other", right))
        elif block.index not in blocks:
            blocks.add(block.index)
            out.append(("block" if block.kind in _BLOCKS else "other", block))
    for declarator in syntax.of_kind("Declarator", within=module):
        if syntax.name(declarator) != name:
            continue
        clause = next((c for c in syntax.children(declarator) if c.kind == "EqualsValueClause"), None)
        parent = syntax.parent(declarator)
        if clause is not None and parent is not None and parent.kind == "NetDeclaration":
            out.append(("decl", [c for c in syntax.children(clause) if not c.is_token][-1]))
    return out


def _written_names(design: Design, block: Node) -> set[str] | None:
    """Every name a block assigns (None when it does more than assign: calls, loops with effects …)."""
    syntax = design.syntax
    names: set[str] = set()
    for node in syntax.walk(block):
        if node.kind in ("ExpressionStatement",):
            inner = [c for c in syntax.children(node) if not c.is_token]
            if not inner or inner[0].kind not in _ASSIGN:
                return None
        if node.kind in _ASSIGN:
            left = next(c for c in syntax.children(node) if not c.is_token)
            names.update(n.value for n in syntax.walk(left) if n.kind == "Token:Identifier")
        if node.kind in ("SystemTimingCheck", "ProceduralAssignStatement"):
            return None
    return names


def _level_sensitive(design: Design, block: Node) -> bool:
    if block.kind == "AlwaysCombBlock":
        return True
    text = design.syntax.source(block) or ""
    head = text.split(")", 1)[0]
    return "posedge" not in head and "negedge" not in head


def redrive(
    design: Design, module: Node, output: str, bits: int, nodes: list[tuple[str, str]], root: str
) -> list[Edit] | str:
    """Edits that make ``output`` (``bits`` wide) equal ``root``, computed through ``nodes`` (name,
    expression) in order — or why its driver cannot be changed in place.

    The driver must be one construct: an ``assign`` (its right-hand side becomes ``root``, the nodes
    become wires before it), a net declaration assignment (likewise), or one level-sensitive
    ``always``/``always_comb`` block (the nodes become variables declared before it and assigned,
    with ``output = root``, at the end of the block: the last blocking assignment wins, and the block
    reads nothing it did not read before, so an explicit sensitivity list stays as complete as it was).
    """
    drivers = _drivers(design, module, output)
    if len(drivers) != 1:
        return f"{output} is written in {len(drivers)} places"
    kind, node = drivers[0]
    syntax = design.syntax
    width = f"[{bits - 1}:0] " if bits > 1 else ""
    if kind in ("assign", "decl"):
        if node.start is None or node.end is None or not syntax.clean(node):
            return f"the driver of {output} comes from a macro"
        statement = next(
            a for a in syntax.ancestors(node) if a.kind in ("ContinuousAssign", "NetDeclaration")
        )
        assert statement.start is not None
        indent = design.indent_of(statement)
        lines = "".join(f"wire {width}{n} = {e};\n{indent}" for n, e in nodes)
        return [Edit(statement.start, statement.start, lines), Edit(node.start, node.end, root)]
    if kind != "block":
        return f"{output} is driven by something other than an assign or a combinational block"
    if not _level_sensitive(design, node):
        return f"{output} is written in a clocked block"
    body = [c for c in syntax.walk(node) if c.kind == "SequentialBlockStatement"]
    indent = design.indent_of(node)
    decls = "".join(f"reg {width}{n};\n{indent}" for n, _ in nodes)
    assert node.start is not None
    edits = [Edit(node.start, node.start, decls)]
    steps = [f"{n} = {e};" for n, e in nodes] + [f"{output} = {root};"]
    whole = _statement_of(design, node)
    if (
        whole is not None
        and whole.start is not None
        and whole.end is not None
        and _written_names(design, node) == {output}
        and syntax.clean(whole)
    ):  # the block computes only this signal: its new body replaces the old one
        new = steps[0] if len(steps) == 1 else "begin " + " ".join(steps) + " end"
        edits.append(Edit(whole.start, whole.end, new))
        return edits
    outer = body[0] if body and _direct_body(design, node, body[0]) else None
    if outer is not None:
        end = [c for c in syntax.children(outer) if c.kind == "Token:EndKeyword"][-1]
        assert end.start is not None
        inner = design.indent_of(end) + "  "
        line_start = design.line_start(end.start)
        if design.text[line_start : end.start].strip():
            edits.append(Edit(end.start, end.start, " ".join(steps) + " "))
        else:
            edits.append(Edit(line_start, line_start, "".join(f"{inner}{s}\n" for s in steps)))
        return edits
    tail = _statement_of(design, node)
    if tail is None or tail.start is None or tail.end is None:
        return f"the block driving {output} has no statement the rule can extend"
    edits.append(Edit(tail.start, tail.start, "begin "))
    edits.append(Edit(tail.end, tail.end, " " + " ".join(steps) + " end"))
    return edits


def _statement_of(design: Design, block: Node) -> Node | None:
    """The statement an always block runs (after its event control, if any)."""
    syntax = design.syntax
    inner = [c for c in syntax.children(block) if not c.is_token]
    if not inner:
        return None
    statement = inner[-1]
    if statement.kind == "TimingControlStatement":
        parts = [c for c in syntax.children(statement) if not c.is_token]
        return parts[-1] if len(parts) > 1 else None
    return statement


def _direct_body(design: Design, block: Node, seq: Node) -> bool:
    return _statement_of(design, block) is seq
