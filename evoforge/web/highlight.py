"""Verilog syntax highlighting and diffs as escaped HTML (no JavaScript, no library).

Every piece of text passes through ``markupsafe.escape``; only the ``<span class=…>`` wrappers made
here are markup, so a hostile source or LLM reply cannot inject anything.
"""

from __future__ import annotations

import difflib
import re

from markupsafe import Markup, escape

_KEYWORD_TEXT = """always always_comb always_ff always_latch assign automatic begin case casex casez default
defparam else end endcase endfunction endgenerate endmodule endtask for function generate genvar if initial
inout input integer localparam logic module negedge output parameter posedge reg signed unsigned task wire
while"""
KEYWORDS = frozenset(_KEYWORD_TEXT.split())

_TOKEN = re.compile(
    r"(?P<comment>//[^\n]*|/\*.*?\*/)"
    r"|(?P<string>\"(?:\\.|[^\"\\\n])*\")"
    r"|(?P<number>\d*'[sS]?[bBoOdDhH][0-9a-fA-FxXzZ_?]+|\b\d[\d_]*(?:\.\d+)?\b)"
    r"|(?P<directive>`\w+)"
    r"|(?P<system>\$\w+)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_$]*)",
    re.DOTALL,
)


def highlight_verilog(source: str) -> Markup:
    """The source as HTML: comments, strings, numbers, keywords and system tasks in spans."""
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(source):
        out.append(str(escape(source[pos : match.start()])))
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "word":
            kind = "kw" if text in KEYWORDS else ""
        out.append(f'<span class="tok-{kind}">{escape(text)}</span>' if kind else str(escape(text)))
        pos = match.end()
    out.append(str(escape(source[pos:])))
    return Markup("".join(out))


def diff_html(before: str | None, after: str, *, before_name: str, after_name: str) -> Markup:
    """A unified diff, one escaped line per span (added, removed, hunk header, context)."""
    if before is None:
        return Markup('<span class="diff-none">(no source to compare with)</span>')
    lines = list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), fromfile=before_name, tofile=after_name, lineterm=""
        )
    )
    if not lines:
        return Markup('<span class="diff-none">(identical)</span>')
    classes = {"+": "diff-add", "-": "diff-del", "@": "diff-hunk"}
    rows = []
    for line in lines:
        css = "diff-file" if line.startswith(("+++", "---")) else classes.get(line[:1], "diff-ctx")
        rows.append(f'<span class="{css}">{escape(line)}</span>')
    return Markup("\n".join(rows))
