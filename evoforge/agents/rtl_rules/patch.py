"""Minimal patches: a rewritten AST turned into line edits of the user's own text.

A rule rewrites the pyverilog AST; printing the whole rewritten tree would lose the user's comments,
formatting and layout. :func:`minimal_patch` instead compares the original and the rewritten tree
structurally — module items, then the statements of ``always`` blocks, ``begin … end`` blocks and
``case`` arms — and re-prints only the nodes that differ, in place of the source lines they occupied.
Every other line of the user's file is kept byte for byte, comments included.

A node's lines run from its own line number up to the line before the next sibling (trailing blank
and comment-only lines left to the sibling); siblings that share a line are one unit, re-printed
together. The patch gives up (returns None, and the caller prints the whole tree as before) when it
cannot be sure of the layout: the module header changed, the preprocessor changed a line the patch
touches (macros), or two edits would overlap.
"""

from __future__ import annotations

import difflib
import itertools
import logging
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyverilog.vparser import ast as vast

from evoforge.tools.verilog_ast import ParsedVerilog, generate_verilog

log = logging.getLogger(__name__)


class _GiveUp(Exception):
    """The layout is not certain enough for a line patch."""


@dataclass(frozen=True)
class _Edit:
    lo: int  # first line replaced (1-based)
    hi: int  # last line replaced; hi == lo - 1 inserts before line lo
    lines: tuple[str, ...]


_CASES = (vast.CaseStatement, vast.CasexStatement, vast.CasezStatement)


def minimal_patch(original: str, parsed: ParsedVerilog, rewritten: vast.Source) -> str | None:
    """``original`` with only the lines of the nodes that differ between the trees re-printed."""
    lines = original.splitlines(keepends=True)
    pre = parsed.text.splitlines(keepends=True)
    if len(lines) != len(pre):
        return None
    try:
        edits = _diff_source(parsed.ast, rewritten, pre)
    except _GiveUp as exc:
        log.debug("minimal patch: printing the whole tree (%s)", exc)
        return None
    ordered = sorted(edits, key=lambda e: (e.lo, e.hi))
    for a, b in itertools.pairwise(ordered):
        if b.lo <= a.hi or (b.lo == a.lo and b.hi < b.lo and a.hi < a.lo):
            return None  # overlapping edits (or two inserts at one place)
    for edit in ordered:  # a line the preprocessor changed (a macro) cannot be patched in place
        if lines[edit.lo - 1 : edit.hi] != pre[edit.lo - 1 : edit.hi]:
            return None
    out = list(lines)
    for edit in reversed(ordered):
        out[edit.lo - 1 : edit.hi] = list(edit.lines)
    return "".join(out)


def _key(node: Any) -> str:
    return " ".join(generate_verilog(node).split())


def _diff_source(old: vast.Source, new: vast.Source, lines: list[str]) -> list[_Edit]:
    old_defs, new_defs = old.description.definitions, new.description.definitions
    if len(old_defs) != len(new_defs):
        raise _GiveUp("modules added or removed")
    edits: list[_Edit] = []
    for a, b in zip(old_defs, new_defs, strict=True):
        if not isinstance(a, vast.ModuleDef) or not isinstance(b, vast.ModuleDef):
            if _key(a) != _key(b):
                raise _GiveUp("a non-module definition changed")
            continue
        if a.name != b.name or _key(a.paramlist) != _key(b.paramlist) or _key(a.portlist) != _key(b.portlist):
            raise _GiveUp(f"the header of module {a.name} changed")
        end = _find_line(lines, a.lineno, r"^\s*endmodule\b")
        first = a.items[0].lineno if a.items else end
        _diff_sequence(list(a.items), list(b.items), first, end - 1, lines, edits)
    return edits


def _find_line(lines: list[str], start: int, pattern: str) -> int:
    regex = re.compile(pattern)
    for number in range(max(start, 1), len(lines) + 1):
        if regex.search(_code(lines[number - 1])):
            return number
    raise _GiveUp(f"no line matching {pattern!r} after line {start}")


def _code(line: str) -> str:
    """The line without a trailing // comment (a rough cut: enough to recognise `end` lines)."""
    return line.split("//", 1)[0].rstrip()


def _blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("//")


def _spans(nodes: Sequence[Any], hi: int, lines: list[str]) -> list[tuple[int, int]]:
    """Each node's (first, last) line; nodes sharing a line share the span of their unit."""
    starts: list[int] = []
    for node in nodes:
        line = getattr(node, "lineno", 0) or 0
        if line <= 0 or (starts and line < starts[-1]):
            raise _GiveUp(f"no usable line number on {type(node).__name__}")
        starts.append(line)
    spans = []
    for k, start in enumerate(starts):
        following = [s for s in starts[k + 1 :] if s > start]
        last = following[0] - 1 if following else hi
        while last > start and _blank(lines[last - 1]):
            last -= 1
        spans.append((start, last))
    return spans


def _diff_sequence(
    old: list[Any], new: list[Any], lo: int, hi: int, lines: list[str], edits: list[_Edit]
) -> None:
    """Edits turning the old siblings (on lines ``lo..hi``) into the new ones."""
    old_keys = [_key(n) for n in old]
    new_keys = [_key(n) for n in new]
    if old_keys == new_keys:
        return
    spans = _spans(old, hi, lines)
    matcher = difflib.SequenceMatcher(None, old_keys, new_keys, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace":  # align by node type inside the block: an edited always block stays paired
            types = difflib.SequenceMatcher(
                None,
                [type(n).__name__ for n in old[i1:i2]],
                [type(n).__name__ for n in new[j1:j2]],
                autojunk=False,
            )
            for sub, a1, a2, b1, b2 in types.get_opcodes():
                if sub == "equal":
                    for k in range(a2 - a1):
                        i, j = i1 + a1 + k, j1 + b1 + k
                        if old_keys[i] != new_keys[j] and not _refine(old[i], new[j], spans[i], lines, edits):
                            _replace(old, new[j : j + 1], i, i + 1, spans, lines, edits)
                elif sub == "insert":
                    _insert(old, new[j1 + b1 : j1 + b2], i1 + a1, spans, lo, lines, edits)
                else:
                    _replace(old, new[j1 + b1 : j1 + b2], i1 + a1, i1 + a2, spans, lines, edits)
        elif tag == "insert":
            _insert(old, new[j1:j2], i1, spans, lo, lines, edits)
        else:
            _replace(old, [], i1, i2, spans, lines, edits)


def _insert(
    old: list[Any],
    nodes: list[Any],
    at_index: int,
    spans: list[tuple[int, int]],
    lo: int,
    lines: list[str],
    edits: list[_Edit],
) -> None:
    if at_index < len(old):
        at = spans[at_index][0]
        indent = _indent(lines[at - 1])
    else:
        at = (spans[-1][1] if spans else lo - 1) + 1
        indent = _indent(lines[spans[-1][0] - 1]) if spans else "  "
    edits.append(_Edit(at, at - 1, _print(nodes, indent)))


def _replace(
    old: list[Any],
    nodes: list[Any],
    i1: int,
    i2: int,
    spans: list[tuple[int, int]],
    lines: list[str],
    edits: list[_Edit],
) -> None:
    """Old siblings ``i1..i2`` become ``nodes``; siblings sharing their first or last line are re-printed."""
    first, last = spans[i1][0], spans[i2 - 1][1]
    before = [k for k in range(i1) if spans[k][1] >= first]
    after = [k for k in range(i2, len(old)) if spans[k][0] <= last]
    first = min([first, *(spans[k][0] for k in before)])
    last = max([last, *(spans[k][1] for k in after)])
    if not nodes and not before and not after:
        edits.append(_Edit(first, last, ()))
        return
    indent = _indent(lines[first - 1])
    edits.append(
        _Edit(first, last, _print([*(old[k] for k in before), *nodes, *(old[k] for k in after)], indent))
    )


def _refine(old: Any, new: Any, span: tuple[int, int], lines: list[str], edits: list[_Edit]) -> bool:
    """Recurse into a changed node whose frame is unchanged; False when only re-printing it will do."""
    if type(old) is not type(new):
        return False
    hi = span[1]
    if _substitute_leaves(old, new, span, lines, edits):
        return True
    if isinstance(old, vast.Always):
        if _key(old.sens_list) != _key(new.sens_list):
            return False
        return _refine(old.statement, new.statement, span, lines, edits)
    if isinstance(old, vast.Block):
        if old.scope != new.scope or not old.statements or not new.statements:
            return False
        if _code(lines[hi - 1]).strip() != "end" or old.statements[0].lineno <= old.lineno:
            return False
        _diff_sequence(
            list(old.statements), list(new.statements), old.statements[0].lineno, hi - 1, lines, edits
        )
        return True
    if isinstance(old, _CASES):
        if _key(old.comp) != _key(new.comp) or not old.caselist:
            return False
        if _code(lines[hi - 1]).strip() != "endcase" or old.caselist[0].lineno <= old.lineno:
            return False
        _diff_sequence(list(old.caselist), list(new.caselist), old.caselist[0].lineno, hi - 1, lines, edits)
        return True
    if isinstance(old, vast.Case):
        same_cond = [_key(c) for c in old.cond or ()] == [_key(c) for c in new.cond or ()]
        if not same_cond or getattr(old.statement, "lineno", 0) != old.lineno:
            return False
        return _refine(old.statement, new.statement, span, lines, edits)
    return False


_TOKEN = re.compile(
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\])*\""  # comments and strings: skipped
    r"|(?P<num>(?:\d[\d_]*\s*)?'[sS]?[bBoOdDhH]\s*[0-9a-fA-FxXzZ_?]+|\d[\d_]*(?:\.\d+)?)"
    r"|(?P<id>\$?[A-Za-z_][A-Za-z0-9_$]*|\\\S+)",
    re.DOTALL,
)
_KEYWORDS = frozenset(
    [
        "always",
        "always_comb",
        "always_ff",
        "always_latch",
        "assign",
        "begin",
        "case",
        "casex",
        "casez",
        "default",
        "else",
        "end",
        "endcase",
        "for",
        "if",
        "initial",
        "integer",
        "negedge",
        "or",
        "posedge",
        "reg",
        "signed",
        "unsigned",
        "wire",
        "logic",
    ]
)


def _leaves(node: Any) -> list[Any]:
    out: list[Any] = []

    def visit(n: Any) -> None:
        if isinstance(n, vast.Identifier | vast.IntConst):
            out.append(n)
            return
        for child in n.children():
            visit(child)

    visit(node)
    return out


def _shape(node: Any) -> str:
    """The node's structure with every identifier and number blanked out."""
    if isinstance(node, vast.Identifier | vast.IntConst):
        return type(node).__name__
    return type(node).__name__ + "(" + ",".join(_shape(c) for c in node.children()) + ")"


def _substitute_leaves(
    old: Any, new: Any, span: tuple[int, int], lines: list[str], edits: list[_Edit]
) -> bool:
    """Same structure, only names or numbers changed: replace just those tokens in the user's lines."""
    if _shape(old) != _shape(new):
        return False
    old_leaves, new_leaves = _leaves(old), _leaves(new)
    lo, hi = span
    text = "".join(lines[lo - 1 : hi])
    tokens = [
        m
        for m in _TOKEN.finditer(text)
        if (m.lastgroup == "id" and m.group() not in _KEYWORDS) or m.lastgroup == "num"
    ]
    if [m.group().replace(" ", "") for m in tokens] != [_leaf_text(n) for n in old_leaves]:
        return False
    out = text
    for match, a, b in reversed(list(zip(tokens, old_leaves, new_leaves, strict=True))):
        if _leaf_text(a) != _leaf_text(b) or type(a) is not type(b):
            out = out[: match.start()] + _leaf_text(b) + out[match.end() :]
    edits.append(_Edit(lo, hi, tuple(out.splitlines(keepends=True))))
    return True


def _leaf_text(node: Any) -> str:
    if isinstance(node, vast.Identifier):
        return str(node.name) if node.scope is None else generate_verilog(node).strip()
    return str(node.value).replace(" ", "")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _print(nodes: Sequence[Any], indent: str) -> tuple[str, ...]:
    text = "\n".join(textwrap.dedent(generate_verilog(n)).strip("\n") for n in nodes)
    return tuple(f"{indent}{line}\n" if line.strip() else "\n" for line in text.split("\n"))
