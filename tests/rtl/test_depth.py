"""Differences hidden deep in time (issue 10, item 9): attacks first, with real Icarus, Verilator, Yosys.

A ``tick_timer`` rewrite that is right except at one cycle far after reset (5,000 or 100,000) was
accepted at the default assurance as ``bounded(20 cycles)``. Now the simulation is sized to the design
(its state horizon, read from its flip-flops) and run in Verilator when that is long, and a verdict is
accepted by default only when formal proved it or some evidence reached the horizon.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evoforge.config import RtlSettings
from evoforge.domain import Assurance
from evoforge.tools.liberty import prepare_liberty
from evoforge.verifiers.rtl.cascade import RtlVerifier
from evoforge.verifiers.rtl.horizon import WRAPS, horizon_cycles, state_shape
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "rtl"
#: formal limits short enough for a test; everything that decides *what is accepted* stays default
QUICK_FORMAL = {"equivalence_timeout_s": 2.0, "equivalence_budget_s": 4.0}


def late_tick_timer(cycle: int) -> str:
    """tick_timer_better.v plus a saturating count of cycles since reset that flips ``tick`` once, at
    ``cycle`` cycles after the reset is released, and never again."""
    text = (EXAMPLES / "tick_timer_better.v").read_text()
    width = (cycle + 2).bit_length()
    text = text.replace(
        "    reg  [6:0] count;",
        f"    reg  [6:0] count;\n    reg  [{width - 1}:0] age;",
    )
    text = text.replace(
        "            tick  <= 1'b0;\n", "            tick  <= 1'b0;\n            age   <= 0;\n"
    )
    text = text.replace(
        "            tick <= en & last;",
        f"            if (age != {width}'d{cycle + 1}) age <= age + 1'b1;\n"
        f"            tick <= (en & last) ^ (age == {width}'d{cycle - 1});",
    )
    assert "age" in text and text.count("age") >= 5, text
    return text


def late_seq_detect(cycle: int) -> str:
    """seq_detect_better.v plus the same saturating age counter, flipping ``armed`` once at ``cycle``."""
    text = (EXAMPLES / "seq_detect_better.v").read_text()
    width = (cycle + 2).bit_length()
    counter = (
        f"    reg [{width - 1}:0] age;\n"
        "    always @(posedge clk or negedge rst_n)\n"
        "        if (!rst_n) age <= 0;\n"
        f"        else if (age != {width}'d{cycle + 1}) age <= age + 1'b1;\n"
    )
    text = text.replace(
        "    assign armed = s[1];", counter + f"    assign armed = s[1] ^ (age == {width}'d{cycle});"
    )
    assert "age ==" in text
    return text


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for Verilator's prebuilt runtime, as a job's cache directory is."""
    return tmp_path_factory.mktemp("shared")


def _verifier(tmp_path: Path, shared: Path, design: str, **settings: object) -> RtlVerifier:
    target = load_rtl_target([EXAMPLES / f"{design}.v"], RtlTargetOptions(), workdir=tmp_path / "target")
    verifier = RtlVerifier(
        target=target,
        settings=RtlSettings(**{**QUICK_FORMAL, **settings}),
        liberty=prepare_liberty(None, tmp_path / "cache"),
        work_root=tmp_path / "runs",
        shared_dir=shared,
    )
    verifier.baseline()
    return verifier


def _cycle(reason: str) -> int:
    found = re.search(r"at cycle (\d+)", reason)
    assert found, reason
    return int(found.group(1))


# -- the attacks as written ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cycle", [5_000, 100_000])
def test_a_difference_after_the_simulated_window_is_not_accepted_by_default(
    tmp_path: Path, shared: Path, cycle: int
) -> None:
    verifier = _verifier(tmp_path, shared, "tick_timer")  # default assurance, default simulation lengths
    verdict = verifier.verify(late_tick_timer(cycle))
    assert not verdict.accepted and not verdict.error, verdict.reason
    # tick_timer's 32-bit counter puts its state horizon beyond any simulation: only a proof will do
    assert verdict.stage == "equivalence", verdict.reason
    assert "sampled" in verdict.reason and "below the required simulated" in verdict.reason
    assert "horizon" in verdict.reason


@pytest.mark.slow
@pytest.mark.parametrize("cycle", [5_000, 100_000])
def test_when_simulation_evidence_is_accepted_the_deep_run_finds_the_cycle(
    tmp_path: Path, shared: Path, cycle: int
) -> None:
    # a job that accepts `sampled` evidence runs the deep run (Verilator) to its limit
    verifier = _verifier(tmp_path, shared, "tick_timer", min_assurance="sampled")
    verdict = verifier.verify(late_tick_timer(cycle))
    assert not verdict.accepted and verdict.stage == "simulate", verdict.reason
    assert "deep run" in verdict.reason and "replayed in Icarus" in verdict.reason
    assert "output tick differs" in verdict.reason
    reset = verifier.settings.reset_cycles
    assert _cycle(verdict.reason) == cycle + reset, verdict.reason


@pytest.mark.slow
def test_the_simulation_is_sized_to_a_small_design_and_catches_cycle_5000(
    tmp_path: Path, shared: Path
) -> None:
    # seq_detect has 3 loop bits; the attacker's 14-bit age counter makes the horizon 4*2^20 cycles,
    # within the deep run's reach: the default itself runs it and finds the cycle
    verifier = _verifier(tmp_path, shared, "seq_detect")
    verdict = verifier.verify(late_seq_detect(5_000))
    assert not verdict.accepted and verdict.stage == "simulate", verdict.reason
    assert "deep run" in verdict.reason
    assert _cycle(verdict.reason) == 5_000 + verifier.settings.reset_cycles


@pytest.mark.slow
def test_a_correct_small_design_is_labelled_by_what_covered_its_horizon(tmp_path: Path, shared: Path) -> None:
    # formal is cut to nothing, so the label comes from the simulation: it reaches the horizon
    verifier = _verifier(
        tmp_path, shared, "seq_detect", equivalence_timeout_s=0.01, equivalence_budget_s=0.01
    )
    verdict = verifier.verify((EXAMPLES / "seq_detect_better.v").read_text())
    assert verdict.accepted, verdict.reason
    assert verdict.assurance is not None and verdict.assurance.level == "simulated"
    simulate = next(r for r in verdict.stages if r.name == "simulate")
    horizon = simulate.data["horizon"]
    loop = horizon["original"]["loop_bits"] + horizon["candidate"]["loop_bits"]
    assert horizon["cycles"] >= WRAPS * 2**loop
    assert verdict.assurance.cycles >= horizon["cycles"]


# -- the horizon itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("design", "loop", "chain"),
    [("tick_timer", 32, 1), ("tick_timer_better", 7, 1), ("fir4", 0, 42), ("seq_detect", 3, 2)],
)
def test_state_shape_reads_counters_from_the_logic(
    tmp_path: Path, design: str, loop: int, chain: int
) -> None:
    text = (EXAMPLES / f"{design}.v").read_text()
    top = re.search(r"module\s+(\w+)", text)
    assert top
    shape, error = state_shape(text, top.group(1), tmp_path, timeout=60)
    assert error == "" and shape is not None
    assert (shape.loop_bits, shape.chain_bits) == (loop, chain)


def test_a_delay_line_counts_its_length_and_renaming_hides_nothing(tmp_path: Path) -> None:
    # the attacker's next move: count time without a counter, in a 64-stage shift register
    line = (
        "module d(input clk, input rst, input a, output y);\n"
        "  reg [63:0] q;\n"
        "  always @(posedge clk) if (rst) q <= 64'd0; else q <= {q[62:0], 1'b1};\n"
        "  assign y = a ^ q[63];\n"
        "endmodule\n"
    )
    shape, _ = state_shape(line, "d", tmp_path / "a", timeout=60)
    assert shape is not None and shape.chain_bits == 64  # each stage delays one cycle: 64 cycles
    counter = "module d(input clk, output reg [5:0] n);\n  always @(posedge clk) n <= n + 6'd1;\nendmodule\n"
    renamed = counter.replace(" n", " hold_register_not_a_counter").replace(
        "(n", "(hold_register_not_a_counter"
    )
    first, _ = state_shape(counter, "d", tmp_path / "b", timeout=60)
    second, _ = state_shape(renamed, "d", tmp_path / "c", timeout=60)
    assert first == second and first is not None and first.loop_bits == 6


def test_horizon_cycles_grow_with_loop_bits_and_end_where_simulation_cannot_go() -> None:
    assert horizon_cycles(0, 5) == WRAPS + 5
    assert horizon_cycles(10, 0) == WRAPS * 1024
    assert horizon_cycles(41, 0) is None


def test_assurance_levels_are_ordered_and_parse_back() -> None:
    levels = [Assurance.sampled(10**6), Assurance.simulated(4), Assurance.bounded(20), Assurance.proven()]
    assert levels == sorted(levels)
    for level in levels:
        assert Assurance.parse(str(level)) == level
    assert not Assurance.sampled(10**9).satisfies(Assurance.parse("simulated"))
    assert Assurance.simulated(8192).satisfies(Assurance.parse("simulated"))


# -- the attacker's next moves ------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        "tick <= (en & last) ^ ($time > 64'd50000);",  # simulation time instead of a counter
        "tick <= (en & last) ^ (`NOW > 64'd50000);",  # the same, behind a macro
        "tick <= (en & last) ^ ($urandom == 32'h5EED);",  # a rare random event
    ],
)
def test_simulation_time_and_random_numbers_are_refused(tmp_path: Path, trigger: str) -> None:
    from evoforge.verifiers.rtl.context import RtlContext
    from evoforge.verifiers.rtl.simulate import run_simulate

    text = (EXAMPLES / "tick_timer_better.v").read_text().replace("tick <= en & last;", trigger)
    text = "`define NOW $time\n" + text
    target = load_rtl_target([EXAMPLES / "tick_timer.v"], RtlTargetOptions(), workdir=tmp_path / "t")
    ctx = RtlContext(
        target=target,
        candidate_source=text,
        workdir=tmp_path / "w",
        settings=RtlSettings(probe_cycles=100, sim_cycles=200, sim_seeds=1),
        liberty_path=tmp_path / "x.lib",
    )
    result = run_simulate(ctx)
    assert not result.ok
    assert "simulator's time or random numbers" in result.detail
    assert ("$time" if "urandom" not in trigger else "$urandom") in result.detail


def test_state_held_in_a_loop_of_gates_leaves_the_horizon_unbounded(tmp_path: Path) -> None:
    # a latch made of cross-coupled gates holds state without a flip-flop: nothing bounds it
    latch = (
        "module t(input clk, input s, input r, output q);\n"
        "  wire qn;\n"
        "  assign q = ~(r | qn);\n"
        "  assign qn = ~(s | q);\n"
        "endmodule\n"
    )
    shape, _ = state_shape(latch, "t", tmp_path, timeout=60)
    assert shape is not None and shape.loop_gates > 0
    from evoforge.verifiers.rtl.horizon import combine

    assert combine(shape, shape).cycles is None
