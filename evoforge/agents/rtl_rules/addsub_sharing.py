"""Add/sub sharing: one adder for the additions, subtractions and comparisons of different case items.

In ``always @*`` a ``case (sel)`` whose items are mutually exclusive may each do one add or subtract
(``{c, y} = {1'b0, a} - {1'b0, b};``) or unsigned magnitude comparison (``flag = a < b``). Yosys'
``share`` pass does not merge ``$add``/``$sub``/``$lt`` cells, so each becomes its own adder. The rule
moves every such item's operands into one shared adder in front of the block::

    wire [W-1:0] shared_a   = (sel == 2) || (sel == 5) ? b : a;      // per-item left operand
    wire [W-1:0] shared_b   = (sel == 3) ? 17'd1 : ...;              // per-item right operand
    wire         shared_sub = (sel == 1) || (sel == 2) || ...;       // items that subtract
    wire [W-1:0] shared_sum = shared_a + (shared_b ^ {W{shared_sub}}) + shared_sub;

and the items read ``shared_sum`` (a sum: ``L = shared_sum[L-1:0]``; ``X < Y``: ``shared_sum[w]``).
Items without arithmetic, the default item, and items whose operations would need two different
adders are left as they are.

Why the result equals the original (IEEE 1364-2005 §5.4-5.5):

* Exclusivity: every item value is a distinct constant and the selector is unsigned, so exactly the
  executing item's condition ``sel == v`` is true; the operand muxes then pass that item's operands
  (the value for other selector values is never read). ``case`` and ``==`` agree on 0/1 values.
* Sums ``L = P ± Q``: the original is evaluated at C = max(|L|, |P|, |Q|) bits and truncated to
  |L|. W is at least |L|. Every operand is unsigned (a constant is a known, non-negative value and
  is re-emitted as an unsigned W-bit literal), so it is zero-extended in both forms, and below
  its top level it uses only operators whose low k bits depend only on the operands' low k bits
  (``+ - * & | ^ ~^ ~``, unary ``-``, ``<<``, the arms of ``?:``) — so its low |L| bits are the same
  evaluated at C or at W. ``a + (b ^ {W{s}}) + s`` is ``a + b`` for ``s = 0`` and ``a + ~b + 1 =
  a - b`` (mod 2^W) for ``s = 1``; the low |L| bits of a sum or difference depend only on the low
  |L| bits of its operands.
* Comparisons ``X < Y`` (``>``, ``<=``, ``>=`` by swapping and negating) of unsigned operands that
  are context leaves (identifiers, selects, concatenations, constants: their value does not depend
  on the context width), both below 2^w: with W ≥ w + 1, ``X - Y`` mod 2^W has bit w set exactly
  when X < Y.
* Timing of values: the shared wires are continuous, so the rule requires an ``always @*`` block
  that writes none of the signals the selector and the shared operands read (the block reruns when
  ``shared_sum`` settles, and reads the same values the original read).
* X/Z are not modelled (as in synthesis and the formal checks).
"""

from __future__ import annotations

import copy
import functools
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules import facts, operator_sharing
from evoforge.agents.rtl_rules.ast_utils import (
    Path,
    Rewrite,
    children_with_steps,
    expr_key,
    identifiers,
    is_pure,
    module_definitions,
    node_at,
    replace_at,
    signedness,
    walk_paths,
)
from evoforge.agents.rtl_rules.text_sites import Design, TextSite
from evoforge.errors import TargetError
from evoforge.tools.verilog_ast import ParsedVerilog, const_value, parse_verilog

NAME = "addsub_sharing"

_SUBSTITUTIONS = (vast.BlockingSubstitution, vast.NonblockingSubstitution)
_COMPARISONS = (vast.LessThan, vast.GreaterThan, vast.LessEq, vast.GreaterEq)
#: operators whose low k result bits depend only on the low k bits of their context operands
_LOW_CLOSED = (
    vast.Plus,
    vast.Minus,
    vast.Times,
    vast.And,
    vast.Or,
    vast.Xor,
    vast.Xnor,
    vast.Unot,
    vast.Uminus,
    vast.Uplus,
    vast.Cond,
    vast.Sll,
    vast.Sla,
)


@dataclass(frozen=True)
class _Use:
    path: Path  # relative to the module: the Rvalue of a sum, or the comparison node
    bits: int  # a sum: the target width; a comparison: the bit w of the difference
    negate: bool = False  # a comparison read as ``!shared_sum[w]``
    sum: bool = False


@dataclass
class _Item:
    conds: list[Any]  # the item's case values
    a: Any
    b: Any
    sub: bool
    uses: list[_Use] = field(default_factory=list)

    @property
    def need(self) -> int:
        return max(u.bits if u.sum else u.bits + 1 for u in self.uses)


@dataclass
class _Site:
    case_path: Path
    always_index: int
    lineno: int
    items: list[_Item]

    @property
    def width(self) -> int:
        return max(item.need for item in self.items)


# ---------------------------------------------------------------------------------------------
# Operands


def _literal(node: Any) -> int | None:
    """A plain non-negative constant (no signed based literal, no x/z), else None."""
    node = node.var if isinstance(node, vast.Rvalue) else node
    if not isinstance(node, vast.IntConst) or "'s" in str(node.value).lower():
        return None
    value = const_value(node, {})
    return value if value is not None and value >= 0 else None


def _operand_ok(node: Any, signs: dict[str, bool]) -> bool:
    return is_pure(node) and (_literal(node) is not None or signedness(node, signs) is False)


def _low_closed(node: Any) -> bool:
    inner = facts.context_operands(node)
    if not inner or isinstance(node, vast.Rvalue):
        return all(_low_closed(child) for child in inner)
    return isinstance(node, _LOW_CLOSED) and all(_low_closed(child) for child in inner)


def _norm_key(node: Any, signs: dict[str, bool]) -> str:
    """Operands equal as zero-extended unsigned values share a key (``{1'b0, a}`` ≡ ``a``, constants)."""
    node = node.var if isinstance(node, vast.Rvalue) else node
    value = _literal(node)
    if value is not None:
        return f"#const {value}"
    if isinstance(node, vast.Concat):
        rest = list(node.list)
        while len(rest) > 1 and _literal(rest[0]) == 0 and "'" in str(rest[0].value):
            rest = rest[1:]
        if len(rest) == 1 and signedness(rest[0], signs) is False:
            return _norm_key(rest[0], signs)
    return expr_key(node)


def _cmp_width(node: Any, sigs: dict[str, facts.Signal]) -> int | None:
    value = _literal(node)
    if value is not None:
        return max(value.bit_length(), 1)
    if facts.context_operands(node):
        return None  # not a context leaf: its value may depend on the comparison's width
    return facts.expr_width(node, sigs)


# ---------------------------------------------------------------------------------------------
# Finding the uses of one case item


def _item(
    stmt: Any, path: Path, conds: list[Any], sigs: dict[str, facts.Signal], signs: dict[str, bool]
) -> _Item | None:
    found: list[tuple[tuple[str, str, bool], Any, Any, _Use]] = []

    def visit(node: Any, where: Path) -> None:
        if isinstance(node, _SUBSTITUTIONS):
            rhs = node.right.var if isinstance(node.right, vast.Rvalue) else None
            width = facts.expr_width(node.left, sigs)
            if (
                isinstance(rhs, vast.Plus | vast.Minus)
                and width is not None
                and node.ldelay is None
                and node.rdelay is None
                and all(_operand_ok(x, signs) and _low_closed(x) for x in (rhs.left, rhs.right))
            ):
                sub = isinstance(rhs, vast.Minus)
                key = (_norm_key(rhs.left, signs), _norm_key(rhs.right, signs), sub)
                found.append((key, rhs.left, rhs.right, _Use((*where, ("right", None)), width, sum=True)))
                return
        if isinstance(node, _COMPARISONS):
            use = _comparison(node, where, sigs, signs)
            if use is not None:
                found.append(use)
                return
        for step, child in children_with_steps(node):
            visit(child, (*where, step))

    visit(stmt, path)
    if not found or len({key for key, *_ in found}) != 1:
        return None  # nothing to share, or this item would need two adders
    key, a, b, _ = found[0]
    return _Item(conds, a, b, key[2], [use for *_, use in found])


def _comparison(
    node: Any, where: Path, sigs: dict[str, facts.Signal], signs: dict[str, bool]
) -> tuple[tuple[str, str, bool], Any, Any, _Use] | None:
    left, right = node.left, node.right
    if not all(_operand_ok(x, signs) for x in (left, right)):
        return None
    if _literal(left) is not None and _literal(right) is not None:
        return None
    widths = [_cmp_width(x, sigs) for x in (left, right)]
    if any(w is None for w in widths):
        return None
    bit = max(w for w in widths if w is not None)
    # X < Y: borrow of X - Y; X > Y: of Y - X; <= and >= are the negations of > and <
    swap = isinstance(node, vast.GreaterThan | vast.LessEq)
    negate = isinstance(node, vast.LessEq | vast.GreaterEq)
    x, y = (right, left) if swap else (left, right)
    key = (_norm_key(x, signs), _norm_key(y, signs), True)
    return key, x, y, _Use(where, bit, negate=negate)


# ---------------------------------------------------------------------------------------------
# Sites


def _written(node: Any) -> set[str]:
    names: set[str] = set()
    for _, sub in walk_paths(node):
        if isinstance(sub, vast.Lvalue):
            names.update(identifiers(sub))
    return names


def _sites(module: vast.ModuleDef) -> list[_Site]:
    sigs = facts.module_signals(module)
    signs = {name: sig.signed for name, sig in sigs.items()}
    sites: list[_Site] = []
    for index, always in enumerate(module.items):
        if not isinstance(always, vast.Always) or always.sens_list is None:
            continue
        if [s.type for s in always.sens_list.list] != ["all"]:
            continue
        written = _written(always)
        for path, node in walk_paths(always, (("items", index),)):
            if type(node) is not vast.CaseStatement:
                continue
            site = _site(node, path, index, sigs, signs, written)
            if site is not None:
                sites.append(site)
    return sites


def _site(
    case: vast.CaseStatement,
    path: Path,
    index: int,
    sigs: dict[str, facts.Signal],
    signs: dict[str, bool],
    written: set[str],
) -> _Site | None:
    if signedness(case.comp, signs) is not False or not is_pure(case.comp):
        return None
    values = [const_value(v, {}) for item in case.caselist if item.cond is not None for v in item.cond]
    if any(v is None for v in values) or len(set(values)) != len(values):
        return None  # the items must be exclusive constants
    items: list[_Item] = []
    for number, entry in enumerate(case.caselist):
        if entry.cond is None:
            continue
        item = _item(
            entry.statement, (*path, ("caselist", number), ("statement", None)), list(entry.cond), sigs, signs
        )
        if item is None:
            continue
        if {*identifiers(item.a), *identifiers(item.b)} & written:
            continue  # an operand computed in the block itself
        items.append(item)
    if len(items) < 2 or set(identifiers(case.comp)) & written:
        return None
    return _Site(path, index, case.lineno, items)


# ---------------------------------------------------------------------------------------------
# The rewrite


def _cond(comp: Any, conds: list[Any]) -> Any:
    tests = [vast.Eq(copy.deepcopy(comp), copy.deepcopy(value)) for value in conds]
    out = tests[0]
    for test in tests[1:]:
        out = vast.Lor(out, test)
    return out


def _operand(node: Any, width: int) -> Any:
    value = _literal(node)
    if value is not None:
        return vast.IntConst(f"{width}'d{value % (1 << width)}")
    return copy.deepcopy(node.var if isinstance(node, vast.Rvalue) else node)


def _mux(comp: Any, items: list[_Item], side: str, width: int, signs: dict[str, bool]) -> Any:
    """Each item's ``side`` operand selected by its case values; the most common one is the default."""
    groups: dict[str, list[_Item]] = {}
    for item in items:
        groups.setdefault(_norm_key(getattr(item, side), signs), []).append(item)
    default = Counter({key: len(members) for key, members in groups.items()}).most_common(1)[0][0]
    out = _operand(getattr(groups[default][0], side), width)
    for key, members in reversed(list(groups.items())):
        if key == default:
            continue
        conds = [c for item in members for c in item.conds]
        out = vast.Cond(_cond(comp, conds), _operand(getattr(members[0], side), width), out)
    return out


def _bit(name: str, bit: int) -> Any:
    return vast.Pointer(vast.Identifier(name), vast.IntConst(str(bit)))


def _rewrite(module: Any, *, lineno: int, count: int) -> Any:
    """Re-find the site in the current module (other rewrites may have moved it) and share its adder."""
    site = next((s for s in _sites(module) if s.lineno == lineno and len(s.items) == count), None)
    if site is None:
        return module
    signs = {name: sig.signed for name, sig in facts.module_signals(module).items()}
    width = site.width
    comp = node_at(module, site.case_path).comp
    names = {base: facts.fresh_name(module, f"shared_{base}") for base in ("a", "b", "sub", "sum")}
    module = copy.copy(module)
    module.items = tuple(copy.deepcopy(item) for item in module.items)
    for item in site.items:
        for use in item.uses:
            if use.sum:
                value = vast.Identifier(names["sum"])
                if use.bits < width:
                    value = vast.Partselect(value, vast.IntConst(str(use.bits - 1)), vast.IntConst("0"))
                replace_at(module, use.path, vast.Rvalue(value))
            else:
                bit = _bit(names["sum"], use.bits)
                replace_at(module, use.path, vast.Ulnot(bit) if use.negate else bit)
    a = _mux(comp, site.items, "a", width, signs)
    b = _mux(comp, site.items, "b", width, signs)
    subs = [item for item in site.items if item.sub]
    new: list[Any] = [
        facts.declare(vast.Wire, names["a"], width, False),
        facts.assign(names["a"], a),
        facts.declare(vast.Wire, names["b"], width, False),
        facts.assign(names["b"], b),
    ]
    if len(subs) == len(site.items):
        total: Any = vast.Minus(vast.Identifier(names["a"]), vast.Identifier(names["b"]))
    elif not subs:
        total = vast.Plus(vast.Identifier(names["a"]), vast.Identifier(names["b"]))
    else:
        sub = _cond(comp, [c for item in subs for c in item.conds])
        new += [facts.declare(vast.Wire, names["sub"], 1, False), facts.assign(names["sub"], sub)]
        flip = vast.Repeat(vast.Concat([vast.Identifier(names["sub"])]), vast.IntConst(str(width)))
        inverted = vast.Xor(vast.Identifier(names["b"]), flip)
        total = vast.Plus(vast.Plus(vast.Identifier(names["a"]), inverted), vast.Identifier(names["sub"]))
    new += [facts.declare(vast.Wire, names["sum"], width, False), facts.assign(names["sum"], total)]
    facts.insert_items(module, site.always_index, new)
    return module


class AddSubSharing:
    name = NAME
    looks_for = "an operation-selected set of additions, subtractions and comparisons on one operand width"

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]:
        rewrites: list[Rewrite] = []
        for root, definition in module_definitions(parsed):
            for site in _sites(definition):
                case = node_at(definition, site.case_path)
                touched = [*identifiers(case.comp)]
                for item in site.items:
                    touched += identifiers(item.a) + identifiers(item.b)
                    touched += [
                        n
                        for u in item.uses
                        if u.sum
                        for n in identifiers(node_at(definition, u.path[:-1]).left)
                    ]
                note = (
                    f"shared one {site.width}-bit adder among the additions, subtractions and comparisons "
                    f"of {len(site.items)} mutually exclusive items of the case statement on "
                    f"{expr_key(case.comp)} (module {definition.name}, line {site.lineno})"
                )
                rewrites.append(
                    Rewrite(
                        rule=NAME,
                        module=definition.name,
                        path=root,
                        note=note,
                        touched=tuple(dict.fromkeys(touched)),
                        transform=functools.partial(_rewrite, lineno=site.lineno, count=len(site.items)),
                    )
                )
        return rewrites

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        """The same sharing found on the word-level netlist (any spelling, SystemVerilog too), for
        designs the statement matcher above cannot read or finds nothing in."""
        try:
            if self.apply(parse_verilog(design.text), rng):
                return []
        except TargetError:
            pass
        return operator_sharing.text_sites(design, NAME, mixed=True)


RULE = AddSubSharing()
