"""The ``synthesis`` stage: yosys maps the candidate onto a liberty library and measures it.

Flow: ``read_verilog``; ``hierarchy -check``; ``synth -flatten``; ``ltp -noff`` (logic depth, before
mapping); ``dfflibmap`` + ``abc -liberty`` (``-D`` with the clock period); ``opt_clean``;
``stat -liberty`` (area, cells); ``write_verilog`` (the netlist that ``timing`` reads).

Also owns the gate-level netlist reader and the *implementation hash*: a hash of the netlist's
structure that ignores instance and internal net names (only the top's port names count), so two
candidates that synthesise to the same circuit share cached synthesis and timing results.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoforge.domain import Metrics, StageResult
from evoforge.errors import ToolError
from evoforge.tools.liberty import Liberty, cell_areas
from evoforge.tools.yosys import Yosys
from evoforge.tools.yosys_reports import parse_ltp, parse_stat
from evoforge.verifiers.rtl.context import RtlContext

log = logging.getLogger(__name__)

STAGE = "synthesis"
NETLIST_NAME = "netlist.v"


@dataclass(frozen=True)
class SynthesisReport:
    area_um2: float | None
    cells: int
    depth: int
    cells_by_type: dict[str, int]
    netlist_path: Path
    implementation_hash: str
    log: str
    cell_areas: dict[str, float] = field(default_factory=dict)  # area of one cell of each type
    seconds: float = 0.0


class SynthesisFailed(ToolError):
    """Yosys rejected the design (or timed out); ``detail`` says why in one line."""

    def __init__(self, detail: str, log: str, timed_out: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.log = log
        self.timed_out = timed_out


def synthesis_script(
    source: Path, top: str, liberty: Path, netlist: Path | str, clock_period_ns: float | None, sv: bool
) -> str:
    abc_delay = f" -D {clock_period_ns * 1000:.0f}" if clock_period_ns else ""
    return "\n".join(
        [
            f'read_verilog{" -sv" if sv else ""} "{source}"',
            f"hierarchy -check -top {top}",
            f"synth -flatten -top {top}",
            "ltp -noff",
            f'dfflibmap -liberty "{liberty}"',
            f'abc -liberty "{liberty}"{abc_delay}',
            "opt_clean",
            f'stat -liberty "{liberty}"',
            f'write_verilog -noattr -noexpr -simple-lhs "{netlist}"',
            "",
        ]
    )


def synthesize(
    source: Path,
    top: str,
    liberty: Liberty | Path,
    workdir: Path,
    timeout: float,
    clock_period_ns: float | None = None,
) -> SynthesisReport:
    """Synthesise ``top`` of ``source``; raises :class:`SynthesisFailed` when yosys rejects it."""
    lib_path = liberty.path if isinstance(liberty, Liberty) else Path(liberty)
    workdir.mkdir(parents=True, exist_ok=True)
    netlist = workdir / NETLIST_NAME
    sv = True  # always SystemVerilog mode, as lint (Icarus -g2012, Verilator -sv) and the clock analysis
    script = synthesis_script(source.resolve(), top, lib_path.resolve(), netlist.name, clock_period_ns, sv)
    run = Yosys().run_script(script, cwd=workdir, timeout=timeout, name="synth", reads=(source, lib_path))
    if run.timed_out:
        raise SynthesisFailed(f"synthesis timed out after {timeout:g} s", run.log, timed_out=True)
    if not run.ok:
        raise SynthesisFailed(first_error(run.log) or _first_error_line(run.error), run.log)
    stat = parse_stat(run.log, top)
    depth = parse_ltp(run.log, top).length
    if stat.unmapped_cells:
        kinds = ", ".join(f"{t} ×{n}" for t, n in sorted(stat.unmapped_cells.items()))
        raise SynthesisFailed(
            f"synthesis left cells the liberty cannot implement: {kinds}"
            + (" (latches are not supported: use edge-triggered registers)" if "DLATCH" in kinds else ""),
            run.log,
        )
    text = netlist.read_text(errors="replace")
    return SynthesisReport(
        area_um2=stat.area_um2,
        cells=stat.cells,
        depth=depth,
        cells_by_type=dict(stat.cells_by_type),
        netlist_path=netlist,
        implementation_hash=implementation_hash(text),
        log=run.log,
        cell_areas=cell_areas(lib_path, stat.cells_by_type),
        seconds=run.seconds,
    )


def first_error(log_text: str) -> str | None:
    """The first line of the log that carries ``ERROR:`` (yosys prefixes it with file:line)."""
    match = re.search(r"^.*\bERROR:.*$", log_text, flags=re.M)
    return match.group(0).strip() if match else None


def _first_error_line(error: str) -> str:
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else "yosys failed"


def run_synthesis(ctx: RtlContext) -> StageResult:
    """The stage: metrics area_um2/cells/depth; leaves ``netlist`` and ``implementation_hash``."""
    start = time.monotonic()
    source = ctx.write_candidate()
    try:
        report = synthesize(
            source,
            ctx.top,
            ctx.liberty_path,
            ctx.workdir / "synthesis",
            ctx.settings.tool_timeout_s,
            clock_period_ns=ctx.settings.clock_period_ns if ctx.interface.sequential else None,
        )
    except SynthesisFailed as exc:
        return StageResult(STAGE, ok=False, seconds=time.monotonic() - start, detail=exc.detail, log=exc.log)
    ctx.artifacts["netlist"] = report.netlist_path
    ctx.artifacts["implementation_hash"] = report.implementation_hash
    ctx.artifacts["synthesis"] = report
    area = f"area {report.area_um2:.1f} µm², " if report.area_um2 is not None else ""
    return StageResult(
        STAGE,
        ok=True,
        seconds=time.monotonic() - start,
        metrics=Metrics(area_um2=report.area_um2, cells=report.cells, depth=report.depth),
        detail=f"{area}{report.cells} cells, depth {report.depth}",
        log=report.log,
        data={
            "cells_by_type": report.cells_by_type,
            "largest_cells": largest_cells(report),
            "implementation_hash": report.implementation_hash,
        },
    )


def largest_cells(report: SynthesisReport, count: int = 5) -> list[dict[str, Any]]:
    """The cell types that take the most area (or the most instances when areas are unknown)."""
    rows = [
        {
            "cell": cell,
            "count": n,
            "area_um2": round(report.cell_areas[cell] * n, 4) if cell in report.cell_areas else None,
        }
        for cell, n in report.cells_by_type.items()
    ]
    rows.sort(key=lambda r: (r["area_um2"] if r["area_um2"] is not None else 0.0, r["count"]), reverse=True)
    return rows[:count]


# ---------------------------------------------------------------------------------------------
# Gate-level netlist (yosys ``write_verilog -noattr -noexpr -simple-lhs`` output)

_IDENT = r"(?:\\\S+\s|[A-Za-z_$][\w$]*)"
_DECL = re.compile(
    rf"\b(input|output|inout|wire)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?({_IDENT})\s*;", re.M
)
_INSTANCE = re.compile(rf"^\s*({_IDENT})\s*({_IDENT})\s*\((.*?)\);", re.M | re.S)
_PIN = re.compile(r"\.(\w+)\s*\(\s*(.*?)\s*\)\s*(?:,|$)", re.S)
_ASSIGN = re.compile(r"^\s*assign\s+(.*?)\s*=\s*(.*?)\s*;", re.M | re.S)
_CONST = re.compile(r"^(\d+)'([bhdo])([0-9a-fA-FxXzZ_]+)$")
_KEYWORDS = {"module", "input", "output", "inout", "wire", "reg", "assign", "endmodule"}


@dataclass(frozen=True)
class Instance:
    cell: str
    name: str
    pins: dict[str, str]  # pin → net bit ("a[3]", "_12_", "1'b0")


@dataclass(frozen=True)
class Netlist:
    module: str
    ports: dict[str, str]  # port bit → direction
    instances: tuple[Instance, ...]
    aliases: tuple[tuple[str, str], ...]  # (lhs bit, rhs bit) from assign statements


def _clean(name: str) -> str:
    name = name.strip()
    return name[1:].strip() if name.startswith("\\") else name


def _bits(expr: str, widths: dict[str, tuple[int, int]]) -> list[str]:
    """The single-bit nets of an expression (MSB first): names, selects, constants, concatenations."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        out: list[str] = []
        for part in _split_top(expr[1:-1]):
            out += _bits(part, widths)
        return out
    const = _CONST.match(expr.replace(" ", ""))
    if const:
        width, base, digits = int(const.group(1)), const.group(2), const.group(3).replace("_", "")
        if base == "d":
            digits = format(int(digits), "b")
        elif base != "b":
            digits = "".join(
                format(int(c, 16 if base == "h" else 8), "04b" if base == "h" else "03b")
                if c not in "xXzZ"
                else c * (4 if base == "h" else 3)
                for c in digits
            )
        digits = digits.rjust(width, "0")[-width:]
        return [f"1'b{c.lower()}" for c in digits]
    match = re.fullmatch(r"(\\\S+|[A-Za-z_$][\w$]*)\s*(?:\[(\d+)(?::(\d+))?\])?", expr)
    if not match:
        return [expr]
    name = _clean(match.group(1))
    if match.group(2) is not None:
        hi = int(match.group(2))
        lo = int(match.group(3)) if match.group(3) is not None else hi
    elif name in widths:
        hi, lo = widths[name]
    else:
        return [name]
    step = -1 if hi >= lo else 1
    return [f"{name}[{i}]" for i in range(hi, lo + step, step)]


def _split_top(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "{"
        depth -= char == "}"
        current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_netlist(text: str) -> Netlist:
    """Read a flat yosys netlist (one module) into instances, ports and aliases."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)
    module_match = re.search(rf"\bmodule\s+({_IDENT})", text)
    module = _clean(module_match.group(1)) if module_match else ""
    widths: dict[str, tuple[int, int]] = {}  # vectors only; a scalar is its own single bit
    directions: dict[str, str] = {}
    for kind, hi, lo, name in _DECL.findall(text):
        name = _clean(name)
        if hi:
            widths[name] = (int(hi), int(lo))
        if kind != "wire":
            directions[name] = kind
    ports = {bit: direction for name, direction in directions.items() for bit in _bits(name, widths)}
    instances = []
    for cell, name, body in _INSTANCE.findall(text):
        if _clean(cell) in _KEYWORDS:
            continue
        pins = {pin: " ".join(_bits(expr, widths)) for pin, expr in _PIN.findall(body)}
        instances.append(Instance(_clean(cell), _clean(name), pins))
    aliases: list[tuple[str, str]] = []
    for lhs, rhs in _ASSIGN.findall(text):
        aliases += zip(_bits(lhs, widths), _bits(rhs, widths), strict=False)
    return Netlist(module, ports, tuple(instances), tuple(aliases))


def implementation_hash(netlist_text: str, rounds: int = 64) -> str:
    """sha256 of the netlist's structure; instance and non-port net names do not count.

    Nets are merged through ``assign`` aliases, then labelled by Weisfeiler–Lehman refinement over
    the cell/net graph (a port keeps its name, a constant its value, every other net starts blank),
    so two isomorphic netlists hash equal whatever yosys numbered their internal wires.
    """
    netlist = parse_netlist(netlist_text)
    parent: dict[str, str] = {}

    def find(net: str) -> str:
        while parent.get(net, net) != net:
            net = parent[net]
        return net

    for lhs, rhs in netlist.aliases:
        a, b = find(lhs), find(rhs)
        if a != b:
            keep, drop = (a, b) if _anchor(a, netlist.ports) >= _anchor(b, netlist.ports) else (b, a)
            parent[drop] = keep
    label: dict[str, str] = {}
    for inst in netlist.instances:
        for net in inst.pins.values():
            label.setdefault(find(net), _initial_label(find(net), netlist.ports))
    for port in netlist.ports:
        label.setdefault(find(port), _initial_label(find(port), netlist.ports))
    cell_labels: list[str] = []
    distinct = -1
    for _ in range(rounds):
        cell_labels = [
            _digest(inst.cell, *sorted(f"{pin}={label[find(net)]}" for pin, net in inst.pins.items()))
            for inst in netlist.instances
        ]
        touching: dict[str, list[str]] = {net: [] for net in label}
        for inst, cell_label in zip(netlist.instances, cell_labels, strict=True):
            for pin, net in inst.pins.items():
                touching[find(net)].append(f"{cell_label}.{pin}")
        label = {net: _digest(old, *sorted(touching[net])) for net, old in label.items()}
        count = len(set(label.values()))
        if count == distinct:
            break
        distinct = count
    port_part = sorted(f"{bit}:{d}:{label.get(find(bit), '')}" for bit, d in netlist.ports.items())
    return _digest(netlist.module, *sorted(Counter(cell_labels).elements()), *port_part)


def _anchor(net: str, ports: dict[str, str]) -> int:
    return 2 if net.startswith("1'b") else 1 if net in ports else 0


def _initial_label(net: str, ports: dict[str, str]) -> str:
    if net.startswith("1'b"):
        return net
    if net in ports:
        return f"port:{net}"
    return "net"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
