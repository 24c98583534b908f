"""Parsers for yosys report text: ``stat`` / ``stat -liberty`` and ``ltp -noff``.

They read the log returned by :meth:`evoforge.tools.yosys.Yosys.run_script`. A script may print
several reports (``synth`` prints its own ``stat``); the parsers take the **last** one, optionally for
a named module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from evoforge.errors import ToolError

_STAT_HEADER = re.compile(r"^=== (?P<module>\S+) ===\s*$", re.M)
_CELLS = re.compile(r"^\s+Number of cells:\s+(\d+)\s*$", re.M)
_CELL_LINE = re.compile(r"^\s{5,}(?P<type>\S+)\s+(?P<count>\d+)\s*$")
_AREA = re.compile(r"^\s+Chip area for (?:top )?module '\\?(?P<module>[^']+)':\s+(?P<area>[0-9.eE+-]+)", re.M)
_LTP = re.compile(r"^Longest topological path in (?P<module>\S+) \(length=(?P<length>\d+)\):", re.M)


@dataclass(frozen=True)
class StatReport:
    module: str
    cells: int
    cells_by_type: dict[str, int] = field(default_factory=dict)
    area_um2: float | None = None  # only with ``stat -liberty``

    @property
    def unmapped_cells(self) -> dict[str, int]:
        """Yosys-internal cells (``$_DFF_…``, ``$_DLATCH_…``) that no liberty cell replaced."""
        return {t: n for t, n in self.cells_by_type.items() if t.startswith("$")}


@dataclass(frozen=True)
class LongestPath:
    module: str
    length: int  # cells on the longest topological path (logic depth)
    nodes: tuple[str, ...]  # the nets along it, as yosys names them


def parse_stat(log: str, module: str | None = None) -> StatReport:
    """The last ``stat`` section (for ``module`` when given); raises ToolError when there is none."""
    headers = [m for m in _STAT_HEADER.finditer(log) if module is None or m.group("module") == module]
    if not headers:
        raise ToolError(f"no yosys 'stat' report{f' for module {module}' if module else ''} in the log")
    header = headers[-1]
    following = _STAT_HEADER.search(log, header.end())
    end = following.start() if following else len(log)
    section = log[header.end() : end]
    cells_match = _CELLS.search(section)
    if cells_match is None:
        raise ToolError(f"yosys 'stat' report for {header.group('module')} has no cell count")
    by_type: dict[str, int] = {}
    for line in section[cells_match.end() :].splitlines()[1:]:
        match = _CELL_LINE.match(line)
        if not match:
            break
        by_type[match.group("type")] = by_type.get(match.group("type"), 0) + int(match.group("count"))
    area_match = _AREA.search(section)
    return StatReport(
        module=header.group("module"),
        cells=int(cells_match.group(1)),
        cells_by_type=by_type,
        area_um2=float(area_match.group("area")) if area_match else None,
    )


def parse_ltp(log: str, module: str | None = None) -> LongestPath:
    """The last ``ltp`` report (for ``module`` when given); raises ToolError when there is none."""
    matches = [m for m in _LTP.finditer(log) if module is None or m.group("module") == module]
    if not matches:
        raise ToolError(f"no yosys 'ltp' report{f' for module {module}' if module else ''} in the log")
    match = matches[-1]
    nodes: list[str] = []
    for line in log[match.end() :].lstrip("\n").splitlines():
        node = re.match(r"^\s*\d+:\s+(\S+(?: \[\d+\])?)", line)
        if not node:
            break
        nodes.append(node.group(1).lstrip("\\").replace(" [", "["))
    return LongestPath(module=match.group("module"), length=int(match.group("length")), nodes=tuple(nodes))
