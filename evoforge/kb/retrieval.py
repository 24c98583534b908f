"""Text retrieval for the knowledge base: tokens, a small BM25 index, and queries built from a design.

Pure Python. :func:`design_query` turns a design (its Verilog, the RTL signals on its critical path,
its largest synthesised cells) into words the entries use — ``*`` becomes "multiplier", a ``case`` on a
``state`` register becomes "fsm state", a sky130 ``fa`` cell becomes "adder carry" — so that BM25
over the entries' text finds the rules that fit.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_STOP_WORDS = (
    "a an and are as at be by for from in into is it its of on one or that the their then this to "
    "when where which with without wire reg input output assign module endmodule begin end"
)
_STOP = frozenset(_STOP_WORDS.split(" "))
#: a few spelling variants folded together (light stemming that keeps hardware words readable)
_FOLD = {
    "multiplier": "multiply",
    "multipliers": "multiply",
    "multiplication": "multiply",
    "multiplications": "multiply",
    "multiplies": "multiply",
    "product": "multiply",
    "products": "multiply",
    "mul": "multiply",
    "adders": "adder",
    "add": "adder",
    "addition": "adder",
    "additions": "adder",
    "sum": "adder",
    "sums": "adder",
    "muxes": "mux",
    "multiplexer": "mux",
    "multiplexers": "mux",
    "select": "mux",
    "selects": "mux",
    "states": "state",
    "fsms": "fsm",
    "registers": "register",
    "flops": "register",
    "flop": "register",
    "counters": "counter",
    "comparators": "compare",
    "comparator": "compare",
    "comparison": "compare",
    "comparisons": "compare",
    "chains": "chain",
    "shifts": "shift",
    "constants": "constant",
    "widths": "width",
    "bits": "bit",
    "kernels": "kernel",
    "reductions": "reduction",
}


def tokens(text: str) -> list[str]:
    """Lower-case words; identifiers split at ``_`` and camelCase; stop words dropped; variants folded."""
    out: list[str] = []
    for raw in _WORD.findall(text.replace("_", " ")):
        for part in _CAMEL.split(raw):
            word = part.lower()
            if len(word) < 2 or word in _STOP:
                continue
            out.append(_FOLD.get(word, word))
    return out


class Bm25:
    """Okapi BM25 over a fixed list of documents (k1 = 1.2, b = 0.75)."""

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.docs = [Counter(tokens(d)) for d in documents]
        self.lengths = [sum(c.values()) for c in self.docs]
        self.avg = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        df: Counter[str] = Counter()
        for doc in self.docs:
            df.update(doc.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: str) -> list[float]:
        terms = Counter(tokens(query))
        out = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            score = 0.0
            norm = self.k1 * (1 - self.b + self.b * length / self.avg) if self.avg else self.k1
            for term, weight in terms.items():
                tf = doc.get(term, 0)
                if tf:
                    # query terms repeated (e.g. a hot signal) count, but sub-linearly
                    score += self.idf[term] * tf * (self.k1 + 1) / (tf + norm) * (1 + math.log(weight))
            out.append(score)
        return out


# ---------------------------------------------------------------------------------------------
# Queries from a design

#: Verilog constructs → the words entries use for them
_CONSTRUCTS: tuple[tuple[str, str], ...] = (
    (r"(?<![@(*])\*(?![*)])", "multiply arithmetic"),
    (
        r"\d+'[dhb]?[0-9a-fA-F_]+\s*\*(?![*)])|(?<![@(*])\*\s*\d+(?:'[dhb][0-9a-fA-F_]+)?\b",
        "constant coefficient",
    ),
    (r"[^+]\+[^+:]", "adder arithmetic"),
    (r"[^-]-[^-:>]", "subtract adder arithmetic"),
    (r"<<|>>", "shift"),
    (r"(?<![<>=!])[<>](?![<>=])|>=|==|!=", "compare"),
    (r"\?", "mux ternary"),
    (r"\bcase[zx]?\b", "case mux"),
    (r"\bif\b", "mux priority"),
    (r"\blocalparam\b|\bparameter\b", "constant"),
    (r"\bposedge\b|\bnegedge\b", "register sequential"),
)
_STATE_NAMES = re.compile(r"\b(state|next_state|next|ns|cs|st)\b")

#: liberty cell name fragments (sky130 and evoforge's generic library) → cell classes
CELL_CLASSES: tuple[tuple[str, str], ...] = (
    (r"__(fa|ha|fah|maj3)_|^(FA|HA)", "arith"),
    (r"__x(n)?or[23]|^X(N)?OR", "arith"),
    (r"__(df|dl|sdf|edf)\w*_|^DFF|^LATCH", "register"),
    (r"__mux[24]i?_|^MUX", "mux"),
    (r"__a\d+oi?\d*_|__o\d+ai?\d*_", "logic"),
    (r"__(nand|nor|and|or|inv|buf|clkbuf)\w*_|^(NAND|NOR|AND|OR|INV|BUF|NOT)", "logic"),
)
_CLASS_WORDS = {
    "arith": "arith adder carry arithmetic",
    "register": "register sequential",
    "mux": "mux",
    "logic": "logic",
    "compare": "compare",
}


def cell_class(cell: str) -> str | None:
    for pattern, name in CELL_CLASSES:
        if re.search(pattern, cell):
            return name
    return None


def cell_shares(largest_cells: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Share of the (listed) area per cell class, from the synthesis stage's ``largest_cells``."""
    area: dict[str, float] = {}
    for row in largest_cells:
        cls = cell_class(str(row.get("cell", "")))
        if cls is None:
            continue
        value = row.get("area_um2")
        area[cls] = area.get(cls, 0.0) + (
            float(value) if value is not None else float(row.get("count", 0) or 0)
        )
    total = sum(area.values())
    return {k: v / total for k, v in area.items()} if total > 0 else {}


def design_query(
    source: str = "",
    critical_path: Iterable[str] = (),
    largest_cells: Iterable[dict[str, Any]] = (),
    objectives: Iterable[str] = (),
) -> str:
    """Words describing a design for :meth:`KnowledgeBase.search`.

    The critical-path signal names are included twice (they say where the problem is); the Verilog
    constructs and the dominant cell classes say what kind of logic it is; objectives (``area_um2``,
    ``delay_ns``) become the goals ``area`` / ``timing``.
    """
    words: list[str] = []
    body = re.sub(r"//[^\n]*|/\*.*?\*/", " ", source, flags=re.S)
    for pattern, meaning in _CONSTRUCTS:
        hits = len(re.findall(pattern, body))
        if hits:
            words.extend([meaning] * min(3, hits))
    if re.search(r"\bcase\b", body) and _STATE_NAMES.search(body):
        words.append("fsm state machine encoding")
    if re.search(r"\+\s*\d*'?[dhb]?0*1\b", body) and re.search(r"\bposedge\b", body):
        words.append("counter incrementer")
    wide = [int(m) for m in re.findall(r"\breg\s+(?:signed\s+)?\[\s*(\d+)\s*:\s*0\s*\]", body)]
    if any(w >= 15 for w in wide) and re.search(r"==\s*\d+'[dhb]", body):
        words.append("width register constant bit")
    path = [n for n in critical_path if n]
    if path:
        words.append("critical path depth chain")
        words.extend(path * 2)
    for cls, share in sorted(cell_shares(largest_cells).items(), key=lambda kv: -kv[1]):
        if share >= 0.2:
            words.append(_CLASS_WORDS[cls])
    for objective in objectives:
        if objective in ("area_um2", "cells", "area"):
            words.append("area")
        elif objective in ("delay_ns", "depth", "timing"):
            words.append("timing depth")
    return " ".join(words)
