"""The synthesis and timing stages on real yosys and OpenSTA, with the generic and SKY130 libraries."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.config import RtlSettings
from evoforge.domain import Port, RtlInterface, SourceFile, Target, TargetKind
from evoforge.tools.liberty import prepare_liberty
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.synthesis import implementation_hash, parse_netlist, run_synthesis, synthesize
from evoforge.verifiers.rtl.timing import analyse_timing, run_timing

ROOT = Path(__file__).resolve().parents[2]
SKY130 = ROOT.parent / "shared" / "pdk" / "sky130hd_tt.lib.gz"


def adder(width: int) -> str:
    return f"module add(input [{width - 1}:0] a, b, output [{width}:0] y); assign y = a + b; endmodule\n"


def ripple(width: int) -> str:
    return f"""module ripple(input [{width - 1}:0] a, b, input cin, output [{width - 1}:0] sum, output cout);
  wire [{width}:0] carry;
  assign carry[0] = cin;
  genvar i;
  generate for (i = 0; i < {width}; i = i + 1) begin : bit_
    assign sum[i] = a[i] ^ b[i] ^ carry[i];
    assign carry[i + 1] = (a[i] & b[i]) | (carry[i] & (a[i] ^ b[i]));
  end endgenerate
  assign cout = carry[{width}];
endmodule
"""


AND2 = "module and2(input a, b, output y); assign y = a & b; endmodule\n"

ACCUMULATE = """module acc(input clk, input rst_n, input [7:0] {d}, output [7:0] y);
  reg [7:0] {total};
  wire [7:0] {nxt} = {total} + {d};
  always @(posedge clk or negedge rst_n)
    if (!rst_n) {total} <= 8'd0; else {total} <= {nxt};
  assign y = {total};
endmodule
"""


@pytest.fixture(scope="module")
def generic(tmp_path_factory):
    return prepare_liberty(None, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def sky130(tmp_path_factory):
    if not SKY130.exists():
        pytest.skip(f"{SKY130} is absent: the SKY130 liberty is not part of the project")
    return prepare_liberty(SKY130, tmp_path_factory.mktemp("cache"))


def make_ctx(tmp_path: Path, source: str, top: str, liberty: Path, ports, clock=None, reset=None):
    interface = RtlInterface(top=top, ports=tuple(ports), clock=clock, reset=reset, reset_active_low=True)
    target = Target(TargetKind.RTL, top, (SourceFile(f"{top}.v", source),), rtl=interface)
    settings = RtlSettings(clock_period_ns=5.0, tool_timeout_s=60)
    return RtlContext(target, source, tmp_path, settings, liberty)


def adder_ports(width: int):
    return [Port("a", "input", width), Port("b", "input", width), Port("y", "output", width + 1)]


def synth(tmp_path: Path, text: str, top: str, liberty, name: str = "d"):
    source = tmp_path / f"{name}.v"
    source.write_text(text)
    return synthesize(source, top, liberty, tmp_path / f"{name}_work", timeout=60)


@pytest.mark.parametrize("library", ["generic", "sky130"])
def test_wider_adder_costs_more(tmp_path, request, library):
    lib = request.getfixturevalue(library)
    small = synth(tmp_path, adder(8), "add", lib, "a8")
    large = synth(tmp_path, adder(16), "add", lib, "a16")
    assert small.area_um2 is not None and large.area_um2 is not None
    assert large.area_um2 > 1.5 * small.area_um2
    assert large.cells > small.cells
    assert large.depth > small.depth
    assert small.netlist_path.is_file()


def test_stage_reports_metrics_and_artifacts(tmp_path, generic):
    ctx = make_ctx(tmp_path, adder(8), "add", generic.path, adder_ports(8))
    result = run_synthesis(ctx)
    assert result.ok and result.name == "synthesis", result.detail
    assert result.metrics.area_um2 and result.metrics.cells and result.metrics.depth
    assert result.detail.startswith("area ") and "cells, depth" in result.detail
    assert sum(result.data["cells_by_type"].values()) == result.metrics.cells
    largest = result.data["largest_cells"]
    assert 0 < len(largest) <= 5 and largest[0]["area_um2"] >= largest[-1]["area_um2"]
    assert Path(ctx.artifacts["netlist"]).is_file()
    assert len(ctx.artifacts["implementation_hash"]) == 64


def test_synthesis_rejections(tmp_path, generic):
    broken = make_ctx(
        tmp_path / "b", "module add(input a, output y); assign y = ; endmodule\n", "add", generic.path, []
    )
    result = run_synthesis(broken)
    assert not result.ok and not result.error
    assert "ERROR" in result.detail and result.log
    unknown = make_ctx(
        tmp_path / "u",
        "module add(input a, output y); blackbox u(.a(a), .y(y)); endmodule\n",
        "add",
        generic.path,
        [],
    )
    result = run_synthesis(unknown)
    assert not result.ok and "blackbox" in result.detail
    latch = "module add(input en, d, output reg q); always @* if (en) q = d; endmodule\n"
    result = run_synthesis(make_ctx(tmp_path / "l", latch, "add", generic.path, []))
    assert not result.ok and "DLATCH" in result.detail


def test_synthesis_timeout_is_a_rejection(tmp_path, generic):
    ctx = make_ctx(
        tmp_path, adder(64).replace("a + b", "a * b * a * b"), "add", generic.path, adder_ports(64)
    )
    ctx.settings = RtlSettings(tool_timeout_s=0.5)
    result = run_synthesis(ctx)
    assert not result.ok and "timed out" in result.detail


def test_implementation_hash_ignores_internal_names(tmp_path, generic):
    one = synth(tmp_path, ACCUMULATE.format(d="d", total="total", nxt="nxt"), "acc", generic, "one")
    renamed = ACCUMULATE.format(d="d", total="acc_q", nxt="sum_w").replace(
        "assign y", "wire [3:0] unused_pad = 4'd0;\n  assign y"
    )
    two = synth(tmp_path, renamed, "acc", generic, "two")
    assert one.netlist_path.read_text() != two.netlist_path.read_text()  # names differ in the text
    assert one.implementation_hash == two.implementation_hash
    different = synth(
        tmp_path, ACCUMULATE.format(d="d", total="t", nxt="n").replace("+ d", "- d"), "acc", generic, "three"
    )
    assert different.implementation_hash != one.implementation_hash
    # a port name is part of the interface, so it counts
    port_renamed = synth(
        tmp_path, ACCUMULATE.format(d="din", total="total", nxt="nxt"), "acc", generic, "four"
    )
    assert port_renamed.implementation_hash != one.implementation_hash


def test_implementation_hash_is_structural():
    base = """module m(a, b, y);
  wire _0_;
  input a; wire a; input b; wire b; output y; wire y;
  NAND2 _1_ (.A(a), .B(b), .Y(_0_));
  INV _2_ (.A(_0_), .Y(y));
endmodule
"""
    renumbered = base.replace("_0_", "_7_").replace("_1_", "_9_").replace("_2_", "_3_")
    swapped = base.replace(".A(a), .B(b)", ".A(b), .B(a)")
    assert implementation_hash(base) == implementation_hash(renumbered)
    assert implementation_hash(base) != implementation_hash(swapped)
    netlist = parse_netlist(base)
    assert netlist.module == "m" and netlist.ports == {"a": "input", "b": "input", "y": "output"}
    assert [i.cell for i in netlist.instances] == ["NAND2", "INV"]


@pytest.mark.parametrize("library", ["generic", "sky130"])
def test_ripple_adder_is_slower_than_an_and_gate(tmp_path, request, library):
    lib = request.getfixturevalue(library)
    slow = synth(tmp_path, ripple(16), "ripple", lib, "ripple")
    fast = synth(tmp_path, AND2, "and2", lib, "and2")
    slow_t = analyse_timing(slow.netlist_path, "ripple", lib.path, None, 10.0, tmp_path / "t1", 60)
    fast_t = analyse_timing(fast.netlist_path, "and2", lib.path, None, 10.0, tmp_path / "t2", 60)
    assert fast_t.delay_ns > 0
    assert slow_t.delay_ns > 3 * fast_t.delay_ns
    assert slow_t.slack_ns == pytest.approx(10.0 - slow_t.delay_ns, abs=1e-3)


def test_timing_stage_names_rtl_signals(tmp_path, generic):
    ports = [
        Port("a", "input", 16),
        Port("b", "input", 16),
        Port("cin", "input", 1),
        Port("sum", "output", 16),
        Port("cout", "output", 1),
    ]
    ctx = make_ctx(tmp_path, ripple(16), "ripple", generic.path, ports)
    assert run_synthesis(ctx).ok
    result = run_timing(ctx)
    assert result.ok and result.name == "timing", result.detail
    assert result.metrics.delay_ns and result.metrics.delay_ns > 0
    names = result.data["critical_path"]
    assert names and names[0].split("[")[0] in ("a", "b", "cin")
    assert names[-1].split("[")[0] in ("sum", "cout")
    assert not any(n.startswith("_") for n in names)
    assert len(names) == len(set(names))
    assert result.detail.startswith("critical path ") and " → " in result.detail
    assert result.data["path"] and result.data["slack_ns"] is not None
    assert result.data["startpoint"] and result.data["endpoint"]


def test_timing_stage_sequential_names_registers(tmp_path, generic):
    ports = [
        Port("clk", "input", 1),
        Port("rst_n", "input", 1),
        Port("d", "input", 8),
        Port("y", "output", 8),
    ]
    source = ACCUMULATE.format(d="d", total="total", nxt="nxt")
    ctx = make_ctx(tmp_path, source, "acc", generic.path, ports, clock="clk", reset="rst_n")
    assert run_synthesis(ctx).ok
    result = run_timing(ctx)
    assert result.ok, result.detail
    assert result.data["clock"] == "clk" and result.data["slack_ns"] < 5.0
    names = result.data["critical_path"]
    assert any(n.startswith(("total[", "y[")) for n in names), names


def test_timing_without_netlist_is_a_verifier_error(tmp_path, generic):
    ctx = make_ctx(tmp_path, AND2, "and2", generic.path, [])
    result = run_timing(ctx)
    assert not result.ok and result.error
