"""Module prefixing and the probe fingerprint (real iverilog/vvp)."""

from __future__ import annotations

import time
from pathlib import Path

from evoforge.domain import Port, RtlInterface
from evoforge.verifiers.rtl.probe import (
    CANDIDATE_SYSTEM_CALLS,
    corner_stimulus,
    first_mismatch,
    probe_trace,
    stimulus_ports,
    system_calls,
)
from evoforge.verifiers.rtl.rename import declared_modules, prefix_modules

HIER = """
// module top is described here: top top top
module top #(parameter W = 8) (input clk, input [W-1:0] a, output [W-1:0] y, output sub);
  wire adder;  /* adder sub */
  adder #(.W(W)) u_add (.x(a), .y(y));
  half half (.i(a[0]), .o(sub));
  initial $display("adder top %d", W);
endmodule

module adder #(parameter W = 8) (input [W-1:0] x, output [W-1:0] y);
  assign y = x + 8'had;
endmodule

module half(input i, output o);
  assign o = ~i;
endmodule
"""

ACC = """
module acc(input clk, input rst, input en, input [7:0] d, output reg [7:0] q, output z);
  always @(posedge clk) if (rst) q <= 8'd0; else if (en) q <= q + d;
  assign z = (q == 8'd0);
endmodule
"""

ACC_IF = RtlInterface(
    "acc",
    (
        Port("clk", "input", 1),
        Port("rst", "input", 1),
        Port("en", "input", 1),
        Port("d", "input", 8),
        Port("q", "output", 8),
        Port("z", "output", 1),
    ),
    clock="clk",
    reset="rst",
)

COMB = """
module mix(input signed [7:0] a, input [3:0] b, output [8:0] s, output p);
  assign s = a + b;
  assign p = ^a;
endmodule
"""

COMB_IF = RtlInterface(
    "mix",
    (
        Port("a", "input", 8, signed=True),
        Port("b", "input", 4),
        Port("s", "output", 9),
        Port("p", "output", 1),
    ),
)


def _probe(source: str, interface: RtlInterface, path: Path, cycles: int = 200):
    return probe_trace(source, interface, path, cycles=cycles, reset_cycles=3, timeout=20)


# ---------------------------------------------------------------------------------------------
# rename


def test_declared_modules_in_order() -> None:
    assert declared_modules(HIER) == ["top", "adder", "half"]


def test_prefix_modules_renames_declarations_and_instances_only() -> None:
    out = prefix_modules(HIER, "gold_")
    assert "module gold_top #(parameter W = 8)" in out
    assert "gold_adder #(.W(W)) u_add" in out
    assert "gold_half half (" in out  # the instance keeps its name
    assert "wire adder;" in out  # a signal named like a module is not a reference
    assert "output [W-1:0] y, output sub" in out
    assert "endmodule : gold_half" in prefix_modules(
        HIER.replace("endmodule\n", "endmodule : half\n"), "gold_"
    )
    assert "// module top is described here: top top top" in out  # comments untouched
    assert "/* adder sub */" in out
    assert '"adder top %d"' in out  # strings untouched
    assert "8'had" in out  # a based literal is not an identifier


def test_prefixed_sources_compile_side_by_side(tmp_path: Path) -> None:
    from evoforge.tools.iverilog import Iverilog

    gold = tmp_path / "gold.v"
    gate = tmp_path / "gate.v"
    gold.write_text(prefix_modules(HIER, "gold_"))
    gate.write_text(prefix_modules(HIER, "gate_"))
    result = Iverilog().compile([gold, gate], output=tmp_path / "x.vvp", cwd=tmp_path)
    assert result.ok, result.log


# ---------------------------------------------------------------------------------------------
# stimulus


def test_stimulus_resets_first_and_respects_active_low() -> None:
    low = RtlInterface("acc", (*ACC_IF.ports[:1], Port("rst_n", "input", 1), *ACC_IF.ports[2:]),
                       clock="clk", reset="rst_n", reset_active_low=True)  # fmt: skip
    rows = corner_stimulus(low, cycles=50, reset_cycles=3, seed=1, resets_at=(30,))
    assert [p.name for p in stimulus_ports(low)] == ["rst_n", "en", "d"]
    assert [r[0] for r in rows[:4]] == [0, 0, 0, 1]
    assert [r[0] for r in rows[29:33]] == [1, 0, 0, 1]
    values = {r[2] for r in rows}
    assert 0 in values and 0xFF in values  # corners are hit


def test_stimulus_is_deterministic_per_seed() -> None:
    one = corner_stimulus(ACC_IF, cycles=40, reset_cycles=2, seed=7)
    assert one == corner_stimulus(ACC_IF, cycles=40, reset_cycles=2, seed=7)
    assert one != corner_stimulus(ACC_IF, cycles=40, reset_cycles=2, seed=8)


# ---------------------------------------------------------------------------------------------
# probe


def test_probe_sequential_is_fast_and_stable(tmp_path: Path) -> None:
    start = time.monotonic()
    first = _probe(ACC, ACC_IF, tmp_path / "a", cycles=600)
    elapsed = time.monotonic() - start
    assert first.ok, first.error
    assert len(first.rows) == 600 and len(first.inputs) == 600
    assert first.rows[0].split()[0] == "xxxxxxxx"  # before the first edge the register is X
    assert first.rows[3] == "00000000 1"  # after reset
    assert first.inputs[0].startswith("rst=1 en=")
    assert elapsed < 3.0
    again = _probe(ACC, ACC_IF, tmp_path / "b", cycles=600)
    assert again.hash == first.hash


def test_probe_reformatted_rewrite_has_same_hash(tmp_path: Path) -> None:
    rewrite = """
module acc(input clk, input rst, input en, input [7:0] d, output reg [7:0] q, output z);
  wire [7:0] nxt = en ? q + d : q;
  always @(posedge clk) q <= rst ? 8'd0 : nxt;
  assign z = ~|q;
endmodule
"""
    assert _probe(ACC, ACC_IF, tmp_path / "a").hash == _probe(rewrite, ACC_IF, tmp_path / "b").hash


def test_probe_finds_first_mismatch(tmp_path: Path) -> None:
    bad = ACC.replace("q <= q + d", "q <= q + d + (q[7] & q[0])")
    ref = _probe(ACC, ACC_IF, tmp_path / "a")
    cand = _probe(bad, ACC_IF, tmp_path / "b")
    assert cand.hash != ref.hash
    mismatch = first_mismatch(ref, cand, ACC_IF)
    assert mismatch is not None
    assert mismatch.port in ("q", "z") and mismatch.cycle > 3
    assert mismatch.describe().startswith(f"output {mismatch.port} differs at cycle {mismatch.cycle}")
    assert "rst=0" in mismatch.inputs
    assert first_mismatch(ref, ref, ACC_IF) is None


def test_probe_x_on_output_is_a_mismatch(tmp_path: Path) -> None:
    floating = ACC.replace("assign z = (q == 8'd0);", "")  # z never driven: Z on the output
    ref = _probe(ACC, ACC_IF, tmp_path / "a")
    cand = _probe(floating, ACC_IF, tmp_path / "b")
    mismatch = first_mismatch(ref, cand, ACC_IF)
    assert mismatch is not None and mismatch.port == "z" and mismatch.x_on_output
    assert mismatch.describe().startswith("X on output z")


def test_probe_combinational(tmp_path: Path) -> None:
    trace = _probe(COMB, COMB_IF, tmp_path / "a", cycles=100)
    assert trace.ok, trace.error
    for row, inputs in zip(trace.rows, trace.inputs, strict=True):
        fields = dict(item.split("=") for item in inputs.split())
        a = int(fields["a"], 2)  # signed + unsigned is an unsigned sum in Verilog
        s, p = row.split()
        assert int(s, 2) == (a + int(fields["b"], 2)) % 512
        assert p == str(fields["a"].count("1") % 2)


def test_probe_reports_compile_errors(tmp_path: Path) -> None:
    trace = _probe("module acc(input clk; endmodule", ACC_IF, tmp_path / "a")
    assert not trace.ok and trace.error is not None and trace.error.startswith("iverilog:")
    assert trace.hash == ""


def test_probe_rejects_early_finish(tmp_path: Path) -> None:
    sneaky = ACC.replace("endmodule", "initial #100 $finish;\nendmodule")
    trace = _probe(sneaky, ACC_IF, tmp_path / "a")
    assert not trace.ok and "ended after" in (trace.error or "")


def test_probe_ignores_lines_printed_by_the_design(tmp_path: Path) -> None:
    chatty = ACC.replace("endmodule", 'always @(posedge clk) $display("00000000 1");\nendmodule')
    ref = _probe(ACC, ACC_IF, tmp_path / "a")
    assert _probe(chatty, ACC_IF, tmp_path / "b").hash == ref.hash


def test_candidate_system_calls_are_checked_in_the_compiled_design(tmp_path: Path) -> None:
    sneaky = "`define W(x) $fwrite``x\n" + ACC.replace(
        "endmodule", 'integer f;\ninitial begin f = $fopenr("/etc/hostname"); `W(h)(1, 5); end\nendmodule'
    )
    trace = probe_trace(
        sneaky,
        ACC_IF,
        tmp_path / "a",
        cycles=60,
        reset_cycles=3,
        timeout=20,
        allowed_calls=CANDIDATE_SYSTEM_CALLS,
    )
    assert not trace.ok
    assert "$fopenr (line" in (trace.error or "") and "$fwriteh" in (trace.error or "")
    # the testbench's own $readmemh/$display/$finish are not the design's
    chatty = ACC.replace(
        "endmodule", 'always @(posedge clk) if (q == 8\'d3) $display("three at %t", $time);\nendmodule'
    )
    ok = probe_trace(
        chatty,
        ACC_IF,
        tmp_path / "b",
        cycles=60,
        reset_cycles=3,
        timeout=20,
        allowed_calls=CANDIDATE_SYSTEM_CALLS,
    )
    assert ok.ok, ok.error
    calls = system_calls((tmp_path / "b" / "probe.vvp").read_text(), "design.v")
    assert {name for name, _ in calls} == {"$display"}  # ($time compiles to an opcode)
