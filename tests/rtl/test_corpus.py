"""The public corpus (../shared/corpus/rtl): designs evoforge was not written around.

Every design that Icarus (-g2012), Verilator (-sv) and Yosys (read_verilog -sv) all accept is a
target with its top found; clocks and resets of a few are checked against what their logic does
(names there would mislead). Skips when the corpus is absent (it is not part of the project).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from evoforge.errors import EvoforgeError
from evoforge.tools.iverilog import Iverilog
from evoforge.tools.verilator import Verilator
from evoforge.tools.yosys import Yosys
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "rtl"
DESIGNS = sorted([*CORPUS.glob("*/*.v"), *CORPUS.glob("*/*.sv")]) if CORPUS.is_dir() else []

pytestmark = pytest.mark.skipif(
    not DESIGNS, reason=f"{CORPUS} is absent (the public corpus is not in the project)"
)


def three_tools_accept(path: Path, workdir: Path) -> bool:
    workdir.mkdir(parents=True, exist_ok=True)
    icarus = Iverilog().compile([path], output=workdir / "a.vvp", cwd=workdir, timeout=60)
    if not icarus.ok:
        return False
    verilator = Verilator().run(["--lint-only", "-sv", "-Wno-fatal", "-Wno-lint", "-Wno-style", str(path)],
                                cwd=workdir, timeout=60)  # fmt: skip
    if not verilator.ok:
        return False
    yosys = Yosys().run_script(
        f'read_verilog -sv "{path}"\nhierarchy -check\nproc\n', cwd=workdir, timeout=60, reads=(path,)
    )
    return yosys.ok


def load_outcome(path: Path, workdir: Path) -> tuple[bool, str]:
    """(is it accepted by the three tools, what loading it as a target gave)."""
    if not three_tools_accept(path, workdir / "tools"):
        return False, ""
    try:
        target = load_rtl_target([path], RtlTargetOptions(), workdir=workdir / "load")
    except EvoforgeError as exc:
        return True, f"refused: {exc.message}"
    return True, target.name


@pytest.mark.slow
def test_every_design_the_three_tools_accept_is_a_target(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = dict(
            zip(DESIGNS, pool.map(lambda p: load_outcome(p, tmp_path / p.stem), DESIGNS), strict=True)
        )
    accepted = {p: top for p, (ok, top) in outcomes.items() if ok}
    assert len(accepted) >= 80, f"only {len(accepted)} of {len(DESIGNS)} designs pass the three tools"
    refused = {p.name: top for p, top in accepted.items() if top.startswith("refused")}
    assert not refused
    for path, top in accepted.items():
        if path.parent.name == "verilog-eval":
            assert top in ("TopModule", "RefModule"), (path.name, top)
        else:
            assert top in path.read_text(), (path.name, top)


def corpus_target(relative: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"{path} is absent")
    target = load_rtl_target([path], RtlTargetOptions(), workdir=tmp_path)
    assert target.rtl is not None
    return target.rtl


@pytest.mark.parametrize(
    ("design", "clock", "edges", "resets"),
    [
        # `rst` resets on low: `always @(posedge clk or negedge rst) if (!rst)` (a name would say high)
        ("rtllm/instr_reg.v", "clk", ("posedge",), {("rst", True, True)}),
        # the only reset is called `ar`: no name pattern finds it
        ("verilog-eval/Prob049_m2014_q4b_ref.sv", "clk", ("posedge",), {("ar", False, True)}),
        # `Rst` acts only when `EN` is high, written as `Rst == 1` inside `if (EN)`: a synchronous reset
        ("rtllm/LIFObuffer.v", "Clk", ("posedge",), {("Rst", False, False)}),
        # both edges of one clock
        ("rtllm/freq_divbyodd.v", "clk", ("posedge", "negedge"), {("rst_n", True, True)}),
        # synchronous active-low `resetn` in an always_ff
        ("verilog-eval/Prob060_m2014_q4k_ref.sv", "clk", ("posedge",), {("resetn", True, False)}),
        # upper-case names
        ("rtllm/freq_div.v", "CLK_in", ("posedge",), {("RST", False, True)}),
        # a combinational design with no clock
        ("verilog-eval/Prob130_circuit5_ref.sv", None, (), set()),
    ],
)
def test_corpus_clocks_and_resets_come_from_the_logic(
    tmp_path: Path,
    design: str,
    clock: str | None,
    edges: tuple[str, ...],
    resets: set[tuple[str, bool, bool]],
) -> None:
    rtl = corpus_target(design, tmp_path)
    assert rtl.clock == clock
    if clock is not None:
        assert rtl.clocks[0].edges == edges
    assert {(r.port, r.active_low, r.asynchronous) for r in rtl.resets} == resets
