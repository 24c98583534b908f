"""Register polarity flip: store the complement of register bits whose neighbours invert them.

A *site* is a register — a variable whose bits are all flip-flop outputs (``$dff`` / ``$adff``
after Yosys ``proc``) — with bits that an inverter sits next to: a bit read by ``~`` / ``!`` (a
``$not`` / ``$logic_not`` cell), read by a reduction whose result is only inverted (``~|s``,
``!s``: ``$reduce_or`` into ``$not`` / ``$logic_not``), or whose next state comes straight out of
an inverter (``s[0] <= ~a``). Spelling does not matter: the cells are the same for an ``if`` chain, a
``case`` with parameter labels, continuous assigns feeding a register block, or ``always_ff``. The
rewrite stores ``t = s ^ M`` instead of ``s``, where ``M`` has a one for each such bit: every value
written to the register (nonblocking or blocking writes, the declaration's initial value, the reset
branch) is written as ``(E) ^ M`` and every read of it as ``(s ^ M)`` (a bit ``s[i]`` as ``(s[i] ^
1'b1)``, a part ``s[h:l]`` with its slice of ``M``). Synthesis then folds each ``^ 1`` into the
inverter that was there, or into the cell it feeds (a NOR becomes an AND of the complements …), which
can take an inverter off a critical path; the verifier measures whether it does.

Why the result equals the original: let ``s_k`` be the original register's value after cycle ``k``
and ``t_k`` the rewrite's. Each write stores ``E ^ M`` where the original stores ``E``, and ``E``
reads the register only through ``(t ^ M)``; so if ``t_k = s_k ^ M`` then every expression in the
rewrite sees the original's values, its writes store ``s_{k+1} ^ M``, and every other signal and
output is unchanged. The base case is the start value: the declaration initialiser (or ``initial``
write) is complemented the same way, and an asynchronous reset's branch is a write like any other,
so ``t = s ^ M`` holds at power-up (from the ``init`` value) and after every reset. Hence the rule
requires every flipped bit to have a defined initial value or an asynchronous reset value: a bit with
neither powers up unknown, and a checker (or a chip) that starts it at 0 would see its complement.
The width and signedness of each expression are kept: ``M`` is written as a sized literal of the
written part's width, signed in writes (so ``(E) ^ M`` is signed exactly when ``E`` is, and a
narrower ``E`` is extended as the plain assignment extends it; bits beyond the part are cut off by
the assignment) and unsigned in reads of an unsigned register (a read ``s`` and ``(s ^ M)`` have the
same width and signedness); ``x ^ 1`` is ``x``, so unknown bits stay unknown.

The rule declines (and says why) registers that are ports (outside readers would see the
complement), signed, declared ascending, with more than one packed dimension, an unpacked dimension
or a user type (an enum's values cannot be complemented), declared twice in the module, written by a
compound assignment, ``++`` / ``--`` or as part of a concatenation, selected with an index that is
not a literal, or used as an edge in an event list. Level event lists (``@(s or a)``) are left as they
are: ``t`` changes exactly when ``s`` would.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, module_pairs
from evoforge.tools.sv_syntax import Node, SyntaxTree
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist, Net

NAME = "register_polarity"
_FLOPS = ("$dff", "$adff")
_INVERTERS = ("$not", "$logic_not")
_REDUCTIONS = ("$reduce_or", "$reduce_bool")
_PLAIN_WRITES = ("AssignmentExpression", "NonblockingAssignmentExpression")
_STEPS = (
    "PostincrementExpression",
    "PreincrementExpression",
    "PostdecrementExpression",
    "PredecrementExpression",
)
_VECTOR_TYPES = ("RegType", "LogicType", "BitType")
_INT = re.compile(r"\s*(\d+)\s*$")


class _Declined(Exception):
    """The register is a site, but the exactness argument does not hold for it (the message says why)."""


@dataclass(frozen=True)
class _Register:
    net: Net
    mask: tuple[bool, ...]  # per bit of ``net.bits`` (index 0 = lowest declared index)
    evidence: tuple[str, ...]  # how the inverters sit, for the note


def _flop_bits(module: ModuleNetlist) -> dict[Bit, tuple[Cell, int]]:
    """Each flip-flop output bit: its flop and the bit's index on the flop's Q."""
    return {
        bit: (cell, i)
        for cell in module.cells_of(*_FLOPS)
        for i, bit in enumerate(cell.port("Q"))
        if isinstance(bit, int)
    }


def _inverted_only(module: ModuleNetlist, cell: Cell) -> bool:
    """Every bit ``cell`` drives is read only by inverters (and read at all)."""
    outs = [b for b in cell.port("Y") if isinstance(b, int)]
    users = [r for b in outs for r in module.readers(b)]
    named = any(
        b in n.bits for n in module.nets.values() if not n.hidden and n.name in module.ports for b in outs
    )
    return bool(users) and not named and all(r.type in _INVERTERS for r in users)


def _constant(bits: tuple[Bit, ...]) -> bool:
    return bool(bits) and all(isinstance(b, str) and b in ("0", "1") for b in bits)


def _read_votes(module: ModuleNetlist, bit: int) -> tuple[int, int]:
    """(inverted, plain) reads of ``bit``: how many of its readers need it complemented or not.

    Inverted: ``~`` (of the bit or its word), a 1-bit ``!``; an OR-reduction or ``!`` of a word
    (``~|s``, ``!s``: every bit is read as its complement); a comparison with a constant at a 0 bit
    (``s == 0`` reads every bit inverted, a case label too). Neutral:
    XOR / XNOR and a select's control (either polarity costs the same there). Plain: every other read
    (gates, an un-inverted reduction, arithmetic, select data, a comparison with a constant at a 1 bit
    or with a variable) — after the flip it would need an inverter."""
    inverted = plain = 0
    for reader in module.readers(bit):
        kind = reader.type
        if kind in _INVERTERS:
            inverted += 1
        elif kind in _REDUCTIONS:
            if _inverted_only(module, reader):
                inverted += 1
            else:
                plain += 1
        elif kind in ("$eq", "$ne") and (_constant(reader.port("A")) or _constant(reader.port("B"))):
            a, b = reader.port("A"), reader.port("B")
            word, other = (a, b) if _constant(b) else (b, a)
            value = other[word.index(bit)] if bit in word and len(other) == len(word) else "1"
            inverted += value == "0"
            plain += value != "0"
        elif kind in ("$xor", "$xnor") or (kind in ("$mux", "$pmux") and bit in reader.port("S")):
            continue  # either polarity costs the same
        else:
            plain += 1  # gates, arithmetic, select data, comparisons with variables: would need ~
    return inverted, plain


def _registers(module: ModuleNetlist) -> list[_Register]:
    """Registers with bits whose readers and next state are dominated by inverters, and which bits."""
    flop_bit = _flop_bits(module)
    found: list[_Register] = []
    for net in module.nets.values():
        if net.hidden or not net.bits or not all(isinstance(b, int) and b in flop_bit for b in net.bits):
            continue
        mask: list[bool] = []
        evidence: set[str] = set()
        for bit in net.bits:
            assert isinstance(bit, int)
            inverted, plain = _read_votes(module, bit)
            if inverted:
                evidence.add("read inverted")
            cell, index = flop_bit[bit]
            driver = module.driver(cell.port("D")[index])
            if driver is not None and driver[0].type in _INVERTERS and len(driver[0].port("A")) == 1:
                inverted += 1
                evidence.add("next state from an inverter")
            mask.append(inverted > plain)
        if any(mask):
            found.append(_Register(net, tuple(mask), tuple(sorted(evidence))))
    return found


def _start_defined(module: ModuleNetlist, register: _Register) -> str | None:
    """Why a flipped bit has no known start value (None when each has an init or reset value)."""
    flop_bit = _flop_bits(module)
    init = register.net.init
    width = len(register.net.bits)
    for p, (bit, flip) in enumerate(zip(register.net.bits, register.mask, strict=True)):
        if not flip:
            continue
        if init and len(init) == width and init[width - 1 - p] in "01":
            continue
        cell, index = flop_bit[bit]
        if cell.type == "$adff":
            value = cell.params.get("ARST_VALUE", "")
            if isinstance(value, str) and len(value) > index and value[len(value) - 1 - index] in "01":
                continue
            if isinstance(value, int):
                continue
        return (
            f"bit {register.net.offset + p} has no reset or initial value: it powers up unknown, "
            "and a start at 0 would read as its complement"
        )
    return None


def _literal(bits: list[bool], signed: bool) -> str:
    return f"{len(bits)}'{'s' if signed else ''}b" + "".join("1" if b else "0" for b in reversed(bits))


def _declaration(tree: SyntaxTree, module: Node, name: str) -> Node:
    """The register's declarator; raises _Declined when its declaration is not a plain vector."""
    declarators = [d for d in tree.of_kind("Declarator", within=module) if tree.name(d) == name]
    if len(declarators) != 1:
        raise _Declined(f"{name} is declared {len(declarators)} times in the module (other scopes)")
    declarator = declarators[0]
    if any(c.kind not in ("Token:Identifier", "EqualsValueClause") for c in tree.children(declarator)):
        raise _Declined(f"{name} has an unpacked dimension")
    decl = tree.parent(declarator)
    kinds = [c for c in tree.children(decl)] if decl is not None else []
    dtype = next((c for c in kinds if c.kind.endswith("Type")), None)
    if decl is None or decl.kind != "DataDeclaration" or dtype is None or dtype.kind not in _VECTOR_TYPES:
        raise _Declined(f"{name} is not declared as a plain reg / logic / bit vector")
    if len(tree.of_kind("VariableDimension", within=dtype)) > 1:
        raise _Declined(f"{name} has more than one packed dimension")
    return declarator


def _bits_of(tree: SyntaxTree, node: Node, net: Net) -> list[int]:
    """Positions in ``net.bits`` that occurrence ``node`` (``s``, ``s[i]``, ``s[h:l]``) names."""
    if node.kind == "IdentifierName":
        return list(range(len(net.bits)))
    selects = [c for c in tree.children(node) if c.kind == "ElementSelect"]
    if len(selects) != 1:
        raise _Declined(f"{net.name} is selected more than once in one name")
    inner = [c for c in tree.children(selects[0]) if not c.is_token]
    if len(inner) != 1:
        raise _Declined(f"an empty select of {net.name}")
    sel = inner[0]
    ends = [c for c in tree.children(sel) if not c.is_token]
    texts = [tree.source(e) or "" for e in ends]
    numbers = [_INT.match(t) for t in texts]
    if sel.kind not in ("BitSelect", "SimpleRangeSelect") or not all(numbers):
        raise _Declined(f"{net.name} is selected by `{tree.source(selects[0])}`: not a literal bit or range")
    values = [int(m.group(1)) for m in numbers if m]
    high, low = (values[0], values[0]) if sel.kind == "BitSelect" else (values[0], values[1])
    if high < low or low < net.offset or high >= net.offset + len(net.bits):
        raise _Declined(f"{net.name}{tree.source(selects[0])} is outside its declared range")
    return list(range(low - net.offset, high - net.offset + 1))


def _edits(design: Design, module: Node, register: _Register) -> list[Edit]:
    """Every write of the register complemented on ``mask``, every read uncomplemented."""
    tree = design.syntax
    net, mask = register.net, register.mask
    name = net.name
    declarator = _declaration(tree, module, name)
    edits: list[Edit] = []

    def write(expr: Node, positions: list[int]) -> None:
        part = [mask[p] for p in positions]
        if not any(part):
            return
        if expr.kind.endswith("AssignmentPatternExpression") or expr.start is None or expr.end is None:
            raise _Declined(f"a write of {name} is an assignment pattern")
        # insertions around the written value: reads inside it get their own edits
        edits.append(Edit(expr.start, expr.start, "("))
        edits.append(Edit(expr.end, expr.end, f") ^ {_literal(part, signed=True)}"))

    init = next((c for c in tree.children(declarator) if c.kind == "EqualsValueClause"), None)
    if init is not None:
        value = [c for c in tree.children(init) if not c.is_token]
        write(value[0], list(range(len(net.bits))))
    for node in tree.of_kind("IdentifierName", "IdentifierSelectName", within=module):
        if tree.name(node) != name or not tree.clean(node) or node.start is None or node.end is None:
            continue
        parent = tree.parent(node)
        assert parent is not None
        if parent.kind in ("IdentifierSelectName", "ScopedName", "MemberAccessExpression"):
            raise _Declined(f"{name} is used as `{tree.source(parent)}`")
        if any(a.kind == "SignalEventExpression" for a in tree.ancestors(node)):
            event = next(a for a in tree.ancestors(node) if a.kind == "SignalEventExpression")
            if any(
                t.kind in ("Token:PosEdgeKeyword", "Token:NegEdgeKeyword", "Token:EdgeKeyword")
                for t in tree.walk(event)
            ):
                raise _Declined(f"{name} is used as an edge in an event list")
            continue  # a level event: t changes exactly when s would
        if parent.kind in _STEPS:
            raise _Declined(f"{name} is written by `{tree.source(parent)}`")
        positions = _bits_of(tree, node, net)
        operands = [c for c in tree.children(parent) if not c.is_token]
        if parent.kind.endswith("AssignmentExpression") and operands and operands[0] is node:
            if parent.kind not in _PLAIN_WRITES:
                raise _Declined(f"{name} is written by the compound assignment `{tree.source(parent)}`")
            write(operands[1], positions)
            continue
        for ancestor in tree.ancestors(node):
            above = tree.parent(ancestor)
            if above is None or above.kind.endswith("Statement"):
                break
            if above.kind.endswith("AssignmentExpression"):
                lhs = next((c for c in tree.children(above) if not c.is_token), None)
                if lhs is ancestor:
                    raise _Declined(f"{name} is written as part of `{tree.source(lhs)}`")
        part = [mask[p] for p in positions]
        if not any(part):
            continue
        text = design.text[node.start : node.end]
        if len(part) == 1 and node.kind == "IdentifierSelectName":
            edits.append(Edit(node.start, node.end, f"({text} ^ 1'b1)"))
        else:
            edits.append(Edit(node.start, node.end, f"({text} ^ {_literal(part, signed=False)})"))
    return edits


def text_sites(design: Design) -> list[TextSite]:
    sites: list[TextSite] = []
    for module_name, module, node in module_pairs(design):
        for register in _registers(module):
            net = register.net
            try:
                if net.name in module.ports:
                    raise _Declined(
                        f"{net.name} is a port: readers outside the module would see the complement"
                    )
                if net.signed or net.upto:
                    raise _Declined(f"{net.name} is {'signed' if net.signed else 'declared ascending'}")
                problem = _start_defined(module, register)
                if problem is not None:
                    raise _Declined(f"{net.name}: {problem}")
                edits = _edits(design, node, register)
            except _Declined as exc:
                decline(str(exc))
                continue
            flipped = [net.offset + p for p, f in enumerate(register.mask) if f]
            which = "all bits" if all(register.mask) else "bit(s) " + ", ".join(map(str, reversed(flipped)))
            note = (
                f"store {net.name} complemented on {which} ({'; '.join(register.evidence)}): writes and "
                "the start value complemented, reads complemented back"
            )
            sites.append(
                TextSite(NAME, module_name, note, (net.name,), tuple(edits), key=f"{module_name}.{net.name}")
            )
    return sites


class _Rule:
    name = NAME
    looks_for = (
        "a register with a reset or initial value whose bits are read through an inverter (~, !, ~|) "
        "or loaded from one"
    )

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        return text_sites(design)


RULE = _Rule()
