"""The concrete syntax tree of a Verilog / SystemVerilog text (slang's parser, in a child process).

RTL rules find their sites on Yosys's word-level netlist and patch the user's text at the places the
netlist's ``src`` attributes point to; this tree tells them what is written there (an expression,
a declaration, a ``case`` item …) with exact byte offsets, so a patch replaces just those bytes.

:class:`SvSyntax` runs ``python -I -m evoforge.tools.sv_syntax`` (pyslang parses untrusted text: a
macro bomb or a crash must hit a child's limits, not the caller). The child prints one JSON object:
every node and token with its kind, its offsets in the text and its parent. A node that comes from
a macro expansion or an include has no offsets (``start is None``): rules leave it alone.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evoforge.errors import ToolError, ToolTimeoutError
from evoforge.tools.base import ExternalTool
from evoforge.tools.process import Limits, scrubbed_env

CHILD_LIMITS = Limits(cpu_seconds=60, memory_bytes=2 << 30, file_bytes=16 << 20, open_files=64)
SYNTAX_TIMEOUT_S = 60.0
MAX_TEXT_CHARS = 2_000_000


@dataclass(frozen=True)
class Node:
    index: int
    kind: str  # slang's SyntaxKind name ("BinaryExpression" …) or "Token:<TokenKind>" for a token
    start: int | None  # offset of the first character (None: not in the text, e.g. from a macro)
    end: int | None  # offset after the last character
    parent: int | None
    value: str  # a token's text ("" for nodes)

    @property
    def is_token(self) -> bool:
        return self.kind.startswith("Token:")


@dataclass(frozen=True)
class SyntaxTree:
    text: str
    nodes: tuple[Node, ...]
    errors: tuple[str, ...]
    _children: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

    def children(self, node: Node) -> tuple[Node, ...]:
        return tuple(self.nodes[i] for i in self._children.get(node.index, ()))

    def parent(self, node: Node) -> Node | None:
        return None if node.parent is None else self.nodes[node.parent]

    def ancestors(self, node: Node) -> Iterator[Node]:
        current = self.parent(node)
        while current is not None:
            yield current
            current = self.parent(current)

    def walk(self, node: Node | None = None) -> Iterator[Node]:
        """``node`` (the root by default) and everything below it, in source order."""
        stack = [node or self.nodes[0]]
        while stack:
            current = stack.pop()
            yield current
            stack.extend(reversed(self.children(current)))

    def source(self, node: Node) -> str | None:
        """The node's text exactly as written (None for a node from a macro)."""
        if node.start is None or node.end is None:
            return None
        return self.text[node.start : node.end]

    def clean(self, node: Node) -> bool:
        """Every token under ``node`` is in the text itself (no macro expansion, no include)."""
        return all(n.start is not None for n in self.walk(node) if n.is_token)

    def of_kind(self, *kinds: str, within: Node | None = None) -> list[Node]:
        return [n for n in self.walk(within) if n.kind in kinds]

    def at(self, start: int, end: int) -> list[Node]:
        """Nodes (not tokens) spanning exactly ``start..end``, outermost first."""
        return [n for n in self.nodes if n.start == start and n.end == end and not n.is_token]

    def enclosing(self, offset: int, *kinds: str) -> Node | None:
        """The innermost node of one of ``kinds`` whose span contains ``offset``."""
        best: Node | None = None
        for n in self.nodes:
            inside = (
                n.kind in kinds and n.start is not None and n.end is not None and n.start <= offset < n.end
            )
            if inside and (
                best is None or (n.end or 0) - (n.start or 0) <= (best.end or 0) - (best.start or 0)
            ):
                best = n
        return best

    def tokens(self, node: Node) -> list[Node]:
        return [n for n in self.walk(node) if n.is_token]

    def name(self, node: Node) -> str:
        """The first identifier token under ``node`` ("" when there is none)."""
        for n in self.walk(node):
            if n.kind == "Token:Identifier":
                return n.value
        return ""

    def modules(self) -> dict[str, Node]:
        """Every module declaration by name."""
        out: dict[str, Node] = {}
        for decl in self.of_kind("ModuleDeclaration"):
            header = next((c for c in self.children(decl) if c.kind == "ModuleHeader"), None)
            if header is None:
                continue
            ident = next((c for c in self.children(header) if c.kind == "Token:Identifier"), None)
            if ident is not None:
                out[ident.value] = decl
        return out


def tree_from_json(text: str, data: dict[str, Any]) -> SyntaxTree:
    nodes = tuple(
        Node(i, str(kind), start, end, parent, str(value or ""))
        for i, (kind, start, end, parent, value) in enumerate(data["nodes"])
    )
    children: dict[int, list[int]] = {}
    for node in nodes:
        if node.parent is not None:
            children.setdefault(node.parent, []).append(node.index)
    tree = SyntaxTree(text, nodes, tuple(str(e) for e in data.get("errors", ())))
    tree._children.update({k: tuple(v) for k, v in children.items()})
    return tree


def syntax_in_process(text: str) -> dict[str, Any]:
    """Parse ``text`` with pyslang and return the JSON-ready node list (the child's output)."""
    from pyslang import syntax

    tree = syntax.SyntaxTree.fromText(text, "design.sv")
    main = tree.root.sourceRange.start.buffer
    rows: list[list[Any]] = []

    def offsets(rng: Any) -> tuple[int | None, int | None]:
        if rng.start.buffer != main or rng.end.buffer != main:
            return None, None
        return int(rng.start.offset), int(rng.end.offset)

    def visit(node: Any, parent: int | None) -> None:
        index = len(rows)
        start, end = offsets(node.sourceRange)
        rows.append([node.kind.name, start, end, parent, None])
        for child in node:
            if isinstance(child, syntax.SyntaxNode):
                visit(child, index)
            elif child is not None and hasattr(child, "kind") and child.kind.name != "EndOfFile":
                t_start, t_end = offsets(child.range)
                if child.isMissing:
                    t_start = t_end = None
                rows.append(["Token:" + child.kind.name, t_start, t_end, index, child.valueText])

    visit(tree.root, None)
    errors = [f"{d.code} at offset {d.location.offset}" for d in tree.diagnostics if d.isError()]
    return {"nodes": rows, "errors": errors}


class SvSyntax(ExternalTool):
    """pyslang's parser, run as ``python -I -m evoforge.tools.sv_syntax`` in a child process."""

    name = "sv-syntax"
    executable = sys.executable
    package = "python3 (pyslang is a pip dependency of evoforge)"
    default_timeout = SYNTAX_TIMEOUT_S

    def parse(self, text: str) -> SyntaxTree:
        """The syntax tree of ``text``; raises ToolError when the child fails or times out."""
        if len(text) > MAX_TEXT_CHARS:
            raise ToolError(f"the design is too large to parse ({len(text)} characters)")
        run = self.run(
            ["-I", "-m", "evoforge.tools.sv_syntax"],
            stdin_text=text,
            env=scrubbed_env(),
            limits=CHILD_LIMITS,
        )
        if run.timed_out:
            raise ToolTimeoutError(f"parsing the design took longer than {self.timeout:g} s")
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise ToolError(f"the syntax parser failed: {last}")
        try:
            return tree_from_json(text, json.loads(run.stdout))
        except (ValueError, KeyError, TypeError) as exc:
            raise ToolError(f"the syntax parser printed unreadable output: {exc}") from exc


@functools.lru_cache(maxsize=32)
def syntax_tree(text: str) -> SyntaxTree:
    """The (cached) syntax tree of ``text``."""
    return SvSyntax().parse(text)


def _main() -> int:
    text = sys.stdin.read()
    json.dump(syntax_in_process(text), sys.stdout, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
