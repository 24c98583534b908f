"""Two-level minimisation of small combinational blocks found on the word-level netlist.

A *site* is one written combinational construct — a continuous ``assign``, an ``always_comb``
block or an ``always @*`` block — whose targets are plain signals (no part-selects) driven by that
construct alone, and whose logic cone reaches at most ``MAX_LEAVES`` leaf bits (module inputs and
register outputs; the cone runs through other named wires). Spelling does not matter: a case table
with parameter labels, an if chain, ternaries or a generate loop all become the same cells after
``proc; opt_clean``. The rule evaluates the cone's cells on every assignment of the leaves
(:class:`~evoforge.agents.rtl_rules.netlist_eval.Evaluator`, Yosys's cell semantics), finds each
target bit's prime implicants (Quine–McCluskey) and a cover of its ones by them, and replaces the
construct with one that assigns each target the sum of products (or the complement of the
complement's, whichever has fewer literals; an XOR/XNOR of leaves when the table is a parity),
written in the leaves' own names.

Why the result equals the original: each target bit is a Boolean function of the leaves only (the
cone is combinational — the evaluator refuses loops and latches — and stops at inputs and register
outputs, whose names read the same values in a continuous assignment); the table is exact for all
2^n leaf values; a cover of the ones by implicants (cubes with no zero in them) is one on exactly
the ones. The rule declines a target whose table has an x entry (an x constant, an overlapping
``$pmux`` select): choosing a value for it would change what is compared; and a target that is
constant (an ``always @*`` with nothing to read would never run in simulation). Explicit
sensitivity lists are left alone (an incomplete one simulates differently from its synthesis).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.netlist_eval import Evaluator, Unsupported
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, module_pairs
from evoforge.tools.sv_syntax import Node, SyntaxTree
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist

NAME = "logic_minimise"
MAX_LEAVES = 8
MAX_TARGET_BITS = 8
MAX_TERMS = 24  # per target bit: a larger cover is not worth writing out
_ASSIGNS = ("AssignmentExpression", "NonblockingAssignmentExpression")
_BLOCKS = ("ContinuousAssign", "AlwaysCombBlock", "AlwaysBlock")

Cube = tuple[int, int]  # (mask of the leaves it fixes, their values)


@dataclass(frozen=True)
class _Construct:
    node: Node
    kind: str  # "assign" / "always_comb" / "always"
    targets: tuple[str, ...]


def _constructs(tree: SyntaxTree, module: Node) -> tuple[list[_Construct], dict[str, int]]:
    """Combinational constructs with plain targets, and per name how many constructs write it."""
    found: list[_Construct] = []
    writers: dict[str, int] = {}
    for node in tree.of_kind(*_BLOCKS, "AlwaysFFBlock", "AlwaysLatchBlock", "InitialBlock", within=module):
        names: list[str] = []
        plain = True
        for assign in tree.of_kind(*_ASSIGNS, within=node):
            lhs = next((c for c in tree.children(assign) if not c.is_token), None)
            text = tree.source(lhs) if lhs is not None else None
            if lhs is None or lhs.kind != "IdentifierName" or text is None:
                plain = False
                if text is not None:
                    names.append(text.split("[", 1)[0].strip())
                continue
            names.append(text.strip())
        for name in set(names):
            writers[name] = writers.get(name, 0) + 1
        if node.kind not in _BLOCKS or not plain or not names or not tree.clean(node):
            continue
        if node.kind == "AlwaysBlock":
            timing = tree.of_kind("ImplicitEventControl", "EventControlWithExpression", within=node)
            if not timing or timing[0].kind != "ImplicitEventControl":
                continue  # clocked, or an explicit sensitivity list
            kind = "always"
        else:
            kind = "assign" if node.kind == "ContinuousAssign" else "always_comb"
        found.append(_Construct(node, kind, tuple(dict.fromkeys(names))))
    return found, writers


def _cone_leaves(evaluator: Evaluator, bits: tuple[Bit, ...]) -> set[int] | None:
    """Leaf bits (inputs, register outputs) of ``bits``' combinational cone; None past the limit."""
    driver = _drivers(evaluator)
    leaves: set[int] = set()
    seen: set[int] = set()
    stack = [b for b in bits if isinstance(b, int)]
    while stack:
        bit = stack.pop()
        if bit in seen:
            continue
        seen.add(bit)
        cell = driver.get(bit)
        if cell is None:  # a module input, a register output or an undriven bit
            leaves.add(bit)
            if len(leaves) > MAX_LEAVES:
                return None
            continue
        for port, inputs in cell.connections.items():
            if port != "Y":
                stack.extend(b for b in inputs if isinstance(b, int))
    return leaves


def _drivers(evaluator: Evaluator) -> dict[int, Cell]:
    """Bit → the combinational cell (as the evaluator models it) computing it."""
    return {b: c for c in evaluator.order for b in c.port("Y") if isinstance(b, int)}


def _primes(ones: list[int], n: int) -> list[Cube]:
    """Prime implicants of the function whose ones are ``ones`` (Quine–McCluskey)."""
    full = (1 << n) - 1
    current = {(full, m) for m in ones}
    primes: set[Cube] = set()
    while current:
        merged: set[Cube] = set()
        used: set[Cube] = set()
        items = sorted(current)
        for (m1, v1), (m2, v2) in itertools.combinations(items, 2):
            if m1 != m2:
                continue
            diff = v1 ^ v2
            if diff and diff & (diff - 1) == 0:
                merged.add((m1 & ~diff, v1 & ~diff))
                used.update({(m1, v1), (m2, v2)})
        primes.update(current - used)
        current = merged
    return sorted(primes, key=lambda c: (bin(c[0]).count("1"), c))


def _cover(ones: list[int], n: int) -> list[Cube]:
    """Implicants whose union is exactly ``ones``: essential primes first, then greedy."""
    primes = _primes(ones, n)
    left = set(ones)
    chosen: list[Cube] = []

    def covers(cube: Cube, m: int) -> bool:
        return m & cube[0] == cube[1]

    for m in ones:
        having = [p for p in primes if covers(p, m)]
        if len(having) == 1 and having[0] not in chosen:
            chosen.append(having[0])
    for p in chosen:
        left -= {m for m in left if covers(p, m)}
    while left:
        best = max(primes, key=lambda p: (sum(covers(p, m) for m in left), -bin(p[0]).count("1")))
        chosen.append(best)
        left -= {m for m in left if covers(best, m)}
    return chosen


def _parity(ones: set[int], n: int) -> tuple[int, int] | None:
    """(mask, flip) when the function is ``flip ^ parity(x & mask)`` on all 2^n rows."""
    flip = int(0 in ones)
    mask = sum(1 << i for i in range(n) if ((1 << i) in ones) != bool(flip))
    if bin(mask).count("1") < 2 and flip == 0:
        return None  # a single literal: the sum of products prints it as well
    for row in range(1 << n):
        if (row in ones) != bool(flip ^ (bin(row & mask).count("1") & 1)):
            return None
    return mask, flip


def _sop(cubes: list[Cube], names: list[str]) -> tuple[str, int]:
    """The sum of products in Verilog and its literal count."""
    terms = []
    literals = 0
    for mask, value in cubes:
        factors = []
        for i, name in enumerate(names):
            if mask >> i & 1:
                factors.append(name if value >> i & 1 else f"~{name}")
        literals += len(factors)
        terms.append(" & ".join(factors) if len(factors) <= 1 else "(" + " & ".join(factors) + ")")
    return " | ".join(terms), literals


def _function(ones: list[int], n: int, names: list[str]) -> str | None:
    """The smaller of the SOP of the function and the negated SOP of its complement."""
    zeros = sorted(set(range(1 << n)) - set(ones))
    if not ones or not zeros:
        return None
    parity = _parity(set(ones), n)
    if parity is not None:
        mask, flip = parity
        text = " ^ ".join(name for i, name in enumerate(names) if mask >> i & 1)
        if bin(mask).count("1") == 1:
            return f"~{text}" if flip else text
        return f"~({text})" if flip else f"({text})"
    direct = _cover(ones, n)
    inverse = _cover(zeros, n)
    if min(len(direct), len(inverse)) > MAX_TERMS:
        return None
    text, lits = _sop(direct, names)
    neg, neg_lits = _sop(inverse, names)
    if neg_lits < lits:
        return f"~({neg})"
    return f"({text})" if "|" in text else text


def text_sites(design: Design, rule: str) -> list[TextSite]:
    views = design.views()
    if isinstance(views, str):
        decline(f"no netlist or syntax tree: {views}")
        return []
    sites: list[TextSite] = []
    for module_name, module, node in module_pairs(design):
        constructs, writers = _constructs(design.syntax, node)
        if not constructs:
            continue
        try:
            evaluator = Evaluator(module)
        except Unsupported as exc:
            decline(f"module {module_name}: {exc}")
            continue
        for construct in constructs:
            site = _site(design, module_name, module, evaluator, construct, writers, rule)
            if site is not None:
                sites.append(site)
    return sites


def _site(
    design: Design,
    module_name: str,
    module: ModuleNetlist,
    evaluator: Evaluator,
    construct: _Construct,
    writers: dict[str, int],
    rule: str,
) -> TextSite | None:
    line = design.line_of(construct.node.start or 0)
    nets = []
    for name in construct.targets:
        net = module.nets.get(name)
        if net is None or writers.get(name, 0) != 1:
            return None
        if len(net.bits) > MAX_TARGET_BITS or net.signed or net.upto:
            return None
        nets.append(net)
    leaves: set[int] = set()
    for net in nets:
        found = _cone_leaves(evaluator, net.bits)
        if found is None:
            return None
        leaves |= found
    if not leaves:
        decline(f"line {line}: {', '.join(construct.targets)} is constant (nothing to minimise)")
        return None
    if len(leaves) > MAX_LEAVES:
        return None
    order = sorted(leaves)
    names = [module.text_of((bit,)) for bit in order]
    if any(n is None for n in names):
        decline(f"line {line}: a leaf of the block has no name in the source")
        return None
    table: dict[str, list[list[int]]] = {net.name: [[] for _ in net.bits] for net in nets}
    for row in range(1 << len(order)):
        given = {bit: (row >> i) & 1 for i, bit in enumerate(order)}
        values = evaluator.run(given)
        for net in nets:
            for k, bit in enumerate(net.bits):
                if isinstance(bit, str):
                    value = {"0": 0, "1": 1}.get(bit)
                else:
                    value = values.get(bit)
                if value is None:
                    decline(f"line {line}: {net.name} is x for some input (a value would have to be chosen)")
                    return None
                if value:
                    table[net.name][k].append(row)
    lines = []
    for net in nets:
        pieces = []
        for ones in table[net.name]:
            piece = _function(ones, len(order), [str(n) for n in names])
            if piece is None:
                decline(f"line {line}: a bit of {net.name} is constant or its cover too large")
                return None
            pieces.append(piece)
        expr = pieces[0] if len(pieces) == 1 else "{" + ", ".join(reversed(pieces)) + "}"
        lines.append((net.name, expr))
    if construct.kind == "assign":
        text = "\n".join(f"assign {n} = {e};" for n, e in lines)
    else:
        head = "always_comb" if construct.kind == "always_comb" else "always @*"
        body = " ".join(f"{n} = {e};" for n, e in lines)
        text = f"{head} {body}" if len(lines) == 1 else f"{head} begin {body} end"
    assert construct.node.start is not None and construct.node.end is not None
    old = design.text[construct.node.start : construct.node.end]
    if " ".join(old.split()) == " ".join(text.split()):
        return None
    note = (
        f"line {line}: the block driving {', '.join(construct.targets)} as a minimal sum of products "
        f"of {', '.join(str(n) for n in names)}"
    )
    return TextSite(
        rule,
        module_name,
        note,
        tuple(construct.targets) + tuple(str(n) for n in names),
        (Edit(construct.node.start, construct.node.end, text),),
        key=f"{module_name}:{construct.node.start}",
    )


class _Rule:
    name = NAME
    looks_for = (
        "a combinational assign / always_comb / always @* block whose targets depend on at most "
        f"{MAX_LEAVES} input or register bits"
    )

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        return text_sites(design, self.name)


RULE = _Rule()
