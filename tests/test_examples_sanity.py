"""Quick sanity checks of the bundled RTL examples and the hostile RTL fixtures, with the real tools.

Every ``examples/rtl/<name>.v`` must come with ``<name>_better.v`` and ``<name>_wrong.v``, declare
exactly one module named ``<name>`` with the same port list in all three files, be plain
Verilog-2001, and compile with Icarus and lint cleanly with Verilator. The hostile fixtures must
exist as the verifier tests expect them, with the two that the toolchain itself rejects
(``malformed.v``, ``unknown_submodule.v``) actually rejected. Deep checks (simulation against the
original, equivalence, synthesis numbers) belong to the verifier tests.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from evoforge.tools.process import run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "rtl"
HOSTILE = ROOT / "tests" / "fixtures" / "rtl_hostile"
VARIANTS = ("", "_better", "_wrong")
HOSTILE_FILES = (
    "changed_ports.v",
    "deep_bug.v",
    "x_output.v",
    "unknown_submodule.v",
    "fopen_write.v",
    "infinite_initial.v",
    "malformed.v",
    "system_call.v",
)
SV_ONLY = re.compile(r"\b(logic|always_ff|always_comb|always_latch|typedef|interface|bit)\b|`timescale")
PORT = re.compile(r"^\s*(input|output|inout)\s+(?:wire|reg)?\s*(\[[^\]]+\])?\s*(\w+)", re.MULTILINE)


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)


def _names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.v") if not p.stem.endswith(("_better", "_wrong")))


def _ports(path: Path) -> list[tuple[str, str, str]]:
    return [(d, (w or "").replace(" ", ""), n) for d, w, n in PORT.findall(_strip_comments(path.read_text()))]


def _need(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not on PATH; install it to run this check")
    return exe


def test_examples_come_in_complete_sets() -> None:
    names = _names()
    assert len(names) >= 6, f"expected at least six example designs, found {names}"
    for name in names:
        for suffix in VARIANTS[1:]:
            assert (EXAMPLES / f"{name}{suffix}.v").is_file(), f"{name}{suffix}.v is missing"
    strays = [
        p.name
        for p in EXAMPLES.glob("*_*.v")
        if p.stem.endswith(("_better", "_wrong")) and p.stem.rsplit("_", 1)[0] not in names
    ]
    assert not strays, f"variants without an original: {strays}"
    assert (EXAMPLES / "README.md").is_file()


def test_examples_mix_sequential_and_combinational() -> None:
    clocked = [n for n in _names() if any(p[2] == "clk" for p in _ports(EXAMPLES / f"{n}.v"))]
    assert len(clocked) >= 3, f"need at least three sequential examples, have {clocked}"
    assert len(_names()) - len(clocked) >= 2, "need at least two combinational examples"
    for name in clocked:
        ports = {p[2] for p in _ports(EXAMPLES / f"{name}.v")}
        assert ports & {"rst", "rst_n"}, f"sequential example {name} has no rst/rst_n port"


@pytest.mark.parametrize("name", _names())
def test_variants_share_the_interface_and_module_name(name: str) -> None:
    reference = _ports(EXAMPLES / f"{name}.v")
    assert reference, f"no ports found in {name}.v"
    for suffix in VARIANTS:
        path = EXAMPLES / f"{name}{suffix}.v"
        text = _strip_comments(path.read_text())
        assert re.findall(r"\bmodule\s+(\w+)", text) == [name], f"{path.name}: one module named {name}"
        assert not SV_ONLY.search(text), f"{path.name} uses SystemVerilog or `timescale"
        assert _ports(path) == reference, f"{path.name} changes the port list of {name}.v"


@pytest.mark.parametrize("path", [EXAMPLES / f"{n}{s}.v" for n in _names() for s in VARIANTS], ids=str)
def test_example_compiles_and_lints(path: Path, tmp_path: Path) -> None:
    iverilog = _need("iverilog")
    top = path.stem.removesuffix("_better").removesuffix("_wrong")
    res = run([iverilog, "-g2001", "-s", top, "-o", tmp_path / "a.out", path], timeout=30, cwd=tmp_path)
    assert res.ok, f"iverilog rejects {path.name}:\n{res.output}"
    verilator = shutil.which("verilator")
    if verilator is not None:
        res = run([verilator, "--lint-only", "-Wall", "-Wno-DECLFILENAME", path], timeout=30, cwd=tmp_path)
        assert res.ok, f"verilator lint warns on {path.name}:\n{res.output}"


def test_hostile_fixtures_are_all_present() -> None:
    assert (HOSTILE / "README.md").is_file()
    present = {p.name for p in HOSTILE.glob("*.v")}
    assert set(HOSTILE_FILES) <= present, f"missing: {sorted(set(HOSTILE_FILES) - present)}"
    target = (HOSTILE / "README.md").read_text()
    assert "tick_timer" in target
    assert (EXAMPLES / "tick_timer.v").is_file(), "the hostile fixtures target examples/rtl/tick_timer.v"


@pytest.mark.parametrize(
    ("name", "compiles"),
    [("malformed.v", False), ("unknown_submodule.v", False), ("deep_bug.v", True), ("changed_ports.v", True)],
)
def test_hostile_fixture_compile_outcome(name: str, compiles: bool, tmp_path: Path) -> None:
    iverilog = _need("iverilog")
    res = run([iverilog, "-g2001", "-o", tmp_path / "a.out", HOSTILE / name], timeout=30, cwd=tmp_path)
    assert res.ok is compiles, f"{name}: expected compiles={compiles}:\n{res.output}"
