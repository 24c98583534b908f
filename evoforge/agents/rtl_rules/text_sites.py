"""Rules that see the netlist and patch the text: the design view they read and the sites they return.

A :class:`Design` is the user's text with two lazily built views of it: Yosys's word-level netlist
(:mod:`evoforge.tools.yosys_netlist`, where spelling is gone) and slang's concrete syntax tree
(:mod:`evoforge.tools.sv_syntax`, exact byte offsets of what is written). A :class:`TextRule` finds
its sites on the netlist, locates them in the text through the cells' ``src`` attributes and the
syntax tree, and returns :class:`TextSite` s: byte-range :class:`Edit` s on the original text. Bytes
outside the edits are kept as they are — comments, layout and names included — so the patch *is*
the minimal diff. Verilog-2005 and SystemVerilog are read the same way (no pyverilog involved).
"""

from __future__ import annotations

import bisect
import functools
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.errors import EvoforgeError
from evoforge.tools.sv_syntax import Node, SyntaxTree, syntax_tree
from evoforge.tools.yosys_netlist import Cell, ModuleNetlist, Netlist, word_netlist


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` by ``text`` (an insertion when ``start == end``)."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class TextSite:
    rule: str
    module: str
    note: str  # one sentence: what is rewritten, where
    touched: tuple[str, ...]  # signals the rewrite changes or reads (for critical-path preference)
    edits: tuple[Edit, ...]
    key: str = ""  # identifies the site among the rule's sites (same key: alternatives of one site)


class TextRule(Protocol):
    name: str
    looks_for: str  # the kind of site, said when a design has none

    def text_sites(self, design: Design, rng: random.Random) -> list[TextSite]: ...


class Overlap(ValueError):
    """Two edits touch the same bytes."""


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """``text`` with every edit applied (insertions at one offset keep their order)."""
    ordered = sorted(enumerate(edits), key=lambda p: (p[1].start, p[1].end, p[0]))
    out: list[str] = []
    pos = 0
    for _, edit in ordered:
        if edit.start < pos or edit.end < edit.start:
            raise Overlap(f"edits overlap at offset {edit.start}")
        out.append(text[pos : edit.start])
        out.append(edit.text)
        pos = edit.end
    out.append(text[pos:])
    return "".join(out)


def compatible(a: Sequence[Edit], b: Sequence[Edit]) -> bool:
    """No byte is changed by both edit lists (insertions at the same offset are allowed)."""
    for x in a:
        for y in b:
            if x.start < y.end and y.start < x.end:
                return False
            if x.start == x.end and y.start < x.start < y.end:
                return False
            if y.start == y.end and x.start < y.start < x.end:
                return False
    return True


_SRC = re.compile(r"^(?P<file>[^|]*?):(?P<l1>\d+)\.(?P<c1>\d+)-(?P<l2>\d+)\.(?P<c2>\d+)$")


class Design:
    """The text of a design, its word-level netlist and its syntax tree (built on first use)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._line_starts = [0, *(m.end() for m in re.finditer("\n", text))]

    @functools.cached_property
    def netlist(self) -> Netlist:
        """Raises EvoforgeError when Yosys cannot read the design."""
        return word_netlist(self.text)

    @functools.cached_property
    def syntax(self) -> SyntaxTree:
        """Raises EvoforgeError when the parser cannot run."""
        return syntax_tree(self.text)

    def views(self) -> tuple[Netlist, SyntaxTree] | str:
        """Both views, or why one of them cannot be built."""
        try:
            return self.netlist, self.syntax
        except EvoforgeError as exc:
            return exc.message

    # -- locations ----------------------------------------------------------------------------

    def offset(self, line: int, column: int) -> int:
        """Offset of 1-based ``line`` and ``column`` (Yosys counts a tab as one column)."""
        return self._line_starts[line - 1] + column - 1

    def line_of(self, offset: int) -> int:
        """1-based line of ``offset``."""
        return bisect.bisect_right(self._line_starts, offset)

    def line_start(self, offset: int) -> int:
        return self._line_starts[self.line_of(offset) - 1]

    def span(self, src: str) -> tuple[int, int] | None:
        """The text range of the first location in a Yosys ``src`` attribute (None when absent)."""
        first = src.split("|", 1)[0]
        match = _SRC.match(first)
        if match is None or int(match["l1"]) == 0:
            return None
        l1, c1, l2, c2 = (int(match[k]) for k in ("l1", "c1", "l2", "c2"))
        if l1 > len(self._line_starts) or l2 > len(self._line_starts):
            return None
        return self.offset(l1, c1), self.offset(l2, c2)

    def node_of(self, cell: Cell, *kinds: str) -> Node | None:
        """The syntax node written exactly where ``cell`` comes from (of ``kinds`` when given)."""
        where = self.span(cell.src)
        if where is None:
            return None
        found = [n for n in self.syntax.at(*where) if not kinds or n.kind in kinds]
        if not found:  # Yosys's range may include a closing parenthesis: try without it
            return None
        node = found[-1]
        return node if self.syntax.clean(node) else None

    def module(self, name: str) -> Node | None:
        return self.syntax.modules().get(name)

    def indent_of(self, node: Node) -> str:
        """The leading whitespace of the line ``node`` starts on."""
        assert node.start is not None
        start = self.line_start(node.start)
        line = self.text[start : node.start]
        return line if line.strip() == "" else re.match(r"\s*", line).group(0)  # type: ignore[union-attr]

    def item_indent(self, module: Node) -> str:
        """The indentation of the module's items (two spaces when it has none)."""
        for child in self.syntax.children(module):
            if child.kind not in ("ModuleHeader",) and not child.is_token and child.start is not None:
                return self.indent_of(child)
        return "  "

    def before_endmodule(self, module: Node, lines: Sequence[str]) -> Edit:
        """An insertion of ``lines`` (each indented like the module's items) before ``endmodule``."""
        end = next(c for c in self.syntax.children(module) if c.kind == "Token:EndModuleKeyword")
        assert end.start is not None
        indent = self.item_indent(module)
        start = self.line_start(end.start)
        body = "".join(f"{indent}{line}\n" if line else "\n" for line in lines)
        if self.text[start : end.start].strip():  # `endmodule` shares its line with code
            return Edit(end.start, end.start, "\n" + body)
        return Edit(start, start, body)

    def after_header(self, module: Node, lines: Sequence[str]) -> Edit:
        """An insertion of ``lines`` right after the module header (``module m (...);``)."""
        header = next(c for c in self.syntax.children(module) if c.kind == "ModuleHeader")
        assert header.end is not None
        indent = self.item_indent(module)
        nl = self.text.find("\n", header.end)
        at = len(self.text) if nl < 0 else nl + 1
        if self.text[header.end : at].strip():  # code after the header on its line
            return Edit(header.end, header.end, "\n" + "".join(f"{indent}{ln}\n" for ln in lines))
        return Edit(at, at, "".join(f"{indent}{ln}\n" if ln else "\n" for ln in lines))


def fresh_name(design: Design, base: str) -> str:
    """A name that is not an identifier anywhere in the text."""
    used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", design.text))
    if base not in used:
        return base
    k = 1
    while f"{base}_{k}" in used:
        k += 1
    return f"{base}_{k}"


def module_pairs(design: Design) -> list[tuple[str, ModuleNetlist, Node]]:
    """(name, netlist, syntax node) for every module both views know, in source order; none, with
    the reason declined, when a view cannot be built."""
    views = design.views()
    if isinstance(views, str):
        decline(f"no netlist or syntax tree: {views}")
        return []
    out = []
    nodes = design.syntax.modules()
    for name, node in sorted(nodes.items(), key=lambda p: p[1].start or 0):
        mod = design.netlist.modules.get(name)
        if mod is not None:
            out.append((name, mod, node))
    return out


def _ports(module: ModuleNetlist) -> dict[str, tuple[str, int]]:
    return {name: (direction, len(module.nets[name].bits)) for name, direction in module.ports.items()}


def check_patch(original: Design, text: str) -> str | None:
    """Why a patched text is unusable (None when it parses, builds and keeps every module's ports)."""
    if text == original.text:
        return "the patch changes nothing"
    patched = Design(text)
    try:
        errors = patched.syntax.errors
        netlist = patched.netlist
        before = original.netlist
    except EvoforgeError as exc:
        return exc.message
    if errors:
        return f"the patched text does not parse ({errors[0]})"
    for name, module in before.modules.items():
        after = netlist.modules.get(name)
        if after is None:
            return f"module {name} is gone"
        if _ports(after) != _ports(module):
            return f"the ports of {name} changed"
    return None
