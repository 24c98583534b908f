"""The state horizon: how many cycles from reset a simulation must run before it says something.

A candidate can hide a difference deep in time: a counter that nothing in the original has, wrong only
at cycle 5,000 or 100,000. A simulation shorter than that shows nothing about it, and neither does a
20-cycle bounded check. So the number of cycles a piece of evidence covers is compared with what the
designs could hide, read from their logic, not from their names.

:func:`state_shape` lowers a design with Yosys to single-bit gates (``proc; flatten; memory; opt;
techmap``: memories become flip-flops, hold and reset multiplexers fold into enables and resets) and
finds its flip-flops that lie on a feedback loop — the strongly connected components of the cell
graph, an edge running from the cell that drives a net to every cell that reads it (clock, enable and
reset pins included). Those *loop bits* are what counts time: counters, FSM state, accumulators,
LFSRs, a saturating "age" register. The other flip-flop bits (*chain bits*: pipelines, delay lines,
output registers) delay by at most one cycle each.

Free-running loop state of ``L`` bits revisits a state within ``2**L`` cycles; the original and the
candidate run side by side, so their loop bits add up. :func:`horizon_cycles` allows every
combination to come round :data:`WRAPS` times (a counter that advances only on an enable that is
high half the time still wraps twice) and adds the chain bits: ``WRAPS * 2**L + C``. Past
:data:`MAX_LOOP_BITS` the horizon is unbounded (``None``): only a formal proof covers such designs.
So is a design with a loop of gates and no flip-flop on it (a latch or a whole counter built from
cross-coupled gates): its state is not counted here, so nothing bounds it.

What this does not cover, stated in README: state reached only through rare input values (a
counter that advances on one input value in 2**16) can need far longer runs than the horizon;
only the formal stage covers that.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoforge.errors import ToolTimeoutError
from evoforge.tools.yosys import Yosys
from evoforge.verifiers.rtl.context import RtlContext

log = logging.getLogger(__name__)

#: how many times every combination of loop state must come round within the horizon
WRAPS = 4
#: loop bits beyond which no simulation can cover the state space (2**40 cycles is weeks)
MAX_LOOP_BITS = 40
JSON_FILE = "shape.json"


@dataclass(frozen=True)
class StateShape:
    """The flip-flop bits of one design, split by whether they lie on a feedback loop."""

    loop_bits: int
    chain_bits: int
    loop_gates: int = 0  # gates on a combinational loop (latches built from gates): state we cannot size
    # what times the state: "posedge clk", "negedge clk", "posedge logic net 17", "level-sensitive …"
    timing: tuple[str, ...] = ()

    def describe(self) -> str:
        gates = f", {self.loop_gates} gates on combinational loops" if self.loop_gates else ""
        return f"{self.loop_bits} loop + {self.chain_bits} chain flip-flop bits{gates}"


@dataclass(frozen=True)
class Horizon:
    """The horizon of original and candidate side by side (``cycles`` None: unbounded or unknown)."""

    original: StateShape | None
    candidate: StateShape | None
    cycles: int | None
    error: str | None = None  # why a shape is unknown

    def covered_by(self, cycles: int) -> bool:
        return self.cycles is not None and cycles >= self.cycles

    def describe(self) -> str:
        if self.error:
            return f"unknown ({self.error})"
        assert self.original is not None and self.candidate is not None
        loop = self.original.loop_bits + self.candidate.loop_bits
        chain = self.original.chain_bits + self.candidate.chain_bits
        gates = self.original.loop_gates + self.candidate.loop_gates
        if self.cycles is None and gates:
            return f"unbounded ({gates} gates on combinational loops hold state)"
        if self.cycles is None:
            return f"unbounded ({loop} loop bits in both designs, beyond {MAX_LOOP_BITS})"
        return f"{self.cycles} cycles ({WRAPS}×2^{loop} + {chain}: {loop} loop bits, {chain} chain bits)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "original": None if self.original is None else _shape_dict(self.original),
            "candidate": None if self.candidate is None else _shape_dict(self.candidate),
            "error": self.error,
        }


def _shape_dict(shape: StateShape) -> dict[str, Any]:
    return {**vars(shape), "timing": list(shape.timing)}


def horizon_cycles(loop_bits: int, chain_bits: int) -> int | None:
    """``WRAPS * 2**loop_bits + chain_bits``, or ``None`` past :data:`MAX_LOOP_BITS`."""
    if loop_bits > MAX_LOOP_BITS:
        return None
    return WRAPS * (1 << loop_bits) + chain_bits


def combine(original: StateShape | None, candidate: StateShape | None, error: str | None = None) -> Horizon:
    if original is None or candidate is None:
        return Horizon(original, candidate, None, error or "the state of a design could not be read")
    if original.loop_gates or candidate.loop_gates:
        return Horizon(original, candidate, None)  # latches made of gates hold state no count bounds
    cycles = horizon_cycles(
        original.loop_bits + candidate.loop_bits, original.chain_bits + candidate.chain_bits
    )
    return Horizon(original, candidate, cycles)


def shape_script(path: str, top: str) -> str:
    return "\n".join(
        [
            f"read_verilog -sv {path}",
            f"hierarchy -check -top {top}",
            "proc",
            "flatten",
            "memory",
            "opt",
            "techmap",
            "opt -fast",
            "opt_clean",
            f"write_json {JSON_FILE}",
            "",
        ]
    )


def state_shape(source: str, top: str, workdir: Path, *, timeout: float) -> tuple[StateShape | None, str]:
    """(the design's state shape, "") or (None, why it could not be read)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "design.v").write_text(source)
    try:
        run = Yosys().run_script(shape_script("design.v", top), cwd=workdir, timeout=timeout, name="shape")
    except ToolTimeoutError as exc:
        return None, f"yosys: {exc.message}"
    if run.timed_out:
        return None, f"yosys did not finish within {timeout:g} s"
    path = workdir / JSON_FILE
    if not run.ok or not path.exists():
        return None, f"yosys: {run.error}"
    try:
        netlist = json.loads(path.read_text())
        module = netlist["modules"][top]
    except (ValueError, KeyError) as exc:
        return None, f"unreadable netlist ({exc})"
    return shape_of_module(module), ""


def is_state_cell(cell_type: str) -> bool:
    """Yosys's single-bit flip-flops and latches (``$_DFF_P_``, ``$_SDFFE_PP0P_``, ``$_DLATCH_N_``…)."""
    return cell_type.startswith("$_") and any(k in cell_type for k in ("FF", "DLATCH", "SR_"))


def shape_of_module(module: dict[str, Any]) -> StateShape:
    """Loop and chain flip-flop bits of a flattened, bit-level Yosys JSON module."""
    cells: list[dict[str, Any]] = list(module.get("cells", {}).values())
    driver: dict[int, int] = {}
    for index, cell in enumerate(cells):
        directions = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            if directions.get(port) == "output":
                for bit in bits:
                    if isinstance(bit, int):
                        driver[bit] = index
    successors: list[set[int]] = [set() for _ in cells]
    for index, cell in enumerate(cells):
        directions = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            if directions.get(port) != "input":
                continue
            for bit in bits:
                source = driver.get(bit) if isinstance(bit, int) else None
                if source is not None:
                    successors[source].add(index)
    component = _cyclic_components(successors)
    is_state = [is_state_cell(str(cell.get("type", ""))) for cell in cells]
    with_state = {component[i] for i in range(len(cells)) if is_state[i] and component[i] >= 0}
    loop = sum(1 for i in range(len(cells)) if is_state[i] and component[i] >= 0)
    gates = sum(1 for i in range(len(cells)) if component[i] >= 0 and component[i] not in with_state)
    return StateShape(
        loop_bits=loop, chain_bits=sum(is_state) - loop, loop_gates=gates, timing=state_timing(module, cells)
    )


def state_timing(module: dict[str, Any], cells: list[dict[str, Any]]) -> tuple[str, ...]:
    """What updates the state of a bit-level module: each clock source with its edge (a top-level
    input by name, else the logic net), and level-sensitive cells (latches, set/reset cells)."""
    names: dict[int, str] = {}
    for name, port in module.get("ports", {}).items():
        bits = [b for b in port.get("bits", []) if isinstance(b, int)]
        for index, bit in enumerate(bits):
            names[bit] = name if len(bits) == 1 else f"{name}[{index}]"
    timing: set[str] = set()
    for cell in cells:
        kind = str(cell.get("type", ""))
        if not is_state_cell(kind):
            continue
        clock = cell.get("connections", {}).get("C")
        if kind.startswith("$_FF_"):
            timing.add("the global clock")
        elif not clock:
            timing.add(f"level-sensitive {kind}")
        else:
            flags = kind.split("_")[2] if kind.count("_") >= 3 else "P"
            edge = "negedge" if flags.startswith("N") else "posedge"
            bit = clock[0]
            source = names.get(bit, f"logic net {bit}") if isinstance(bit, int) else f"constant {bit}"
            timing.add(f"{edge} {source}")
    return tuple(sorted(timing))


def single_clock(original: StateShape | None, candidate: StateShape | None) -> str | None:
    """None when every flop of both designs is timed by one edge of one top-level clock input — the
    only case in which Yosys's formal checks (every flop steps once per step) model the designs —
    else what breaks it, in words."""
    if original is None or candidate is None:
        return "the clocking of a design could not be read"
    timing = set(original.timing) | set(candidate.timing)
    unmodelled = ("level", "posedge logic", "negedge logic", "posedge constant", "negedge constant")
    if len(timing) <= 1 and not any(t.startswith(unmodelled) for t in timing):
        return None
    return "state timed by " + ", ".join(sorted(timing))


def _cyclic_components(successors: list[set[int]]) -> list[int]:
    """For each node: the id of its strongly connected component when that holds a directed cycle (a
    self-loop counts), else -1. Iterative Tarjan."""
    count = len(successors)
    index_of = [-1] * count
    low = [0] * count
    on_stack = [False] * count
    stack: list[int] = []
    result = [-1] * count
    counter = 0
    for root in range(count):
        if index_of[root] != -1:
            continue
        work: list[tuple[int, list[int]]] = [(root, list(successors[root]))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, pending = work[-1]
            if pending:
                succ = pending.pop()
                if index_of[succ] == -1:
                    index_of[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack[succ] = True
                    work.append((succ, list(successors[succ])))
                elif on_stack[succ]:
                    low[node] = min(low[node], index_of[succ])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors[node]:
                    for member in component:
                        result[member] = node
    return result


def horizon_for(ctx: RtlContext) -> Horizon:
    """The horizon of ``ctx``'s candidate against its original; the original's shape is read once per
    target (``ctx.reference["state_shape"]``), the result kept in ``ctx.artifacts["horizon"]``."""
    known = ctx.artifacts.get("horizon")
    if isinstance(known, Horizon):
        return known
    timeout = ctx.settings.tool_timeout_s
    original = ctx.reference.get("state_shape")
    if not isinstance(original, tuple):
        original = state_shape(
            ctx.original_source, ctx.top, ctx.workdir / "horizon" / "original", timeout=timeout
        )
        if original[0] is not None:
            ctx.reference["state_shape"] = original
    candidate = state_shape(
        ctx.candidate_source, ctx.top, ctx.workdir / "horizon" / "candidate", timeout=timeout
    )
    errors = [f"{who}: {why}" for who, why in (("original", original[1]), ("candidate", candidate[1])) if why]
    error = "; ".join(errors)
    horizon = combine(original[0], candidate[0], error or None)
    ctx.artifacts["horizon"] = horizon
    return horizon
