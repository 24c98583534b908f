"""Width reduction: a register narrower than declared, when its value is provably bounded or its high
bits provably never reach anything.

Sites are found on the word-level netlist, whatever the spelling (``if``/``case``/``?:`` next states,
enables, up or down counts, one process or several, ``always`` or ``always_ff``), for an unsigned
register R of W bits. Two analyses, each sufficient on its own:

* **Bounded value** (:func:`~evoforge.agents.rtl_rules.netlist_range.register_bound`): from the
  value a reset loads (asynchronous reset value, or the constant a synchronous reset selects, or an
  ``initial`` value), interval analysis of the next-state cone with branch conditions proves
  R ≤ M in every reachable state, so k = bits(M) < W bits hold it.
* **Unused high bits**: bits k..W-1 of R reach nothing but R's own bits k..W-1 (an output bit i of
  ``+ - * & | ^ ~`` and of a select's data depends only on operand bits ≤ i, so the low bits evolve
  on their own; any other reader — an output, another register, a compare, a select — of a high bit
  keeps it).

The patch renames R's register and re-declares R as a wire of its old type that zero-extends it::

    reg [6:0] cnt;        →    reg [5:0] cnt_q; wire [6:0] cnt = cnt_q;
    cnt <= cnt + 1;       →    cnt_q <= cnt + 1;

Only the declaration and the left-hand sides of R's (nonblocking, whole-register) assignments change;
every read keeps its text and now reads the wire, which has R's old width and signedness, so every
expression keeps its width. Why the values agree: in the bounded case every value R takes after
reset is ≤ M < 2^k, so it survives truncation to k bits and the wire's zero extension gives it back;
in the high-bits case the low k bits of each next value depend only on the low k bits (and on
signals other than R), so ``cnt_q`` equals R's low bits in every cycle, and nothing reads the high
bits, which are now 0. Like the cascade, this assumes the reset is applied before outputs are compared.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.netlist_eval import Register, registers
from evoforge.agents.rtl_rules.netlist_range import register_bound
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, fresh_name, module_pairs
from evoforge.tools.sv_syntax import Node
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist

NAME = "width_reduction"
_LOW_CLOSED = frozenset({"$add", "$sub", "$mul", "$and", "$or", "$xor", "$xnor", "$not", "$neg", "$pos"})
_SELECTS = frozenset({"$mux", "$pmux"})
_ASSIGNMENTS = ("NonblockingAssignmentExpression", "AssignmentExpression")
_COMPOUND = (
    "AddAssignmentExpression",
    "SubtractAssignmentExpression",
    "MultiplyAssignmentExpression",
    "DivideAssignmentExpression",
    "ModAssignmentExpression",
    "AndAssignmentExpression",
    "OrAssignmentExpression",
    "XorAssignmentExpression",
    "LogicalLeftShiftAssignmentExpression",
    "LogicalRightShiftAssignmentExpression",
    "ArithmeticLeftShiftAssignmentExpression",
    "ArithmeticRightShiftAssignmentExpression",
    "PostincrementExpression",
    "PreincrementExpression",
    "PostdecrementExpression",
    "PredecrementExpression",
)


# ---------------------------------------------------------------------------------------------
# Analyses


def _input_bit(module: ModuleNetlist, bit: Bit) -> tuple[int, bool] | None:
    """(input bit, active high) when ``bit`` is an input port bit or its negation."""
    inputs = {b for p, d in module.ports.items() if d == "input" for b in module.nets[p].bits}
    polarity = True
    for _ in range(4):
        if bit in inputs:
            return bit, polarity  # type: ignore[return-value]
        found = module.driver(bit)
        if found is None or found[0].type not in ("$not", "$logic_not") or len(found[0].port("A")) != 1:
            return None
        bit = found[0].port("A")[0]
        polarity = not polarity
    return None


def _const(word: tuple[Bit, ...]) -> int | None:
    if any(not isinstance(b, str) or b not in "01" for b in word):
        return None
    return sum(1 << i for i, b in enumerate(word) if b == "1")


def start_values(module: ModuleNetlist, reg: Register) -> list[int]:
    """Values the register can hold before its first ordinary update: the reset value (asynchronous,
    or the constant a synchronous reset selects at the head of the next state) and an initial value."""
    net = module.net_with_bits(reg.q)
    out: list[int] = []
    if reg.reset_value is not None:
        out.append(reg.reset_value)
    else:
        found = module.driver(reg.d[0]) if isinstance(reg.d[0], int) else None
        cell = found[0] if found is not None else None
        if cell is not None and cell.type == "$mux" and cell.port("Y") == reg.d:
            sel = _input_bit(module, cell.port("S")[0])
            if sel is not None:
                value = _const(cell.port("B") if sel[1] else cell.port("A"))
                if value is not None:
                    out.append(value)
    if net is not None and net.init and set(net.init) <= {"0", "1"}:
        out.append(int(net.init, 2))
    return out


def _consumers(module: ModuleNetlist) -> dict[int, list[tuple[Cell, str, int]]]:
    """For each bit: the cells, ports and bit positions that read it."""
    out: dict[int, list[tuple[Cell, str, int]]] = {}
    for cell in module.cells:
        for port, bits in cell.connections.items():
            if port in ("Y", "Q", "X", "CO"):
                continue
            for i, bit in enumerate(bits):
                if isinstance(bit, int):
                    out.setdefault(bit, []).append((cell, port, i))
    return out


def _reach(
    module: ModuleNetlist, reg: Register, bit: int, consumers: dict[int, list[tuple[Cell, str, int]]]
) -> set[int] | None:
    """The indexes of ``reg``'s D bits that ``bit`` reaches, or None when it reaches anything else."""
    outputs = {b for p, d in module.ports.items() if d != "input" for b in module.nets[p].bits}
    d_index = {b: i for i, b in enumerate(reg.d) if isinstance(b, int)}
    hits: set[int] = set()
    todo = [bit]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in outputs:
            return None
        for cell, port, i in consumers.get(current, ()):
            if cell is reg.cell:
                if port != "D":
                    return None
                hits.add(i)
                continue
            out = cell.port("Y")
            if not out:
                return None  # a register, a memory port …
            if cell.type in _LOW_CLOSED or (cell.type in _SELECTS and port in ("A", "B")):
                if cell.type in _SELECTS and port == "B" and cell.type == "$pmux":
                    i %= cell.param("WIDTH")
                todo.extend(b for b in out[i:] if isinstance(b, int))
            else:
                todo.extend(b for b in out if isinstance(b, int))
        if current in d_index:
            hits.add(d_index[current])
    return hits


def live_bits(module: ModuleNetlist, reg: Register) -> int:
    """The fewest low bits of ``reg`` that carry everything the design reads of it."""
    consumers = _consumers(module)
    width = len(reg.q)
    reach: list[set[int] | None] = []
    for bit in reg.q:
        reach.append(_reach(module, reg, bit, consumers) if isinstance(bit, int) else None)
    for k in range(1, width):
        if all(r is not None and min(r, default=k) >= k for r in reach[k:]):
            return k
    return width


# ---------------------------------------------------------------------------------------------
# The patch


@dataclass(frozen=True)
class _Declaration:
    declarator: Node
    statement: Node  # DataDeclaration / PortDeclaration / ImplicitAnsiPort
    type_node: Node  # RegType / LogicType
    dimension: str  # the packed range as written, e.g. "[6:0]"


def _declaration(design: Design, module: Node, name: str) -> _Declaration | str:
    syntax = design.syntax
    found: list[_Declaration] = []
    for declarator in syntax.of_kind("Declarator", within=module):
        if syntax.name(declarator) != name:
            continue
        parent = syntax.parent(declarator)
        if parent is None or any(
            a.kind in ("FunctionDeclaration", "TaskDeclaration") for a in syntax.ancestors(declarator)
        ):
            continue
        if parent.kind == "DataDeclaration":
            type_node = next((c for c in syntax.children(parent) if c.kind.endswith("Type")), None)
        elif parent.kind in ("PortDeclaration", "ImplicitAnsiPort"):
            header = next((c for c in syntax.children(parent) if c.kind == "VariablePortHeader"), None)
            type_node = (
                next((c for c in syntax.children(header) if c.kind.endswith("Type")), None)
                if header
                else None
            )
            if type_node is not None and type_node.kind == "ImplicitType":
                continue  # `output [3:0] q;` with the variable declared elsewhere
        else:
            continue
        if type_node is None or type_node.kind not in ("RegType", "LogicType"):
            return f"{name} is declared with a type the rule does not rewrite"
        dims = [c for c in syntax.children(type_node) if c.kind == "VariableDimension"]
        if len(dims) != 1 or any(c.kind == "Token:SignedKeyword" for c in syntax.children(type_node)):
            return f"{name} is not a plain unsigned vector"
        if any(c.kind == "VariableDimension" for c in syntax.children(declarator)):
            return f"{name} is an array"
        if not syntax.clean(parent):
            return f"the declaration of {name} comes from a macro"
        found.append(_Declaration(declarator, parent, type_node, syntax.source(dims[0]) or ""))
    if len(found) != 1:
        return f"{name} has {len(found)} variable declarations the rule can read"
    return found[0]


def _lvalues(design: Design, module: Node, name: str) -> list[Node] | str:
    """The identifier nodes of every assignment to ``name`` (whole-register only)."""
    syntax = design.syntax
    out: list[Node] = []
    for node in syntax.of_kind("IdentifierName", "IdentifierSelectName", within=module):
        if syntax.name(node) != name:
            continue
        parent = syntax.parent(node)
        if parent is None:
            continue
        first = next((c for c in syntax.children(parent) if not c.is_token), None)
        if parent.kind in _COMPOUND and first is node:
            return f"{name} is updated with a compound assignment"
        if parent.kind in ("ConcatenationExpression",) and any(
            a.kind in _ASSIGNMENTS for a in syntax.ancestors(node)
        ):
            assignment = next(a for a in syntax.ancestors(node) if a.kind in _ASSIGNMENTS)
            lhs = next(c for c in syntax.children(assignment) if not c.is_token)
            if lhs.start is not None and node.start is not None and lhs.start <= node.start < (lhs.end or 0):
                return f"{name} is assigned as part of a concatenation"
        if parent.kind not in _ASSIGNMENTS or first is not node:
            continue
        if node.kind == "IdentifierSelectName":
            return f"{name} is assigned bit by bit"
        if any(a.kind == "ContinuousAssign" for a in syntax.ancestors(node)):
            return f"{name} is driven by a continuous assignment"
        blocking = parent.kind == "AssignmentExpression"
        if blocking and not any(a.kind == "InitialBlock" for a in syntax.ancestors(node)):
            return f"{name} is assigned with a blocking assignment (a later read would see the new value)"
        out.append(node)
    return out or f"no assignment to {name} found in the text"


def _patch(design: Design, module: Node, name: str, bits: int) -> list[Edit] | str:
    declaration = _declaration(design, module, name)
    if isinstance(declaration, str):
        return declaration
    lvalues = _lvalues(design, module, name)
    if isinstance(lvalues, str):
        return lvalues
    syntax = design.syntax
    reg = fresh_name(design, f"{name}_q")
    edits = [Edit(n.start, n.end, reg) for n in lvalues if n.start is not None and n.end is not None]
    decl, stmt = declaration.declarator, declaration.statement
    keyword = syntax.source(next(c for c in syntax.children(declaration.type_node) if c.is_token)) or "reg"
    new_reg = f"{keyword} [{bits - 1}:0] {reg}"
    clause = next((c for c in syntax.children(decl) if c.kind == "EqualsValueClause"), None)
    if clause is not None:
        new_reg += " " + (syntax.source(clause) or "")
    assert stmt.start is not None and stmt.end is not None
    if stmt.kind in ("PortDeclaration", "ImplicitAnsiPort"):
        word = next(c for c in syntax.children(declaration.type_node) if c.is_token)
        assert word.start is not None and word.end is not None
        edits.append(Edit(word.start, word.end, "wire"))
        lines = [f"{new_reg};", f"assign {name} = {reg};"]
        if stmt.kind == "ImplicitAnsiPort":
            edits.append(design.after_header(module, lines))
        else:
            edits.append(_after_statement(design, stmt, lines))
        return edits
    declarators = [c for c in syntax.children(stmt) if c.kind == "Declarator"]
    wire = f"wire {declaration.dimension} {name} = {reg};"
    if len(declarators) == 1:
        start = declaration.type_node.start
        assert start is not None
        indent = design.indent_of(stmt)
        edits.append(Edit(start, stmt.end, f"{new_reg};\n{indent}{wire}"))
        return edits
    # several names in one declaration: take this one out, declare it on the next line
    tokens = syntax.children(stmt)
    index = tokens.index(decl)
    comma = tokens[index - 1] if index > 0 and tokens[index - 1].kind == "Token:Comma" else tokens[index + 1]
    start = min(comma.start or 0, decl.start or 0)
    end = max(comma.end or 0, decl.end or 0)
    edits.append(Edit(start, end, ""))
    edits.append(_after_statement(design, stmt, [f"{new_reg};", wire]))
    return edits


def _after_statement(design: Design, stmt: Node, lines: list[str]) -> Edit:
    assert stmt.end is not None
    indent = design.indent_of(stmt)
    return Edit(stmt.end, stmt.end, "".join(f"\n{indent}{line}" for line in lines))


class WidthReduction:
    name = NAME
    looks_for = "a register whose value is bounded (from reset) or whose high bits nothing reads"

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        sites: list[TextSite] = []
        for module_name, module, node in module_pairs(design):
            elements: dict[str, list[Register]] = {}
            for reg in registers(module):
                net = module.net_with_bits(reg.q)
                element = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_$]*)\[(\d+)\]", net.name) if net else None
                if element is not None:
                    elements.setdefault(element[1], []).append(reg)
                    continue
                site = self._site(design, module_name, module, node, reg)
                if site is not None:
                    sites.append(site)
            for memory, regs in sorted(elements.items()):
                site = self._memory(design, module_name, module, node, memory, regs)
                if site is not None:
                    sites.append(site)
        return sites

    def _memory(
        self,
        design: Design,
        module_name: str,
        module: ModuleNetlist,
        node: Node,
        memory: str,
        regs: list[Register],
    ) -> TextSite | None:
        """An array (kept as registers, one per word) whose words' high bits nothing reads."""
        width = len(regs[0].q)
        if width < 2 or any(len(r.q) != width for r in regs):
            return None
        bits = max(live_bits(module, r) for r in regs)
        if bits >= width:
            return None
        syntax = design.syntax
        found = [d for d in syntax.of_kind("Declarator", within=node) if syntax.name(d) == memory]
        decl = found[0] if len(found) == 1 else None
        parent = syntax.parent(decl) if decl is not None else None
        if decl is None or parent is None or parent.kind != "DataDeclaration":
            decline(f"the words of {memory} need only {bits} bits but its declaration is not one array")
            return None
        type_node = next((c for c in syntax.children(parent) if c.kind in ("RegType", "LogicType")), None)
        dims = [c for c in syntax.children(type_node) if c.kind == "VariableDimension"] if type_node else []
        declarators = [c for c in syntax.children(parent) if c.kind == "Declarator"]
        if len(dims) != 1 or len(declarators) != 1 or not syntax.clean(parent) or dims[0].start is None:
            decline(f"the words of {memory} need only {bits} bits but its declaration is not one plain array")
            return None
        assert dims[0].end is not None
        edit = Edit(dims[0].start, dims[0].end, f"[{bits - 1}:0]")
        note = (
            f"array {memory}: only the low {bits} bits of its words reach anything: "
            f"words narrowed from {width} to {bits} bits"
        )
        return TextSite(NAME, module_name, note, (memory,), (edit,), key=f"{module_name}.{memory}")

    def _site(
        self, design: Design, module_name: str, module: ModuleNetlist, node: Node, reg: Register
    ) -> TextSite | None:
        width = len(reg.q)
        nets = sorted(
            (n for n in module.nets.values() if not n.hidden and n.bits == reg.q),
            key=lambda n: (n.name in module.ports, n.name),
        )
        if width < 2 or not nets or any(n.signed for n in nets):
            return None
        bits, why = width, ""
        starts = start_values(module, reg)
        if starts:
            bound = register_bound(module, reg, min(starts))
            if bound is not None and max(starts) <= bound and max(1, bound.bit_length()) < bits:
                bits, why = max(1, bound.bit_length()), f"holds at most {bound} after reset"
        live = live_bits(module, reg)
        if live < bits:
            bits, why = live, f"only its low {live} bits reach anything"
        if bits >= width:
            return None
        problems = []
        for net in nets:
            edits = _patch(design, node, net.name, bits)
            if not isinstance(edits, str):
                break
            problems.append(edits)
        else:
            decline(f"{nets[0].name} could be {bits} bits ({why}) but {'; '.join(problems)}")
            return None
        note = f"register {net.name} {why}: narrowed from {width} to {bits} bits"
        return TextSite(NAME, module_name, note, (net.name,), tuple(edits), key=f"{module_name}.{net.name}")


RULE = WidthReduction()
