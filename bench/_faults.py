"""Page faults and spread per side of one ``benchmark`` stage (``bench/kernelbench.py --faults``).

Per side (torch eager = ``reference``, the C candidate replayed = ``candidate``, the roofline kernel =
``floor``): the median time of a timed call, the spread of those times (interquartile range over
median, ``timing.relative_iqr``: the statistic the benchmark itself uses) and the page faults the
side's process took during its timed calls (minor and major, counted by the supervisor from
``/proc/PID/stat`` around each call); then the spread of the per-round speed-ups and the 95 %
confidence interval of their median, which the benchmark refuses when wider than 50 % of it. A side
that takes about one minor fault per 4 KiB it writes is touching fresh memory on every call.
"""

from __future__ import annotations

import statistics
from typing import Any

from evoforge.verifiers.kernel.timing import relative_iqr as spread


def report(data: dict[str, Any]) -> list[str]:
    samples, minor, major = (
        data.get("samples_ms") or {},
        data.get("minor_faults") or {},
        data.get("major_faults") or {},
    )
    lines = [
        f"  {'side':<10} {'median ms':>10} {'spread':>7} {'minor faults/call (median, max)':>32} {'major':>6}"
    ]
    for side in ("reference", "candidate", "floor"):
        times = samples.get(side) or []
        if not times:
            continue
        faults = minor.get(side) or [0]
        lines.append(
            f"  {side:<10} {statistics.median(times):>10.3f} {spread(times):>7.0%} "
            f"{statistics.median(faults):>22.0f} {max(faults):>9d} {sum(major.get(side) or [0]):>6d}"
        )
    interval, ratio_spread = data.get("interval"), data.get("spread")
    lines.append(
        f"  speed-up {data.get('ratio')}x over {data.get('rounds')} rounds"
        + (f", per-round spread {ratio_spread:.0%}" if ratio_spread is not None else "")
        + (f", 95 % interval {interval[0]:.3g}-{interval[1]:.3g}x" if interval else "")
        + (f" — unmeasured: {data['unmeasured']}" if data.get("unmeasured") else "")
    )
    return lines
