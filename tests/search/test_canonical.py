"""The canonical hash: renamings of internal names are one draft; anything that behaves otherwise is not.

Open world: the public corpus (``../shared/corpus/rtl``) in its own spellings — a renaming of one of
each design's internal signals keeps the canonical text, and no two corpus designs share one. Then the
attacker's moves, each a pair of sources that read alike once names are gone but behave differently
(a macro, an attribute, an escaped name, a named port connection, a module type, a parameter, a
number's digits; Python parameters, shadowed builtins, introspection, class bodies): each pair must
get different canonical texts, or none.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evoforge.search.canonical import python_canonical, verilog_canonical

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "rtl"


def corpus_files() -> list[Path]:
    if not CORPUS.exists():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.suffix in (".v", ".sv"))


def ports_and_top(source: str) -> set[str]:
    """The first module's name and port names, read the simple way (good enough for the corpus)."""
    header = re.search(r"module\s+(\w+)\s*(?:#\s*\(.*?\))?\s*\((.*?)\)\s*;", source, re.S)
    if header is None:
        return set()
    names = set(re.findall(r"\b([A-Za-z_]\w*)\b", header.group(2)))
    body_ports = re.findall(r"\b(?:input|output|inout)\b[^;]*;", source)
    for decl in body_ports:
        names |= set(re.findall(r"\b([A-Za-z_]\w*)\b", decl))
    return names | {header.group(1)}


def an_internal_name(source: str, kept: set[str]) -> str | None:
    for match in re.finditer(
        r"\b(?:reg|wire|integer)\b(?:\s+signed)?\s*(?:\[[^\]]*\])?\s*([A-Za-z_]\w*)", source
    ):
        if match.group(1) not in kept and match.group(1) not in ("reg", "wire", "signed"):
            return match.group(1)
    return None


@pytest.mark.skipif(not corpus_files(), reason="the public corpus is not at ../shared/corpus/rtl")
def test_corpus_renamings_keep_the_canonical_text_and_designs_stay_apart() -> None:
    texts: dict[str, Path] = {}
    renamed_checked = 0
    for path in corpus_files():
        source = path.read_text(errors="replace")
        kept = ports_and_top(source)
        canonical = verilog_canonical(source, kept)
        if canonical is None:
            continue
        assert canonical not in texts, f"{path.name} and {texts[canonical].name} share a canonical text"
        texts[canonical] = path
        commented = "// a comment the LLM added\n" + source.replace(";", " ;  ", 3)
        assert verilog_canonical(commented, kept) == canonical, path.name
        name = an_internal_name(source, kept)
        if name is None or re.search(rf"\.\s*{name}\b|`\w*{name}", source):
            continue
        fresh = "renamed_by_llm_q"
        renamed = re.sub(rf"(?<![\w$'`.\\]){name}\b", fresh, source)
        assert verilog_canonical(renamed, kept) == canonical, f"{path.name}: renaming {name}"
        renamed_checked += 1
    assert len(texts) >= 60 and renamed_checked >= 30, (len(texts), renamed_checked)


PORTS = {"m", "a", "b", "y", "clk"}
PAIRS_THAT_DIFFER = {
    "escaped name of a declared wire vs an implicit net": (
        "module m(input a, output y); wire x; assign x = a; assign y = \\x ; endmodule",
        "module m(input a, output y); wire q; assign q = a; assign y = \\x ; endmodule",
    ),
    "named port connection vs a submodule port renamed": (
        "module s(input x, output z); assign z = x; endmodule\n"
        "module m(input a, output y); s u(.x(a), .z(y)); endmodule",
        "module s(input w, output z); assign z = w; endmodule\n"
        "module m(input a, output y); s u(.x(a), .z(y)); endmodule",
    ),
    "a wire named like the cell it instantiates": (
        "module m(input a, output y); wire foo; foo u1(a, y); endmodule",
        "module m(input a, output y); wire bar; bar u1(a, y); endmodule",
    ),
    "a parameter": (
        "module m #(parameter W = 1) (input a, output y); assign y = a; endmodule",
        "module m #(parameter V = 1) (input a, output y); assign y = a; endmodule",
    ),
    "a number's digits that spell a wire": (
        "module m(input a, output [15:0] y); wire dead; assign dead = a; "
        "assign y = 16'hdead + dead; endmodule",
        "module m(input a, output [15:0] y); wire beef; assign beef = a; "
        "assign y = 16'hbeef + beef; endmodule",
    ),
    "adjacent operators vs separated ones": (
        "module m(input [3:0] a, b, output [3:0] y); assign y = a - -b; endmodule",
        "module m(input [3:0] a, b, output [3:0] y); assign y = a --b; endmodule",
    ),
    "a port renamed is not an internal name": (
        "module m(input a, output y); assign y = a; endmodule",
        "module m(input q, output y); assign y = q; endmodule",
    ),
}


@pytest.mark.parametrize("case", sorted(PAIRS_THAT_DIFFER))
def test_verilog_pairs_that_behave_differently_do_not_share_a_canonical_text(case: str) -> None:
    first, second = PAIRS_THAT_DIFFER[case]
    a, b = verilog_canonical(first, PORTS), verilog_canonical(second, PORTS)
    assert a is None or b is None or a != b


@pytest.mark.parametrize(
    "source",
    [
        "`define W 4\nmodule m(input a, output y); wire [`W-1:0] x; assign y = a; endmodule",
        "module m(input a, output y); (* keep *) wire x; assign x = a; assign y = x; endmodule",
        "module m(input a, output y); wire \\x[0] ; assign y = a; endmodule",
        '`include "other.v"\nmodule m(input a, output y); assign y = a; endmodule',
    ],
)
def test_verilog_sources_it_cannot_argue_about_have_no_canonical_text(source: str) -> None:
    assert verilog_canonical(source, PORTS) is None


def test_verilog_renaming_with_other_spellings_is_one_draft() -> None:
    first = """module m(input clk, input [7:0] a, output reg [7:0] y);
  reg [7:0] acc; integer i;
  always @(posedge clk) begin acc <= acc + a; y <= acc; end
endmodule"""
    second = """module m(input clk, input [7:0] a, output reg [7:0] y);
  /* the running sum */ reg [7:0] total;
  integer k;
  always @(posedge clk)
  begin
    total <= total + a;   // accumulate
    y <= total;
  end
endmodule"""
    assert verilog_canonical(first, PORTS) == verilog_canonical(second, PORTS) is not None


KERNEL = """
import torch
import torch.nn as nn

def helper(x, scale=2.0):
    doubled = x * scale
    return torch.relu(doubled)

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        hidden = helper(x, scale=2.0)
        parts = [p + 1 for p in (hidden,)]
        return parts[0]
"""


def test_python_renamed_locals_are_one_draft() -> None:
    renamed = (
        KERNEL.replace("doubled", "twice").replace("hidden", "h").replace("parts", "out")
        .replace("[p + 1 for p in", "[q + 1 for q in")
    )  # fmt: skip
    assert python_canonical(KERNEL) == python_canonical(renamed) is not None
    reformatted = KERNEL.replace("x * scale", "(x) * scale  # scaled") + "\n# trailing comment\n"
    assert python_canonical(reformatted) == python_canonical(KERNEL)


PYTHON_PAIRS_THAT_DIFFER = {
    "a parameter (keyword calls name it)": (
        "def f(x):\n    return x\nf(x=1)\n",
        "def f(z):\n    return z\nf(x=1)\n",
    ),
    "a comprehension variable shadowing different builtins": (
        "def f(xs):\n    y = [sum for sum in xs]\n    return sum\n",
        "def f(xs):\n    y = [max for max in xs]\n    return max\n",
    ),
    "a class body inside a function": (
        "def f():\n    t = 1\n    class C:\n        t = 2\n    return C().t\n",
        "def f():\n    u = 1\n    class C:\n        u = 2\n    return C().t\n",
    ),
    "a module-level name": ("t = 1\ndef f():\n    return t\n", "u = 1\ndef f():\n    return u\n"),
    "an attribute": ("def f(s):\n    return s.weight\n", "def f(s):\n    return s.bias\n"),
    "a nonlocal name": (
        "def f():\n    t = 1\n    def g():\n        nonlocal t\n        t = 2\n    g()\n    return t\n",
        "def f():\n    u = 1\n    def g():\n        nonlocal t\n        u = 2\n    g()\n    return u\n",
    ),
}


@pytest.mark.parametrize("case", sorted(PYTHON_PAIRS_THAT_DIFFER))
def test_python_pairs_that_behave_differently_do_not_share_a_canonical_text(case: str) -> None:
    first, second = PYTHON_PAIRS_THAT_DIFFER[case]
    a, b = python_canonical(first), python_canonical(second)
    assert a is None or b is None or a != b


@pytest.mark.parametrize(
    "source",
    [
        "def f():\n    t = 1\n    return locals()['t']\n",
        "def f():\n    t = 1\n    return vars()['t']\n",
        "import builtins\ndef f():\n    t = 1\n    return getattr(builtins, 'loc' + 'als')()['t']\n",
        "def f():\n    t = 1\n    try:\n        1 / 0\n    except Exception as e:\n"
        "        return e.__traceback__.tb_frame.f_locals['t']\n",
        "import sys\ndef f():\n    t = 1\n    return sys._getframe().f_locals['t']\n",
        "def f(:\n",
    ],
)
def test_python_sources_that_can_see_local_names_have_no_canonical_text(source: str) -> None:
    assert python_canonical(source) is None
