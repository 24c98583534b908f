"""The canonical hash of DESIGN.md: a draft's text with the names of its internal signals gone.

Two drafts with equal canonical hashes differ only in comments, whitespace and a consistent renaming
of names nobody outside the design can see, so they behave alike and need one evaluation between
them. Which names are "internal" is decided per *name*, never per occurrence: a name is either
replaced everywhere in the text by a positional token (``⟨n⟩``, its order of first appearance — a
character no Verilog or Python token contains, so no kept name can be captured) or kept everywhere.
Then equal canonical texts mean one text is the other under a bijective renaming, which is the
argument for soundness; anything this module cannot argue about yields ``None`` (no canonical hash,
the source hash still applies). A false "duplicate" would only cost exploration: a duplicate never
becomes a parent, the job's best or an export, it points at the candidate it repeats.

RTL (Verilog/SystemVerilog): a lexer (comments, strings, based numbers, system names, escaped
identifiers that are plain names read as those names) and the declaration lists of nets, variables,
local parameters and genvars give the renamed names, minus keywords, the target's ports and top
module, names used after ``.`` or around ``::`` (ports of named connections, hierarchical and
package references, methods) and parameter names. Sources with macros, ``include`` or attributes
have no canonical hash. A gap between two tokens is kept as one space where a lexer could read
the two differently without it (``a - -b`` is not ``a --b``), and dropped beside brackets, commas
and semicolons.

Kernels (Python): ``symtable`` resolves each name to its binding; the local variables of functions
(comprehensions and lambdas included) become positional tokens in an ``ast.dump``. Parameters stay
(keyword calls and Triton's ``constexpr`` launches name them), so do module and class names, and
attributes. Sources that can see local names at run time (``locals``, frames, ``getattr`` with a
computed name, dunder attributes other than ``__init__``) have no canonical hash.
"""

from __future__ import annotations

import ast
import hashlib
import re
import symtable
from collections.abc import Iterable
from dataclasses import dataclass

from evoforge.domain import Target, TargetKind

#: bumped whenever the canonical form changes (old cache entries then simply stop matching)
CANONICAL_VERSION = "canon-v1"
#: longest source this module canonicalises (bigger ones keep their source hash only)
MAX_SOURCE_CHARS = 400_000


def canonical_hash(source: str, target: Target) -> str | None:
    """sha256 of the canonical text of ``source`` for ``target``; None when there is none."""
    text = canonical_text(source, target)
    if text is None:
        return None
    return hashlib.sha256(f"{CANONICAL_VERSION}:{target.kind.value}\n{text}".encode()).hexdigest()


def canonical_text(source: str, target: Target) -> str | None:
    if len(source) > MAX_SOURCE_CHARS:
        return None
    if target.kind is TargetKind.KERNEL:
        return python_canonical(source)
    if target.user_test:  # a user's test may look at internal signals by name
        return None
    rtl = target.rtl
    kept = {p.name for p in rtl.ports} | {rtl.top} if rtl is not None else set()
    return verilog_canonical(source, kept)


# -- Verilog ---------------------------------------------------------------------------------------

_VERILOG_TOKEN = re.compile(
    r"""
      (?P<comment>//[^\n]*|/\*.*?\*/)
    | (?P<space>\s+)
    | (?P<string>"(?:\\.|[^"\\\n])*")
    | (?P<attribute>\(\*(?!\s*\)))
    | (?P<number>(?:\d[\d_]*\s*)?'[sS]?[bBoOdDhH]\s*[0-9a-fA-FxXzZ_?]+|'[01xXzZ](?![\w$])
                 |\d[\d_]*(?:\.[\d_]+)?(?:[eE][+-]?\d+)?(?:fs|ps|ns|us|ms|s)?(?![\w$]))
    | (?P<system>\$[A-Za-z0-9_$]+)
    | (?P<directive>`[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<escaped>\\\S+)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<op><<<=|>>>=|===|!==|==\?|!=\?|<->|<<<|>>>|\+\+|--|\*\*|<<=|>>=|\+=|-=|\*=|/=|%=|&=|\|=|\^=
            |->|::|&&|\|\||==|!=|<=|>=|<<|>>|~&|~\||~\^|\^~|\+:|-:|\#\#|[-+*/%&|^~!<>=?:;,.(){}\[\]\#@'])
    """,
    re.S | re.X,
)
_SIMPLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
#: directives that change nothing a renaming could interact with
_HARMLESS_DIRECTIVES = frozenset(
    {"`timescale", "`default_nettype", "`resetall", "`celldefine", "`endcelldefine"}
)
#: keywords that open a declaration list whose names may be renamed
_DECLARATIONS = frozenset(
    {
        "wire", "reg", "logic", "integer", "genvar", "localparam", "input", "output", "inout", "tri",
        "tri0", "tri1", "triand", "trior", "trireg", "wand", "wor", "uwire", "supply0", "supply1",
        "bit", "byte", "shortint", "int", "longint", "real", "realtime", "shortreal", "time", "var",
    }
)  # fmt: skip
_KEYWORD_TEXT = """
    accept_on alias always always_comb always_ff always_latch and assert assign assume automatic before
    begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle checker class
    clocking cmos config const constraint context continue cover covergroup coverpoint cross deassign
    default defparam design disable dist do edge else end endcase endchecker endclass endclocking
    endconfig endfunction endgenerate endgroup endinterface endmodule endpackage endprimitive
    endprogram endproperty endspecify endsequence endtable endtask enum event eventually expect export
    extends extern final first_match for force foreach forever fork forkjoin function generate genvar
    global highz0 highz1 if iff ifnone ignore_bins illegal_bins implements implies import incdir include
    initial inout input inside instance int integer interconnect interface intersect join join_any
    join_none large let liblist library local localparam logic longint macromodule matches medium
    modport module nand negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or
    output package packed parameter pmos posedge primitive priority program property protected pull0
    pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence
    rcmos real realtime ref reg reject_on release repeat restrict return rnmos rpmos rtran rtranif0
    rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared sequence shortint shortreal
    showcancelled signed small soft solve specify specparam static string strong strong0 strong1 struct
    super sync_accept_on sync_reject_on table tagged task this throughout time timeprecision timeunit
    tran tranif0 tranif1 tri tri0 tri1 triand trior trireg type typedef union unique unique0 unsigned
    until until_with untyped use uwire var vectored virtual void wait wait_order wand weak weak0 weak1
    while wildcard wire with within wor xnor xor
    """
_VERILOG_KEYWORDS = frozenset(_KEYWORD_TEXT.split())


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    gap: bool  # whitespace or a comment came before it


def _verilog_tokens(source: str) -> list[_Tok] | None:
    tokens: list[_Tok] = []
    pos, gap = 0, False
    while pos < len(source):
        match = _VERILOG_TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            return None  # a character no Verilog token starts with (or an unterminated comment/string)
        kind = match.lastgroup or "op"
        text = match.group(0)
        pos = match.end()
        if kind in ("comment", "space"):
            gap = True
            continue
        if kind == "escaped":
            name = text[1:]
            if not _SIMPLE_NAME.fullmatch(name):
                return None  # an escaped name with special characters: leave such sources alone
            kind, text = "ident", name  # `\x ` is the identifier `x`
        tokens.append(_Tok(kind, text, gap))
        gap = False
    return tokens


def _declared(tokens: list[_Tok]) -> set[str]:
    """Names in the declaration lists of nets, variables, local parameters and genvars."""
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok.kind != "ident" or tok.text not in _DECLARATIONS:
            continue
        # skip the type: keywords, packed ranges, a delay or strength in parentheses
        while i < len(tokens):
            t = tokens[i]
            if t.kind == "ident" and t.text in _VERILOG_KEYWORDS:
                i += 1
            elif t.text in ("[", "(") or (t.text == "#" and i + 1 < len(tokens)):
                i = _skip_group(tokens, i + 1 if t.text == "#" else i)
            else:
                break
        while i < len(tokens) and tokens[i].kind == "ident" and tokens[i].text not in _VERILOG_KEYWORDS:
            names.add(tokens[i].text)
            i += 1
            while i < len(tokens) and tokens[i].text == "[":  # unpacked dimensions
                i = _skip_group(tokens, i)
            if i < len(tokens) and tokens[i].text == "=":
                i = _skip_expression(tokens, i + 1)
            if i < len(tokens) and tokens[i].text == ",":
                i += 1
                continue
            break
    return names


_OPEN = {"(": ")", "[": "]", "{": "}"}


def _skip_group(tokens: list[_Tok], i: int) -> int:
    """Index after the bracketed group opening at ``i`` (or ``i`` itself when none opens there)."""
    if i >= len(tokens) or tokens[i].text not in _OPEN:
        return i + 1 if i < len(tokens) else i
    stack = [_OPEN[tokens[i].text]]
    i += 1
    while i < len(tokens) and stack:
        text = tokens[i].text
        if text in _OPEN:
            stack.append(_OPEN[text])
        elif text == stack[-1]:
            stack.pop()
        i += 1
    return i


def _skip_expression(tokens: list[_Tok], i: int) -> int:
    """Index of the ``,`` ``;`` or unmatched ``)`` that ends the expression starting at ``i``."""
    while i < len(tokens) and tokens[i].text not in (",", ";", ")"):
        i = _skip_group(tokens, i) if tokens[i].text in _OPEN else i + 1
    return i


def verilog_canonical(source: str, kept: Iterable[str] = ()) -> str | None:
    """The canonical text of a Verilog source; ``kept`` names (ports, top module) are never renamed."""
    tokens = _verilog_tokens(source)
    if tokens is None:
        return None
    if any(t.kind == "attribute" for t in tokens):
        return None
    if any(t.kind == "directive" and t.text not in _HARMLESS_DIRECTIVES for t in tokens):
        return None
    keep = set(kept) | _VERILOG_KEYWORDS
    for i, tok in enumerate(tokens):
        if tok.kind != "ident":
            continue
        before = tokens[i - 1].text if i else ""
        after = tokens[i + 1].text if i + 1 < len(tokens) else ""
        if before in (".", "::") or after == "::":
            keep.add(tok.text)
        if before in ("parameter", "defparam", "module", "macromodule"):
            keep.add(tok.text)
        after2 = tokens[i + 2].text if i + 2 < len(tokens) else ""
        if after == "#" or (i + 1 < len(tokens) and tokens[i + 1].kind == "ident" and after2 in ("(", "[")):
            keep.add(tok.text)  # a module instantiated here: `name #(…) u (…)` or `name u (…)`
    renamed = _declared(tokens) - keep
    # parameters declared in a list (`parameter A = 1, B = 2`) stay too
    keep |= _parameter_names(tokens)
    renamed -= keep
    numbers: dict[str, int] = {}
    out: list[str] = []
    previous: _Tok | None = None
    for tok in tokens:
        text = tok.text
        if tok.kind == "ident" and text in renamed:
            text = f"⟨{numbers.setdefault(text, len(numbers))}⟩"
        gap = tok.gap and previous is not None and _gap_matters(previous, tok)
        out.append((" " if gap else "") + text)
        previous = tok
    return "".join(out)


#: punctuation that never joins a neighbour into another token (a gap beside it means nothing)
_SEPARATORS = frozenset("()[]{},;")


def _gap_matters(left: _Tok, right: _Tok) -> bool:
    """Whether whitespace between two tokens could change how a real lexer reads them."""
    if (left.text, right.text) in (("(", "*"), ("*", ")")) or left.text == "'":
        return True
    return left.text not in _SEPARATORS and right.text not in _SEPARATORS


def _parameter_names(tokens: list[_Tok]) -> set[str]:
    names: set[str] = set()
    for i, tok in enumerate(tokens):
        if tok.kind == "ident" and tok.text == "parameter":
            rest = tokens[i + 1 :]
            j = 0
            while j < len(rest) and rest[j].text not in (";", ")"):
                if rest[j].kind == "ident" and j + 1 < len(rest) and rest[j + 1].text == "=":
                    names.add(rest[j].text)
                j = _skip_group(rest, j) if rest[j].text in ("[", "{") else j + 1
                if j < len(rest) and rest[j].text == "(":
                    j = _skip_group(rest, j)
    return names


# -- Python (kernels) ------------------------------------------------------------------------------

#: names whose use lets a program see its local variables' names
_INTROSPECTION = frozenset(
    {"locals", "vars", "eval", "exec", "globals", "dir", "compile", "getattr", "setattr", "delattr",
     "hasattr", "__import__", "inspect", "sys", "traceback", "f_locals", "f_back", "tb_frame",
     "gi_frame", "cr_frame", "ag_frame", "co_varnames", "co_names", "attrgetter", "breakpoint"}
)  # fmt: skip
_ALLOWED_DUNDERS = frozenset({"__init__", "__name__"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def python_canonical(source: str) -> str | None:
    """The canonical text of a Python source: an AST dump with function locals numbered."""
    try:
        tree = ast.parse(source)
        table = symtable.symtable(source, "<draft>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.alias):
            name = node.name.split(".")[0]
        if name is not None and (
            name in _INTROSPECTION or (name.startswith("__") and name not in _ALLOWED_DUNDERS)
        ):
            return None
    try:
        _Renamer(table).visit_scope(tree, table)
    except _Unsure:
        return None
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


class _Unsure(Exception):
    """The AST and the symbol table could not be matched up: no canonical form."""


class _Renamer:
    """Walks the AST beside the symbol tables and replaces each function-local name by ``⟨n⟩``.

    A scope node is matched to its symbol table by kind, name and line; two candidates for one node
    (two lambdas or comprehensions on one line, side by side) make the source ``_Unsure``.
    """

    def __init__(self, top: symtable.SymbolTable) -> None:
        self.numbers: dict[tuple[int, str], int] = {}
        self.top = top

    def visit_scope(self, node: ast.AST, table: symtable.SymbolTable) -> None:
        for child in ast.iter_child_nodes(node):
            self._visit(child, (table,))

    def _visit(self, node: ast.AST, chain: tuple[symtable.SymbolTable, ...]) -> None:
        if isinstance(node, (*_SCOPES, *_COMPREHENSIONS)):
            outer, inner = _scope_parts(node)
            for part in outer:
                self._visit(part, chain)
            child = _child_table(chain[-1], node)
            for part in inner:
                self._visit(part, (*chain, child))
            return
        if isinstance(node, ast.Name):
            node.id = self._name(node.id, chain)
            return
        for sub in ast.iter_child_nodes(node):
            self._visit(sub, chain)

    def _name(self, name: str, chain: tuple[symtable.SymbolTable, ...]) -> str:
        table = chain[-1]
        try:
            symbol = table.lookup(name)
        except KeyError as exc:
            raise _Unsure(f"{name} unknown to its scope") from exc
        if symbol.is_parameter() or symbol.is_declared_global():
            return name
        owner: symtable.SymbolTable | None = None
        if symbol.is_free():
            for outer in reversed(chain[:-1]):
                if outer.get_type() != "function" or name not in outer.get_identifiers():
                    continue
                found = outer.lookup(name)
                if found.is_local() and not found.is_free():
                    if found.is_parameter():
                        return name
                    owner = outer
                    break
            if owner is None:
                raise _Unsure(f"free name {name} without an owner")
        elif symbol.is_local() and table.get_type() == "function":
            owner = table
        if owner is None:
            return name  # module and class names, globals, builtins
        key = (owner.get_id(), name)
        return f"⟨{self.numbers.setdefault(key, len(self.numbers))}⟩"


_TABLE_NAMES = {
    ast.Lambda: "lambda",
    ast.ListComp: "listcomp",
    ast.SetComp: "setcomp",
    ast.DictComp: "dictcomp",
    ast.GeneratorExp: "genexpr",
}


def _child_table(table: symtable.SymbolTable, node: ast.AST) -> symtable.SymbolTable:
    name = _TABLE_NAMES.get(type(node)) or getattr(node, "name", "")
    line = getattr(node, "lineno", -1)
    found = [c for c in table.get_children() if c.get_name() == name and c.get_lineno() == line]
    if len(found) != 1:
        raise _Unsure(f"{len(found)} symbol tables for {name} on line {line}")
    return found[0]


def _scope_parts(node: ast.AST) -> tuple[list[ast.AST], list[ast.AST]]:
    """(parts evaluated in the enclosing scope, parts evaluated in the node's own scope)."""
    outer: list[ast.AST] = []
    inner: list[ast.AST] = []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        outer = [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d)]
        outer += [a.annotation for a in _all_args(node.args) if a.annotation]
        outer += [node.returns] if node.returns else []
        inner = list(node.body)
    elif isinstance(node, ast.Lambda):
        outer = [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]
        inner = [node.body]
    elif isinstance(node, ast.ClassDef):
        outer = [*node.decorator_list, *node.bases, *node.keywords]
        inner = list(node.body)
    elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        first, *rest = node.generators
        outer = [first.iter]
        inner = [first.target, *first.ifs]
        for gen in rest:
            inner += [gen.target, gen.iter, *gen.ifs]
        inner += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    return outer, inner


def _all_args(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]
