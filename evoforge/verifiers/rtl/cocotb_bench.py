"""The cocotb test of the differential simulation (imported by cocotb inside the simulator).

The toplevel is the wrapper that :func:`evoforge.verifiers.rtl.cocotb_diff.diff_wrapper` generates:
the original (``gold_``) and the candidate (``gate_``) on one packed stimulus bus, a mismatch flag
computed in Verilog with ``===`` (a gate bit that differs from, or is X/Z where, a 0/1 gold bit), and
copies of both output sets latched just before the designs' clock edge. The test drives the main
clock (cocotb ``Clock``; the wrapper gates the other clocks with per-cycle stimulus bits, see
:func:`evoforge.verifiers.rtl.probe.clock_drive`) and, per cycle, writes one stimulus word and reads
one flag, so thousands of cycles take about a second; only on a mismatch does it read the outputs to
describe it. It reads its spec from the ``+evoforge_spec=`` plusarg and writes ``bench.json`` next to
it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer, Trigger

from evoforge.domain import Port, RtlInterface
from evoforge.verifiers.rtl.probe import corner_stimulus, format_inputs, pack_row, stimulus_ports

CLOCK_PERIOD_NS = 10


def interface_from_json(data: dict[str, Any]) -> RtlInterface:
    return RtlInterface.from_dict(data)


def mid_run_resets(seed: int, index: int, cycles: int, reset_cycles: int, has_reset: bool) -> tuple[int, ...]:
    """Where a seed re-asserts reset: once late in the first seed (so deep states are reached first),
    one to three times anywhere in the others."""
    if not has_reset or cycles < reset_cycles + 40:
        return ()
    rng = random.Random(seed ^ 0xA5A5)
    if index == 0:
        return (rng.randrange(max(reset_cycles + 10, cycles * 85 // 100), cycles - 4),)
    return tuple(sorted(rng.randrange(reset_cycles + 10, cycles - 4) for _ in range(rng.randint(1, 3))))


def _split(bits: str, ports: tuple[Port, ...]) -> list[str]:
    out, pos = [], 0
    for port in ports:
        out.append(bits[pos : pos + port.width])
        pos += port.width
    return out


def _describe(gold_bits: str, gate_bits: str, outputs: tuple[Port, ...]) -> dict[str, str]:
    """The first output whose 0/1 gold bits the gate does not reproduce."""
    gold = _split(gold_bits.lower(), outputs)
    gate = _split(gate_bits.lower(), outputs)
    for port, expected, got in zip(outputs, gold, gate, strict=True):
        if len(expected) != len(got) or any(e in "01" and g != e for e, g in zip(expected, got, strict=True)):
            return {"signal": port.name, "expected": expected, "got": got}
    return {"signal": "?", "expected": gold_bits, "got": gate_bits}


@cocotb.test()
async def differential(dut: Any) -> None:
    spec_path = Path(str(cocotb.plusargs["evoforge_spec"]))
    spec = json.loads(spec_path.read_text())
    interface = interface_from_json(spec["interface"])
    ports = stimulus_ports(interface)
    cycles, reset_cycles = int(spec["cycles"]), int(spec["reset_cycles"])
    has_reset = interface.reset is not None and interface.sequential
    result: dict[str, Any] = {"passed": False, "cycles_run": 0, "mismatch": None, "seeds": spec["seeds"]}
    stim, flag = dut.stim, (dut.bad_pre if interface.sequential else dut.bad)
    step: Trigger
    if interface.sequential:
        Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start(start_high=False)
        step = FallingEdge(dut.clk)
    else:
        step = Timer(1, unit="ns")
    cycles_run = 0
    for index, seed in enumerate(spec["seeds"]):
        resets = mid_run_resets(seed, index, cycles, reset_cycles, has_reset)
        rows = corner_stimulus(
            interface, cycles=cycles, reset_cycles=reset_cycles, seed=seed, resets_at=resets
        )
        words = [pack_row(ports, row) for row in rows]
        for cycle, word in enumerate(words):
            stim.value = word
            await step  # sequential: the flag was latched just before this cycle's clock edge
            cycles_run += 1
            if flag.value == 1:
                # sequential: the outputs latched before the edge; combinational: the live ones
                gold, gate = (
                    (dut.gold_pre, dut.gate_pre) if interface.sequential else (dut.gold_out, dut.gate_out)
                )
                found = _describe(str(gold.value), str(gate.value), interface.outputs)
                inputs = format_inputs(ports, rows[cycle])
                result["mismatch"] = {"seed": seed, "cycle": cycle, **found, "inputs": inputs}
                break
        if result["mismatch"] is not None:
            break
    result["cycles_run"] = cycles_run
    result["passed"] = result["mismatch"] is None
    (spec_path.parent / "bench.json").write_text(json.dumps(result))
    assert result["passed"], f"outputs differ: {result['mismatch']}"
