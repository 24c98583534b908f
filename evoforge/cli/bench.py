"""``evoforge bench PATH...``: a job per KernelBench problem and KernelBench-style summaries.

Each problem file (a folder's ``*.py``, sorted) is loaded — size check, scaled where it does not fit
— and optimised by an ordinary stored job (the same path as ``evoforge run``). Per problem the
report keeps: the sizes it ran at, torch eager's time, torch.compile's where it works (eager and
compiled timed against each other in one child), the best accepted candidate's speed-up over eager
(its benchmark stage: both sides in the same run), and, when nothing was proposed, why. The
summary is KernelBench's: the correctness rate (problems with an accepted candidate), ``fast_p``
for p = 1.0 and 1.5 (problems correct *and* faster than p × eager) and the geometric-mean speed-up
over the correct problems — vs eager, and vs torch.compile where it was measured (eager-relative
ratios of the two same-run measurements).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from evoforge.cli.common import EXIT_OK, StderrProgress, settings_from_args
from evoforge.cli.kernel_options import add_kernel_options
from evoforge.errors import BadInputError, EvoforgeError

FAST_P = (1.0, 1.5)


def add_bench_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench", help="optimise every KernelBench problem of a folder; KernelBench-style summary"
    )
    bench.add_argument("paths", type=Path, nargs="+", help="problem files or folders of them")
    kernel = bench.add_argument_group("kernel options (as for run)")
    kernel.add_argument("--threads", type=int, help="CPU threads for torch and OpenMP when timing")
    kernel.add_argument("--allow-library", action="store_true", help="allow torch compute outside kernels")
    add_kernel_options(kernel)
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    bench.add_argument("--budget", type=int, help="candidates per problem (default 20)")
    bench.add_argument("--proposer", choices=("offline", "llm", "mixed"), help="as for run")
    bench.add_argument("--seed", type=int, help="random seed of the search (default 0)")
    bench.add_argument("--workers", type=int, help="parallel evaluations (default 2)")
    bench.add_argument("--db", help="SQLAlchemy database URL (default: SQLite in the data directory)")
    bench.add_argument(
        "--no-compile", action="store_true", help="skip the torch.compile baseline (it compiles per problem)"
    )


def problem_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.is_file():
            files.append(path)
        else:
            raise BadInputError(f"{path}: no such file or folder", hint="evoforge bench PROBLEMS_DIR")
    if not files:
        raise BadInputError("no problem files (*.py) found", hint="evoforge bench PROBLEMS_DIR")
    return files


def cmd_bench(args: argparse.Namespace) -> int:
    from evoforge.domain import DEFAULT_KERNEL_OBJECTIVES, JobStatus
    from evoforge.search import jobs, proposing
    from evoforge.search.report import job_report
    from evoforge.store.engine import open_store
    from evoforge.verifiers.kernel.compiled import compile_baseline
    from evoforge.verifiers.kernel.target import load_kernel_target

    files = problem_files(list(args.paths))
    settings = proposing.choose_proposer(settings_from_args(args))
    store = open_store(settings.database_url)
    progress = StderrProgress(enabled=True)
    rows = []
    for index, path in enumerate(files, start=1):
        _say(f"[{index}/{len(files)}] {path.name}: checking the problem")
        row: dict[str, Any] = {"problem": path.name}
        try:
            target = load_kernel_target(path, settings.kernel, work_dir=settings.work_dir() / "target")
        except EvoforgeError as exc:
            row.update(status="unusable", reason=exc.message)
            _say(f"  unusable: {exc.message.splitlines()[0]}")
            rows.append(row)
            continue
        summary = target.kernel_summary or {}
        scaling = summary.get("scaling") or {}
        row.update(
            sizes=scaling.get("note") or "as written",
            eager_ms=(summary.get("probe") or {}).get("runtime_ms"),
            pattern=((summary.get("patterns") or [{}])[0]).get("kind"),
            no_template=summary.get("no_pattern"),
        )
        if not args.no_compile:
            _say("  torch.compile baseline")
            row["compile"] = compile_baseline(
                target, settings.kernel, settings.work_dir() / f"compile-{index}"
            )
        job_id = jobs.create_job(store, target, settings, DEFAULT_KERNEL_OBJECTIVES, status=JobStatus.RUNNING)
        try:
            jobs.run_job(store, job_id, settings, progress)
        except EvoforgeError as exc:
            row.update(status="failed", reason=exc.message, job_id=job_id)
            rows.append(row)
            continue
        with store.transaction() as session:
            report = job_report(session, job_id)
        row.update(_outcome(report))
        rows.append(row)
        _say(f"  {_row_text(row)}")
    payload = {"problems": rows, "summary": summarise(rows)}
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print_bench(payload)
    return EXIT_OK


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _outcome(report: dict[str, Any]) -> dict[str, Any]:
    accepted = [c for c in report["candidates"] if c["status"] == "accepted"]
    measured = [c for c in accepted if (c.get("metrics") or {}).get("speedup") is not None]
    best = max(measured, key=lambda c: c["metrics"]["speedup"], default=None)
    out: dict[str, Any] = {
        "status": "done",
        "job_id": report["job_id"],
        "proposed": report["counts"]["proposed"],
        "accepted": len(accepted),
        "correct": bool(accepted),
        "speedup": best["metrics"]["speedup"] if best else None,
        "best_ms": best["metrics"].get("runtime_ms") if best else None,
        "best_origin": best["origin"] if best else None,
    }
    if accepted and not measured:  # correct, but no speed-up survived the timing checks (spread, roofline)
        out["unmeasured"] = True
        out["reason"] = f"accepted, speed-up unmeasured: {accepted[0].get('reason')}"
    if not report["candidates"]:
        out["reason"] = "nothing was proposed"
    elif not accepted:
        first = report["candidates"][0]
        out["reason"] = (
            f"every candidate rejected; e.g. at {first.get('rejected_stage')}: {first.get('reason')}"
        )
    return out


def geomean(values: list[float]) -> float | None:
    kept = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in kept) / len(kept)) if kept else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """KernelBench's numbers over the problems: correctness rate, fast_p, geometric-mean speed-up."""
    n = len(rows)
    correct = [r for r in rows if r.get("correct")]
    speedups = [r["speedup"] for r in correct if r.get("speedup") is not None]
    vs_compile = []
    for r in correct:
        compiled = r.get("compile") or {}
        if r.get("speedup") is not None and compiled.get("works") and compiled.get("speedup"):
            vs_compile.append(r["speedup"] / compiled["speedup"])
    out: dict[str, Any] = {
        "problems": n,
        "correct": len(correct),
        "correctness_rate": len(correct) / n if n else None,
        "geomean_speedup_vs_eager": geomean(speedups),
        "geomean_over": len(speedups),
        "compile_measured": sum(1 for r in rows if (r.get("compile") or {}).get("works")),
        "geomean_speedup_vs_compile": geomean(vs_compile),
        "geomean_vs_compile_over": len(vs_compile),
    }
    for p in FAST_P:
        out[f"fast_{p:g}"] = (
            sum(1 for r in correct if r.get("speedup") is not None and r["speedup"] > p) / n if n else None
        )
    return out


def _num(value: Any, fmt: str = ".3g", unit: str = "") -> str:
    return f"{value:{fmt}}{unit}" if isinstance(value, int | float) else "-"


def _row_text(row: dict[str, Any]) -> str:
    compiled = row.get("compile") or {}
    compile_text = (
        f"torch.compile {_num(compiled.get('speedup'))}x eager"
        if compiled.get("works")
        else "torch.compile -"
    )
    text = (
        f"{row.get('status')}: best {_num(row.get('speedup'))}x eager ({row.get('accepted', 0)}/"
        f"{row.get('proposed', 0)} accepted), eager {_num(row.get('eager_ms'), '.4g', ' ms')}, {compile_text}"
    )
    if row.get("reason"):
        text += f" — {row['reason']}"
    if row.get("no_template") and not row.get("proposed"):
        text += f" (no template applies: {row['no_template']})"
    return text


def print_bench(payload: dict[str, Any]) -> None:
    for row in payload["problems"]:
        print(f"{row['problem']}: {_row_text(row)}")
        if row.get("sizes"):
            print(f"    sizes: {row['sizes']}")
        compiled = row.get("compile") or {}
        if compiled and not compiled.get("works"):
            print(f"    torch.compile: unmeasured ({compiled.get('reason')})")
    s = payload["summary"]
    print(
        f"\n{s['problems']} problems: correct {s['correct']} ({_num(s['correctness_rate'], '.0%')}), "
        + ", ".join(f"fast_{p:g} {_num(s[f'fast_{p:g}'], '.0%')}" for p in FAST_P)
    )
    print(
        f"geometric-mean speed-up over the {s['geomean_over']} correct: "
        f"{_num(s['geomean_speedup_vs_eager'])}x "
        f"vs torch eager; {_num(s['geomean_speedup_vs_compile'])}x vs torch.compile "
        f"(over {s['geomean_vs_compile_over']} where it works)"
    )
