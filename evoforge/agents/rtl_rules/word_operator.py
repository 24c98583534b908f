"""Word operators for arithmetic built bit by bit: a ripple of full-adder instances, a hand-written
carry-lookahead tree, a shift-and-add loop, a ladder of 2:1 muxes — when a module's outputs are a
word-level function of its input words, one operator says it and synthesis picks the architecture.

The site is found by what the logic computes, not how it is written: the module is flattened
(:func:`~evoforge.tools.yosys_netlist.flat_netlist`), and for each output word (with an optional
one-bit carry/borrow output above it) and each pair of input words (with an optional one-bit carry
in) the rule tests ``a + b (+ c)``, ``a - b``, ``a * b``, ``a << b`` and ``a >> b`` on random and
corner inputs with the exact netlist evaluator. A hypothesis that survives is then **proven** by
Yosys's SAT solver on a miter of the module and the operator (:func:`~evoforge.tools.yosys_netlist.prove`)
— a proof, not a test: the rule proposes nothing it could not prove.

The patch deletes the items that only computed those outputs (instances, assigns and blocks whose
every written name is an output being replaced or an internal name nothing else reads — found by
a fixpoint over the module's items) and adds one ``assign {cout, sum} = a + b + cin;`` (``always @*``
for an output declared as a variable). The declarations stay; nothing else changes. Equivalence is
what the SAT proof established for the outputs; the deleted items drove nothing else (by the
fixpoint), so every other signal keeps its driver and value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.netlist_eval import Evaluator, Unsupported, assign
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite
from evoforge.errors import EvoforgeError
from evoforge.tools.sv_syntax import Node
from evoforge.tools.yosys_netlist import ModuleNetlist, flat_netlist, prove

NAME = "word_operator"
TRIALS = 48
MAX_PRODUCT_BITS = 16  # a multiplier proof beyond 8×8 takes the SAT solver too long
PROOF_TIMEOUT_S = 300.0
_ITEMS = ("ContinuousAssign", "HierarchyInstantiation", "AlwaysBlock", "AlwaysCombBlock")
_KIND_NAMES = {
    "ContinuousAssign": "assign",
    "HierarchyInstantiation": "instance",
    "AlwaysBlock": "always",
    "AlwaysCombBlock": "always_comb",
}


@dataclass(frozen=True)
class _Word:
    name: str
    width: int


@dataclass(frozen=True)
class Hypothesis:
    outputs: tuple[_Word, ...]  # most significant first (the carry above the sum)
    op: str  # "+", "-", "*", "<<", ">>"
    operands: tuple[str, ...]  # input names; a third one for + is a carry in

    @property
    def width(self) -> int:
        return sum(o.width for o in self.outputs)

    @property
    def text(self) -> str:
        """The operator expression, e.g. ``a + b + cin``."""
        return f" {self.op} ".join(self.operands)

    def function(self, values: dict[str, int]) -> int:
        x = [values[n] for n in self.operands]
        if self.op == "+":
            return sum(x)
        if self.op == "-":
            return x[0] - x[1]
        if self.op == "*":
            return x[0] * x[1]
        if self.op == "<<":
            return x[0] << x[1]
        return x[0] >> x[1]


def _hypotheses(inputs: list[_Word], outputs: list[_Word]) -> list[Hypothesis]:
    words = [w for w in inputs if w.width >= 2]
    bits = [w for w in inputs if w.width == 1]
    out: list[Hypothesis] = []
    targets: list[tuple[_Word, ...]] = []
    for o in outputs:
        if o.width < 2:
            continue
        targets.append((o,))
        targets.extend((c, o) for c in outputs if c.width == 1)
    for target in targets:
        for i, a in enumerate(words):
            for b in words[i:]:
                out.append(Hypothesis(target, "+", (a.name, b.name)))
                out.extend(Hypothesis(target, "+", (a.name, b.name, c.name)) for c in bits)
                if a.width + b.width <= MAX_PRODUCT_BITS:
                    out.append(Hypothesis(target, "*", (a.name, b.name)))
                pairs = [(a, b)] if a == b else [(a, b), (b, a)]
                out.extend(Hypothesis(target, "-", (x.name, y.name)) for x, y in pairs)
            for s in words + bits:
                if s is a or s.width > 7:
                    continue
                out.append(Hypothesis(target, "<<", (a.name, s.name)))
                out.append(Hypothesis(target, ">>", (a.name, s.name)))
    return out


def _ports(module: ModuleNetlist, direction: str) -> list[_Word]:
    return [
        _Word(name, len(module.nets[name].bits))
        for name, d in module.ports.items()
        if d == direction and not module.nets[name].signed
    ]


def _survives(
    module: ModuleNetlist, evaluator: Evaluator, hyp: Hypothesis, trials: list[dict[str, int]]
) -> bool:
    mask = (1 << hyp.width) - 1
    for values in trials:
        given: dict[int, int | None] = {}
        for name, value in values.items():
            assign(given, module.nets[name].bits, value)
        result = evaluator.run(given)
        got = 0
        shift = 0
        for word in reversed(hyp.outputs):
            found = evaluator.word(result, module.nets[word.name].bits)
            if found is None:
                return False
            got |= found << shift
            shift += word.width
        if got != hyp.function(values) & mask:
            return False
    return True


def _trials(inputs: list[_Word], rng: random.Random) -> list[dict[str, int]]:
    out = []
    for k in range(TRIALS):
        values = {}
        for w in inputs:
            top = (1 << w.width) - 1
            values[w.name] = (0, top, 1, top >> 1)[k] if k < 4 else rng.randrange(top + 1)
        out.append(values)
    return out


def _check_text(top: str, module: ModuleNetlist, hyp: Hypothesis) -> str:
    inputs = [(n, len(module.nets[n].bits)) for n, d in module.ports.items() if d == "input"]
    decls = ", ".join(f"input [{w - 1}:0] {n}" for n, w in inputs)
    conns = [f".{n}({n})" for n, _ in inputs]
    wires = []
    for word in hyp.outputs:
        wires.append(f"  wire [{word.width - 1}:0] evo_got_{word.name};")
        conns.append(f".{word.name}(evo_got_{word.name})")
    got = "{" + ", ".join(f"evo_got_{w.name}" for w in hyp.outputs) + "}"
    return (
        f"module evo_word_check ({decls}, output ok);\n"
        + "\n".join(wires)
        + f"\n  wire [{hyp.width - 1}:0] evo_expect = {hyp.text};\n"
        f"  {top} evo_dut ({', '.join(conns)});\n"
        f"  assign ok = {got} == evo_expect;\nendmodule\n"
    )


# ---------------------------------------------------------------------------------------------
# The patch


def _writes_reads(
    design: Design, item: Node, directions: dict[str, dict[str, str]]
) -> tuple[set[str], set[str]]:
    syntax = design.syntax
    writes: set[str] = set()
    reads: set[str] = set()

    def ids(node: Node) -> set[str]:
        return {n.value for n in syntax.walk(node) if n.kind == "Token:Identifier"}

    if item.kind == "HierarchyInstantiation":
        kind = syntax.name(item)
        ports = directions.get(kind, {})
        order = list(ports)
        for instance in syntax.of_kind("HierarchicalInstance", within=item):
            connections = [
                c for c in syntax.walk(instance) if c.kind in ("NamedPortConnection", "OrderedPortConnection")
            ]
            for k, conn in enumerate(connections):
                exprs = [c for c in syntax.children(conn) if not c.is_token]
                if conn.kind == "NamedPortConnection":
                    port = next((c.value for c in syntax.children(conn) if c.kind == "Token:Identifier"), "")
                else:
                    port = order[k] if k < len(order) else ""
                names: set[str] = set()
                for e in exprs:
                    names |= ids(e)
                if ports.get(port) == "input":
                    reads |= names
                else:
                    writes |= names
        return writes, reads
    for node in syntax.walk(item):
        if node.kind in ("AssignmentExpression", "NonblockingAssignmentExpression"):
            parts = [c for c in syntax.children(node) if not c.is_token]
            writes |= ids(parts[0])
            reads |= ids(parts[-1])
        elif node.kind in ("IdentifierName", "IdentifierSelectName") and not any(
            a.kind in ("AssignmentExpression", "NonblockingAssignmentExpression")
            for a in syntax.ancestors(node)
        ):
            reads |= ids(node)
    return writes, reads


def _removal(
    design: Design,
    module_node: Node,
    module: ModuleNetlist,
    replaced: set[str],
    directions: dict[str, dict[str, str]],
) -> list[Node] | str:
    """The items to delete so that ``replaced`` can be driven anew (or why that is not possible).

    Start from the items that write a replaced output; add, until nothing changes, every item whose
    written names nothing kept reads and no port exposes. A deleted item may write nothing that a
    kept item reads or that is another port.
    """
    syntax = design.syntax
    items = [c for c in syntax.children(module_node) if not c.is_token and c.kind != "ModuleHeader"]
    facts: dict[int, tuple[set[str], set[str]]] = {}
    for item in items:
        if item.kind in _ITEMS:
            facts[item.index] = _writes_reads(design, item, directions)
        else:  # declarations, generate blocks, initial blocks …: kept, and read what they mention
            names = {n.value for n in syntax.walk(item) if n.kind == "Token:Identifier"}
            declared = {syntax.name(d) for d in syntax.of_kind("Declarator", within=item)}
            facts[item.index] = (set(), names - declared if item.kind.endswith("Declaration") else names)
    removable = {i for i, item in enumerate(items) if item.kind in _ITEMS}
    index_of = {item.index: item for item in items}
    ports = set(module.ports)
    removed = {i for i, (w, _) in facts.items() if w & replaced}
    if any(index_of[i].kind not in _ITEMS for i in removed):
        return "they are driven by a declaration"
    del removable
    while True:
        for i in removed:
            others = set().union(*(facts[j][1] for j in facts if j not in removed))
            clash = facts[i][0] & ((others | ports) - replaced)
            if clash:
                listed = ", ".join(sorted(clash))
                return f"the logic that computes them also computes {listed}, which is used elsewhere"
        more = set()
        for i, (writes, _) in facts.items():
            if i in removed or not writes or index_of[i].kind not in _ITEMS:
                continue
            others = set().union(*(facts[j][1] for j in facts if j not in removed and j != i))
            if not writes & (others | ports):
                more.add(i)
        if not more:
            break
        removed |= more
    if any(not syntax.clean(index_of[i]) for i in removed):
        return "the logic comes from a macro"
    return [index_of[i] for i in sorted(removed)]


def _delete(design: Design, node: Node) -> Edit:
    assert node.start is not None and node.end is not None
    start, end = node.start, node.end
    line_start = design.line_start(start)
    nl = design.text.find("\n", end)
    line_end = len(design.text) if nl < 0 else nl + 1
    if not design.text[line_start:start].strip() and not design.text[end:line_end].strip():
        return Edit(line_start, line_end, "")
    return Edit(start, end, "")


def _is_variable(design: Design, module_node: Node, name: str) -> bool:
    syntax = design.syntax
    for declarator in syntax.of_kind("Declarator", within=module_node):
        if syntax.name(declarator) != name:
            continue
        parent = syntax.parent(declarator)
        holder = parent
        if parent is not None and parent.kind in ("PortDeclaration", "ImplicitAnsiPort"):
            holder = next((c for c in syntax.children(parent) if c.kind == "VariablePortHeader"), parent)
        if holder is not None and any(c.kind in ("RegType", "LogicType") for c in syntax.children(holder)):
            return True
        if parent is not None and parent.kind == "DataDeclaration":
            return True
    return False


class WordOperator:
    name = NAME
    looks_for = "outputs that are a word-level +, -, *, << or >> of input words, built bit by bit"

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        views = design.views()
        if isinstance(views, str):
            decline(f"no netlist or syntax tree: {views}")
            return []
        netlist, syntax = views
        used = {c.type for m in netlist.modules.values() for c in m.cells}
        directions = {name: dict(m.ports) for name, m in netlist.modules.items()}
        sites: list[TextSite] = []
        for name, node in syntax.modules().items():
            if name in used or name not in netlist.modules:
                continue  # only the design's tops: a submodule is rewritten where it is used
            try:
                flat = flat_netlist(design.text, name)
                evaluator = Evaluator(flat)
            except (EvoforgeError, Unsupported):
                continue
            site = self._site(design, name, netlist.modules[name], node, flat, evaluator, directions, rng)
            if site is not None:
                sites.append(site)
        return sites

    def _site(
        self,
        design: Design,
        name: str,
        module: ModuleNetlist,
        node: Node,
        flat: ModuleNetlist,
        evaluator: Evaluator,
        directions: dict[str, dict[str, str]],
        rng: random.Random,
    ) -> TextSite | None:
        inputs, outputs = _ports(flat, "input"), _ports(flat, "output")
        if not inputs or not outputs or len(inputs) > 8:
            return None
        if not any(c.type in ("$mux", "$pmux", "$and", "$or", "$xor", "$add", "$not") for c in flat.cells):
            return None
        trials = _trials(inputs, random.Random(rng.random()))
        covered: set[str] = set()
        for hyp in sorted(_hypotheses(inputs, outputs), key=lambda h: -h.width):
            if {o.name for o in hyp.outputs} & covered:
                continue
            if not _survives(flat, evaluator, hyp, trials):
                continue
            if self._already(module, hyp):
                covered |= {o.name for o in hyp.outputs}
                continue
            verdict = prove(design.text, _check_text(name, flat, hyp), "evo_word_check", PROOF_TIMEOUT_S)
            if verdict is not True:
                decline(f"{hyp.text} matched on {TRIALS} inputs but was not proven ({verdict})")
                continue
            replaced = {o.name for o in hyp.outputs}
            removal = _removal(design, node, module, replaced, directions)
            if isinstance(removal, str):
                decline(f"{' and '.join(sorted(replaced))} = {hyp.text}, but {removal}")
                continue
            if not removal:
                continue
            target = (
                hyp.outputs[0].name
                if len(hyp.outputs) == 1
                else "{" + ", ".join(o.name for o in hyp.outputs) + "}"
            )
            variable = any(_is_variable(design, node, o.name) for o in hyp.outputs)
            statement = f"always @* {target} = {hyp.text};" if variable else f"assign {target} = {hyp.text};"
            edits = [_delete(design, item) for item in removal]
            edits.append(design.before_endmodule(node, [statement]))
            kinds = sorted({_KIND_NAMES.get(i.kind, i.kind) for i in removal})
            note = (
                f"{target} = {hyp.text} (proven by SAT): replaces the {len(removal)} "
                f"{'/'.join(kinds)} item(s) that built it bit by bit"
            )
            return TextSite(NAME, name, note, tuple(sorted(replaced)), tuple(edits), key=f"{name}:{target}")
        return None

    @staticmethod
    def _already(module: ModuleNetlist, hyp: Hypothesis) -> bool:
        """The module already computes these outputs with one word-level operator cell."""
        ops = {"+": "$add", "-": "$sub", "*": "$mul", "<<": "$shl", ">>": "$shr"}
        return any(c.type == ops[hyp.op] for c in module.cells)


RULE = WordOperator()
