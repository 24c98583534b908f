"""Compare-and-select chains found on Yosys's word-level netlist, rebuilt as balanced trees.

The site is seen where spelling is gone: after ``proc; opt_clean`` a chain of max (or min) steps is
a ``$mux`` whose select is a ``$gt``/``$ge``/``$lt``/``$le`` of exactly the mux's two data inputs,
``Y = (P > Q) ? P : Q``, and whose one input is the output of another such step. Continuous assigns
with ternaries, ``if`` chains in ``always @*`` or ``always @(a or b …)``, ``for`` loops over a packed
vector and ``always_comb`` all give these cells. The chain's final output must be a named signal
driven combinationally (an ``assign``, a net declaration assignment or one level-sensitive block);
its leaves must be named signals, slices of them, or constants (:meth:`ModuleNetlist.text_of`).

The patch re-drives only that signal: the tree's nodes are new signals, and the signal's driver is
replaced — the right-hand side of its ``assign``, or, in an ``always`` block, one statement appended
at the end of the block (the block's earlier statements, which may compute other outputs from the
same chain, are untouched). In a block the tree nodes are computed by blocking assignments in the
same block, so the block reads nothing new (an explicit sensitivity list stays complete).

Why the result equals the original. Every step computes ``max(P, Q)`` (or ``min``) of its two
inputs, whatever the tie rule (``>`` or ``>=``): on a tie both inputs hold the same value. All steps
are of one kind and one signedness, compare at the mux's own width (no extension), so the chain's
value is the max (min) of its leaves as numbers of that width and signedness; max and min are
associative and commutative, so any bracketing — the balanced tree — gives the same value. Each
node has the same width, and the comparison uses ``$signed`` exactly when the original cells were
signed. A leaf is read at the end of the block: its bits are the named signal's final value, which
is the value the chain read (the netlist identifies the two).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.redrive import redrive
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, fresh_name, module_pairs
from evoforge.tools.sv_syntax import Node
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist

log = logging.getLogger(__name__)

_COMPARES = {"$gt": "max", "$ge": "max", "$lt": "min", "$le": "min"}


@dataclass(frozen=True)
class _Step:
    mux: Cell
    kind: str  # "max" / "min"
    signed: bool
    operands: tuple[tuple[Bit, ...], tuple[Bit, ...]]


@dataclass(frozen=True)
class Chain:
    output: str  # the named signal the chain drives
    kind: str
    signed: bool
    width: int
    leaves: tuple[str, ...]  # Verilog text of each leaf, in chain order
    depth: int  # steps in series in the original
    lines: tuple[int, ...]  # source lines of the chain's cells


def _step(module: ModuleNetlist, mux: Cell) -> _Step | None:
    select = mux.port("S")
    if len(select) != 1:
        return None
    found = module.driver(select[0])
    if found is None or found[0].type not in _COMPARES:
        return None
    compare = found[0]
    width = mux.param("WIDTH")
    if compare.param("A_WIDTH") != width or compare.param("B_WIDTH") != width:
        return None
    p, q = compare.port("A"), compare.port("B")
    a, b = mux.port("A"), mux.port("B")
    kind = _COMPARES[compare.type]
    if (b, a) == (p, q):
        pass
    elif (b, a) == (q, p):
        kind = "min" if kind == "max" else "max"
    else:
        return None
    signed = bool(compare.param("A_SIGNED")) and bool(compare.param("B_SIGNED"))
    return _Step(mux, kind, signed, (p, q))


def _flatten(
    step: _Step, steps: dict[tuple[Bit, ...], _Step], leaves: list[tuple[Bit, ...]], cells: list[Cell]
) -> int:
    """Collect the leaves and cells of the chain ending at ``step``; its depth in steps."""
    cells.append(step.mux)
    depth = 0
    for operand in step.operands:
        sub = steps.get(operand)
        if sub is not None and (sub.kind, sub.signed) == (step.kind, step.signed):
            depth = max(depth, _flatten(sub, steps, leaves, cells))
        else:
            leaves.append(operand)
    return depth + 1


def chains(module: ModuleNetlist) -> list[Chain]:
    """Maximal max/min chains of ``module`` deeper than a balanced tree of their leaves."""
    steps = {s.mux.port("Y"): s for m in module.cells_of("$mux") if (s := _step(module, m)) is not None}
    inner = {
        operand
        for s in steps.values()
        for operand in s.operands
        if operand in steps and (steps[operand].kind, steps[operand].signed) == (s.kind, s.signed)
    }
    found: list[Chain] = []
    for out_bits, root in steps.items():
        if out_bits in inner:
            continue
        leaves: list[tuple[Bit, ...]] = []
        cells: list[Cell] = []
        depth = _flatten(root, steps, leaves, cells)
        if len(leaves) < 3 or depth <= (len(leaves) - 1).bit_length():
            continue
        net = module.net_with_bits(out_bits)
        if net is None:
            decline(
                f"a {len(leaves)}-input {root.kind} chain ends in an unnamed value (line {root.mux.line})"
            )
            continue
        texts = [module.text_of(leaf) for leaf in leaves]
        if any(t is None for t in texts):
            decline(f"a {root.kind} chain into {net.name} reads a value with no name in the source")
            continue
        lines = tuple(sorted({c.line for c in cells if c.line}))
        width = root.mux.param("WIDTH")
        found.append(
            Chain(net.name, root.kind, root.signed, width, tuple(t for t in texts if t), depth, lines)
        )
    return found


# ---------------------------------------------------------------------------------------------
# The patch


def _tree(chain: Chain, base: str) -> tuple[list[tuple[str, str]], str]:
    """(node name, expression) in dependency order, and the root's name."""
    compare = ">=" if chain.kind == "max" else "<="
    level = list(chain.leaves)
    nodes: list[tuple[str, str]] = []
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            left, right = level[i], level[i + 1]
            name = f"{base}_{len(nodes)}"
            cond = (
                f"$signed({left}) {compare} $signed({right})" if chain.signed else f"{left} {compare} {right}"
            )
            nodes.append((name, f"({cond}) ? {left} : {right}"))
            nxt.append(name)
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return nodes, level[0]


def _patch(design: Design, module: Node, chain: Chain) -> list[Edit] | str:
    base = fresh_name(design, f"{chain.output}_tree")
    nodes, root = _tree(chain, base)
    return redrive(design, module, chain.output, chain.width, nodes, root)


def text_sites(design: Design, rule: str) -> list[TextSite]:
    """Netlist chain sites of every module, as text patches."""
    views = design.views()
    if isinstance(views, str):
        decline(f"no netlist or syntax tree: {views}")
        return []
    out: list[TextSite] = []
    for module_name, module, node in module_pairs(design):
        for chain in chains(module):
            edits = _patch(design, node, chain)
            if isinstance(edits, str):
                decline(f"a {chain.kind} chain into {chain.output}: {edits}")
                continue
            levels = (len(chain.leaves) - 1).bit_length()
            where = f"lines {chain.lines[0]}–{chain.lines[-1]}" if chain.lines else "the netlist"
            note = (
                f"rebalanced the {len(chain.leaves)}-input {chain.kind} chain into {chain.output} ({where}, "
                f"{chain.depth} compare-selects in series) into a {levels}-level tree"
            )
            out.append(
                TextSite(
                    rule,
                    module_name,
                    note,
                    (chain.output,),
                    tuple(edits),
                    key=f"{module_name}.{chain.output}",
                )
            )
    return out
