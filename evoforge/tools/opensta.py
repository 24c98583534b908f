"""OpenSTA (``sta``): run a Tcl script and parse ``report_checks`` into typed timing paths.

:meth:`OpenSta.run_tcl` writes the script to ``cwd`` and runs ``sta -no_init -no_splash -exit``.
OpenSTA exits 0 even when a command fails, so :func:`sta_errors` finds its ``Error:`` lines.
:func:`parse_report_checks` reads the output of
``report_checks -path_delay max -fields {net} -digits 4`` (one path per path group) into
:class:`TimingReport` values; :func:`worst_path` picks the critical one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evoforge.tools.base import ExternalTool, write_text
from evoforge.tools.process import ProcessResult

#: the path group OpenSTA gives recovery/removal checks of asynchronous set/reset pins
ASYNC_GROUP = "**async_default**"


@dataclass(frozen=True)
class PathPoint:
    pin: str  # "inst/PIN", or a port name for the path's start and end
    net: str  # the net this point drives ("" when the report shows none, e.g. at the endpoint)
    cell: str  # the liberty cell, or "in"/"out" for ports
    incr_ns: float
    arrival_ns: float
    edge: str = ""  # "^" rising, "v" falling


@dataclass(frozen=True)
class TimingReport:
    delay_ns: float  # data arrival time at the endpoint
    required_ns: float | None
    slack_ns: float | None
    startpoint: str
    endpoint: str
    points: tuple[PathPoint, ...]
    path_group: str = ""
    log: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.slack_ns is None else self.slack_ns >= 0


class OpenSta(ExternalTool):
    name = "opensta"
    executable = "sta"
    package = "opensta"
    version_argv = ("-version",)

    def run_tcl(
        self,
        tcl: str,
        *,
        cwd: Path,
        timeout: float | None = None,
        name: str = "sta",
        reads: Sequence[Path] = (),
    ) -> ProcessResult:
        """Write ``tcl`` to ``cwd/<name>.tcl`` and run it to the end (``-exit``).

        ``reads``: files outside ``cwd`` the script reads (the box shows OpenSTA nothing else).
        """
        script = write_text(cwd / f"{name}.tcl", tcl)
        return self.run(
            ["-no_init", "-no_splash", "-exit", script.name], cwd=cwd, timeout=timeout, reads=reads
        )


_ERROR = re.compile(r"^Error:.*$", re.M)


def sta_errors(output: str) -> tuple[str, ...]:
    """OpenSTA's ``Error: …`` lines (it reports failed commands but still exits 0)."""
    return tuple(m.group(0).strip() for m in _ERROR.finditer(output))


def tcl_quote(name: str) -> str:
    """``name`` as one Tcl word, literal (port names may contain brackets)."""
    return "{" + name.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}") + "}"


_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_POINT = re.compile(
    rf"^\s*(?P<incr>{_NUM})\s+(?P<time>{_NUM})\s+(?P<edge>[\^v])\s+(?P<pin>\S+)\s+\((?P<cell>[^)]*)\)\s*$"
)
_NET = re.compile(r"^\s*(?:\d+\s+)?(?P<net>\S+)\s+\(net\)\s*$")
_ARRIVAL = re.compile(rf"^\s*(?P<v>{_NUM})\s+data arrival time\s*$")
_REQUIRED = re.compile(rf"^\s*(?P<v>{_NUM})\s+data required time\s*$")
_SLACK = re.compile(rf"^\s*(?P<v>{_NUM})\s+slack\s+\((?:MET|VIOLATED)\)\s*$")


def parse_report_checks(text: str) -> tuple[TimingReport, ...]:
    """Every path in a ``report_checks`` output, in the order printed."""
    reports: list[TimingReport] = []
    blocks = re.split(r"^(?=Startpoint:)", text, flags=re.M)
    for block in blocks:
        if not block.startswith("Startpoint:"):
            continue
        report = _parse_block(block)
        if report is not None:
            reports.append(report)
    return tuple(reports)


def _field(block: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.*)$", block, flags=re.M)
    return match.group(1).strip() if match else ""


def _parse_block(block: str) -> TimingReport | None:
    startpoint = _field(block, "Startpoint").split(" (")[0]
    endpoint = _field(block, "Endpoint").split(" (")[0]
    group = _field(block, "Path Group")
    points: list[PathPoint] = []
    arrival = required = slack = None
    for line in block.splitlines():
        if arrival is None:
            point = _POINT.match(line)
            if point:
                points.append(
                    PathPoint(
                        pin=point.group("pin"),
                        net="",
                        cell=point.group("cell"),
                        incr_ns=float(point.group("incr")),
                        arrival_ns=float(point.group("time")),
                        edge=point.group("edge"),
                    )
                )
                continue
            net = _NET.match(line)
            if net and points:
                last = points[-1]
                points[-1] = PathPoint(
                    last.pin, net.group("net"), last.cell, last.incr_ns, last.arrival_ns, last.edge
                )
                continue
            match = _ARRIVAL.match(line)
            if match:
                arrival = float(match.group("v"))
        elif required is None and (match := _REQUIRED.match(line)):
            required = float(match.group("v"))
        elif (match := _SLACK.match(line)) is not None:
            slack = float(match.group("v"))
    if arrival is None:
        return None
    return TimingReport(
        delay_ns=arrival,
        required_ns=required,
        slack_ns=slack,
        startpoint=startpoint,
        endpoint=endpoint,
        points=tuple(_data_path(points)),
        path_group=group,
        log=block,
    )


def _data_path(points: list[PathPoint]) -> list[PathPoint]:
    """Drop the clock-network lines before the launching flip-flop's clock pin."""
    for index, point in enumerate(points):
        if point.net:  # the first point that drives a net starts the data path
            return points[index:]
    return points


def worst_path(reports: tuple[TimingReport, ...]) -> TimingReport | None:
    """The critical path: the smallest slack (ties: the later arrival), data groups before async ones."""
    if not reports:
        return None
    data = [r for r in reports if r.path_group != ASYNC_GROUP] or list(reports)
    return min(data, key=lambda r: (r.slack_ns if r.slack_ns is not None else float("inf"), -r.delay_ns))
