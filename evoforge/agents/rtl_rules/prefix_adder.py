"""Parallel-prefix adders: a wide ``+``, ``-`` or magnitude comparison becomes a Kogge-Stone carry tree.

Synthesis maps ``$add``/``$sub``/``$lt`` … cells through Yosys's generic techmap, and ``abc`` with a
relaxed delay target then recovers area along the carry path: a 64-bit subtraction comes out as a
~12 ns carry chain in sky130. An engineer who needs the speed writes the carry network explicitly;
this rule does that for every such operator in the design (measured by the search: it trades area
for delay). Sites are ``$add``, ``$sub``, ``$lt``, ``$le``, ``$gt``, ``$ge`` cells of at least
:data:`MIN_WIDTH` bits on the word-level netlist — continuous assigns, ``always`` blocks, loop bodies
(every unrolled copy is the same expression) and SystemVerilog alike. ``a + b + c`` with a one-bit
``c`` becomes one adder with a carry-in.

The patch replaces the expression's text by a call of a function it adds to the module::

    result = A - B;    →    result = evo_sub64_l8(A, B);

Why the result equals the original (IEEE 1364-2005 §5.4-5.5, §10.4):

* The cell's ``Y_WIDTH`` W is the width of the expression's context (the netlist is read before any
  width reduction), so the expression contributes a W-bit value of the context's signedness. The
  function returns W bits, declared ``signed`` exactly when the cell is signed: the context keeps
  its width and signedness. Comparisons return one unsigned bit, like the operator.
* Operands are *self-determined* leaves (names, bit and part selects, concatenations, literals): their
  value does not depend on the context. Passed to a W-bit formal they are extended by their own
  signedness; in the original, by the context's. The rule requires the two to agree (the operand's
  own signedness — read from the netlist's net, unsigned for selects and concatenations — equals the
  cell's, or the operand is already W bits, or it is a non-negative literal).
* The function computes ``(a + (sub ? ~b : b) + c) mod 2^W`` with generate/propagate prefixes
  ``(g, p)ᵢ ∘ (g, p)ⱼ = (gᵢ | pᵢ·gⱼ, pᵢ·pⱼ)`` over ⌈log2 W⌉ levels: the carry into bit i is the
  prefix generate of bits i-1..0 with the carry-in, so each sum bit is ``aᵢ ^ bᵢ ^ cᵢ`` as in a
  ripple adder (the operator is associative, so any bracketing gives the ripple carries).
  ``a - b`` is ``a + ~b + 1`` mod 2^W. Unsigned ``a < b`` is the absence of a carry out of
  ``a + ~b + 1`` at the operands' common width; signed comparisons flip both sign bits first
  (which maps two's-complement order onto unsigned order); ``>``, ``<=``, ``>=`` swap and negate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.literals import parse_literal
from evoforge.agents.rtl_rules.text_sites import Design, Edit, TextSite, fresh_name, module_pairs
from evoforge.tools.sv_syntax import Node
from evoforge.tools.yosys_netlist import Cell, ModuleNetlist

NAME = "prefix_adder"
MIN_WIDTH = 4
_EXPRESSIONS = {
    "$add": "AddExpression",
    "$sub": "SubtractExpression",
    "$lt": "LessThanExpression",
    "$le": "LessThanEqualExpression",
    "$gt": "GreaterThanExpression",
    "$ge": "GreaterThanEqualExpression",
}
_LEAVES = (
    "IdentifierName",
    "IdentifierSelectName",
    "ConcatenationExpression",
    "MultipleConcatenationExpression",
    "IntegerLiteralExpression",
    "IntegerVectorExpression",
)


@dataclass(frozen=True)
class _Operand:
    text: str
    width: int  # the operand's own width (the cell's A_WIDTH / B_WIDTH)


def _operands(design: Design, node: Node) -> list[Node]:
    return [c for c in design.syntax.children(node) if not c.is_token]


def _leaf(design: Design, node: Node) -> Node | None:
    while node.kind == "ParenthesizedExpression":
        inner = _operands(design, node)
        if len(inner) != 1:
            return None
        node = inner[0]
    return node if node.kind in _LEAVES else None


def _operand(
    design: Design, module: ModuleNetlist, node: Node, width: int, signed: bool, context: int
) -> _Operand | str:
    """The operand as a function argument, or why passing it would change its value."""
    leaf = _leaf(design, node)
    text = design.syntax.source(node)
    if leaf is None or text is None:
        return f"operand `{text}` is an expression whose value depends on its context"
    own: bool | None
    if leaf.kind == "IdentifierName":
        net = module.nets.get(design.syntax.name(leaf))
        own = net.signed if net is not None else None
    elif leaf.kind in ("IntegerLiteralExpression", "IntegerVectorExpression"):
        literal = parse_literal(design.syntax.source(leaf) or "")
        if literal is None:
            return f"operand `{text}` is a literal with x or z bits"
        negative = literal.signed and literal.size is not None and literal.value >> (literal.size - 1)
        own = signed if not negative else None
    else:
        own = False  # selects and concatenations are unsigned
    if own != signed and width < context:
        return f"operand `{text}` would be extended differently (its signedness is not the context's)"
    return _Operand(text, width)


def _add_function(name: str, width: int, signed: bool, subtract: bool, carry: bool) -> list[str]:
    top = width - 1
    kind = "signed " if signed else ""
    b = "~b" if subtract else "b"
    ci = "ci" if carry else ("1'b1" if subtract else "1'b0")
    lines = [
        f"// evoforge prefix_adder: {'a - b' if subtract else 'a + b' + (' + ci' if carry else '')}"
        f" at {width} bits, Kogge-Stone carries",
        f"function {kind}[{top}:0] {name};",
        f"  input [{top}:0] a;",
        f"  input [{top}:0] b;",
    ]
    if carry:
        lines.append("  input ci;")
    lines += [
        f"  reg [{top}:0] g, p, gn, pn, x;",
        "  integer k, i;",
        "  begin",
        f"    x = a ^ {b};",
        f"    g = a & {b};",
        "    p = x;",
        f"    for (k = 1; k < {width}; k = k * 2) begin",
        "      gn = g;",
        "      pn = p;",
        f"      for (i = k; i < {width}; i = i + 1) begin",
        "        gn[i] = g[i] | (p[i] & g[i - k]);",
        "        pn[i] = p[i] & p[i - k];",
        "      end",
        "      g = gn;",
        "      p = pn;",
        "    end",
        f"    {name} = x ^ {{g[{top - 1}:0] | (p[{top - 1}:0] & {{{top}{{{ci}}}}}), {ci}}};"
        if width > 1
        else f"    {name} = x ^ {ci};",
        "  end",
        "endfunction",
    ]
    return lines


def _less_function(name: str, width: int, signed: bool) -> list[str]:
    """``a < b`` at ``width`` bits: no carry out of ``a + ~b + 1``."""
    top = width - 1
    flip = f"{{1'b1, {{{top}{{1'b0}}}}}}" if signed else f"{width}'d0"
    return [
        f"// evoforge prefix_adder: {'signed' if signed else 'unsigned'} a < b at {width} bits, "
        "Kogge-Stone carry",
        f"function {name};",
        f"  input [{top}:0] a;",
        f"  input [{top}:0] b;",
        f"  reg [{top}:0] g, p, gn, pn, u, v;",
        "  integer k, i;",
        "  begin",
        f"    u = a ^ {flip};",
        f"    v = ~(b ^ {flip});",
        "    g = u & v;",
        "    p = u ^ v;",
        f"    for (k = 1; k < {width}; k = k * 2) begin",
        "      gn = g;",
        "      pn = p;",
        f"      for (i = k; i < {width}; i = i + 1) begin",
        "        gn[i] = g[i] | (p[i] & g[i - k]);",
        "        pn[i] = p[i] & p[i - k];",
        "      end",
        "      g = gn;",
        "      p = pn;",
        "    end",
        f"    {name} = ~(g[{top}] | p[{top}]);",
        "  end",
        "endfunction",
    ]


def _signed(cell: Cell) -> bool:
    return bool(cell.param("A_SIGNED")) and bool(cell.param("B_SIGNED"))


class PrefixAdder:
    name = NAME
    looks_for = f"an addition, subtraction or magnitude comparison of at least {MIN_WIDTH} bits"

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]:
        sites: list[TextSite] = []
        taken: set[str] = set()
        for module_name, module, node in module_pairs(design):
            groups: dict[tuple[int, int], list[Cell]] = {}
            for cell in module.cells:
                if cell.type in _EXPRESSIONS:
                    span = design.span(cell.src)
                    if span is not None:
                        groups.setdefault(span, []).append(cell)
            inner = self._inner_adds(design, module, groups)
            for span, cells in sorted(groups.items()):
                if span in inner:
                    continue
                site = self._site(design, module_name, module, node, span, cells, groups, taken)
                if site is not None:
                    sites.append(site)
        return sites

    @staticmethod
    def _summed(module: ModuleNetlist, cells: list[Cell]) -> bool:
        """An operand is another wide sum, or the result feeds one: a multi-operand addition."""
        mine = {c.name for c in cells}
        for cell in cells:
            for port in ("A", "B"):
                bits = cell.port(port)
                found = module.driver(bits[0]) if bits and len(bits) > 1 else None
                if found is not None and found[0].type in ("$add", "$sub") and found[0].name not in mine:
                    return True
                if found is not None and found[0].name in mine:
                    return True
        outputs = {b for c in cells for b in c.port("Y") if isinstance(b, int)}
        for other in module.cells:
            if (
                other.type in ("$add", "$sub")
                and other.name not in mine
                and any(b in outputs for p in ("A", "B") for b in other.port(p))
                and len(other.port("B")) > 1
            ):
                return True
        return False

    def _inner_adds(
        self, design: Design, module: ModuleNetlist, groups: dict[tuple[int, int], list[Cell]]
    ) -> set[tuple[int, int]]:
        """Spans of ``a + b`` that an enclosing ``(a + b) + c`` with a one-bit ``c`` absorbs."""
        out = set()
        for span, cells in groups.items():
            carry = self._carry_chain(design, module, span, cells, groups)
            if carry is not None:
                out.add(carry)
        return out

    def _carry_chain(
        self,
        design: Design,
        module: ModuleNetlist,
        span: tuple[int, int],
        cells: list[Cell],
        groups: dict[tuple[int, int], list[Cell]],
    ) -> tuple[int, int] | None:
        """The span of the inner sum when ``span`` is ``(a + b) + c`` with a one-bit unsigned ``c``."""
        cell = cells[0]
        if cell.type != "$add" or cell.param("B_WIDTH") != 1 or _signed(cell):
            return None
        node = design.node_of(cell, "AddExpression")
        if node is None:
            return None
        left = _operands(design, node)[0]
        while left.kind == "ParenthesizedExpression" and len(_operands(design, left)) == 1:
            left = _operands(design, left)[0]
        if left.kind != "AddExpression" or left.start is None or left.end is None:
            return None
        inner = groups.get((left.start, left.end))
        if not inner or len(inner) != len(cells):
            return None
        first = inner[0]
        if first.param("Y_WIDTH") != cell.param("Y_WIDTH") or _signed(first):
            return None
        if any(c.port("Y") != o.port("A") for c, o in zip(inner, cells, strict=True)):
            return None
        return left.start, left.end

    def _site(
        self,
        design: Design,
        module_name: str,
        module: ModuleNetlist,
        module_node: Node,
        span: tuple[int, int],
        cells: list[Cell],
        groups: dict[tuple[int, int], list[Cell]],
        taken: set[str],
    ) -> TextSite | None:
        cell = cells[0]
        if any(c.type != cell.type or c.params != cell.params for c in cells):
            return None
        compare = cell.type not in ("$add", "$sub")
        width = max(cell.param("A_WIDTH"), cell.param("B_WIDTH")) if compare else cell.param("Y_WIDTH")
        if width < MIN_WIDTH:
            return None
        node = design.node_of(cell, _EXPRESSIONS[cell.type])
        line = design.line_of(span[0])
        inner = self._carry_chain(design, module, span, cells, groups)
        if node is None:
            decline(f"the {cell.type} at line {line} is not one written expression (a macro?)")
            return None
        if not compare and inner is None and self._summed(module, cells):
            decline(f"line {line}: a sum of several words (synthesis builds one carry-save tree for it)")
            return None
        signed = _signed(cell)
        left, right = _operands(design, node)
        carry_node: Node | None = None
        a_width, b_width = cell.param("A_WIDTH"), cell.param("B_WIDTH")
        if inner is not None:
            carry_node = right
            sum_node = left
            while sum_node.kind == "ParenthesizedExpression":
                sum_node = _operands(design, sum_node)[0]
            left, right = _operands(design, sum_node)
            first = groups[inner][0]
            a_width, b_width = first.param("A_WIDTH"), first.param("B_WIDTH")
        variable = [
            w
            for n, w in ((left, a_width), (right, b_width))
            if (_leaf(design, n) or n).kind not in ("IntegerLiteralExpression", "IntegerVectorExpression")
        ]
        if max(variable, default=0) < MIN_WIDTH:
            return None
        args = []
        for operand, own_width in ((left, a_width), (right, b_width)):
            found = _operand(design, module, operand, own_width, signed, width)
            if isinstance(found, str):
                decline(f"line {line}: {found}")
                return None
            args.append(found.text)
        if carry_node is not None:
            found = _operand(design, module, carry_node, 1, False, 1)
            if isinstance(found, str):
                decline(f"line {line}: {found}")
                return None
            args.append(found.text)
        op = {"$add": "add", "$sub": "sub"}.get(cell.type, "lt")
        function = fresh_name(design, f"evo_{op}{width}_l{line}")
        while function in taken:
            function += "_"
        taken.add(function)
        if compare:
            body = _less_function(function, width, signed)
            a, b = args
            call = {
                "$lt": f"{function}({a}, {b})",
                "$gt": f"{function}({b}, {a})",
                "$le": f"(!{function}({b}, {a}))",
                "$ge": f"(!{function}({a}, {b}))",
            }[cell.type]
        else:
            body = _add_function(function, width, signed, cell.type == "$sub", carry_node is not None)
            call = f"{function}({', '.join(args)})"
        assert node.start is not None and node.end is not None
        edits = (Edit(node.start, node.end, call), design.after_header(module_node, body))
        what = design.syntax.source(node) or cell.type
        copies = f" ({len(cells)} copies, a loop)" if len(cells) > 1 else ""
        touched = tuple(
            dict.fromkeys(
                n.value
                for arg in (left, right)
                for n in design.syntax.walk(arg)
                if n.kind == "Token:Identifier"
            )
        )
        net = module.net_with_bits(cell.port("Y"))
        if net is not None:
            touched = (net.name, *touched)
        note = f"line {line}: `{_short(what)}`{copies} as a {width}-bit Kogge-Stone prefix {op} ({function})"
        return TextSite(NAME, module_name, note, touched, edits, key=f"{module_name}:{span[0]}")


def _short(text: str, limit: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


RULE = PrefixAdder()
