"""Formal labels on designs Yosys's formal model does not describe (several clocks, both edges, a clock
from logic, latches).

Yosys's ``sat``/``equiv_*`` step every flop once per step whatever clocks it: a flop moved from one
clock domain to another, or from the rising to the falling edge, is "proven" equal in that model. Such
a proof is of another circuit, so it must not be reported as ``proven`` (nor a bound as ``bounded``);
the label comes from the simulation. Each attack is run through the real equivalence stage (yosys,
yosys-abc); single-clock designs keep their proofs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from equiv_ctx import inp, make_ctx, out

from evoforge.domain import Port
from evoforge.tools.yosys import Yosys
from evoforge.verifiers.rtl.equivalence import run_equivalence

pytestmark = pytest.mark.skipif(not Yosys().available(), reason="yosys is not installed")

#: the proof limits of these tests
LIMITS = {"equivalence_timeout_s": 20.0, "equivalence_budget_s": 40.0}

STYLES = Path(__file__).resolve().parents[1] / "fixtures" / "rtl_styles"
FIFO = (STYLES / "async_fifo.v").read_text()

TWO_STAGE_PORTS = (inp("clk"), inp("rst"), inp("d", 4), out("q", 4))
#: two registers on the rising edge (Verilog-2005, one block)
TWO_STAGE = """
module top(input clk, input rst, input [3:0] d, output reg [3:0] q);
  reg [3:0] s;
  always @(posedge clk) if (rst) begin s <= 0; q <= 0; end else begin s <= d; q <= s; end
endmodule
"""
#: the first register moved to the falling edge (SystemVerilog, two blocks): another circuit
FALLING_FIRST = """
module top(input logic clk, input logic rst, input logic [3:0] d, output logic [3:0] q);
  logic [3:0] s;
  always_ff @(negedge clk) s <= rst ? 4'd0 : d;
  always_ff @(posedge clk) begin
    if (rst) q <= '0;
    else     q <= s;
  end
endmodule
"""
#: the same two stages, written as a generate loop: equal, and proven
TWO_STAGE_LOOP = """
module top(input clk, input rst, input [3:0] d, output [3:0] q);
  reg [3:0] r [0:1];
  genvar i;
  generate for (i = 0; i < 2; i = i + 1) begin : st
    always @(posedge clk) r[i] <= rst ? 4'd0 : (i == 0 ? d : r[0]);
  end endgenerate
  assign q = r[1];
endmodule
"""

DOMAIN_PORTS = (inp("clka"), inp("clkb"), inp("rst"), inp("d", 4), out("q", 4))
#: a register per clock domain
TWO_DOMAINS = """
module top(input clka, input clkb, input rst, input [3:0] d, output reg [3:0] q);
  reg [3:0] s;
  always @(posedge clka) if (rst) s <= 0; else s <= d;
  always @(posedge clkb) if (rst) q <= 0; else q <= s;
endmodule
"""
#: both registers in clkb's domain (continuous assigns and a ternary): another circuit
ONE_DOMAIN = """
module top(input clka, input clkb, input rst, input [3:0] d, output [3:0] q);
  reg [3:0] s, t;
  always @(posedge clkb) begin s <= rst ? 4'b0 : d; t <= rst ? 4'b0 : s; end
  assign q = t;
endmodule
"""

DIVIDED_PORTS = (inp("clk"), inp("rst"), inp("d", 4), out("q", 4))
#: a register clocked by a divided clock made in logic
DIVIDED = """
module top(input clk, input rst, input [3:0] d, output reg [3:0] q);
  reg half;
  always @(posedge clk) half <= rst ? 1'b0 : ~half;
  always @(posedge half) q <= d;
endmodule
"""
#: the same register on the input clock: another circuit (updates twice as often)
UNDIVIDED = """
module top(input clk, input rst, input [3:0] d, output reg [3:0] q);
  reg half;
  always @(posedge clk) begin
    half <= rst ? 1'b0 : ~half;
    q <= d;
  end
endmodule
"""


@pytest.mark.parametrize(
    ("original", "candidate", "ports", "clock"),
    [
        (TWO_STAGE, FALLING_FIRST, TWO_STAGE_PORTS, "clk"),
        (TWO_DOMAINS, ONE_DOMAIN, DOMAIN_PORTS, "clka"),
        (DIVIDED, UNDIVIDED, DIVIDED_PORTS, "clk"),
    ],
    ids=["falling-edge", "other-domain", "divided-clock"],
)
def test_a_proof_in_a_model_without_clocks_is_not_reported_as_proven(
    tmp_path: Path, original: str, candidate: str, ports: tuple[Port, ...], clock: str
) -> None:
    result = run_equivalence(
        make_ctx(tmp_path, original, candidate, ports, clock=clock, reset="rst", **LIMITS)
    )
    assurance = str(result.data.get("assurance"))
    assert not assurance.startswith(("proven", "bounded")), result.detail
    if result.ok:  # the formal model found no difference: the label says why it is no proof
        assert "models neither design" in result.detail or "state timed by" in result.detail, result.detail
        assert assurance.startswith(("simulated", "sampled")), result.detail


def test_a_renamed_dual_clock_fifo_is_not_called_proven(tmp_path: Path) -> None:
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    target = load_rtl_target([STYLES / "async_fifo.v"], RtlTargetOptions(), workdir=tmp_path / "t")
    assert target.rtl is not None
    ctx = make_ctx(
        tmp_path,
        FIFO,
        FIFO.replace("rgraynext", "rgray_next"),
        target.rtl.ports,
        top=target.rtl.top,
        clock=target.rtl.clock,
        reset=target.rtl.reset,
        active_low=target.rtl.reset_active_low,
        # a few seconds alone; generous so that a loaded CI machine does not turn the proof into a timeout
        equivalence_timeout_s=90.0,
        equivalence_budget_s=180.0,
    )
    result = run_equivalence(ctx)
    assert result.ok, result.detail
    assert not str(result.data["assurance"]).startswith(("proven", "bounded")), result.detail
    assert "posedge rclk" in result.data.get("unmodelled", result.detail)


def test_single_clock_designs_keep_their_proofs(tmp_path: Path) -> None:
    result = run_equivalence(
        make_ctx(tmp_path, TWO_STAGE, TWO_STAGE_LOOP, TWO_STAGE_PORTS, clock="clk", reset="rst", **LIMITS)
    )
    assert result.ok and result.data["assurance"] == "proven", result.detail
