"""The ``timing`` stage: OpenSTA on the synthesised netlist — critical-path delay and its RTL names.

Sequential designs get a clock on each clock port (every domain, same period and phase: paths between
domains are timed too, so no logic can hide on a crossing); combinational ones a virtual clock. Every
other input and every output gets a zero external delay against every clock, so the reported path is
the design's own: input or register → logic → output or register. ``data["critical_path"]`` lists the
nets along that path whose names survived synthesis (ports, registers, kept wires; yosys internals
such as ``_123_`` are left out), which is the timing-graph view later prompts show to agents.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from evoforge.domain import Metrics, StageResult
from evoforge.errors import ToolError, ToolTimeoutError
from evoforge.tools.opensta import (
    OpenSta,
    TimingReport,
    parse_report_checks,
    sta_errors,
    tcl_quote,
    worst_path,
)
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.synthesis import Netlist, parse_netlist

STAGE = "timing"
VIRTUAL_CLOCK = "evoforge_vclk"
_INTERNAL = re.compile(r"^_\d+_(?:\[\d+\])?$")
_UNCLOCKED = re.compile(r"There (?:are|is) (\d+) unclocked register")


class TimingFailed(ToolError):
    """OpenSTA could not analyse the netlist."""


def timing_script(
    netlist: Path, top: str, liberty: Path, clocks: str | Sequence[str] | None, period_ns: float
) -> str:
    lines = [
        f"read_liberty {tcl_quote(str(liberty))}",
        f"read_verilog {tcl_quote(str(netlist))}",
        f"link_design {tcl_quote(top)}",
    ]
    names = [clocks] if isinstance(clocks, str) else list(clocks or ())
    if names:
        ports = " ".join(tcl_quote(n) for n in names)
        lines += [f"create_clock -name {tcl_quote(n)} -period {period_ns:g} [get_ports {tcl_quote(n)}]"
                  for n in names]  # fmt: skip
        lines.append(f"set data_inputs [delete_from_list [all_inputs] [get_ports [list {ports}]]]")
        for i, name in enumerate(names):
            add = " -add_delay" if i else ""
            lines += [
                f"set_input_delay 0 -clock {tcl_quote(name)}{add} $data_inputs",
                f"set_output_delay 0 -clock {tcl_quote(name)}{add} [all_outputs]",
            ]
    else:
        lines += [
            f"create_clock -name {VIRTUAL_CLOCK} -period {period_ns:g}",
            f"set_input_delay 0 -clock {VIRTUAL_CLOCK} [all_inputs]",
            f"set_output_delay 0 -clock {VIRTUAL_CLOCK} [all_outputs]",
        ]
    lines += [
        "check_setup -verbose -no_clock",  # registers no declared clock reaches: their paths go untimed
        "report_checks -path_delay max -fields {net} -digits 4",
        "",
    ]
    return "\n".join(lines)


def unclocked_registers(log: str) -> int:
    """How many register clock pins OpenSTA found no clock on (``check_setup -no_clock``)."""
    match = _UNCLOCKED.search(log)
    return int(match.group(1)) if match else 0


def analyse_timing(
    netlist: Path,
    top: str,
    liberty: Path,
    clock: str | Sequence[str] | None,
    period_ns: float,
    workdir: Path,
    timeout: float,
) -> TimingReport:
    """The critical path of ``netlist`` (``clock``: one clock port, several, or None for a combinational
    design); raises TimingFailed / ToolTimeoutError when OpenSTA fails."""
    workdir.mkdir(parents=True, exist_ok=True)
    tcl = timing_script(netlist.resolve(), top, liberty.resolve(), clock, period_ns)
    result = OpenSta().run_tcl(tcl, cwd=workdir, timeout=timeout, name="timing", reads=(netlist, liberty))
    if result.timed_out:
        raise ToolTimeoutError(f"OpenSTA did not finish within {timeout:g} s")
    if result.limit_exceeded is not None:
        raise TimingFailed(f"static timing analysis was stopped at {result.limit_exceeded} of its sandbox")
    errors = sta_errors(result.output)
    if errors or result.returncode != 0:
        first = errors[0] if errors else f"sta exited with {result.returncode}"
        raise TimingFailed(f"static timing analysis failed: {first}")
    paths = parse_report_checks(result.stdout)
    worst = worst_path(paths)
    if worst is None:
        if "No paths found" in result.stdout:  # nothing is timed: outputs are constants or unconnected
            return TimingReport(0.0, None, None, "", "", (), log=result.output)
        raise TimingFailed("static timing analysis printed no path", hint="see the OpenSTA log")
    return TimingReport(
        delay_ns=worst.delay_ns,
        required_ns=worst.required_ns,
        slack_ns=worst.slack_ns,
        startpoint=worst.startpoint,
        endpoint=worst.endpoint,
        points=worst.points,
        path_group=worst.path_group,
        log=result.output,
    )


def is_rtl_name(net: str) -> bool:
    """True for names that come from the RTL (not yosys internals like ``_123_`` or ``$abc$…``)."""
    return bool(net) and not _INTERNAL.match(net) and "$" not in net and not net.startswith("1'b")


def register_output(netlist: Netlist, instance: str) -> str | None:
    """The net a flip-flop instance drives (its Q-like pin), e.g. the register the path ends in."""
    for inst in netlist.instances:
        if inst.name == instance:
            for pin in sorted(inst.pins):
                if pin.upper().startswith("Q") and is_rtl_name(inst.pins[pin]):
                    return inst.pins[pin]
    return None


def critical_path_names(report: TimingReport, netlist: Netlist | None = None) -> list[str]:
    """RTL names along the path in order, deduplicated; an endpoint register is named by its output."""
    names: list[str] = []
    for point in report.points:
        for candidate in (point.net, point.pin if point.cell in ("in", "out") else ""):
            if is_rtl_name(candidate) and candidate not in names:
                names.append(candidate)
    if netlist is not None and report.endpoint and "/" not in report.endpoint:
        register = register_output(netlist, report.endpoint)
        if register is not None and register not in names:
            names.append(register)
    return names


def _describe(name: str, netlist: Netlist | None) -> str:
    if netlist is not None and name not in netlist.ports:
        register = register_output(netlist, name)
        if register is not None:
            return f"{register} (register)"
    return name


def run_timing(ctx: RtlContext) -> StageResult:
    """The stage: metric delay_ns, detail "critical path …", data with the path and its RTL names."""
    start = time.monotonic()
    netlist_path = ctx.artifacts.get("netlist")
    if netlist_path is None:
        return StageResult(
            STAGE,
            ok=False,
            seconds=0.0,
            error=True,
            detail="no netlist: the synthesis stage must run before timing",
        )
    clock = ctx.interface.clock
    try:
        report = analyse_timing(
            Path(netlist_path),
            ctx.top,
            ctx.liberty_path,
            ctx.interface.clock_ports,
            ctx.settings.clock_period_ns,
            ctx.workdir / "timing",
            ctx.settings.tool_timeout_s,
        )
    except ToolTimeoutError as exc:
        return StageResult(STAGE, ok=False, seconds=time.monotonic() - start, detail=exc.message)
    except TimingFailed as exc:
        # the netlist came from our own synthesis: a failure here is the verifier's, not the candidate's
        return StageResult(STAGE, ok=False, seconds=time.monotonic() - start, detail=exc.message, error=True)
    netlist = parse_netlist(Path(netlist_path).read_text(errors="replace"))
    names = critical_path_names(report, netlist)
    if report.points:
        detail = f"critical path {report.delay_ns:.3g} ns: " + " → ".join(names or [report.startpoint])
    else:
        detail = "no timed path (outputs do not depend on inputs or registers)"
    unclocked = unclocked_registers(report.log)
    if unclocked and clock is not None:
        detail += (
            f"; {unclocked} register(s) reached by no input clock (derived or gated clocks) are not timed"
        )
    return StageResult(
        STAGE,
        ok=True,
        seconds=time.monotonic() - start,
        metrics=Metrics(delay_ns=report.delay_ns),
        detail=detail,
        log=report.log,
        data={
            "critical_path": names,
            "path": [asdict(p) for p in report.points],
            "slack_ns": report.slack_ns,
            "required_ns": report.required_ns,
            "startpoint": _describe(report.startpoint, netlist),
            "endpoint": _describe(report.endpoint, netlist),
            "clock_period_ns": ctx.settings.clock_period_ns,
            "clock": clock,
            "clocks": list(ctx.interface.clock_ports),
            "unclocked_registers": unclocked,
        },
    )
