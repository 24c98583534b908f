"""Prefixing the module names of a Verilog source, so two versions of a design can share one simulation.

The differential test compiles the original (prefix ``gold_``) and the candidate (prefix ``gate_``)
side by side; both usually declare the same module names. :func:`prefix_modules` renames every module
(and SystemVerilog package, interface and program) the source declares, at its declaration, at its
end label, at every instantiation of it and at every ``pkg::`` scope, and leaves everything else
alone: comments, strings, signals or instances that happen to share a module's name (modules live in
their own namespace in Verilog, so a signal named like a module is not a reference to it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
      (?P<comment>//[^\n]*|/\*.*?\*/)
    | (?P<string>"(?:\\.|[^"\\\n])*")
    | (?P<number>'[sS]?[bBoOdDhH]\s*[0-9a-fA-FxXzZ_?]+)
    | (?P<system>\$[A-Za-z0-9_$]+)
    | (?P<directive>`[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*|\\\S+)
    | (?P<space>\s+)
    | (?P<other>.)
    """,
    re.S | re.X,
)
_MODULE_KEYWORDS = ("module", "macromodule", "interface", "program", "package")
_END_KEYWORDS = ("endmodule", "endinterface", "endprogram", "endpackage")


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int


def _tokens(source: str) -> Iterator[_Token]:
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or "other"
        yield _Token(kind, match.group(0), match.start())


def _code_tokens(source: str) -> list[_Token]:
    """Tokens that matter for structure (no comments or whitespace)."""
    return [t for t in _tokens(source) if t.kind not in ("comment", "space")]


def declared_modules(source: str) -> list[str]:
    """Names of the modules declared in ``source``, in order of declaration."""
    code = _code_tokens(source)
    names: list[str] = []
    for i, tok in enumerate(code[:-1]):
        if tok.kind == "ident" and tok.text in _MODULE_KEYWORDS and code[i + 1].kind == "ident":
            name = code[i + 1].text
            if name not in names:
                names.append(name)
    return names


def _is_instantiation(code: list[_Token], i: int) -> bool:
    """``code[i]`` starts ``Name #(…) inst (…)`` or ``Name inst (…)`` / ``Name inst [n:0] (…)``."""
    following = code[i + 1] if i + 1 < len(code) else None
    if following is None:
        return False
    if following.text == "#":
        return True
    if following.kind != "ident":
        return False
    after = code[i + 2] if i + 2 < len(code) else None
    return after is not None and after.text in ("(", "[")


def _reference_positions(code: list[_Token], names: set[str]) -> list[_Token]:
    found: list[_Token] = []
    for i, tok in enumerate(code):
        if tok.kind != "ident" or tok.text not in names:
            continue
        previous = code[i - 1] if i > 0 else None
        if previous is not None and previous.kind == "ident" and previous.text in _MODULE_KEYWORDS:
            found.append(tok)  # the declaration
        elif previous is not None and previous.text == ":" and i > 1 and code[i - 2].text in _END_KEYWORDS:
            found.append(tok)  # SystemVerilog end label
        elif i + 2 < len(code) and code[i + 1].text == ":" and code[i + 2].text == ":":
            found.append(tok)  # a package scope: pkg::name, import pkg::*
        elif previous is not None and previous.text in (".", "#"):
            continue  # a port or parameter named like a module, or a hierarchical name
        elif _is_instantiation(code, i):
            found.append(tok)
    return found


def prefix_modules(source: str, prefix: str) -> str:
    """``source`` with every declared module (and each instantiation of it) renamed to ``prefix + name``."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ValueError(f"prefix {prefix!r} is not a plain Verilog identifier")
    names = set(declared_modules(source))
    if not names:
        return source
    code = _code_tokens(source)
    pieces: list[str] = []
    cursor = 0
    for tok in _reference_positions(code, names):
        pieces.append(source[cursor : tok.start])
        if tok.text.startswith("\\"):
            pieces.append("\\" + prefix + tok.text[1:])
        else:
            pieces.append(prefix + tok.text)
        cursor = tok.start + len(tok.text)
    pieces.append(source[cursor:])
    return "".join(pieces)
