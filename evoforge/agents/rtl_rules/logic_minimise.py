"""Two-level minimisation of small logic functions found on the word-level netlist (x entries as don't-cares).

A *site* is one written construct — a continuous ``assign``, an ``always_comb`` / ``always @*``
block, or a clocked ``always`` / ``always_ff`` block (edges in its event list) — whose targets are
plain signals (no part-selects) written by that construct alone. For a combinational construct each
target bit's function is its value; for a clocked one each target must be a flip-flop (``$dff`` /
``$adff`` after ``proc``, one clock and reset for the block) and the function is its next state
(the register's D bit). Spelling does not matter: a case table with parameter labels, an if chain,
ternaries or a loop all become the same cells after ``proc; opt_clean`` (case tables of constants
become ROMs, read as tables). Per target bit the rule traces its cone bit by bit (a bitwise cell's
output bit reads only the same bit of its operands, a mux bit its two data bits and its select) back
to at most ``MAX_LEAVES`` leaf bits — module inputs and register outputs — evaluates the cone on
every leaf assignment (Yosys's cell semantics, :mod:`~evoforge.agents.rtl_rules.netlist_eval`),
finds its prime implicants (Quine–McCluskey) and a cover of its ones, and writes the construct again:
each target as the sum of products (or the negated sum of products of its complement, whichever has
fewer literals; an XOR/XNOR of leaves when the table is a parity), in the leaves' own names; a
clocked block keeps its event list verbatim and its asynchronous reset (``if (rst)`` / ``if (!rst)``
with the register's reset value).

Why the result equals the original: each target bit (or next-state bit) is a Boolean function of its
traced leaves only — the cone is combinational (the evaluator refuses loops and latches) and stops
at inputs and register outputs, whose names read the same values in the rewritten construct (a
combinational construct never names a leaf by one of its own targets, which Yosys may alias to it;
a clocked one reads its registers' present values by their names, as nonblocking writes do); bits
outside the traced cone cannot reach it, so the value given to them while tabulating does not
matter; the table is exact on all 2^n leaf values; and a cover of the ones by implicants (cubes with
no zero in them) is one on exactly the ones. The flip-flops keep their clock, edge, reset signal,
polarity and value, so the registers are the same.

*x entries are don't-cares.* Where the source itself makes a bit x — an x constant (``default:
y = 'x``, a case table's x word) reaching the target through select data inputs only (``?:``,
``case``, ROM tables), an out-of-range index, a division by zero — the original does not say what
the bit is, and evoforge's verifier reads it so (its miter is built ``-ignore_gold_x``, its
simulations compare only the original's defined bits; IEEE 1364.1 §5.2.2 lets synthesis choose any
value for an assigned x). Those rows join the implicants as don't-cares (:mod:`two_level`): the
rewrite equals the original on every row where the original is defined. An x that went through an
operator or a select's control is *not* used: the evaluator widens those to x where Verilog computes
a value (``0 & x`` is 0), and an overlapping ``$pmux`` select is Yosys's model, not the source's —
such a bit is declined. The rule also declines a constant ``always @*`` (it would never run in
simulation); registers that are not plain flip-flops (enables after ``opt``, latches, set/reset
flops) or do not share a clock and reset; a clocked block with blocking writes (the rewrite writes
nonblocking, which another block reading the registers at the same edge would see differently); and
explicit sensitivity lists without edges (an incomplete one simulates differently from its synthesis).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.netlist_eval import Evaluator, Unsupported, Value, _evaluate, cone
from evoforge.agents.rtl_rules.netlist_reach import Reach, reachable_codes, unreachable_rows
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, module_pairs
from evoforge.agents.rtl_rules.two_level import function_text
from evoforge.tools.sv_syntax import Node, SyntaxTree
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist, Net

NAME = "logic_minimise"
MAX_LEAVES = 8
MAX_TARGET_BITS = 1024
MAX_WORK = 6_000_000  # cell output bits evaluated per site, summed over its bits' tables (a few s)
MAX_TERMS = 24  # per target bit: a larger cover is not worth writing out
_ASSIGNS = ("AssignmentExpression", "NonblockingAssignmentExpression")
_BLOCKS = ("ContinuousAssign", "AlwaysCombBlock", "AlwaysBlock", "AlwaysFFBlock")


@dataclass(frozen=True)
class _Construct:
    node: Node
    kind: str  # "assign" / "always_comb" / "always"
    targets: tuple[str, ...]


def _constructs(tree: SyntaxTree, module: Node) -> tuple[list[_Construct], dict[str, int]]:
    """Combinational constructs with plain targets, and per name how many constructs write it."""
    found: list[_Construct] = []
    writers: dict[str, int] = {}
    for node in tree.of_kind(*_BLOCKS, "AlwaysLatchBlock", "InitialBlock", within=module):
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
        if node.kind in ("AlwaysBlock", "AlwaysFFBlock"):
            timing = tree.of_kind("ImplicitEventControl", "EventControlWithExpression", within=node)
            if not timing:
                continue
            edges = any(
                t.kind in ("Token:PosEdgeKeyword", "Token:NegEdgeKeyword") for t in tree.walk(timing[0])
            )
            if timing[0].kind == "ImplicitEventControl" and node.kind == "AlwaysBlock":
                kind = "always"
            elif edges and timing[0].kind != "ImplicitEventControl":
                if tree.of_kind("AssignmentExpression", within=node):
                    # blocking writes: another block may read the registers in the same time step
                    decline(f"line {_line(tree, node)}: the clocked block writes with blocking assignments")
                    continue
                kind = "clocked"  # its registers come from the netlist; no edge in the list: skipped
            else:
                continue  # an explicit list without edges (may be incomplete: it simulates differently)
        else:
            kind = "assign" if node.kind == "ContinuousAssign" else "always_comb"
        found.append(_Construct(node, kind, tuple(dict.fromkeys(names))))
    return found, writers


def _line(tree: SyntaxTree, node: Node) -> int:
    return tree.text.count("\n", 0, node.start or 0) + 1


def _cone(driver: dict[int, Cell], bit: Bit) -> tuple[list[int], set[str]] | None:
    """Leaf bits and cell names of ``bit``'s cone, following only the inputs each bit depends on."""
    return cone(driver, (bit,), inputs_of=_inputs_of, max_leaves=MAX_LEAVES)


_BITWISE = frozenset({"$and", "$or", "$xor", "$xnor", "$not"})


def _inputs_of(cell: Cell, index: int) -> tuple[Bit, ...]:
    """The input bits output bit ``index`` of ``cell`` depends on (all of them unless bitwise)."""
    if cell.type in ("$mux", "$bwmux"):
        select = cell.port("S")
        return (cell.port("A")[index], cell.port("B")[index]) + (
            select if cell.type == "$mux" else (select[index],)
        )
    if cell.type == "$pmux":
        width = cell.param("WIDTH")
        words = cell.port("B")
        return (cell.port("A")[index], *words[index::width], *cell.port("S"))
    if cell.type in _BITWISE and not cell.param("A_SIGNED") and not cell.param("B_SIGNED"):
        # unsigned operands are zero-extended: bit `index` reads bit `index` of each (or nothing)
        return tuple(cell.port(p)[index] for p in ("A", "B") if index < len(cell.port(p)))
    return tuple(b for port, bits in cell.connections.items() if port != "Y" for b in bits)


def _drivers(evaluator: Evaluator) -> dict[int, Cell]:
    """Bit → the combinational cell (as the evaluator models it) computing it."""
    return {b: c for c in evaluator.order for b in c.port("Y") if isinstance(b, int)}


#: select cells and their control ports: an x on a data input is passed on as it is (x = don't-care
#: stays exact), an x on a control port or on any other cell's operand is widened pessimistically
_SELECTS = {"$mux": "S", "$pmux": "S", "$bmux": "S", "$bwmux": "S", "$shiftx": "B"}


class _Opaque(Exception):
    """An x of the table is not one the source writes (see :func:`_table`)."""


def _table(
    evaluator: Evaluator, cells: set[str], leaves: list[int], bit: Bit
) -> tuple[list[int], list[int]] | None:
    """The rows (leaf values as an integer, leaf k at bit k) where ``bit`` is 1, and those where it is
    x; None when ``bit`` is an x constant. Raises :class:`_Opaque` when an x row may not be an x of
    the source: the x went through an operator or a select's control (the evaluator widens those to
    x where Verilog may compute a value, e.g. ``0 & x``), or a ``$pmux`` had several selects set."""
    if isinstance(bit, str):
        return None if bit not in "01" else ([] if bit == "0" else list(range(1 << len(leaves))), [])
    order = [c for c in evaluator.order if c.name in cells]
    ones: list[int] = []
    free: list[int] = []
    for row in range(1 << len(leaves)):
        values: dict[int, Value] = {b: (row >> i) & 1 for i, b in enumerate(leaves)}
        widened = False

        def fetch(bits: tuple[Bit, ...], values: dict[int, Value] = values) -> list[Value]:
            # a bit outside the traced cone does not reach `bit` (see _inputs_of): any value does
            return [values.get(b, 0) if isinstance(b, int) else {"0": 0, "1": 1}.get(b) for b in bits]

        for cell in order:
            control = _SELECTS.get(cell.type)
            for port, bits in cell.connections.items():
                if port != "Y" and (control is None or port == control) and None in fetch(bits):
                    widened = True
            if cell.type == "$pmux" and sum(v or 0 for v in fetch(cell.port("S"))) > 1:
                widened = True
            for out, value in zip(cell.port("Y"), _evaluate(cell, fetch), strict=False):
                if isinstance(out, int):
                    values[out] = value
        value = values.get(bit)
        if value is None:
            if widened:
                raise _Opaque
            free.append(row)
        elif value:
            ones.append(row)
    return ones, free


def text_sites(design: Design, rule: str) -> list[TextSite]:
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
        reaches = reachable_codes(module, evaluator)
        for construct in constructs:
            site = _site(design, module_name, module, evaluator, construct, writers, rule, reaches)
            if site is not None:
                sites.append(site)
    return sites


_BIT = re.compile(r"^([A-Za-z_][A-Za-z0-9_$]*)\[(\d+)\]$")


def _concat(module: ModuleNetlist, pieces: list[str]) -> str:
    """``{pieces[-1], …, pieces[0]}`` with runs of adjacent bits of one signal as slices."""
    runs: list[tuple[str, int, int] | str] = []  # (name, hi, lo) or a piece, most significant first
    for piece in reversed(pieces):
        match = _BIT.match(piece)
        last = runs[-1] if runs else None
        if match and isinstance(last, tuple) and last[0] == match[1] and last[2] == int(match[2]) + 1:
            runs[-1] = (last[0], last[1], int(match[2]))
        elif match:
            runs.append((match[1], int(match[2]), int(match[2])))
        elif piece in ("1'b0", "1'b1") and isinstance(last, str) and re.fullmatch(r"\d+'b[01]+", last):
            runs[-1] = f"{int(last.split(chr(39))[0]) + 1}'b{last.split('b', 1)[1]}{piece[-1]}"
        else:
            runs.append(piece)
    texts = []
    for run in runs:
        if isinstance(run, str):
            texts.append(run)
            continue
        name, hi, lo = run
        net = module.nets.get(name)
        whole = net is not None and not net.upto and net.offset == lo and len(net.bits) == hi - lo + 1
        texts.append(name if whole else f"{name}[{hi}]" if hi == lo else f"{name}[{hi}:{lo}]")
    return texts[0] if len(texts) == 1 else "{" + ", ".join(texts) + "}"


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _leaf_name(module: ModuleNetlist, bit: int, targets: tuple[str, ...]) -> str | None:
    """A source name for ``bit`` that is not one of the construct's own targets.

    Yosys identifies aliased signals (``assign y = r[7:5]`` makes y's bits r's bits); a target must
    not be read as its own leaf — that would be a combinational loop, or a read of a value the
    construct is still writing.
    """
    candidates = []
    for net in module.nets.values():
        if net.hidden or net.upto or net.name in targets or not _IDENT.fullmatch(net.name):
            continue
        if bit in net.bits:
            index = net.bits.index(bit)
            text = net.name if len(net.bits) == 1 else f"{net.name}[{net.offset + index}]"
            candidates.append((net.name not in module.ports, net.name, text))
    return min(candidates)[2] if candidates else None


def _registers(module: ModuleNetlist, nets: list[Net], line: int) -> dict[int, tuple[Cell, int]] | None:
    """Q bit → (register cell, index) for every bit of ``nets``; one clock and reset for all."""
    found: dict[int, tuple[Cell, int]] = {}
    shared: set[tuple[object, ...]] = set()
    for net in nets:
        for bit in net.bits:
            driver = module.driver(bit)
            if (
                not isinstance(bit, int)
                or driver is None
                or driver[0].type not in ("$dff", "$adff")
                or driver[1] != "Q"
            ):
                decline(f"line {line}: {net.name} is not a plain register (its bits are not all flip-flops)")
                return None
            cell = driver[0]
            found[bit] = (cell, cell.port("Q").index(bit))
            shared.add(
                (cell.type, cell.port("CLK"), cell.param("CLK_POLARITY"), cell.port("ARST"))
                + ((cell.param("ARST_POLARITY"),) if cell.type == "$adff" else ())
            )
    if len(shared) != 1:
        decline(f"line {line}: the block's registers do not share one clock and reset")
        return None
    return found


def _reset_bit(cell: Cell, index: int) -> str | None:
    raw = cell.params.get("ARST_VALUE")
    if isinstance(raw, int):
        return str((raw >> index) & 1)
    text = str(raw)[::-1]
    return text[index] if index < len(text) and text[index] in "01" else None


def _site(
    design: Design,
    module_name: str,
    module: ModuleNetlist,
    evaluator: Evaluator,
    construct: _Construct,
    writers: dict[str, int],
    rule: str,
    reaches: list[Reach],
) -> TextSite | None:
    line = design.line_of(construct.node.start or 0)
    nets: list[Net] = []
    for name in construct.targets:
        net = module.nets.get(name)
        if net is None or writers.get(name, 0) != 1:
            return None
        if len(net.bits) > MAX_TARGET_BITS or net.signed or net.upto:
            return None
        nets.append(net)
    clocked = construct.kind in ("always_ff", "clocked")
    registers = _registers(module, nets, line) if clocked else None
    if clocked and registers is None:
        return None
    driver = _drivers(evaluator)
    widths = {c.name: len(c.port("Y")) for c in evaluator.order}
    cones: dict[Bit, tuple[list[int], set[str]]] = {}
    work = 0
    for net in nets:  # the cost of every table, before any is built
        for bit in net.bits:
            d_bit = bit if registers is None else registers[bit][0].port("D")[registers[bit][1]]  # type: ignore[index]
            found = _cone(driver, d_bit)
            if found is None:
                return None
            cones[bit] = found
            work += sum(widths[c] for c in found[1]) << len(found[0])
    if work > MAX_WORK:
        decline(f"line {line}: too many cells to tabulate")
        return None
    dont_cares = 0  # target bits with x rows (written as don't-cares)
    unheld = 0  # target bits reading a register's codes it never holds after reset
    exprs: list[tuple[str, str]] = []
    resets: list[tuple[str, str]] = []
    names_used: set[str] = set()
    for net in nets:
        pieces = []
        reset_bits = []
        for bit in net.bits:
            source: Bit = bit
            if registers is not None:
                cell, index = registers[bit]  # type: ignore[index]
                source = cell.port("D")[index]
                if cell.type == "$adff":
                    value = _reset_bit(cell, index)
                    if value is None:
                        decline(f"line {line}: the reset value of {net.name} has x bits")
                        return None
                    reset_bits.append(value)
            leaves, cells = cones[bit]
            try:
                table = _table(evaluator, cells, leaves, source)
            except _Opaque:
                decline(
                    f"line {line}: {net.name} is x for some input through an operator or a select's "
                    "control (the source may compute a value there)"
                )
                return None
            if table is None:
                decline(f"line {line}: {net.name} has a constant x bit (nothing to minimise)")
                return None
            ones, free = table
            dont_cares += bool(free)
            unreachable = unreachable_rows(leaves, reaches)
            if unreachable:
                free = sorted({*free, *unreachable})
                ones = [r for r in ones if r not in unreachable]
                unheld += 1
            # a clocked block reads its registers' old values by their own names; a combinational one
            # must not read its targets
            names = [_leaf_name(module, b, () if clocked else construct.targets) for b in leaves]
            if any(n is None for n in names):
                decline(f"line {line}: a leaf of {net.name} has no name in the source")
                return None
            names_used.update(str(n) for n in names)
            piece = function_text(ones, len(leaves), [str(n) for n in names], MAX_TERMS, free)
            if piece is None:
                decline(f"line {line}: the cover of a bit of {net.name} is too large")
                return None
            pieces.append(piece)
        exprs.append((net.name, _concat(module, pieces)))
        if reset_bits:
            value = "".join(reversed(reset_bits))
            zero = "1" not in value and len(value) > 1
            resets.append((net.name, f"{len(value)}'d0" if zero else f"{len(value)}'b{value}"))
    if construct.kind == "always" and all(e in ("1'b0", "1'b1") for _, e in exprs):
        decline(f"line {line}: {', '.join(construct.targets)} is constant (an always @* would not run)")
        return None
    text = _write(design, module, construct, exprs, resets, registers)
    if text is None:
        decline(f"line {line}: the reset of the block has no name in the source")
        return None
    assert construct.node.start is not None and construct.node.end is not None
    old = design.text[construct.node.start : construct.node.end]
    if " ".join(old.split()) == " ".join(text.split()):
        return None
    what = "next state" if clocked else "value"
    note = (
        f"line {line}: the {what} of {', '.join(construct.targets)} as a minimal sum of products "
        f"of {', '.join(sorted(names_used)) or 'constants'}"
        + (f" (x entries of {dont_cares} bit(s) used as don't-cares)" if dont_cares else "")
        + (f" (codes registers never hold after reset: don't-cares of {unheld} bit(s))" if unheld else "")
    )
    return TextSite(
        rule,
        module_name,
        note,
        tuple(construct.targets) + tuple(sorted(names_used)),
        (Edit(construct.node.start, construct.node.end, text),),
        key=f"{module_name}:{construct.node.start}",
    )


def _write(
    design: Design,
    module: ModuleNetlist,
    construct: _Construct,
    exprs: list[tuple[str, str]],
    resets: list[tuple[str, str]],
    registers: dict[int, tuple[Cell, int]] | None,
) -> str | None:
    if construct.kind == "assign":
        return "\n".join(f"assign {n} = {e};" for n, e in exprs)
    if registers is None:
        head = "always_comb" if construct.kind == "always_comb" else "always @*"
        body = " ".join(f"{n} = {e};" for n, e in exprs)
        return f"{head} {body}" if len(exprs) == 1 else f"{head} begin {body} end"
    tree = design.syntax
    timing = tree.of_kind("EventControlWithExpression", within=construct.node)
    event = tree.source(timing[0]) if timing else None
    if event is None:
        return None
    head = ("always_ff " if construct.node.kind == "AlwaysFFBlock" else "always ") + event
    body = " ".join(f"{n} <= {e};" for n, e in exprs)
    body = body if len(exprs) == 1 else f"begin {body} end"
    if not resets:
        return f"{head} {body}"
    cell = next(iter(registers.values()))[0]
    name = module.text_of(cell.port("ARST"))
    if name is None:
        return None
    test = name if cell.param("ARST_POLARITY") else f"!{name}"
    init = " ".join(f"{n} <= {v};" for n, v in resets)
    init = init if len(resets) == 1 else f"begin {init} end"
    return f"{head}\n    if ({test}) {init}\n    else {body}"


class _Rule:
    name = NAME
    looks_for = (
        "a combinational assign / always_comb / always @* block whose targets depend on at most "
        f"{MAX_LEAVES} input or register bits"
    )

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        return text_sites(design, self.name)


RULE = _Rule()
