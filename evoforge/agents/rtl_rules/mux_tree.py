"""Selector decode to a mux tree: a choice among words by comparing one selector with constants becomes
a binary tree of 2:1 selects indexed by the selector's bits.

On the word-level netlist a ``case (sel)`` with constant labels is a ``$pmux`` whose select bits are
``sel == Kᵢ``; an ``if (sel == K1) … else if (sel == K2) …`` chain or a chain of ternaries is a run of
``$mux`` cells with such selects. Synthesis builds the comparators and an AND-OR of their results,
and ``abc`` with a relaxed delay target then keeps that shape: a 9:1 select of 16-bit words came out
at 2 ns in sky130, its tree at 0.8 ns. The rule finds these selects in any spelling (``case``,
``if`` chains, ternaries; ``parameter`` labels are constants by then) when their output is a named
signal driven by one combinational construct, and re-drives that signal
(:func:`~evoforge.agents.rtl_rules.redrive.redrive`) with ``sel[n-1] ? (…) : (…)``.

Why the result equals the original: the labels Kᵢ are distinct constants, so for each selector value
v at most one comparison is true and the original yields the word of that label, or the default
(the ``$pmux`` A input / the last ``else``) when none is. The tree is the Shannon expansion of that
function of v over the selector's bits, most significant first, with subtrees that yield the same
word for every value merged; its leaves are the same words, read by name (a word's bits are the
named signals' final values, which the netlist identifies with what the select read).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.redrive import redrive
from evoforge.agents.rtl_rules.text_sites import Design, TextSite, module_pairs
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist

NAME = "mux_tree"
MAX_SELECT_BITS = 6
MIN_CASES = 3

Word = tuple[Bit, ...]


@dataclass(frozen=True)
class Decode:
    output: Word
    select: Word
    cases: dict[int, Word]  # label → word
    default: Word
    line: int | None


def _const(word: Word) -> int | None:
    if not word or any(not isinstance(b, str) or b not in "01" for b in word):
        return None
    return sum(1 << i for i, b in enumerate(word) if b == "1")


def _label(module: ModuleNetlist, bit: Bit) -> tuple[Word, int] | None:
    """(selector, constant) when ``bit`` is ``selector == constant`` (``!selector`` for 0)."""
    found = module.driver(bit)
    if found is None:
        return None
    cell = found[0]
    if cell.type in ("$eq", "$eqx"):
        a, b = cell.port("A"), cell.port("B")
        if _const(b) is not None and _const(a) is None:
            value = _const(b)
            return (a, value) if value is not None and value < (1 << len(a)) else None
        if _const(a) is not None and _const(b) is None:
            value = _const(a)
            return (b, value) if value is not None and value < (1 << len(b)) else None
    if cell.type == "$logic_not" and _const(cell.port("A")) is None:
        return cell.port("A"), 0
    return None


def decodes(module: ModuleNetlist) -> list[Decode]:
    out: list[Decode] = []
    chained: set[str] = set()
    muxes = [c for c in module.cells if c.type == "$mux"]
    for cell in module.cells:
        if cell.type == "$pmux":
            found = _pmux(module, cell)
            if found is not None:
                out.append(found)
    readers: dict[int, int] = {}
    for cell in module.cells:
        for port, bits in cell.connections.items():
            if port not in ("Y", "Q"):
                for b in bits:
                    if isinstance(b, int):
                        readers[b] = readers.get(b, 0) + 1
    by_output = {c.port("Y"): c for c in muxes}
    inner = set()
    for cell in muxes:
        below = by_output.get(cell.port("A"))
        if below is not None:
            inner.add(below.name)
    for cell in muxes:
        if cell.name in inner or cell.name in chained:
            continue
        found = _chain(module, cell, by_output, readers)
        if found is not None:
            out.append(found)
    return out


def _pmux(module: ModuleNetlist, cell: Cell) -> Decode | None:
    width = cell.param("WIDTH")
    selector: Word | None = None
    cases: dict[int, Word] = {}
    b = cell.port("B")
    for i, bit in enumerate(cell.port("S")):
        found = _label(module, bit)
        if found is None or (selector is not None and found[0] != selector) or found[1] in cases:
            return None
        selector = found[0]
        cases[found[1]] = b[i * width : (i + 1) * width]
    if selector is None or len(selector) > MAX_SELECT_BITS or len(cases) < MIN_CASES:
        return None
    return Decode(cell.port("Y"), selector, cases, cell.port("A"), _line(cell))


def _chain(
    module: ModuleNetlist, top: Cell, by_output: dict[Word, Cell], readers: dict[int, int]
) -> Decode | None:
    selector: Word | None = None
    cases: dict[int, Word] = {}
    cell: Cell | None = top
    default: Word = ()
    while cell is not None:
        found = _label(module, cell.port("S")[0])
        if found is None or (selector is not None and found[0] != selector):
            break
        selector = found[0]
        if found[1] not in cases:  # a repeated label never wins: the first one does
            cases[found[1]] = cell.port("B")
        default = cell.port("A")
        nxt = by_output.get(default)
        if nxt is None or any(readers.get(b, 0) != 1 for b in default if isinstance(b, int)):
            break
        cell = nxt
        if module.net_with_bits(default) is not None:
            break  # a named intermediate: stop there, it is read by name elsewhere
    if selector is None or len(selector) > MAX_SELECT_BITS or len(cases) < MIN_CASES:
        return None
    return Decode(top.port("Y"), selector, cases, default, _line(top))


def _line(cell: Cell) -> int | None:
    return cell.line


def tree(module: ModuleNetlist, decode: Decode) -> str | None:
    """The Shannon tree of ``decode`` over its selector's bits, as Verilog (None: a word has no name)."""
    bits = [module.text_of((b,)) for b in decode.select]
    if any(b is None for b in bits):
        return None
    words: dict[Word, str] = {}
    for word in [*decode.cases.values(), decode.default]:
        text = module.expr_of(word)
        if text is None:
            return None
        words[word] = text

    def build(level: int, values: list[int]) -> str:
        leaves = {decode.cases.get(v, decode.default) for v in values}
        if len(leaves) == 1:
            return words[leaves.pop()]
        bit = level - 1
        hi = [v for v in values if (v >> bit) & 1]
        lo = [v for v in values if not (v >> bit) & 1]
        return f"({bits[bit]} ? {build(bit, hi)} : {build(bit, lo)})"

    width = len(decode.select)
    return build(width, list(range(1 << width)))


class MuxTree:
    name = NAME
    looks_for = f"a select among at least {MIN_CASES} words by comparing one selector with constants"

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        sites: list[TextSite] = []
        for module_name, module, node in module_pairs(design):
            for decode in decodes(module):
                net = module.net_with_bits(decode.output)
                if net is None:
                    continue  # an intermediate value (a select feeding a register's next state …)
                expr = tree(module, decode)
                if expr is None:
                    decline(f"the select into {net.name} reads a value with no name (or x)")
                    continue
                edits = redrive(design, node, net.name, len(decode.output), [], expr)
                if isinstance(edits, str):
                    decline(f"the select into {net.name}: {edits}")
                    continue
                where = f" (line {decode.line})" if decode.line else ""
                note = (
                    f"the {len(decode.cases)}-way select into {net.name}{where} as a mux tree over "
                    f"the {len(decode.select)} selector bits"
                )
                sites.append(
                    TextSite(
                        NAME, module_name, note, (net.name,), tuple(edits), key=f"{module_name}.{net.name}"
                    )
                )
        return sites


RULE = MuxTree()
