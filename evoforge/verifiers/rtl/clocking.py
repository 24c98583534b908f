"""Clocks and resets read from the logic: what drives the flops' clock and reset pins after Yosys ``proc``.

Yosys elaborates the design (``read_verilog -sv``, ``proc``, ``flatten``, ``opt``)
and writes its word-level netlist as JSON. Every storage cell names its pins: ``CLK`` (with
``CLK_POLARITY``) on ``$dff``/``$adff``/``$sdff``/``$dffsr``/``$aldff`` and their enable forms and on
clocked memory ports; ``ARST``/``SET``/``CLR``/``ALOAD`` for asynchronous resets; ``SRST`` for the
synchronous reset that ``opt`` (its ``opt_dff``) finds where the logic forces a flop to a constant.
Each pin is traced back through inverters (and through OR/AND trees, for resets that are "a or b") to the top
module's inputs, polarity included. The result:

- **clocks**: every 1-bit input that clocks flops, its edges and how many flop bits it clocks; the
  main clock clocks the most bits (a clock-like name breaks a tie).
- **resets**: every input that resets flops asynchronously; and, per clock domain without one, the
  input that forces the most flop bits of that domain to a constant — taken as a reset when it
  covers at least half of the domain's bits or is named like a reset.

Names only break ties. Every tie broken by a name, every input that looks like a clock or reset by
its name but is not one in the logic, and every clock that comes from logic rather than an input is
reported in ``notes`` (shown when a target loads, and stored with the job).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evoforge.domain import ClockSignal, Port, ResetSignal
from evoforge.errors import TargetError, ToolTimeoutError
from evoforge.tools.base import write_text
from evoforge.tools.yosys import Yosys

CLOCK_NAME = re.compile(r"(clk|clock)(_?[a-z0-9]{0,3})?$|^(clk|clock)", re.I)
RESET_NAME = re.compile(r"(rst|reset|clr|clear)(_?n|_?b|_?l|_?ni|_i|_in)?$|^(rst|reset)", re.I)
_TRACE_DEPTH = 12
_INVERTERS = {"$not", "$logic_not", "$_NOT_"}
_OR_GATES = {"$or", "$logic_or", "$reduce_or", "$reduce_bool", "$_OR_"}
_AND_GATES = {"$and", "$logic_and", "$reduce_and", "$_AND_"}

Edge = Literal["posedge", "negedge"]


def _flag(value: Any) -> int:
    """A Yosys parameter (a binary string, possibly 32 bits wide, or an int) as an int."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text, 2) if text and set(text) <= {"0", "1"} else int(text)
    except ValueError:
        return 0


@dataclass(frozen=True)
class Clocking:
    clocks: tuple[ClockSignal, ...]
    resets: tuple[ResetSignal, ...]
    notes: tuple[str, ...]
    flop_bits: int  # storage bits clocked by anything (inputs, registers, logic)


@dataclass
class _Pin:
    """One clock or reset pin of a storage cell, with the bits it controls."""

    cell: str
    bit: Any
    level: int  # the active level at the pin (1 = active high / rising edge)
    bits: int


@dataclass
class _Netlist:
    module: dict[str, Any]
    drivers: dict[Any, tuple[str, dict[str, Any], str]] = field(default_factory=dict)
    inputs: dict[Any, tuple[str, int]] = field(default_factory=dict)  # bit -> (port, its width)
    names: dict[Any, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, port in self.module.get("ports", {}).items():
            if port.get("direction") == "input":
                for bit in port["bits"]:
                    self.inputs[bit] = (name, len(port["bits"]))
        for name, cell in self.module.get("cells", {}).items():
            for pin, direction in cell.get("port_directions", {}).items():
                if direction == "output":
                    for bit in cell["connections"].get(pin, ()):
                        self.drivers[bit] = (name, cell, pin)
        for name, net in self.module.get("netnames", {}).items():
            if not net.get("hide_name"):
                for i, bit in enumerate(net["bits"]):
                    self.names.setdefault(bit, name if len(net["bits"]) == 1 else f"{name}[{i}]")

    def forcing(self, bit: Any, level: int, depth: int = 0) -> list[tuple[str, int]]:
        """Inputs (and their level) that alone force ``bit`` to ``level``, through NOT/OR/AND trees."""
        if bit in self.inputs:
            return [(self.inputs[bit][0], level)]
        if depth > _TRACE_DEPTH or bit not in self.drivers:
            return []
        _, cell, _ = self.drivers[bit]
        kind = cell["type"]
        operands = [b for pin in ("A", "B") for b in cell["connections"].get(pin, ())]
        if kind in _INVERTERS and len(operands) == 1:
            return self.forcing(operands[0], 1 - level, depth + 1)
        if (kind in _OR_GATES and level == 1) or (kind in _AND_GATES and level == 0):
            return [hit for b in operands for hit in self.forcing(b, level, depth + 1)]
        return []

    def clock_sources(self, bit: Any, level: int, depth: int = 0) -> tuple[list[tuple[str, int]], str | None]:
        """Inputs feeding a clock pin (with the edge level seen at the input), and what else feeds it."""
        if bit in self.inputs:
            return [(self.inputs[bit][0], level)], None
        if isinstance(bit, str):
            return [], f"the constant {bit}"
        if depth > _TRACE_DEPTH or bit not in self.drivers:
            return [], "logic too deep to trace"
        name, cell, _ = self.drivers[bit]
        kind = cell["type"]
        operands = [b for pin in ("A", "B") for b in cell["connections"].get(pin, ())]
        if kind in _INVERTERS and len(operands) == 1:
            return self.clock_sources(operands[0], 1 - level, depth + 1)
        if "ff" in kind or "dlatch" in kind:
            return [], f"register {self.names.get(bit, name)}"
        found: list[tuple[str, int]] = []
        for operand in operands:
            sources, _ = self.clock_sources(operand, level, depth + 1)
            found += sources
        return found, f"logic ({kind} {self.names.get(bit, '')})".replace(" )", ")")


def _storage_pins(module: dict[str, Any]) -> tuple[list[_Pin], list[_Pin], list[_Pin]]:
    """(clock pins, asynchronous reset pins, synchronous reset pins) of every storage cell."""
    clocks: list[_Pin] = []
    asyncs: list[_Pin] = []
    syncs: list[_Pin] = []
    for name, cell in module.get("cells", {}).items():
        kind: str = cell["type"]
        params = cell.get("parameters", {})
        conns = cell["connections"]
        if kind.startswith(("$memwr", "$memrd")):
            if _flag(params.get("CLK_ENABLE", 0)) and conns.get("CLK"):
                width = len(conns.get("DATA", ())) or _flag(params.get("WIDTH", 1))
                clocks.append(_Pin(name, conns["CLK"][0], _flag(params.get("CLK_POLARITY", 1)) & 1, width))
            continue
        if not kind.startswith("$") or "ff" not in kind or kind.startswith("$_"):
            continue  # latches are not clocked; fine-grained cells are not made by proc
        width = len(conns.get("Q", ())) or _flag(params.get("WIDTH", 1))
        if conns.get("CLK"):
            clocks.append(_Pin(name, conns["CLK"][0], _flag(params.get("CLK_POLARITY", 1)) & 1, width))
        if conns.get("ARST"):
            asyncs.append(_Pin(name, conns["ARST"][0], _flag(params.get("ARST_POLARITY", 1)) & 1, width))
        if conns.get("ALOAD"):
            asyncs.append(_Pin(name, conns["ALOAD"][0], _flag(params.get("ALOAD_POLARITY", 1)) & 1, width))
        for pin in ("SET", "CLR"):
            bits = conns.get(pin, ())
            if bits and len(set(map(str, bits))) == 1 and not isinstance(bits[0], str):
                asyncs.append(_Pin(name, bits[0], _flag(params.get(f"{pin}_POLARITY", 1)) & 1, width))
        if conns.get("SRST"):
            syncs.append(_Pin(name, conns["SRST"][0], _flag(params.get("SRST_POLARITY", 1)) & 1, width))
    return clocks, asyncs, syncs


def _main(counts: dict[str, int], pattern: re.Pattern[str]) -> tuple[list[str], bool]:
    """Names by count, most first; True when the first place was tied and a name pattern decided."""
    ranked = sorted(counts, key=lambda n: (-counts[n], not pattern.search(n), n))
    tied = len(ranked) > 1 and counts[ranked[0]] == counts[ranked[1]]
    return ranked, tied


def analyse_netlist(module: dict[str, Any], ports: Iterable[Port]) -> Clocking:
    """Clocks and resets of one flattened module of Yosys's JSON netlist (see the module docstring)."""
    net = _Netlist(module)
    port_list = list(ports)
    one_bit = {p.name for p in port_list if p.direction == "input" and p.width == 1}
    clock_pins, async_pins, sync_pins = _storage_pins(module)
    notes: list[str] = []

    # -- clocks ----------------------------------------------------------------------------------
    clock_bits: dict[str, int] = defaultdict(int)
    edges: dict[str, set[Edge]] = defaultdict(set)
    domain_of: dict[str, str] = {}  # cell -> clock input
    other: dict[str, int] = defaultdict(int)
    gated: dict[tuple[str, str], int] = defaultdict(int)
    flop_bits = 0
    for pin in clock_pins:
        flop_bits += pin.bits
        sources, via = net.clock_sources(pin.bit, pin.level)
        usable = [(p, lv) for p, lv in sources if p in one_bit]
        if via is not None and len({p for p, _ in usable}) > 1:
            named = [(p, lv) for p, lv in usable if CLOCK_NAME.search(p)]
            if len({p for p, _ in named}) == 1:
                notes.append(
                    f"guess: flops clocked by {via} of inputs {', '.join(sorted({p for p, _ in usable}))}; "
                    f"{named[0][0]} taken as their clock by its name"
                )
            usable = named[:1] or usable[:1]
        if not usable:
            other[via or "an input wider than 1 bit"] += pin.bits
            continue
        port, level = usable[0]
        if via is not None:
            gated[(port, via)] += pin.bits
        clock_bits[port] += pin.bits
        edges[port].add("posedge" if level == 1 else "negedge")
        domain_of[pin.cell] = port
    for (port, via), bits in sorted(gated.items()):
        notes.append(f"{bits} flop bit(s) are clocked by {port} through {via} (a gated clock): "
                     f"simulated and timed as clocked by {port}")  # fmt: skip
    for what, bits in sorted(other.items()):
        notes.append(
            f"{bits} flop bit(s) are clocked by {what}, not by an input: they run as the design makes "
            "that clock (static timing does not constrain them)"
        )
    ranked, tied = _main(clock_bits, CLOCK_NAME)
    if tied:
        notes.append(f"guess: clocks {' and '.join(ranked[:2])} clock equally many flops; "
                     f"{ranked[0]} is the main clock by its name")  # fmt: skip
    clocks = tuple(
        ClockSignal(p, tuple(e for e in ("posedge", "negedge") if e in edges[p]), clock_bits[p])
        for p in ranked
    )

    # -- resets ----------------------------------------------------------------------------------
    cells_of: dict[str, set[str]] = defaultdict(set)  # reset candidate -> the cells it forces

    def collect(pins: list[_Pin]) -> dict[str, dict[int, int]]:
        found: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for pin in pins:
            for port, level in net.forcing(pin.bit, pin.level):
                if port in one_bit and port not in clock_bits:
                    found[port][level] += pin.bits
                    cells_of[port].add(pin.cell)
        return found

    def domain(port: str, pins: list[_Pin]) -> str | None:
        votes: dict[str, int] = defaultdict(int)
        for pin in pins:
            if any(p == port for p, _ in net.forcing(pin.bit, pin.level)) and pin.cell in domain_of:
                votes[domain_of[pin.cell]] += pin.bits
        return max(votes, key=lambda c: votes[c]) if votes else None

    def polarity(port: str, levels: dict[int, int]) -> bool:
        if len(levels) > 1:
            notes.append(
                f"guess: {port} resets {levels.get(1, 0)} flop bit(s) when high and {levels.get(0, 0)} "
                f"when low; taken as active {'high' if levels.get(1, 0) >= levels.get(0, 0) else 'low'}"
            )
        return levels.get(0, 0) > levels.get(1, 0)

    resets: list[ResetSignal] = []
    asynchronous = collect(async_pins)
    for port in sorted(asynchronous, key=lambda p: -sum(asynchronous[p].values())):
        levels = asynchronous[port]
        resets.append(
            ResetSignal(port, polarity(port, levels), True, domain(port, async_pins), sum(levels.values()))
        )
    synchronous = collect(sync_pins)
    per_domain: dict[str | None, dict[str, int]] = defaultdict(dict)
    for port, levels in synchronous.items():
        if port not in asynchronous:
            per_domain[domain(port, sync_pins)][port] = sum(levels.values())
    domain_bits: dict[str, int] = defaultdict(int)
    for pin in clock_pins:
        if pin.cell in domain_of:
            domain_bits[domain_of[pin.cell]] += pin.bits
    async_domains = {r.clock for r in resets}
    mentioned: set[str] = set()
    for clock, counts in per_domain.items():
        ranked_resets, tied_resets = _main(counts, RESET_NAME)
        best = ranked_resets[0]
        # inputs that force exactly the same flops (``if (a || b)``) reset together
        together = [p for p in ranked_resets if cells_of[p] == cells_of[best]]
        tied_resets = tied_resets and len(together) < 2
        total = domain_bits.get(clock or "", 0) or sum(counts.values())
        covers = counts[best] * 2 >= total
        if clock in async_domains or not (covers or RESET_NAME.search(best)):
            for port in ranked_resets:
                why = "its domain has an asynchronous reset" if clock in async_domains else "too few"
                notes.append(
                    f"{port} forces {counts[port]} of {total} flop bit(s) to a constant but is not taken "
                    f"as a reset ({why}; pass --reset {port} if it is one)"
                )
                mentioned.add(port)
            continue
        if tied_resets:
            notes.append(f"guess: {' and '.join(ranked_resets[:2])} each force {counts[best]} flop bit(s) "
                         f"to a constant; {best} is the synchronous reset by its name")  # fmt: skip
        elif not covers:
            notes.append(f"guess: {best} forces {counts[best]} of {total} flop bit(s) to a constant; "
                         "taken as a synchronous reset by its name")  # fmt: skip
        for port in together:
            resets.append(ResetSignal(port, polarity(port, synchronous[port]), False, clock, counts[port]))
        for port in ranked_resets:
            if port not in together:
                notes.append(f"{port} also forces {counts[port]} flop bit(s) to a constant; driven as data")
        mentioned.update(ranked_resets)

    # the main clock's reset first: it is the one single-domain callers (and formal checks) use
    rank = {c.port: i for i, c in enumerate(clocks)}
    resets.sort(key=lambda r: (rank.get(r.clock or "", len(rank)), -r.flop_bits, r.port))
    found = {c.port for c in clocks} | {r.port for r in resets} | mentioned
    for unused in port_list:
        if unused.direction != "input" or unused.name in found:
            continue
        if CLOCK_NAME.search(unused.name) and not RESET_NAME.search(unused.name):
            notes.append(f"input {unused.name} is named like a clock but clocks no flop: driven as data")
        elif RESET_NAME.search(unused.name):
            notes.append(f"input {unused.name} is named like a reset but resets no flop: driven as data")
    return Clocking(clocks, tuple(resets), tuple(notes), flop_bits)


def clocking_script(source: str, top: str, json_name: str) -> str:
    return "\n".join(
        [
            f"read_verilog -sv {source}",
            f"hierarchy -check -top {top}",
            "proc",
            "flatten",
            "opt",
            f"write_json {json_name}",
            "",
        ]
    )


def analyse_clocking(text: str, top: str, ports: Iterable[Port], workdir: Path, timeout: float) -> Clocking:
    """Run Yosys on (preprocessed) ``text`` and read clocks and resets from the logic of ``top``."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_text(workdir / "design.sv", text)
    run = Yosys().run_script(clocking_script("design.sv", top, "clocking.json"), cwd=workdir,
                             timeout=timeout, name="clocking")  # fmt: skip
    if run.timed_out:
        raise ToolTimeoutError(f"yosys did not elaborate the design within {timeout:g} s")
    if not run.ok:
        raise TargetError(
            "yosys (read_verilog -sv) does not accept the design: "
            + re.sub(r"(?:\S*/)?design\.sv:(\d+):\s*", r"line \1: ", run.error),
            hint="evoforge accepts what Icarus -g2012, Verilator and Yosys -sv all accept",
        )
    netlist = json.loads((workdir / "clocking.json").read_text())
    module = netlist.get("modules", {}).get(top)
    if module is None:
        raise TargetError(f"yosys did not produce the top module {top!r}", hint="check --top")
    return analyse_netlist(module, ports)
