"""The word-level netlist (real Yosys): cells with src lines, bits mapped back to the source's names."""

from __future__ import annotations

import pytest

from evoforge.errors import ToolError
from evoforge.tools.yosys_netlist import word_netlist

TEXT = """\
module m (input [15:0] v, input s, output [7:0] y, output z);
  wire [7:0] hi = v[15:8];
  assign y = s ? hi : v[7:0];
  assign z = hi > 8'd3;
endmodule
"""


def test_cells_carry_source_lines_and_bits_map_back_to_names() -> None:
    module = word_netlist(TEXT).modules["m"]
    [mux] = module.cells_of("$mux")
    [gt] = module.cells_of("$gt")
    assert mux.line == 3 and gt.line == 4
    assert module.text_of(mux.port("A")) == "v[7:0]"
    assert module.text_of(mux.port("B")) in ("hi", "v[15:8]")
    assert module.text_of(gt.port("B")) == "8'b00000011"
    assert module.text_of(mux.port("Y")) == "y"
    assert module.ports["y"] == "output"


def test_an_unreadable_design_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="word-level netlist"):
        word_netlist("module broken (input a; endmodule\n")
