"""The front end accepts the SystemVerilog design subset and names the construct and line it refuses.

The designs are loaded as real targets (preprocessor, slang in its child process, Yosys), and the
cheap stages run the real Icarus (-g2012), Verilator (-sv) and Yosys (-sv).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.config import RtlSettings
from evoforge.domain import Port, Target
from evoforge.errors import TargetError
from evoforge.tools.slang import Slang, elaborate_in_process
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.front import run_interface, run_lint, run_parse
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

STYLES = Path(__file__).resolve().parents[1] / "fixtures" / "rtl_styles"


def load(tmp_path: Path, text: str, name: str = "design.sv", **options: object) -> Target:
    path = tmp_path / name
    path.write_text(text)
    return load_rtl_target([path], RtlTargetOptions(**options), workdir=tmp_path / "work")  # type: ignore[arg-type]


def front_stages(target: Target, source: str, workdir: Path) -> list[tuple[str, bool, str]]:
    ctx = RtlContext(target, source, workdir, RtlSettings(), liberty_path=workdir / "unused.lib")
    results = []
    for stage in (run_parse, run_lint, run_interface):
        result = stage(ctx)
        results.append((result.name, result.ok, result.detail))
        if not result.ok:
            break
    return results


def test_the_system_verilog_subset_is_a_target_and_passes_the_front_stages(tmp_path: Path) -> None:
    path = STYLES / "sv_subset.sv"
    target = load_rtl_target([path], RtlTargetOptions(), workdir=tmp_path / "load")
    rtl = target.rtl
    assert rtl is not None and rtl.top == "sv_subset"
    widths = {p.name: p.width for p in rtl.ports}
    # $clog2(DEPTH) and $clog2(WIDTH+1) in port ranges; an enum-typed port; packed vectors
    assert widths == {"clk": 1, "rst_n": 1, "addr": 3, "din": 8, "op": 2, "we": 1, "dout": 8, "ones": 4,
                      "parity": 1}  # fmt: skip
    assert (rtl.clock, rtl.reset, rtl.reset_active_low) == ("clk", "rst_n", True)
    stages = front_stages(target, path.read_text(), tmp_path / "cand")
    assert [ok for _, ok, _ in stages] == [True, True, True], stages


@pytest.mark.parametrize(
    "body",
    [
        # several net declaration assignments in one statement
        "wire [7:0] p0 = a + b, p1 = p0 ^ a;\n  assign y = p1;",
        # always_comb, compound assignment, int loop variable, ++
        "always_comb begin y = '0; for (int i = 0; i < 8; i++) y ^= a << i; end",
        # typedef enum and unique case
        "typedef enum logic [1:0] {A, B, C} e_t; e_t s;\n"
        "  always_comb begin s = A; if (a[0]) s = B; else if (a[1]) s = C; end\n"
        "  always_comb unique case (s) A: y = a; B: y = b; default: y = a ^ b; endcase",
        # a function and a localparam with $clog2
        "localparam int N = $clog2(256); function automatic [7:0] f(input [7:0] x); f = x + N; endfunction\n"
        "  assign y = f(a) - b;",
        # a packed struct
        "typedef struct packed { logic [3:0] h; logic [3:0] l; } p_t; p_t p;\n"
        "  assign p = a; assign y = {p.l, p.h} + b;",
    ],
)
def test_system_verilog_spellings_are_accepted_by_all_stages(tmp_path: Path, body: str) -> None:
    text = f"module m(input logic [7:0] a, input logic [7:0] b, output logic [7:0] y);\n  {body}\nendmodule\n"
    target = load(tmp_path, text)
    assert target.rtl is not None and [p.width for p in target.rtl.ports] == [8, 8, 8]
    stages = front_stages(target, text, tmp_path / "cand")
    assert [ok for _, ok, _ in stages] == [True, True, True], stages


def test_a_syntax_error_is_refused_with_its_line_and_construct(tmp_path: Path) -> None:
    text = "module m(input a, output y);\n  wire t;\n  assign t = a +;\n  assign y = t;\nendmodule\n"
    with pytest.raises(
        TargetError, match=r"syntax error at line 3: expected expression in `assign t = a \+;`"
    ):
        load(tmp_path, text)


def test_an_unknown_module_is_refused_with_its_line(tmp_path: Path) -> None:
    text = "module m(input a, output y);\n  helper u (.a(a), .y(y));\nendmodule\n"
    with pytest.raises(TargetError, match=r"line 2: unknown module 'helper'"):
        load(tmp_path, text)


@pytest.mark.parametrize(
    ("ports", "words"),
    [
        ("input logic [7:0] a [4], output logic y", "a: type"),
        ("input real r, output logic y", "r: type real"),
    ],
)
def test_ports_a_bench_cannot_drive_are_refused_by_name(tmp_path: Path, ports: str, words: str) -> None:
    with pytest.raises(TargetError, match=f"cannot drive bit by bit: {words}"):
        load(tmp_path, f"module m({ports});\n  assign y = 1'b0;\nendmodule\n")


def test_the_top_is_the_uninstantiated_module_or_the_named_one(tmp_path: Path) -> None:
    text = (
        "module leaf(input a, output y); assign y = ~a; endmodule\n"
        "module TopModule(input a, output y); leaf u (.a(a), .y(y)); endmodule\n"
    )
    assert load(tmp_path, text).name == "TopModule"
    assert load(tmp_path, text, top="leaf").name == "leaf"
    with pytest.raises(TargetError, match="top module 'nope' is not defined"):
        load(tmp_path, text, top="nope")
    two = text + "module other(input a, output y); assign y = a; endmodule\n"
    with pytest.raises(TargetError, match="2 candidate top modules"):
        load(tmp_path, two)


def test_a_candidate_that_changes_a_clog2_port_width_fails_interface(tmp_path: Path) -> None:
    text = (
        "module m #(parameter DEPTH = 16) (input [$clog2(DEPTH)-1:0] a, output [$clog2(DEPTH)-1:0] y);\n"
        "  assign y = a + 1'b1;\nendmodule\n"
    )
    target = load(tmp_path, text, "m.v")
    assert target.rtl is not None and target.rtl.ports[0] == Port("a", "input", 4)
    stages = front_stages(target, text.replace("DEPTH = 16", "DEPTH = 32"), tmp_path / "cand")
    assert stages[-1][0] == "interface" and not stages[-1][1]
    assert "port 'a'" in stages[-1][2] and "[4:0]" in stages[-1][2]


def test_the_slang_child_reports_what_the_in_process_elaboration_does(tmp_path: Path) -> None:
    text = (STYLES / "sv_subset.sv").read_text()
    child = Slang().elaborate(text, cwd=tmp_path)
    direct = elaborate_in_process(text)
    assert child.tops == tuple(direct["tops"]) == ("sv_subset",)
    assert [p.name for p in child.modules["sv_subset"].ports] == [
        p["name"] for p in direct["modules"]["sv_subset"]["ports"]
    ]
    assert child.modules["sv_subset"].instances == ("popcount",)


def test_a_generate_bomb_is_refused_within_limits(tmp_path: Path) -> None:
    text = (
        "module m(input a, output y);\n  genvar i;\n  wire [9999999:0] w;\n"
        "  for (i = 0; i < 10000000; i = i + 1) begin : g assign w[i] = a; end\n"
        "  assign y = w[5];\nendmodule\n"
    )
    with pytest.raises(TargetError, match="line 4"):
        load(tmp_path, text, "bomb.v")
