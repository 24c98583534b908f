"""A simulation that saw nothing vouches for nothing (issue 10, item 11), and the labels of formal
results claim no more than was shown (item 10). Real Icarus and Yosys."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from evoforge.config import RtlSettings
from evoforge.domain import Target
from evoforge.errors import TargetError, VerifierError
from evoforge.tools.liberty import prepare_liberty
from evoforge.verifiers.rtl import equivalence_scripts
from evoforge.verifiers.rtl.cascade import RtlVerifier
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.equivalence import run_equivalence
from evoforge.verifiers.rtl.simulate import run_simulate
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "rtl"
FAST = RtlSettings(probe_cycles=200, sim_cycles=600, sim_seeds=1, equivalence_timeout_s=20)


def _tick_timer(tmp_path: Path) -> Target:
    return load_rtl_target([EXAMPLES / "tick_timer.v"], RtlTargetOptions(), workdir=tmp_path / "target")


def _ctx(tmp_path: Path, target: Target, candidate: str | None = None) -> RtlContext:
    return RtlContext(
        target=target,
        candidate_source=candidate if candidate is not None else target.source,
        workdir=tmp_path / "work",
        settings=FAST,
        liberty_path=tmp_path / "unused.lib",
    )


def test_a_wrong_reset_polarity_guess_is_refused_not_matched(tmp_path: Path) -> None:
    # the attack: rst taken as active low holds tick_timer in reset whenever the bench "releases" it,
    # so every candidate whatsoever "matches" the original
    target = _tick_timer(tmp_path)
    assert target.rtl is not None and target.rtl.reset == "rst"
    flipped = tuple(replace(r, active_low=not r.active_low) for r in target.rtl.resets)
    wrong = replace(target, rtl=replace(target.rtl, reset_active_low=True, resets=flipped))
    always_zero = (
        (EXAMPLES / "tick_timer.v").read_text().replace("assign phase = count[6:0];", "assign phase = 7'd0;")
    )
    with pytest.raises(VerifierError, match="held in reset"):
        run_simulate(_ctx(tmp_path, wrong, always_zero))
    verifier = RtlVerifier(
        target=wrong,
        settings=FAST,
        liberty=prepare_liberty(None, tmp_path / "c"),
        work_root=tmp_path / "runs",
    )
    with pytest.raises(TargetError, match="--reset"):
        verifier.baseline()


def test_the_right_polarity_still_simulates(tmp_path: Path) -> None:
    target = _tick_timer(tmp_path)
    result = run_simulate(_ctx(tmp_path, target))
    assert result.ok, result.detail


@pytest.mark.parametrize(
    "body",
    [
        "assign y = 8'd7;",  # constant
        "reg [7:0] r; always @(posedge clk) r <= r; assign y = r;",  # never leaves X
        "assign y = 8'bx;",  # nothing defined to compare
    ],
)
def test_outputs_that_never_change_are_refused(tmp_path: Path, body: str) -> None:
    source = f"module k(input clk, input [7:0] a, output [7:0] y);\n  {body}\nendmodule\n"
    path = tmp_path / "k.v"
    path.write_text(source)
    target = load_rtl_target([path], RtlTargetOptions(clock="clk", reset="none"), workdir=tmp_path / "t")
    with pytest.raises(VerifierError, match=r"no output (ever )?changes"):
        run_simulate(_ctx(tmp_path, target))


def test_outputs_that_change_only_in_reset_pulses_are_refused(tmp_path: Path) -> None:
    # the next spelling: outputs move only while the bench holds the (wrongly guessed) reset
    source = (
        "module p(input clk, input rst, input [3:0] a, output reg [3:0] y);\n"
        "  always @(posedge clk) if (rst) y <= a; else y <= 4'd0;\n"
        "endmodule\n"
    )
    path = tmp_path / "p.v"
    path.write_text(source)
    # the logic shows rst active low (rst=0 forces y to 0); a user who says "active high" is wrong
    options = RtlTargetOptions(clock="clk", reset="rst", reset_active_low=False)
    target = load_rtl_target([path], options, workdir=tmp_path / "t")
    with pytest.raises(VerifierError, match="held in reset"):
        run_simulate(_ctx(tmp_path, target))


# -- item 10: equiv_induct is a weak equivalence -------------------------------------------------


def test_the_structural_attempt_checks_the_base_case_from_reset() -> None:
    script = equivalence_scripts.structural_script("o.v", "c.v", "t", 8, True, "rst_n", True)
    body = script.split("design -copy-from gate -as gate gate\n")[1]
    # the miter of every matched point is made before anything is proven, then checked from reset
    assert body.index("equiv_miter") < body.index("equiv_simple") < body.index("equiv_induct")
    assert "sat -seq 9 -prove trigger 0 -prove-skip 1 -set-init-undef -set-at 1 rst_n 0" in body
    combinational = equivalence_scripts.structural_script("o.v", "c.v", "t", 8, False)
    assert "equiv_miter" not in combinational and "sat " not in combinational


def test_a_structural_proof_of_a_sequential_design_names_its_base_case(tmp_path: Path) -> None:
    original = (
        "module m(input clk, input rst, input [7:0] a, b, output reg [8:0] y);\n"
        "  reg [7:0] ra, rb;\n"
        "  always @(posedge clk) if (rst) begin ra <= 0; rb <= 0; y <= 0; end\n"
        "    else begin ra <= a; rb <= b; y <= ra + rb; end\n"
        "endmodule\n"
    )
    candidate = original.replace("y <= ra + rb;", "y <= rb + ra;")
    path = tmp_path / "m.v"
    path.write_text(original)
    target = load_rtl_target([path], RtlTargetOptions(), workdir=tmp_path / "t")
    result = run_equivalence(_ctx(tmp_path, target, candidate))
    assert result.ok and result.data["assurance"] == "proven", result.detail
    structural = result.data["attempts"][0]
    assert structural["method"] == "structural" and structural["outcome"] == "proven"
    assert "base case from reset" in structural["note"]
