"""Yosys (and yosys-abc): run a script, keep the log, surface the first error.

Report parsers for ``stat`` and ``ltp`` live in :mod:`evoforge.tools.yosys_reports`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evoforge.tools.base import ExternalTool, read_capped, stopped_by_limit, write_text


@dataclass(frozen=True)
class YosysRun:
    ok: bool
    log: str
    seconds: float
    timed_out: bool
    returncode: int | None
    limit: str | None = None  # a resource limit of the box stopped it (in words)

    @property
    def error(self) -> str:
        """The limit that stopped yosys, else the first ``ERROR:`` line of the log (or its tail)."""
        if self.limit is not None:
            return self.limit
        match = re.search(r"^(?:\S*: )?ERROR:.*(?:\n(?!\S).*)*", self.log, flags=re.M)
        if match:
            return match.group(0).strip()
        if self.timed_out:
            return "yosys timed out"
        return "\n".join(self.log.strip().splitlines()[-5:])


class Yosys(ExternalTool):
    name = "yosys"
    executable = "yosys"
    package = "yosys"
    version_argv = ("-V",)

    def run_script(
        self,
        script: str,
        *,
        cwd: Path,
        timeout: float | None = None,
        name: str = "run",
        reads: Sequence[Path] = (),
    ) -> YosysRun:
        """Write ``script`` to ``cwd/<name>.ys`` and run it quietly; the whole log is returned.

        ``reads``: files outside ``cwd`` the script reads (the box shows yosys nothing else).
        """
        path = write_text(cwd / f"{name}.ys", script)
        result = self.run(["-q", "-l", f"{name}.log", "-s", path.name], cwd=cwd, timeout=timeout, reads=reads)
        log_path = cwd / f"{name}.log"
        log = read_capped(log_path)
        if result.stderr.strip():
            log += "\n" + result.stderr
        return YosysRun(
            ok=result.ok,
            log=log,
            seconds=result.seconds,
            timed_out=result.timed_out,
            returncode=result.returncode,
            limit=stopped_by_limit("yosys", result),
        )


class YosysAbc(ExternalTool):
    name = "yosys-abc"
    executable = "yosys-abc"
    package = "yosys"
    version_argv = ("-h",)
