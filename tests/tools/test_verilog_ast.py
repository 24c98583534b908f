"""pyverilog wrapper: ports, widths, signedness, top inference, syntax errors, round trip (real iverilog)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from evoforge.domain import Port
from evoforge.errors import TargetError
from evoforge.tools.verilog_ast import generate_verilog, int_literal, parse_verilog, top_candidates

ANSI = """
module alu #(parameter WIDTH = 8, parameter N = 3) (
  input  wire              clk,
  input  wire [WIDTH-1:0]  a,
  input  signed [2*N:0]    b,
  output reg  [WIDTH:0]    y,
  output                   z
);
  always @(posedge clk) y <= a + b;
  assign z = ^a;
endmodule
"""

NON_ANSI = """
module legacy(clk, d, q, s);
  parameter W = 4;
  localparam H = W / 2;
  input clk;
  input [W*2-1:0] d;
  output [H-1:0] q;
  output s;
  wire signed [H-1:0] q;
  reg s;
  assign q = d[H-1:0];
  always @(posedge clk) s <= d[0];
endmodule
"""

HIER = """
module leaf(input [3:0] a, output [3:0] y);
  assign y = a + 4'd1;
endmodule
module mid(input [3:0] a, output [3:0] y);
  wire [3:0] t;
  leaf l0(.a(a), .y(t));
  leaf l1(.a(t), .y(y));
endmodule
module chip(input [3:0] a, output [3:0] y);
  mid m(.a(a), .y(y));
endmodule
module spare(input x, output y);
  assign y = ~x;
endmodule
"""


def test_ansi_ports_with_parameter_widths() -> None:
    parsed = parse_verilog(ANSI)
    info = parsed.modules["alu"]
    assert info.ports == (
        Port("clk", "input", 1),
        Port("a", "input", 8),
        Port("b", "input", 7, signed=True),
        Port("y", "output", 9),
        Port("z", "output", 1),
    )
    assert info.parameters == {"WIDTH": 8, "N": 3}
    assert info.instances == ()


def test_non_ansi_ports_with_signed_net_declaration() -> None:
    info = parse_verilog(NON_ANSI).modules["legacy"]
    assert [p.name for p in info.ports] == ["clk", "d", "q", "s"]
    assert [p.width for p in info.ports] == [1, 8, 2, 1]
    assert [p.direction for p in info.ports] == ["input", "input", "output", "output"]
    assert info.ports[2].signed and not info.ports[1].signed
    assert info.parameters == {"W": 4, "H": 2}


def test_continued_ansi_ports_repeat_the_previous_declaration() -> None:
    text = (
        "module m(input x, input signed [3:0] a, b, output wire [2:0] p, q,\n"
        "         output reg signed [1:0] r, s);\nendmodule\n"
    )
    ports = parse_verilog(text).modules["m"].ports
    assert ports[1:] == (
        Port("a", "input", 4, signed=True),
        Port("b", "input", 4, signed=True),
        Port("p", "output", 3),
        Port("q", "output", 3),
        Port("r", "output", 2, signed=True),
        Port("s", "output", 2, signed=True),
    )
    again = parse_verilog(generate_verilog(parse_verilog(text).ast)).modules["m"].ports
    assert again == ports


def test_top_inference_skips_instantiated_modules() -> None:
    parsed = parse_verilog(HIER)
    assert parsed.modules["mid"].instances == ("leaf",)
    assert parsed.modules["chip"].instances == ("mid",)
    assert top_candidates(parsed) == ["chip", "spare"]


def test_syntax_error_names_the_line() -> None:
    text = "module m(input a, output y);\n  wire x\n  assign y = a;\nendmodule\n"
    with pytest.raises(TargetError) as info:
        parse_verilog(text)
    assert "line 3" in str(info.value)
    assert "assign" in str(info.value)


def test_systemverilog_is_a_target_error() -> None:
    with pytest.raises(TargetError, match="syntax error"):
        parse_verilog(
            "typedef logic [3:0] nib_t;\nmodule m(input a, output y);\n  assign y = a;\nendmodule\n"
        )


def test_missing_include_is_a_clear_target_error(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"nope\.vh"):
        parse_verilog('`include "nope.vh"\nmodule m; endmodule\n', workdir=tmp_path)


def test_include_and_define_are_preprocessed(tmp_path: Path) -> None:
    (tmp_path / "w.vh").write_text("`define W 6\n")
    parsed = parse_verilog(
        '`include "w.vh"\nmodule m(input [`W-1:0] a, output y);\n assign y = |a;\nendmodule\n',
        workdir=tmp_path,
    )
    assert parsed.modules["m"].ports[0].width == 6


def test_round_trip_generate_then_parse() -> None:
    for text in (ANSI, NON_ANSI, HIER):
        first = parse_verilog(text)
        again = parse_verilog(generate_verilog(first.ast))
        assert again.modules == first.modules
        assert generate_verilog(again.ast) == generate_verilog(first.ast)


def test_parse_is_fast_after_the_tables_are_cached() -> None:
    parse_verilog(ANSI)  # builds the tables if this is the first parse on the machine
    start = time.monotonic()
    parse_verilog(NON_ANSI)
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("12", 12),
        ("8'hff", 255),
        ("4'b1010", 10),
        ("'d7", 7),
        ("4'sb1111", -1),
        ("1_000", 1000),
        ("4'bx", None),
    ],
)
def test_int_literal(literal: str, value: int | None) -> None:
    assert int_literal(literal) == value
