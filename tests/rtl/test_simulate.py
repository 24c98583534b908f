"""The ``simulate`` stage: probe fingerprint + cocotb differential test + user test (real iverilog/cocotb)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from evoforge.config import RtlSettings
from evoforge.domain import Port, RtlInterface, SourceFile, Target, TargetKind
from evoforge.verifiers.rtl.cocotb_diff import run_differential
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.probe import CANDIDATE_SYSTEM_CALLS, probe_trace
from evoforge.verifiers.rtl.simulate import run_simulate

ROOT = Path(__file__).resolve().parents[2]

COUNTER = """
module counter(input clk, input rst, input en, input [7:0] d, output reg [7:0] cnt, output [7:0] y);
  reg [7:0] acc;
  always @(posedge clk)
    if (rst) begin cnt <= 8'd0; acc <= 8'd0; end
    else begin cnt <= (cnt == 8'd250) ? cnt : cnt + 8'd1; acc <= en ? acc ^ d : acc; end
  assign y = acc + cnt;
endmodule
"""
COUNTER_IF = RtlInterface(
    "counter",
    (
        Port("clk", "input", 1),
        Port("rst", "input", 1),
        Port("en", "input", 1),
        Port("d", "input", 8),
        Port("cnt", "output", 8),
        Port("y", "output", 8),
    ),
    clock="clk",
    reset="rst",
)
#: a rewrite that goes wrong only once the free-running counter reaches 150 (cycle ~153 after reset)
LATE_BUG = COUNTER.replace("assign y = acc + cnt;", "assign y = (cnt == 8'd150) ? acc : acc + cnt;")

COMB = """
module mux4(input [1:0] s, input [7:0] a, b, c, e, output reg [7:0] y);
  always @(*) case (s) 2'd0: y = a; 2'd1: y = b; 2'd2: y = c; default: y = e; endcase
endmodule
"""
COMB_IF = RtlInterface(
    "mux4",
    (
        Port("s", "input", 2),
        Port("a", "input", 8),
        Port("b", "input", 8),
        Port("c", "input", 8),
        Port("e", "input", 8),
        Port("y", "output", 8),
    ),
)
COMB_REWRITE = """
module mux4(input [1:0] s, input [7:0] a, b, c, e, output [7:0] y);
  wire [7:0] lo = s[0] ? b : a;
  wire [7:0] hi = s[0] ? e : c;
  assign y = s[1] ? hi : lo;
endmodule
"""

ACTIVE_LOW = """
module sreg(input clk, input rst_n, input din, output [3:0] q);
  reg [3:0] r;
  always @(posedge clk or negedge rst_n) if (!rst_n) r <= 4'b1010; else r <= {r[2:0], din};
  assign q = r;
endmodule
"""
ACTIVE_LOW_IF = RtlInterface(
    "sreg",
    (Port("clk", "input", 1), Port("rst_n", "input", 1), Port("din", "input", 1), Port("q", "output", 4)),
    clock="clk",
    reset="rst_n",
    reset_active_low=True,
)


def make_ctx(
    tmp_path: Path,
    original: str,
    candidate: str,
    interface: RtlInterface,
    *,
    user_test: Path | None = None,
    reference: dict | None = None,
    **settings: object,
) -> RtlContext:
    target = Target(
        kind=TargetKind.RTL,
        name=interface.top,
        sources=(SourceFile("orig.v", original),),
        rtl=interface,
        user_test=str(user_test) if user_test else None,
    )
    defaults: dict[str, object] = {
        "probe_cycles": 200,
        "sim_cycles": 1000,
        "sim_seeds": 2,
        "sim_timeout_s": 60,
    }
    return RtlContext(
        target=target,
        candidate_source=candidate,
        workdir=tmp_path / "work",
        settings=RtlSettings(**{**defaults, **settings}),
        liberty_path=tmp_path / "unused.lib",
        reference=reference if reference is not None else {},
    )


def _processes_mentioning(path: Path) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline.replace("\0", " "))
    return found


def _cycle_of(detail: str) -> int:
    match = re.search(r"at cycle (\d+)", detail)
    assert match, detail
    return int(match.group(1))


def test_identical_sequential_design_passes_with_default_settings(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, COUNTER, COUNTER, COUNTER_IF, probe_cycles=600, sim_cycles=4000, sim_seeds=2)
    start = time.monotonic()
    result = run_simulate(ctx)
    elapsed = time.monotonic() - start
    assert result.ok, result.detail
    assert result.name == "simulate"
    assert result.detail.startswith("probe 600 cycles + 2 seeds × 4000 cycles")
    assert result.detail.endswith(": outputs identical")
    assert "state horizon" in result.detail and result.data["simulated_cycles"] >= 3000
    assert result.data["cycles_run"] == 8000
    assert ctx.artifacts["functional_hash"] == result.data["functional_hash"]
    assert ctx.reference["probe"].hash == result.data["functional_hash"]
    assert elapsed < 20  # ~3-4 s on an idle machine; generous for a loaded CI box


def test_reference_probe_is_computed_once_per_target(tmp_path: Path) -> None:
    shared: dict = {}
    first = make_ctx(tmp_path / "a", COUNTER, COUNTER, COUNTER_IF, reference=shared)
    assert run_simulate(first).ok
    trace = shared["probe"]
    second = make_ctx(tmp_path / "b", COUNTER, LATE_BUG, COUNTER_IF, reference=shared)
    run_simulate(second)
    assert shared["probe"] is trace
    assert not (second.workdir / "simulate" / "probe_original").exists()


def test_sequential_design_without_reset(tmp_path: Path) -> None:
    pipe = (
        "module pipe(input clk, input [3:0] d, output reg [3:0] q); always @(posedge clk) q <= d; endmodule"
    )
    pipe_if = RtlInterface(
        "pipe", (Port("clk", "input", 1), Port("d", "input", 4), Port("q", "output", 4)), "clk"
    )
    assert run_simulate(make_ctx(tmp_path / "a", pipe, pipe, pipe_if)).ok
    inverted = pipe.replace("q <= d", "q <= ~d")
    result = run_simulate(make_ctx(tmp_path / "b", pipe, inverted, pipe_if))
    assert not result.ok and result.detail.startswith("probe: output q differs at cycle 1:"), result.detail


def test_identical_combinational_rewrite_passes(tmp_path: Path) -> None:
    result = run_simulate(make_ctx(tmp_path, COMB, COMB_REWRITE, COMB_IF))
    assert result.ok, result.detail
    assert result.data["cycles_run"] == 2000


def test_combinational_bug_is_rejected(tmp_path: Path) -> None:
    buggy = COMB_REWRITE.replace("s[0] ? e : c", "(s[0] & ~e[7]) ? e : c")
    result = run_simulate(make_ctx(tmp_path, COMB, buggy, COMB_IF))
    assert not result.ok
    assert "output y differs" in result.detail


def test_late_bug_is_caught_by_the_differential_test(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, COUNTER, LATE_BUG, COUNTER_IF, probe_cycles=50, sim_cycles=400, sim_seeds=1)
    result = run_simulate(ctx)
    assert not result.ok
    assert result.detail.startswith("differential test (seed "), result.detail
    assert "output y differs" in result.detail
    assert 145 <= _cycle_of(result.detail) <= 160
    assert "inputs rst=0" in result.detail
    # the probe saw no difference in its 50 cycles: the fingerprint equals the original's
    assert result.data["functional_hash"] == ctx.reference["probe"].hash


def test_late_bug_is_caught_by_the_probe(tmp_path: Path) -> None:
    result = run_simulate(make_ctx(tmp_path, COUNTER, LATE_BUG, COUNTER_IF, probe_cycles=600))
    assert not result.ok
    assert result.detail.startswith("probe: output y differs at cycle"), result.detail
    assert 145 <= _cycle_of(result.detail) <= 160
    assert "seeds" not in result.data  # rejected before the (expensive) differential test


def test_output_left_x_is_rejected(tmp_path: Path) -> None:
    # the probe (long) catches it …
    undriven = COUNTER.replace("assign y = acc + cnt;", "assign y = (cnt > 8'd100) ? 8'bx : acc + cnt;")
    result = run_simulate(make_ctx(tmp_path / "a", COUNTER, undriven, COUNTER_IF, probe_cycles=600))
    assert not result.ok and result.detail.startswith("probe: X on output y"), result.detail
    # … and so does the differential test when the probe is too short
    ctx = make_ctx(
        tmp_path / "b", COUNTER, undriven, COUNTER_IF, probe_cycles=50, sim_cycles=300, sim_seeds=1
    )
    result = run_simulate(ctx)
    assert not result.ok and "X on output y" in result.detail, result.detail
    assert result.detail.startswith("differential test")


def test_x_from_an_unreset_register_is_rejected(tmp_path: Path) -> None:
    no_reset = COUNTER.replace("begin cnt <= 8'd0; acc <= 8'd0; end", "cnt <= 8'd0;")
    result = run_simulate(make_ctx(tmp_path, COUNTER, no_reset, COUNTER_IF))
    assert not result.ok and "X on output y" in result.detail, result.detail


def test_zero_delay_infinite_loop_times_out_and_leaves_no_process(tmp_path: Path) -> None:
    looping = COUNTER.replace(
        "endmodule", "reg spin;\ninitial begin spin = 0; while (1) spin = ~spin; end\nendmodule"
    )
    ctx = make_ctx(tmp_path, COUNTER, looping, COUNTER_IF, sim_timeout_s=2)
    start = time.monotonic()
    result = run_simulate(ctx)
    assert time.monotonic() - start < 12
    assert not result.ok
    assert "did not finish within 2 s (infinite loop or no progress?)" in result.detail
    assert _processes_mentioning(tmp_path) == []


def test_late_infinite_loop_in_differential_test_times_out(tmp_path: Path) -> None:
    # zero-delay loop once the counter passes 200: after the probe's 50 cycles
    looping = COUNTER.replace(
        "endmodule", "reg spin;\nalways @(posedge clk) if (cnt == 8'd200) while (1) spin = ~spin;\nendmodule"
    )
    ctx = make_ctx(
        tmp_path, COUNTER, looping, COUNTER_IF, probe_cycles=50, sim_cycles=400, sim_seeds=1, sim_timeout_s=6
    )
    result = run_simulate(ctx)
    assert not result.ok
    assert (
        result.detail
        == "differential test: simulation did not finish within 6 s (infinite loop or no progress?)"
    )


def test_candidate_cannot_write_files_outside_its_workdir(tmp_path: Path) -> None:
    target = ROOT / "evoforge_pwned.txt"
    outside = tmp_path / "outside.txt"
    writer = COUNTER.replace(
        "endmodule",
        f'integer f, g;\ninitial begin f = $fopen("{target}", "w"); $fdisplay(f, "pwned"); '
        f'g = $fopen("{outside}", "w"); $fwrite(g, "pwned"); end\nendmodule',
    )
    result = run_simulate(make_ctx(tmp_path, COUNTER, writer, COUNTER_IF))
    assert not result.ok
    assert "forbidden construct" in result.detail and "$fopen" in result.detail
    assert not target.exists() and not outside.exists()


def test_hidden_file_writes_are_refused_before_running(tmp_path: Path) -> None:
    # $fopenw/$fdisplayb and a name built by token pasting slip past a lexical check of the source;
    # the compiled design's system calls do not
    target = ROOT / "evoforge_pwned2.txt"
    hidden = "`define F(a) $f``a\n" + COUNTER.replace(
        "endmodule",
        f'integer f;\ninitial begin f = `F(openw)("{target}"); $fdisplayb(f, 8\'d5); end\nendmodule',
    )
    result = run_simulate(make_ctx(tmp_path, COUNTER, hidden, COUNTER_IF))
    assert not result.ok
    assert "forbidden construct" in result.detail and "$fdisplayb" in result.detail  # the lexical check
    # the compiled-design check holds even where the lexical one is bypassed
    trace = probe_trace(
        hidden,
        COUNTER_IF,
        tmp_path / "direct",
        cycles=50,
        reset_cycles=2,
        timeout=30,
        allowed_calls=CANDIDATE_SYSTEM_CALLS,
    )
    assert not trace.ok
    assert trace.error is not None and trace.error.startswith("forbidden system call: $fopenw"), trace.error
    assert "$fdisplayb" in trace.error
    assert not target.exists()
    assert not (tmp_path / "work" / "simulate" / "diff").exists()  # never got to the cocotb run


def test_active_low_reset(tmp_path: Path) -> None:
    same = run_simulate(make_ctx(tmp_path / "a", ACTIVE_LOW, ACTIVE_LOW, ACTIVE_LOW_IF))
    assert same.ok, same.detail
    wrong_reset = ACTIVE_LOW.replace("4'b1010", "4'b0000")
    result = run_simulate(make_ctx(tmp_path / "b", ACTIVE_LOW, wrong_reset, ACTIVE_LOW_IF))
    assert not result.ok and "output q differs" in result.detail
    assert "rst_n=" in result.detail


def test_mid_run_resets_are_applied(tmp_path: Path) -> None:
    # reset works only until it is first released: the initial reset passes, a mid-run one does not
    sticky = COUNTER.replace("if (rst) begin", "if (rst && !armed) begin").replace(
        "reg [7:0] acc;",
        "reg [7:0] acc;\n  reg armed = 1'b0;\n  always @(posedge clk) if (!rst) armed <= 1'b1;",
    )
    outcome = run_differential(
        COUNTER, sticky, COUNTER_IF, tmp_path, cycles=300, reset_cycles=3, seeds=[11], timeout=60
    )
    assert not outcome.passed and outcome.mismatch is not None
    assert outcome.mismatch["cycle"] > 3
    # and the probe (which has one mid-run reset) rejects it through the stage
    result = run_simulate(make_ctx(tmp_path / "stage", COUNTER, sticky, COUNTER_IF))
    assert not result.ok and result.detail.startswith("probe: output"), result.detail


USER_TEST = """
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge


@cocotb.test()
async def counts_after_reset(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.en.value = 0
    dut.d.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)
    await FallingEdge(dut.clk)
    assert int(dut.cnt.value) == EXPECTED, f"cnt is {int(dut.cnt.value)} after 5 cycles"
"""


def test_user_cocotb_test_runs_against_the_candidate(tmp_path: Path) -> None:
    good = tmp_path / "test_user_good.py"
    good.write_text(USER_TEST.replace("EXPECTED", "5"))
    quick = {"sim_cycles": 100, "sim_seeds": 1}
    result = run_simulate(make_ctx(tmp_path / "a", COUNTER, COUNTER, COUNTER_IF, user_test=good, **quick))
    assert result.ok, result.detail
    assert result.detail.endswith("user test test_user_good.py passed")

    bad = tmp_path / "test_user_bad.py"
    bad.write_text(USER_TEST.replace("EXPECTED", "6"))
    result = run_simulate(make_ctx(tmp_path / "b", COUNTER, COUNTER, COUNTER_IF, user_test=bad, **quick))
    assert not result.ok
    assert result.detail.startswith("user test test_user_bad.py: counts_after_reset"), result.detail
    assert "cnt is 5 after 5 cycles" in result.detail
