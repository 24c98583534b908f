"""Codes a small register can hold after reset: the unreachable ones are don't-cares of its readers.

For each flip-flop cell of the word-level netlist (``$dff`` / ``$adff`` after ``proc``: one written
signal) of at most ``MAX_STATE_BITS`` bits, whose next value depends on at most ``MAX_INPUT_BITS``
other bits (inputs, other registers), :func:`reachable_codes` tabulates the next value on every
(own code, other bits) row with the exact evaluator (:mod:`~evoforge.agents.rtl_rules.netlist_eval`)
and searches the codes reachable from the register's *reset codes*:

* the asynchronous reset value of an ``$adff``;
* every *forced* code: a constant c such that some other bit (a synchronous reset, a clear …) at
  some value makes the next value c on every row, whatever the register holds and the other bits are.

Why every code the register holds after reset is in the set: after a reset cycle the register holds
a reset code, and each later value is the next value of a code in the set on some row of the other
bits — the other bits are taken as free (every value of every other register and input is tried,
which can only add codes), and an x in a next-value bit (the evaluator's) stands for both values. So
the set over-approximates the reachable codes, and a reader's value on a code outside it is never
observed after reset: a rewrite may choose it freely. This is the contract evoforge's verifier
checks (designs are compared from the state after one reset cycle; the cycle itself is not compared)
and the one a design with a reset is used under; a register with no reset code (no reset, or a reset
that forces no constant) gets no entry. The verifier re-checks every proposal.
"""

from __future__ import annotations

from dataclasses import dataclass

from evoforge.agents.rtl_rules.netlist_eval import Evaluator, Value, _evaluate, cone
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist

MAX_STATE_BITS = 8
MAX_INPUT_BITS = 8
MAX_WORK = 1_000_000  # cell output bits evaluated per register (well under a second)


@dataclass(frozen=True)
class Reach:
    """A register's Q bits (bit k of a code is ``bits[k]``) and the codes it can hold after reset."""

    name: str  # the register cell
    bits: tuple[int, ...]
    codes: frozenset[int]

    def allowed(self, positions: tuple[int, ...]) -> frozenset[int]:
        """The codes of ``bits[p] for p in positions`` (bit k of a result is ``positions[k]``) that
        some reachable code has."""
        out = set()
        for code in self.codes:
            out.add(sum(((code >> p) & 1) << k for k, p in enumerate(positions)))
        return frozenset(out)


def _next_values(
    evaluator: Evaluator, order: list[Cell], d: tuple[Bit, ...], given: dict[int, Value]
) -> set[int]:
    """Every code the D bits may take on one row (an x bit stands for both values)."""
    values = dict(given)

    def fetch(bits: tuple[Bit, ...]) -> list[Value]:
        return [values.get(b, 0) if isinstance(b, int) else {"0": 0, "1": 1}.get(b) for b in bits]

    for cell in order:
        for out, value in zip(cell.port("Y"), _evaluate(cell, fetch), strict=False):
            if isinstance(out, int):
                values[out] = value
    codes = {0}
    for k, bit in enumerate(fetch(d)):
        if bit is None:
            codes |= {c | (1 << k) for c in codes}
        elif bit:
            codes = {c | (1 << k) for c in codes}
    return codes


def _register_reach(evaluator: Evaluator, driver: dict[int, Cell], cell: Cell) -> Reach | None:
    q = cell.port("Q")
    d = cell.port("D")
    if not all(isinstance(b, int) for b in q) or len(q) > MAX_STATE_BITS:
        return None
    own = [b for b in q if isinstance(b, int)]
    found = cone(driver, d)
    if found is None:
        return None
    leaves, cells = found
    others = [b for b in leaves if b not in own]
    if len(others) > MAX_INPUT_BITS or any(b in q for b in cell.port("CLK")):
        return None
    rows = 1 << (len(own) + len(others))
    if rows * sum(len(c.port("Y")) for c in evaluator.order if c.name in cells) > MAX_WORK:
        return None
    order = [c for c in evaluator.order if c.name in cells]
    table: dict[tuple[int, int], set[int]] = {}
    for code in range(1 << len(own)):
        for row in range(1 << len(others)):
            given: dict[int, Value] = {b: (code >> k) & 1 for k, b in enumerate(own)}
            given.update({b: (row >> k) & 1 for k, b in enumerate(others)})
            table[code, row] = _next_values(evaluator, order, d, given)
    start: set[int] = set()
    if cell.type == "$adff":
        raw = cell.params.get("ARST_VALUE", 0)
        if isinstance(raw, str) and not set(raw) <= {"0", "1"}:
            return None  # an x in the reset value
        start.add(cell.param("ARST_VALUE"))
    elif cell.type != "$dff":
        return None
    for k in range(len(others)):
        for level in (0, 1):
            seen = set().union(*(table[c, r] for (c, r) in table if (r >> k) & 1 == level))
            if len(seen) == 1:
                start |= seen
    if not start:
        return None
    reached = set(start)
    frontier = list(start)
    while frontier:
        code = frontier.pop()
        for row in range(1 << len(others)):
            for nxt in table[code, row]:
                if nxt not in reached:
                    reached.add(nxt)
                    frontier.append(nxt)
    if len(reached) == 1 << len(own):
        return None
    return Reach(cell.name, tuple(own), frozenset(reached))


def reachable_codes(module: ModuleNetlist, evaluator: Evaluator) -> list[Reach]:
    """Every register of ``module`` with a reset code and codes it can never hold after reset."""
    driver = {b: c for c in evaluator.order for b in c.port("Y") if isinstance(b, int)}
    found = []
    for cell in module.cells:
        if cell.type in ("$dff", "$adff"):
            reach = _register_reach(evaluator, driver, cell)
            if reach is not None:
                found.append(reach)
    return found


def unreachable_rows(leaves: list[int], reaches: list[Reach]) -> set[int]:
    """Rows of a table over ``leaves`` whose register bits spell a code no register holds after reset."""
    out: set[int] = set()
    for reach in reaches:
        positions = [i for i, leaf in enumerate(leaves) if leaf in reach.bits]
        if not positions:
            continue
        allowed = reach.allowed(tuple(reach.bits.index(leaves[i]) for i in positions))
        for row in range(1 << len(leaves)):
            partial = sum(((row >> i) & 1) << k for k, i in enumerate(positions))
            if partial not in allowed:
                out.add(row)
    return out
