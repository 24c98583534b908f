"""Several clock domains: each driven in the probe and the cocotb bench, each constrained in OpenSTA.

The dual-clock FIFO and the UART transmitter are loaded as targets (clocks from the logic); the probe,
the differential simulation, yosys and OpenSTA are the real programs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.domain import Port, RtlInterface
from evoforge.tools.liberty import prepare_liberty
from evoforge.verifiers.rtl.cocotb_diff import run_differential
from evoforge.verifiers.rtl.probe import first_mismatch, probe_trace, stimulus_ports
from evoforge.verifiers.rtl.synthesis import synthesize
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target
from evoforge.verifiers.rtl.timing import analyse_timing, timing_script, unclocked_registers

STYLES = Path(__file__).resolve().parents[1] / "fixtures" / "rtl_styles"
FIFO = (STYLES / "async_fifo.v").read_text()
#: the read pointer moved into the write domain: equal whenever both clocks tick together
FIFO_WRONG_DOMAIN = FIFO.replace(".rinc(rinc), .rclk(rclk)", ".rinc(rinc), .rclk(wclk)")
#: the same FIFO with an internal net renamed: equal
FIFO_RENAMED = FIFO.replace("rgraynext", "rgray_next")


@pytest.fixture(scope="module")
def fifo(tmp_path_factory: pytest.TempPathFactory) -> RtlInterface:
    target = load_rtl_target(
        [STYLES / "async_fifo.v"], RtlTargetOptions(), workdir=tmp_path_factory.mktemp("t")
    )
    assert target.rtl is not None
    return target.rtl


def column(trace_rows: tuple[str, ...], interface: RtlInterface, name: str) -> list[str]:
    index = [p.name for p in interface.outputs].index(name)
    return [row.split()[index] for row in trace_rows]


def test_both_fifo_clocks_are_driven_in_the_probe(fifo: RtlInterface, tmp_path: Path) -> None:
    assert fifo.clock_ports == ("wclk", "rclk")
    assert [p.name for p in stimulus_ports(fifo)][:3] == ["wrst_n", "rrst_n", "rclk"]  # resets, enable
    trace = probe_trace(FIFO, fifo, tmp_path, cycles=400, reset_cycles=3, timeout=60)
    assert trace.ok, trace.error
    empty, full = column(trace.rows, fifo, "rempty"), column(trace.rows, fifo, "wfull")
    data = column(trace.rows, fifo, "rdata")
    # data crosses from the write domain to the read domain: the FIFO fills, drains and passes words
    assert {"0", "1"} <= set(empty) and "1" in full
    assert len(set(data)) > 8


def test_a_flop_moved_to_the_other_clock_domain_is_caught_by_the_probe(
    fifo: RtlInterface, tmp_path: Path
) -> None:
    reference = probe_trace(FIFO, fifo, tmp_path / "ref", cycles=400, reset_cycles=3, timeout=60)
    renamed = probe_trace(FIFO_RENAMED, fifo, tmp_path / "ok", cycles=400, reset_cycles=3, timeout=60)
    wrong = probe_trace(FIFO_WRONG_DOMAIN, fifo, tmp_path / "bad", cycles=400, reset_cycles=3, timeout=60)
    assert first_mismatch(reference, renamed, fifo) is None
    assert first_mismatch(reference, wrong, fifo) is not None


@pytest.mark.slow
def test_the_differential_simulation_drives_both_domains(fifo: RtlInterface, tmp_path: Path) -> None:
    common = {"cycles": 600, "reset_cycles": 3, "seeds": [11], "timeout": 120.0}
    same = run_differential(FIFO, FIFO_RENAMED, fifo, tmp_path / "same", **common)  # type: ignore[arg-type]
    assert same.passed, same.error
    wrong = run_differential(FIFO, FIFO_WRONG_DOMAIN, fifo, tmp_path / "wrong", **common)  # type: ignore[arg-type]
    assert not wrong.passed and wrong.mismatch is not None, wrong.error


def test_a_negedge_flop_samples_the_input_of_the_cycle_before(tmp_path: Path) -> None:
    """The probe changes inputs after the falling edge, so a falling-edge flop never races them."""
    interface = RtlInterface(
        "neg", (Port("clk", "input", 1), Port("d", "input", 4), Port("q", "output", 4)), clock="clk"
    )
    text = (
        "module neg(input clk, input [3:0] d, output reg [3:0] q); always @(negedge clk) q <= d; endmodule\n"
    )
    trace = probe_trace(text, interface, tmp_path, cycles=50, reset_cycles=0, timeout=30)
    assert trace.ok, trace.error
    applied = [int(row.split("=")[1], 2) for row in trace.inputs]
    sampled = [int(row, 2) for row in trace.rows]
    assert sampled[1:] == applied[:-1]


@pytest.fixture(scope="module")
def liberty(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return prepare_liberty(None, tmp_path_factory.mktemp("lib"))


def test_every_fifo_clock_is_constrained(fifo: RtlInterface, liberty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = timing_script(Path("n.v"), "async_fifo", Path("l.lib"), fifo.clock_ports, 5.0)
    assert "create_clock -name {wclk} -period 5" in script and "create_clock -name {rclk} -period 5" in script
    source = tmp_path / "fifo.v"
    source.write_text(FIFO)
    synth = synthesize(source, "async_fifo", liberty, tmp_path / "s", 120, clock_period_ns=5.0)
    both = analyse_timing(
        synth.netlist_path, "async_fifo", liberty.path, fifo.clock_ports, 5.0, tmp_path / "b", 60
    )
    write_only = analyse_timing(
        synth.netlist_path, "async_fifo", liberty.path, "wclk", 5.0, tmp_path / "w", 60
    )
    # with one clock declared, the read domain's 16 flops are unclocked and their inputs go untimed
    assert unclocked_registers(write_only.log) == 16
    assert unclocked_registers(both.log) == 0 and both.delay_ns >= write_only.delay_ns


def test_the_uart_transmitter_is_timed_as_sequential(liberty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = load_rtl_target([STYLES / "uart_tx.v"], RtlTargetOptions(), workdir=tmp_path / "t")
    assert target.rtl is not None and target.rtl.clock_ports == ("i_Clock",)
    synth = synthesize(STYLES / "uart_tx.v", "uart_tx", liberty, tmp_path / "s", 120, clock_period_ns=5.0)
    seq = analyse_timing(
        synth.netlist_path, "uart_tx", liberty.path, target.rtl.clock_ports, 5.0, tmp_path / "q", 60
    )
    comb = analyse_timing(synth.netlist_path, "uart_tx", liberty.path, None, 5.0, tmp_path / "c", 60)
    assert seq.path_group == "i_Clock" and unclocked_registers(seq.log) == 0
    assert unclocked_registers(comb.log) > 0  # what timing it as combinational left out
    assert seq.delay_ns > comb.delay_ns  # register → logic → register, not only input → output


def test_a_stored_job_keeps_every_clock_and_reset(fifo: RtlInterface, tmp_path: Path) -> None:
    from evoforge.config import Settings
    from evoforge.domain import DEFAULT_RTL_OBJECTIVES
    from evoforge.search import jobs
    from evoforge.search.report import job_report
    from evoforge.search.stored import load_stored_job
    from evoforge.store.engine import open_store

    settings = Settings(data_dir=tmp_path / "data", db=f"sqlite:///{tmp_path / 'jobs.db'}")
    store = open_store(settings.database_url)
    target = load_rtl_target(
        [STYLES / "async_fifo.v"], RtlTargetOptions(reset_active_low=True), workdir=tmp_path
    )
    job_id = jobs.create_job(store, target, settings, DEFAULT_RTL_OBJECTIVES)
    again = load_stored_job(store, job_id, settings).target
    assert again.rtl == target.rtl and again.fingerprint == target.fingerprint
    with store.transaction() as session:
        shown = job_report(session, job_id)["interface"]
    assert [c["port"] for c in shown["clocks"]] == ["wclk", "rclk"]
    assert {r["port"]: r["active_low"] for r in shown["resets"]} == {"wrst_n": True, "rrst_n": True}
    assert shown["notes"][0].startswith("clock wclk (posedge")
