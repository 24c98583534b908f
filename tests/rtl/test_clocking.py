"""Clocks and resets come from the logic (what drives flop pins after Yosys proc), not from names.

Each spelling is a real target loaded through slang and Yosys; the names are chosen so that a
name-based guess would be wrong or silent (``i_Clock``, ``wclk``, ``i_Rst_L``, ``wrstn``, an
active-high reset called ``rst_n``, a clock called ``tick``, a data input called ``clk``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.errors import TargetError
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

STYLES = Path(__file__).resolve().parents[1] / "fixtures" / "rtl_styles"


def counter(clock: str, edge: str, reset: str, asynchronous: bool, active_low: bool, sv: bool = False) -> str:
    test = f"!{reset}" if active_low else reset
    sensitivity = f"{edge} {clock}"
    if asynchronous:
        sensitivity += f" or {'negedge' if active_low else 'posedge'} {reset}"
    always = "always_ff" if sv else "always"
    kind = "logic" if sv else "reg"
    return f"""module counter(input {clock}, input {reset}, input en, input [3:0] step,
  output {kind} [7:0] count);
  {always} @({sensitivity}) begin
    if ({test}) count <= 8'd0;
    else if (en) count <= count + step;
  end
endmodule
"""


def load(tmp_path: Path, text: str, name: str = "design.v", **options: object) -> object:
    path = tmp_path / name
    path.write_text(text)
    return load_rtl_target([path], RtlTargetOptions(**options), workdir=tmp_path / "work")  # type: ignore[arg-type]


SPELLINGS = [
    # clock, edge, reset, asynchronous, active_low
    ("i_Clock", "posedge", "i_Rst_L", True, True),
    ("wclk", "posedge", "wrstn", True, True),
    ("clk", "posedge", "rst_n", False, True),
    ("clk", "posedge", "rst_n", False, False),  # named active-low, is active-high: the vacuity trap
    ("clk", "posedge", "rst_n", True, False),
    ("rclk", "negedge", "rst", True, False),
    ("CLK", "negedge", "RESET", False, False),
    ("tick", "posedge", "zap", True, True),  # no name hint at all
    ("clock", "posedge", "reset", False, True),  # a sync reset named active-high that is active-low
]


@pytest.mark.parametrize(("clock", "edge", "reset", "asynchronous", "active_low"), SPELLINGS)
def test_clock_and_reset_come_from_the_flops(
    tmp_path: Path, clock: str, edge: str, reset: str, asynchronous: bool, active_low: bool
) -> None:
    target = load(tmp_path, counter(clock, edge, reset, asynchronous, active_low))
    rtl = target.rtl  # type: ignore[attr-defined]
    assert rtl.clock == clock and rtl.clock_ports == (clock,)
    assert rtl.clocks[0].edges == (edge,)
    assert rtl.reset == reset and rtl.reset_active_low is active_low
    assert rtl.resets[0].asynchronous is asynchronous
    assert rtl.resets[0].clock == clock
    assert {p.name for p in rtl.data_inputs} == {"en", "step"}
    assert rtl.notes[0].startswith(f"clock {clock} ({edge}")


def test_system_verilog_spelling_is_read_the_same(tmp_path: Path) -> None:
    target = load(tmp_path, counter("i_Clock", "posedge", "i_Rst_L", True, True, sv=True), "design.sv")
    rtl = target.rtl  # type: ignore[attr-defined]
    assert (rtl.clock, rtl.reset, rtl.reset_active_low) == ("i_Clock", "i_Rst_L", True)


def test_names_do_not_override_the_logic(tmp_path: Path) -> None:
    """An input called ``clk`` that only feeds data is data; the input that clocks the flops is the clock."""
    text = """module odd(input clk, input strobe, input reset, output reg q, output reg r);
  always @(posedge strobe) begin q <= clk; r <= reset; end
endmodule
"""
    rtl = load(tmp_path, text).rtl  # type: ignore[attr-defined]
    assert rtl.clock_ports == ("strobe",)
    assert rtl.resets == ()
    assert {p.name for p in rtl.data_inputs} == {"clk", "reset"}
    assert any("clk is named like a clock but clocks no flop" in n for n in rtl.notes)
    assert any("reset is named like a reset but resets no flop" in n for n in rtl.notes)


def test_a_tie_between_reset_candidates_is_broken_by_name_and_reported(tmp_path: Path) -> None:
    text = """module two(input clk, input rst, input en, input [3:0] d, output reg [3:0] a,
  output reg [3:0] b);
  always @(posedge clk) if (rst) a <= 0; else a <= d;
  always @(posedge clk) if (!en) b <= 0; else b <= d;
endmodule
"""
    rtl = load(tmp_path, text).rtl  # type: ignore[attr-defined]
    assert rtl.reset_ports == ("rst",) and rtl.reset_active_low is False
    assert any(n.startswith("guess:") and "rst is the synchronous reset by its name" in n for n in rtl.notes)
    assert any("en also forces" in n for n in rtl.notes)


def test_an_input_forcing_few_flops_is_not_a_reset(tmp_path: Path) -> None:
    text = """module load(input clk, input clear, input [7:0] d, output reg [7:0] acc, output reg [1:0] tag);
  always @(posedge clk) acc <= acc + d;
  always @(posedge clk) if (clear) tag <= 0; else tag <= d[1:0];
endmodule
"""
    rtl = load(tmp_path, text).rtl  # type: ignore[attr-defined]
    assert rtl.clock == "clk"
    # `clear` forces 2 of 10 bits: named like a reset, so it is taken, and the guess is said
    assert rtl.reset_ports == ("clear",)
    assert any(n.startswith("guess: clear forces 2 of 10") for n in rtl.notes)
    rtl = load(tmp_path, text.replace("clear", "bypass")).rtl  # type: ignore[attr-defined]
    assert rtl.resets == ()
    assert any("bypass forces 2 of 10 flop bit(s) to a constant but is not taken" in n for n in rtl.notes)


def test_reset_behind_an_or_and_an_inverted_clock(tmp_path: Path) -> None:
    text = """module orr(input clk_b, input rst_a, input rst_b, input [3:0] d, output reg [3:0] q);
  wire clk = ~clk_b;
  always @(posedge clk) if (rst_a | ~rst_b) q <= 4'hf; else q <= d;
endmodule
"""
    rtl = load(tmp_path, text).rtl  # type: ignore[attr-defined]
    assert rtl.clock == "clk_b" and rtl.clocks[0].edges == ("negedge",)
    assert {(r.port, r.active_low, r.asynchronous) for r in rtl.resets} == {
        ("rst_a", False, False),
        ("rst_b", True, False),
    }


def test_uart_transmitter_with_i_clock_is_sequential(tmp_path: Path) -> None:
    target = load_rtl_target([STYLES / "uart_tx.v"], RtlTargetOptions(), workdir=tmp_path)
    rtl = target.rtl
    assert rtl is not None and rtl.sequential
    assert rtl.clock_ports == ("i_Clock",) and rtl.resets == ()


def test_dual_clock_fifo_has_two_domains_each_with_its_reset(tmp_path: Path) -> None:
    target = load_rtl_target([STYLES / "async_fifo.v"], RtlTargetOptions(), workdir=tmp_path)
    rtl = target.rtl
    assert rtl is not None
    assert set(rtl.clock_ports) == {"wclk", "rclk"} and rtl.clock == "wclk"  # wclk clocks more bits
    domains = {r.port: (r.clock, r.active_low, r.asynchronous) for r in rtl.resets}
    assert domains == {"wrst_n": ("wclk", True, True), "rrst_n": ("rclk", True, True)}
    assert {p.name for p in rtl.data_inputs} == {"wdata", "winc", "rinc"}


def test_flags_override_the_logic_and_say_so(tmp_path: Path) -> None:
    text = counter("clk", "posedge", "rst_n", False, True)
    rtl = load(tmp_path, text, reset_active_low=False).rtl  # type: ignore[attr-defined]
    assert rtl.reset == "rst_n" and rtl.reset_active_low is False
    assert any("--reset-active-high overrides the logic" in n for n in rtl.notes)
    rtl = load(tmp_path, text, clock="none").rtl  # type: ignore[attr-defined]
    assert not rtl.sequential and rtl.resets == ()
    rtl = load(tmp_path, text, reset="en").rtl  # type: ignore[attr-defined]
    assert rtl.reset_ports == ("en",) and any(n.startswith("guess: --reset en") for n in rtl.notes)
    with pytest.raises(TargetError, match="must be a 1-bit input"):
        load(tmp_path, text, clock="step")
    with pytest.raises(TargetError, match="no such port"):
        load(tmp_path, text, reset="nope")
    with pytest.raises(TargetError, match="both clock and reset"):
        load(tmp_path, text, clock="clk", reset="clk")


def test_several_clocks_by_flag(tmp_path: Path) -> None:
    target = load_rtl_target(
        [STYLES / "async_fifo.v"], RtlTargetOptions(clock="rclk,wclk", reset="rrst_n"), workdir=tmp_path
    )
    rtl = target.rtl
    assert rtl is not None and rtl.clock_ports == ("rclk", "wclk") and rtl.reset_ports == ("rrst_n",)
    assert rtl.reset_active_low is True  # from the logic, although the flag named the port


def test_gated_and_derived_clocks_are_reported(tmp_path: Path) -> None:
    text = """module g(input clk, input en, input d, output reg q, output reg r, output reg s);
  reg en_q, half;
  always @(negedge clk) en_q <= en;
  wire gclk = clk & en_q;
  always @(posedge gclk) q <= d;
  always @(posedge clk) begin r <= q; half <= ~half; end
  always @(posedge half) s <= d;
endmodule
"""
    rtl = load(tmp_path, text).rtl  # type: ignore[attr-defined]
    assert rtl.clock_ports == ("clk",) and rtl.clocks[0].edges == ("posedge", "negedge")
    assert any("clocked by clk through logic" in n and "gated clock" in n for n in rtl.notes)
    assert any("clocked by register half, not by an input" in n for n in rtl.notes)
