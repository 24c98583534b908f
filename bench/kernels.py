"""Benchmark of the kernel cascade on the bundled KernelBench-format examples (this CPU).

    .venv/bin/python bench/kernels.py [--search N] [--repeats 30] [--only NAME ...] [--write]

Per example (every ``examples/kernels/<x>.py`` with an ``<x>_c.py``): the full cascade on the C
candidate — its median time against torch eager on the CPU, measured in the same process run at the
benchmark shapes, and the speed-up; the cascade on the Triton candidate — seconds of its correctness
stage (Triton interpreter) and of its ahead-of-time compile, with registers and spills for sm_90; and
the GPU columns, which this machine cannot measure and so prints as unmeasured. With ``--search N``,
also ``evoforge run <x>.py --proposer offline --budget N`` in a fresh database, and the best C speed-up
it found. ``--write`` replaces the section in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _doc import write_section

from evoforge.config import KernelSettings
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.target import load_kernel_target

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "kernels"
SECTION = "## Kernels: C and Triton candidates on the examples (issue 5)"
TARGET = 1.5


def examples() -> list[str]:
    return sorted(
        p.stem
        for p in EXAMPLES.glob("*.py")
        if not p.stem.endswith(("_c", "_triton", "_wrong")) and (EXAMPLES / f"{p.stem}_c.py").exists()
    )


def stage(verdict: Any, name: str) -> Any:
    return next((r for r in verdict.stages if r.name == name), None)


def measure(name: str, settings: KernelSettings, work: Path) -> dict[str, Any]:
    target = load_kernel_target(EXAMPLES / f"{name}.py", settings, work_dir=work / "target")
    verifier = KernelVerifier(target, settings, work / "verify")
    row: dict[str, Any] = {"name": name, "baseline_ms": verifier.baseline().metrics.runtime_ms}
    c = verifier.verify((EXAMPLES / f"{name}_c.py").read_text())
    bench = stage(c, "benchmark")
    row["c"] = {
        "accepted": c.accepted,
        "reason": c.reason,
        "speedup": c.metrics.speedup,
        "candidate_ms": bench.data.get("candidate_ms") if bench else None,
        "reference_ms": bench.data.get("reference_ms") if bench else None,
        "rounds": bench.data.get("rounds") if bench else None,
        "spread": bench.data.get("spread") if bench else None,
        "interval": bench.data.get("interval") if bench else None,
        "roofline": bench.data.get("roofline_speedup") if bench else None,
        "unmeasured": bench.data.get("unmeasured") if bench else None,
    }
    triton_file = EXAMPLES / f"{name}_triton.py"
    if triton_file.exists():
        t = verifier.verify(triton_file.read_text())
        correctness, resources = stage(t, "correctness"), stage(t, "resources")
        row["triton"] = {
            "accepted": t.accepted,
            "reason": t.reason,
            "correctness_s": round(correctness.seconds, 2) if correctness else None,
            "aot_s": round(resources.seconds, 2) if resources else None,
            "registers": t.metrics.registers,
            "spills": t.metrics.spills,
            "shared_bytes": t.metrics.shared_bytes,
            "gpu": (stage(t, "benchmark").data.get("unmeasured") if stage(t, "benchmark") else None),
        }
    return row


def search(name: str, budget: int, work: Path) -> dict[str, Any]:
    env = {**os.environ, "EVOFORGE_DATA_DIR": str(work / "data")}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "evoforge.cli", "run", str(EXAMPLES / f"{name}.py"), "--proposer", "offline",
         "--budget", str(budget), "--db", f"sqlite:///{work / 'search.db'}", "--json"],
        capture_output=True, text=True, env=env, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    report = json.loads(done.stdout)
    best = report.get("best") or {}
    return {
        "best_speedup": (best.get("metrics") or {}).get("speedup"),
        "best_origin": next(
            (c["origin"] for c in report["candidates"] if c["id"] == best.get("candidate_id")), None
        ),
        "evaluated": report["counts"]["evaluated"],
        "seconds": round(time.monotonic() - start, 1),
    }


def fmt(value: Any, spec: str = ".2f", suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def render(rows: list[dict[str, Any]], command: str, searched: bool) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{command}` on {platform.machine()}, {os.cpu_count()} cores, no GPU. torch eager (its own "
        "process) and the C candidate's kernels (replayed alone) run pinned to the same CPUs with the same "
        "thread count, in interleaved rounds in random order on the same fresh inputs at the problem's "
        "benchmark shapes; the speed-up is the median of per-round ratios with its 95 % confidence interval "
        "(in brackets; unmeasured when wider than half the median), beside the memory-roofline bound "
        "measured in the same run. GPU "
        "columns are `unmeasured`: nothing here can time a GPU, and the Triton interpreter's timings say "
        "nothing about GPU speed.",
        "",
        "| example | torch eager (ms) | C candidate (ms) | C speed-up | roofline bound "
        "| Triton correctness (s) | Triton AOT sm_90 (s) | registers / spills | GPU time | GPU speed-up |"
        + (" offline search best C |" if searched else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if searched else ""),
    ]
    for row in rows:
        c, t = row["c"], row.get("triton", {})
        if not c["accepted"]:
            speed = f"rejected: {c['reason'][:60]}"
        elif c["speedup"] is None:
            speed = f"unmeasured: {(c.get('unmeasured') or '')[:60]}"
        else:
            low, high = c.get("interval") or (None, None)
            speed = f"{c['speedup']:.2f}× ({fmt(low, '.2f')}–{fmt(high, '.2f')})"
        regs = f"{fmt(t.get('registers'), 'd')} / {fmt(t.get('spills'), 'd')}" if t else "–"
        tri = fmt(t.get("correctness_s")) if t.get("accepted") else f"rejected: {t.get('reason', '–')[:60]}"
        line = (
            f"| {row['name']} | {fmt(c['reference_ms'], '.3f')} | {fmt(c['candidate_ms'], '.3f')} "
            f"| {speed} | {fmt(c.get('roofline'), '.1f', '×')} | "
            f"{tri} | {fmt(t.get('aot_s'))} | {regs} | unmeasured | unmeasured |"
        )
        if searched:
            s = row.get("search", {})
            line += f" {fmt(s.get('best_speedup'), '.2f', '×')} ({s.get('evaluated', '–')} evaluated) |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search", type=int, default=0, help="also run an offline search with this budget")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    settings = KernelSettings(benchmark_repeats=args.repeats, benchmark_budget_s=30.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or examples():
            work = Path(tmp) / name
            row = measure(name, settings, work)
            if args.search:
                row["search"] = search(name, args.search, work)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    command = "python bench/kernels.py " + " ".join(sys.argv[1:])
    text = render(rows, command.strip(), bool(args.search))
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
