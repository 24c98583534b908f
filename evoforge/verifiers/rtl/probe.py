"""The RTL functional fingerprint: an output trace of the design under a fixed, seeded stimulus.

:func:`corner_stimulus` makes the stimulus (a reset sequence, then random values biased toward the
corners: 0, all-ones, signed min/max, walking ones and zeros); the cocotb differential test uses the
same generator with other seeds. :func:`probe_trace` embeds the stimulus in a generated plain-Verilog
testbench, compiles it with iverilog and runs ``vvp`` in the sandbox (candidates are untrusted); stdout
is the trace, one row of ``%b`` values per sampled cycle, so X and Z stay visible. Sequential designs
get inputs just after the falling edge and are sampled just before each rising edge, every clock
driven (:func:`clock_drive`: the main one free-running, the others gated per cycle by a stimulus
bit); combinational designs get a vector, ``#1``, a sample. :func:`first_mismatch` compares a
candidate's trace to the reference's.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from evoforge.domain import Port, RtlInterface
from evoforge.errors import ToolTimeoutError
from evoforge.tools.base import write_text
from evoforge.tools.iverilog import Iverilog, Vvp
from evoforge.verifiers.sandbox import run_untrusted

log = logging.getLogger(__name__)

PROBE_SEED = 0x5EED
TB_MODULE = "evoforge_probe_tb"
STIM_FILE = "probe_stim.hex"

_DISPLAY = ("display", "write", "strobe", "monitor")
#: system tasks/functions a candidate may call at run time; anything else (file I/O under any of its
#: names — $fopen, $fopenw, $fdisplayb, $writememh, $dumpfile, … — VHDL textio, PLI) is refused
CANDIDATE_SYSTEM_CALLS = frozenset(
    [f"${d}{r}" for d in _DISPLAY for r in ("", "b", "h", "o")]
    + ["$monitoron", "$monitoroff", "$finish", "$stop", "$fatal", "$error", "$warning", "$info"]
    + ["$printtimescale", "$timeformat"]
    + ["$signed", "$unsigned", "$clog2", "$bits"]
    + ["$itor", "$rtoi", "$realtobits", "$bitstoreal", "$shortrealtobits", "$bitstoshortreal"]
    + ["$countones", "$countbits", "$onehot", "$onehot0", "$isunknown"]
    + ["$sformat", "$sformatf", "$swrite", "$swriteb", "$swriteh", "$swriteo", "$sscanf"]
    + [f"${f}" for f in ("ln", "log10", "exp", "sqrt", "pow", "floor", "ceil", "abs", "min", "max")]
    + [f"${f}" for f in ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "hypot")]
    + [f"${f}" for f in ("sinh", "cosh", "tanh", "asinh", "acosh", "atanh")]
)
#: calls whose value is the simulator's, not the circuit's: simulation time and random numbers. A
#: candidate that reads them can behave one way in every simulation window and another later (Yosys
#: reads them as undriven wires); Icarus compiles ``$time`` to an opcode, so they are refused on the
#: preprocessed text (:func:`simulation_only_calls`), not only in the compiled design
SIMULATION_ONLY_CALLS = frozenset(
    ["$time", "$stime", "$realtime", "$simtime", "$random", "$urandom", "$urandom_range"]
    + [f"$dist_{d}" for d in ("uniform", "normal", "exponential", "poisson", "chi_square", "t", "erlang")]
)
_SYSTEM_TOKEN = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|(\$[A-Za-z0-9_$]+)', re.S)
_VPI_CALL = re.compile(r'^\s*%vpi_(?:call|func)\S*\s+(\d+)\s+(\d+)\s+"(\$[^"]+)"', re.M)
_FILE_TABLE = re.compile(r"^:file_names \d+;\n((?:\s+\".*\";\n?)*)", re.M)


# ---------------------------------------------------------------------------------------------
# Stimulus


def stimulus_ports(interface: RtlInterface) -> tuple[Port, ...]:
    """The inputs a stimulus row drives, in row order: the resets, then one enable bit per clock
    after the first (named as the clock: 1 = that clock ticks with the main one this cycle), then the
    data inputs."""
    by_name = {p.name: p for p in interface.inputs}
    resets = [by_name[name] for name in interface.reset_ports if name in by_name]
    enables = [Port(name, "input", 1) for name in secondary_clocks(interface)]
    return (*resets, *enables, *interface.data_inputs)


def secondary_clocks(interface: RtlInterface) -> tuple[str, ...]:
    """The clocks after the main one: each is the main clock gated by a per-cycle stimulus bit."""
    return interface.clock_ports[1:] if interface.sequential else ()


def clock_drive(
    interface: RtlInterface, clock: str, slices: dict[str, str], *, enable_delay_ns: int = 0
) -> tuple[str, dict[str, str]]:
    """(declarations, connection per clock port) for a bench whose main clock is the net ``clock``.

    The main clock port gets ``clock``; every other clock gets ``clock & enable``, its enable being
    its stimulus bit (``slices``), so all domains tick on the main clock's edges, each on a random
    subset of cycles. The enable must change only while ``clock`` is low, or the gated clock would
    glitch: a bench whose stimulus changes before its clock falls delays it by ``enable_delay_ns``.
    """
    if not interface.sequential:
        return "", {}
    conns = {interface.clock_ports[0]: clock}
    decls: list[str] = []
    for name in secondary_clocks(interface):
        enable = slices[name]
        if enable_delay_ns:
            net = f"evoforge_ce_{len(decls)}"
            decls.append(f"  wire {net};\n  assign #{enable_delay_ns} {net} = {enable};\n")
            enable = net
        conns[name] = f"{clock} & {enable}"
    return "".join(decls), conns


def _corners(width: int) -> tuple[int, ...]:
    mask = (1 << width) - 1
    msb = 1 << (width - 1)
    return tuple(dict.fromkeys((0, mask, 1, msb, msb - 1, mask ^ 1)))


def _value(rng: random.Random, width: int, previous: int) -> int:
    roll = rng.random()
    if roll < 0.15:
        return previous  # hold: lets enables, FSM conditions and accumulators build up state
    if roll < 0.40:
        return rng.choice(_corners(width))
    if roll < 0.50:
        bit = 1 << rng.randrange(width)
        return bit if rng.random() < 0.5 else ((1 << width) - 1) ^ bit  # walking one / walking zero
    return rng.getrandbits(width)


def corner_stimulus(
    interface: RtlInterface,
    *,
    cycles: int,
    reset_cycles: int,
    seed: int,
    resets_at: tuple[int, ...] = (),
) -> list[tuple[int, ...]]:
    """``cycles`` rows of input values (order of :func:`stimulus_ports`).

    Every reset is asserted (at its own active level) for the first ``reset_cycles`` rows and for two
    rows at each of ``resets_at``; every clock after the first ticks in those rows (so synchronous
    resets take effect in every domain) and in a random three quarters of the others.
    """
    rng = random.Random(seed)
    ports = stimulus_ports(interface)
    levels = {r.port: r.active_low for r in interface.resets} if interface.sequential else {}
    enables = set(secondary_clocks(interface))
    in_reset = set(range(reset_cycles)) | {c + k for c in resets_at for k in (0, 1)}
    previous = [0] * len(ports)
    rows: list[tuple[int, ...]] = []
    for cycle in range(cycles):
        row = []
        for i, port in enumerate(ports):
            if port.name in levels:
                active_low = levels[port.name]
                value = int(active_low) ^ int(cycle in in_reset)
            elif port.name in enables:
                value = 1 if cycle in in_reset else int(rng.random() < 0.75)
            else:
                value = _value(rng, port.width, previous[i])
            row.append(value)
        previous = row
        rows.append(tuple(row))
    return rows


def format_inputs(ports: tuple[Port, ...], row: tuple[int, ...]) -> str:
    return " ".join(f"{p.name}={v:0{p.width}b}" for p, v in zip(ports, row, strict=True))


# ---------------------------------------------------------------------------------------------
# Traces


@dataclass(frozen=True)
class ProbeTrace:
    rows: tuple[str, ...]  # one per sampled cycle: the outputs as %b strings separated by spaces
    inputs: tuple[str, ...]  # the applied input vectors, "name=bits ..." per cycle
    hash: str  # sha256 over rows ("" when the probe failed)
    compile_log: str
    seconds: float = 0.0
    error: str | None = None  # compile error, early end, … (None = a complete trace)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Mismatch:
    cycle: int
    port: str
    expected: str
    got: str
    inputs: str  # "name=bits ..." of the inputs applied at that cycle

    @property
    def x_on_output(self) -> bool:
        return any(c in "xzXZ" for c in self.got)

    def describe(self) -> str:
        what = f"X on output {self.port}" if self.x_on_output else f"output {self.port} differs"
        return (
            f"{what} at cycle {self.cycle}: expected {self.expected}, got {self.got} (inputs {self.inputs})"
        )


def trace_hash(rows: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def bits_mismatch(expected: str, got: str) -> bool:
    """True when a bit the reference defines (0/1) is different (or X/Z) in ``got``."""
    if len(expected) != len(got):
        return True
    return any(e in "01" and g != e for e, g in zip(expected, got, strict=True))


def first_mismatch(reference: ProbeTrace, candidate: ProbeTrace, interface: RtlInterface) -> Mismatch | None:
    """The first cycle and output where ``candidate`` is not the reference (X where it is 0/1 counts)."""
    outputs = interface.outputs
    for cycle, (ref_row, cand_row) in enumerate(zip(reference.rows, candidate.rows, strict=False)):
        ref_values, cand_values = ref_row.split(), cand_row.split()
        for i, port in enumerate(outputs):
            expected = ref_values[i] if i < len(ref_values) else ""
            got = cand_values[i] if i < len(cand_values) else "(missing)"
            if bits_mismatch(expected, got):
                inputs = reference.inputs[cycle] if cycle < len(reference.inputs) else ""
                return Mismatch(cycle, port.name, expected, got, inputs)
    if len(candidate.rows) < len(reference.rows):
        cycle = len(candidate.rows)
        name = outputs[0].name if outputs else "?"
        return Mismatch(cycle, name, reference.rows[cycle], "(simulation ended)", reference.inputs[cycle])
    return None


def simulation_only_calls(preprocessed: str) -> list[str]:
    """The :data:`SIMULATION_ONLY_CALLS` that ``preprocessed`` text uses (outside comments and strings)."""
    found = (m.group(1) for m in _SYSTEM_TOKEN.finditer(preprocessed) if m.group(1))
    return sorted({name for name in found if name in SIMULATION_ONLY_CALLS})


def system_calls(vvp_text: str, source_name: str) -> list[tuple[str, int]]:
    """(``$name``, line) of every run-time system call that code from ``source_name`` makes, read from
    the compiled vvp file: macros, token pasting and includes cannot hide a call there."""
    table = _FILE_TABLE.search(vvp_text)
    names = re.findall(r'"(.*)"', table.group(1)) if table else []
    wanted = {i for i, name in enumerate(names) if Path(name).name == source_name}
    return [(m.group(3), int(m.group(2))) for m in _VPI_CALL.finditer(vvp_text) if int(m.group(1)) in wanted]


def probe_rows(
    interface: RtlInterface, *, cycles: int, reset_cycles: int, seed: int = PROBE_SEED
) -> list[tuple[int, ...]]:
    """The probe's stimulus: reset at the start and once more two thirds in."""
    return corner_stimulus(
        interface, cycles=cycles, reset_cycles=reset_cycles, seed=seed, resets_at=((cycles * 2) // 3,)
    )


#: cycles after a reset is released that do not count as the design running (outputs settle)
SETTLE_CYCLES = 2


def vacuity(trace: ProbeTrace, interface: RtlInterface, rows: list[tuple[int, ...]]) -> str | None:
    """Why a reference trace shows nothing worth comparing (``None``: it shows something).

    A simulation vouches for nothing when no output ever takes a defined value that differs from the
    previous cycle's while the design runs (reset released for more than :data:`SETTLE_CYCLES`
    cycles), for example because a wrong reset polarity holds the design in reset the whole time, or
    the clock never reaches its flops. X bits count as no value.
    """
    ports = stimulus_ports(interface)
    reset_index = next((i for i, p in enumerate(ports) if p.name == interface.reset), None)
    has_reset = reset_index is not None and interface.sequential
    released = 1 if interface.reset_active_low else 0
    running = 0  # consecutive cycles with the reset released
    previous: str | None = None
    for cycle, row in enumerate(trace.rows):
        if has_reset and cycle < len(rows) and rows[cycle][reset_index] != released:  # type: ignore[index]
            running = 0
        else:
            running += 1
        defined = "".join(c if c in "01" else "." for c in row)
        if running > SETTLE_CYCLES and previous is not None and _changed(previous, defined):
            return None
        previous = defined
    if has_reset:
        level = "low" if interface.reset_active_low else "high"
        return (
            f"no output changes while the reset is released ({len(trace.rows)} cycles; reset "
            f"{interface.reset!r} taken as active {level}): the design looks held in reset or unclocked, "
            "so a simulation would compare nothing. Check the reset and its polarity (--reset, "
            "--reset-active-low) and the clock (--clock)"
        )
    return (
        f"no output ever changes in {len(trace.rows)} cycles of simulation, so a simulation would "
        "compare nothing. Check the clock (--clock) and that the outputs depend on the inputs"
    )


def _changed(before: str, after: str) -> bool:
    """A bit defined in both rows that differs (X/Z, shown as '.', never counts)."""
    return any(a != b and a != "." and b != "." for a, b in zip(before, after, strict=False))


# ---------------------------------------------------------------------------------------------
# The testbench


def _slices(ports: tuple[Port, ...]) -> dict[str, str]:
    """``stim[hi:lo]`` for each stimulus port (first port in the most significant bits)."""
    total = sum(p.width for p in ports)
    out: dict[str, str] = {}
    hi = total - 1
    for port in ports:
        lo = hi - port.width + 1
        out[port.name] = f"stim[{hi}:{lo}]"
        hi = lo - 1
    return out


def instance_text(
    interface: RtlInterface,
    prefix: str,
    *,
    clocks: Mapping[str, str],
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
) -> str:
    """One copy of the design in a generated bench: module ``<prefix>_<top>`` named ``prefix``, each
    port connected to its clock net (``clocks``), its stimulus expression (``inputs``) or the slice
    ``outputs[port]`` of ``<prefix>_out``; every other port left open."""
    nets = {**{name: f"{prefix}_out{part}" for name, part in outputs.items()}, **inputs, **clocks}
    return f"  {prefix}_{interface.top} {prefix} ({port_connections(interface, nets)});"


def port_connections(interface: RtlInterface, nets: Mapping[str, str]) -> str:
    """``.port(net)`` for every port, in declaration order; a port without a net is left open."""
    return ", ".join(f".{port.name}({nets.get(port.name, '')})" for port in interface.ports)


def pack_row(ports: tuple[Port, ...], row: tuple[int, ...]) -> int:
    word = 0
    for port, value in zip(ports, row, strict=True):
        word = (word << port.width) | (value & ((1 << port.width) - 1))
    return word


def testbench(interface: RtlInterface, cycles: int, token: str) -> str:
    """A testbench that reads ``STIM_FILE`` and prints ``token`` + one output row per cycle."""
    ports = stimulus_ports(interface)
    width = max(1, sum(p.width for p in ports))
    slices = _slices(ports)
    outs = interface.outputs
    # the stimulus changes 1 ns after the clock falls: no race with falling-edge flops, no glitch on
    # the gated clocks of the other domains
    decls, clocks = clock_drive(interface, "clk", slices)
    nets = {**{p.name: f"out_{p.name}" for p in outs}, **slices, **clocks}
    wires = "".join(f"  wire [{p.width - 1}:0] out_{p.name};\n" for p in outs)
    fmt = " ".join("%b" for _ in outs)
    args = "".join(f", out_{p.name}" for p in outs)
    sample = f'$display("{token} {fmt}"{args});'
    if interface.sequential:
        clock = "      #1 clk = 1'b1;\n      #4 clk = 1'b0;\n      #1;\n"
        step = f"      stim = mem[i];\n      #4 {sample}\n{clock}"
    else:
        step = f"      stim = mem[i];\n      #1 {sample}\n"
    return (
        "`timescale 1ns/1ps\n"
        f"module {TB_MODULE};\n"
        f"  reg [{width - 1}:0] mem [0:{cycles - 1}];\n"
        f"  reg [{width - 1}:0] stim;\n"
        "  reg clk;\n"
        "  integer i;\n"
        f"{wires}"
        f"{decls}"
        f"  {interface.top} dut ({port_connections(interface, nets)});\n"
        "  initial begin\n"
        f'    $readmemh("{STIM_FILE}", mem);\n'
        "    clk = 1'b0;\n"
        f"    for (i = 0; i < {cycles}; i = i + 1) begin\n"
        f"{step}"
        "    end\n"
        f'    $display("{token}done %0d", i);\n'
        "    $finish;\n"
        "  end\n"
        "endmodule\n"
    )


def probe_trace(
    source: str,
    interface: RtlInterface,
    workdir: Path,
    *,
    cycles: int,
    reset_cycles: int,
    seed: int = PROBE_SEED,
    timeout: float,
    allowed_calls: frozenset[str] | None = None,
    rows: list[tuple[int, ...]] | None = None,
) -> ProbeTrace:
    """Simulate ``source`` under the fixed stimulus; compile errors and early ends come back as ``error``.

    With ``allowed_calls`` (candidates: :data:`CANDIDATE_SYSTEM_CALLS`), a design that calls any other
    system task or function is not run at all. ``rows`` replaces the fixed stimulus (the deep run
    replays its stimulus up to a mismatch this way, to see it with Icarus's X semantics).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ports = stimulus_ports(interface)
    if rows is None:
        rows = probe_rows(interface, cycles=cycles, reset_cycles=reset_cycles, seed=seed)
    cycles = len(rows)
    hex_digits = max(1, (sum(p.width for p in ports) + 3) // 4)
    write_text(workdir / STIM_FILE, "".join(f"{pack_row(ports, r):0{hex_digits}x}\n" for r in rows))
    # a fresh token per run, so that a design's own $display lines cannot pass for trace rows
    token = "@ef" + secrets.token_hex(6)
    tb = write_text(workdir / "probe_tb.v", testbench(interface, cycles, token))
    design = write_text(workdir / "design.v", source)
    inputs = tuple(format_inputs(ports, r) for r in rows)
    try:
        compiled = Iverilog().compile([tb, design], output=workdir / "probe.vvp", top=TB_MODULE, cwd=workdir)
    except ToolTimeoutError as exc:
        return ProbeTrace((), inputs, "", "", error=f"iverilog: {exc.message}", timed_out=True)
    if not compiled.ok:
        return ProbeTrace(
            (), inputs, "", compiled.log, compiled.seconds, error=f"iverilog: {compiled.first_error}"
        )
    if allowed_calls is not None:
        vvp_text = (workdir / "probe.vvp").read_text(errors="replace")
        refused = [(n, line) for n, line in system_calls(vvp_text, design.name) if n not in allowed_calls]
        if refused:
            listed = ", ".join(f"{name} (line {line})" for name, line in dict(refused).items())
            refusal = f"forbidden system call: {listed}; file and OS access is not allowed in candidates"
            return ProbeTrace((), inputs, "", compiled.log, compiled.seconds, error=refusal)
    result = run_untrusted([Vvp().path(), "-n", "probe.vvp"], workdir=workdir, timeout=timeout)
    seconds = compiled.seconds + result.seconds
    if result.timed_out:
        message = f"simulation did not finish within {timeout:g} s (infinite loop or no progress?)"
        return ProbeTrace((), inputs, "", compiled.log, seconds, error=message, timed_out=True)
    trace = tuple(
        line[len(token) + 1 :] for line in result.stdout.splitlines() if line.startswith(token + " ")
    )
    done = f"{token}done {cycles}" in result.stdout
    error = None
    if result.limit_exceeded is not None:  # an output flood, or the CPU/memory limit of the box
        error = f"the simulation was stopped at {result.limit_exceeded} of its sandbox"
    elif not done:
        tail = "\n".join(result.output.strip().splitlines()[-3:])
        error = (
            f"simulation ended after {len(trace)} of {cycles} cycles ($finish/$stop in the design?): {tail}"
        )
    elif len(trace) != cycles:
        error = f"the probe printed {len(trace)} rows for {cycles} cycles"
    log.debug("probe of %s: %d rows in %.2fs", interface.top, len(trace), seconds)
    return ProbeTrace(trace, inputs, trace_hash(trace) if error is None else "", compiled.log, seconds, error)
