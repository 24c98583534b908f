"""FSM state encoding: choose how a state register's codes are implemented, for any coding style.

Sites are found on the word-level netlist (:mod:`~evoforge.agents.rtl_rules.netlist_fsm`): a
register that only ever holds codes — its next value is selected among constants, itself and other
such selections, and every reader compares it whole with a constant. One, two and three process
FSMs, ``case`` and ``if`` spellings, ``always`` and ``always_ff``/``always_comb`` all give that
shape. Each site gets these alternatives (the search measures them; none is assumed better):

* **the synthesis tool's encodings** — an ``(* fsm_encoding = "none" | "binary" | "one-hot" *)``
  attribute on the state register's declaration. Yosys re-encodes the registers its ``fsm_detect``
  accepts (one-hot unless told otherwise) and keeps the others' codes; the attribute says which
  encoding to build, or (``none``) to keep the design's own codes. An attribute does not change what
  the design computes (IEEE 1364-2005 §3.8), and Yosys's FSM re-encoding is itself exact.
* **new codes** — binary codes in breadth-first order from the reset state, or Gray codes along
  that order (neighbouring states differ in one bit), written as new values of the state names
  (``parameter``/``localparam`` declarators, ``enum`` members, ```define`` literals), with
  ``fsm_encoding = "none"`` where
  Yosys would otherwise re-encode. Why this is exact: the values form an injective renaming π of the
  codes (codes written as literals stay fixed and are never targets; when the design tests the state
  against 0 with ``!s``, 0 stays fixed), and :func:`~evoforge.agents.rtl_rules.netlist_fsm.renamed_equal`
  checks on the patched design's netlist that the patch changed exactly the constants in code
  positions, by π, and nothing else — then every compare keeps its truth value in every cycle (see
  :mod:`~evoforge.agents.rtl_rules.netlist_fsm`). A patch that fails the check is not proposed.

The patch touches only the attribute's place and the names' values: nothing else of the file changes.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.literals import Literal, parse_literal
from evoforge.agents.rtl_rules.netlist_fsm import (
    CodeRegister,
    code_registers,
    renamed_equal,
    reset_code,
    transitions,
)
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, apply_edits, module_pairs
from evoforge.errors import EvoforgeError
from evoforge.tools.sv_syntax import Node
from evoforge.tools.yosys_netlist import ModuleNetlist, fsm_registers

NAME = "fsm_encoding"
_DECLARATIONS = ("DataDeclaration", "NetDeclaration")


@dataclass(frozen=True)
class _Name:
    name: str
    value: int
    literal: Literal | None  # None: an enum member without a value
    at: tuple[int, int]  # the literal's range, or the insertion point after the member's name


_DEFINE = re.compile(
    r"^[ \t]*`define[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]+([0-9][0-9_]*|[0-9]*'[sS]?[bBoOdDhH][0-9a-fA-F_]+)[ \t]*(?://.*)?$",
    re.M,
)


def _defines(design: Design, codes: frozenset[int]) -> list[_Name]:
    """```define NAME <literal>`` lines whose value is a code (the macro body is the literal)."""
    out = []
    for match in _DEFINE.finditer(design.text):
        literal = parse_literal(match[2])
        if literal is not None and literal.value in codes:
            out.append(_Name(match[1], literal.value, literal, (match.start(2), match.end(2))))
    return out


def _names(design: Design, module: Node, codes: frozenset[int]) -> list[_Name]:
    """Parameters, localparams, enum members and ```define`` macros whose value is a code."""
    syntax = design.syntax
    out: list[_Name] = _defines(design, codes)
    for decl in syntax.of_kind("ParameterDeclaration", within=module):
        if any(a.kind == "ParameterPortList" for a in syntax.ancestors(decl)):
            continue  # a header parameter can be overridden from outside
        for declarator in (c for c in syntax.children(decl) if c.kind == "Declarator"):
            found = _valued(design, declarator)
            if found is not None and found.value in codes:
                out.append(found)
    for enum in syntax.of_kind("EnumType", within=module):
        value = -1
        members: list[_Name] = []
        for declarator in (c for c in syntax.children(enum) if c.kind == "Declarator"):
            found = _valued(design, declarator)
            if found is None:
                if any(c.kind == "EqualsValueClause" for c in syntax.children(declarator)):
                    members = []
                    break  # a member set by an expression: leave the enum alone
                value += 1
                assert declarator.end is not None
                found = _Name(syntax.name(declarator), value, None, (declarator.end, declarator.end))
            value = found.value
            members.append(found)
        out.extend(m for m in members if m.value in codes)
    return out


def _valued(design: Design, declarator: Node) -> _Name | None:
    syntax = design.syntax
    clause = next((c for c in syntax.children(declarator) if c.kind == "EqualsValueClause"), None)
    if clause is None:
        return None
    expr = next((c for c in syntax.children(clause) if not c.is_token), None)
    if expr is None or expr.kind not in ("IntegerLiteralExpression", "IntegerVectorExpression"):
        return None
    text = syntax.source(expr)
    literal = parse_literal(text) if text is not None else None
    if literal is None or expr.start is None or expr.end is None:
        return None
    return _Name(syntax.name(declarator), literal.value, literal, (expr.start, expr.end))


def _declaration(design: Design, module: ModuleNetlist, name: str) -> Node | None:
    net = module.nets.get(name)
    where = design.span(net.src) if net is not None else None
    if where is None:
        return None
    return design.syntax.enclosing(where[0], *_DECLARATIONS)


def _attribute_edit(design: Design, decl: Node, encoding: str) -> Edit:
    syntax = design.syntax
    for attr in (c for c in syntax.children(decl) if c.kind == "AttributeInstance"):
        text = syntax.source(attr) or ""
        if "fsm_encoding" in text and attr.start is not None and attr.end is not None:
            return Edit(attr.start, attr.end, f'(* fsm_encoding = "{encoding}" *)')
    assert decl.start is not None
    return Edit(decl.start, decl.start, f'(* fsm_encoding = "{encoding}" *) ')


def _gray(i: int) -> int:
    return i ^ (i >> 1)


def _orders(design: Design, module: ModuleNetlist, reg: CodeRegister) -> list[int]:
    """The codes in breadth-first order from reset (numeric order when the graph is unknown)."""
    start = reset_code(module, reg)
    graph = transitions(module, reg, start) if start is not None else None
    if graph is None:
        return sorted(reg.codes)
    assert start is not None
    order: list[int] = []
    frontier: list[int] = [start]
    seen: set[int] = set()
    while frontier:
        nxt: list[int] = []
        for code in frontier:
            if code in seen:
                continue
            seen.add(code)
            order.append(code)
            nxt.extend(sorted(graph.get(code, ())))
        frontier = nxt
    return order + sorted(c for c in reg.codes if c not in seen)


def _renaming(order: list[int], named: set[int], fixed: set[int], width: int, gray: bool) -> dict[int, int]:
    targets = [(_gray(i) if gray else i) for i in range(1 << width)]
    targets = [t for t in targets if t not in fixed]
    movable = [c for c in order if c in named and c not in fixed]
    return dict(zip(movable, targets, strict=False))


def _swap_bits(value: int) -> int:
    return ((value & 1) << 1) | ((value >> 1) & 1)


def _small_renamings(
    order: list[int], named: set[int], fixed: set[int], width: int
) -> list[tuple[str, dict[int, int]]]:
    """Every assignment of a 2-bit machine's codes that keeps the reset state's code, up to swapping
    the two bits (which only renames flip-flops)."""
    if width != 2 or not order:
        return []
    reset = order[0]
    pinned = set(fixed) | {reset}
    movable = [c for c in order if c in named and c not in pinned]
    free = [t for t in range(4) if t not in pinned]
    out: list[tuple[str, dict[int, int]]] = []
    seen: set[tuple[int, ...]] = set()
    for perm in itertools.permutations(free, len(movable)):
        mapping = dict(zip(movable, perm, strict=True))
        key = tuple(mapping.get(c, c) for c in sorted(named | pinned))
        mirror = tuple(_swap_bits(v) for v in key)
        if key in seen or (reset == 0 and 0 in pinned and mirror in seen):
            continue
        seen.add(key)
        out.append(("the codes", mapping))
    return out


class FsmEncoding:
    name = NAME
    looks_for = "a state register that only holds codes (compared with constants, loaded with constants)"

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        views = design.views()
        if isinstance(views, str):
            decline(f"no netlist or syntax tree: {views}")
            return []
        try:
            tool_view = fsm_registers(design.text)
        except EvoforgeError:
            tool_view = {}
        sites: list[TextSite] = []
        for name, module, node in module_pairs(design):
            for reg in code_registers(module):
                sites.extend(self._sites(design, name, module, node, reg, tool_view.get((name, reg.name))))
        return sites

    def _sites(
        self,
        design: Design,
        module_name: str,
        module: ModuleNetlist,
        node: Node,
        reg: CodeRegister,
        tool: str | None,
    ) -> list[TextSite]:
        decl = _declaration(design, module, reg.name)
        key = f"{module_name}.{reg.name}"
        touched = reg.variables
        states = f"state register {reg.name} ({len(reg.codes)} codes, {reg.width} bits)"
        detected = tool == ""
        sites: list[TextSite] = []

        def site(note: str, edits: list[Edit]) -> None:
            sites.append(TextSite(NAME, module_name, note, touched, tuple(edits), key))

        if decl is not None and design.syntax.clean(decl):
            keep = "synthesis would re-encode it one-hot" if detected else "synthesis keeps it"
            if detected:
                site(
                    f'{states}: keep the design\'s own codes (fsm_encoding = "none"; {keep})',
                    [_attribute_edit(design, decl, "none")],
                )
            else:
                site(
                    f'{states}: have synthesis re-encode it one-hot (fsm_encoding = "one-hot")',
                    [_attribute_edit(design, decl, "one-hot")],
                )
            site(
                f'{states}: have synthesis re-encode it in binary (fsm_encoding = "binary")',
                [_attribute_edit(design, decl, "binary")],
            )
        names = _names(design, node, reg.codes)
        named = {n.value for n in names}
        fixed = set(reg.codes - named)
        if reg.zero_tested:
            fixed.add(0)
        if not names:
            decline(f"the codes of {reg.name} are not written as parameter, localparam, enum or macro names")
            return sites
        order = _orders(design, module, reg)
        candidates = [
            ("binary codes", _renaming(order, named, fixed, reg.width, False)),
            ("Gray codes", _renaming(order, named, fixed, reg.width, True)),
            *_small_renamings(order, named, fixed, reg.width),
        ]
        tried: set[tuple[tuple[int, int], ...]] = set()
        for kind, mapping in candidates:
            identity = {k: v for k, v in mapping.items() if k != v}
            signature = tuple(sorted(identity.items()))
            if not identity or signature in tried:
                continue
            tried.add(signature)
            edits = []
            for n in names:
                new = mapping.get(n.value, n.value)
                if new == n.value:
                    continue
                if n.literal is None:
                    edits.append(Edit(n.at[0], n.at[1], f" = {reg.width}'d{new}"))
                elif n.literal.fits(new):
                    edits.append(Edit(n.at[0], n.at[1], n.literal.render(new)))
                else:
                    edits = []
                    break
            if not edits:
                continue
            if detected and decl is not None and design.syntax.clean(decl):
                edits.append(_attribute_edit(design, decl, "none"))
            problem = self._check(design, module_name, module, reg, edits, mapping)
            if problem is not None:
                decline(f"new codes for {reg.name}: {problem}")
                continue
            listing = ", ".join(
                f"{n.name}={mapping.get(n.value, n.value)}" for n in sorted(names, key=lambda n: n.value)
            )
            how = "in breadth-first order from reset" if kind != "the codes" else "(another assignment)"
            site(f"{states}: {kind} {how} ({listing})", edits)
        return sites

    def _check(
        self,
        design: Design,
        module_name: str,
        module: ModuleNetlist,
        reg: CodeRegister,
        edits: list[Edit],
        mapping: dict[int, int],
    ) -> str | None:
        patched = Design(apply_edits(design.text, edits))
        try:
            after = patched.netlist.modules.get(module_name)
        except EvoforgeError as exc:
            return f"the patched design does not build ({exc.message})"
        if after is None:
            return "the module is gone from the patched design"
        full = dict(mapping)
        return renamed_equal(module, after, reg, full)


RULE = FsmEncoding()
