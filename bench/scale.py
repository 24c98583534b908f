"""Beyond one machine: the local executor against Ray on this machine, and the store's cost per
candidate on SQLite against PostgreSQL (issue 14).

The same job (one design, the offline proposer, one seed, one budget, ``--workers`` evaluations in
flight) is run in a fresh database for each configuration, in this process, through ``run_job``:

- ``local / SQLite``: threads of this process (the default);
- ``Ray / SQLite``: a Ray cluster started here on 127.0.0.1 (``ray start --head`` with no CPUs plus one
  worker node with ``--workers`` CPUs), the driver connected to it;
- ``local / PostgreSQL``: the default executor on a throwaway PostgreSQL (``--postgres URL``, or
  ``EVOFORGE_TEST_POSTGRES_URL``; skipped without one).

Per candidate, the task reports the seconds of its cascade (the verifier alone), its store
transactions and its whole run; the executor reports the round trip seen by the driver. *Overhead*
is round trip minus cascade: scheduling, serialisation, a Ray worker's start and verifier rebuild,
and the task's store writes. The goal is a Ray overhead per candidate below 10 % of the median
cascade. On a 2-core machine Ray cannot be faster: it adds its own processes to the same cores.

    .venv/bin/python bench/scale.py --doc
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests" / "scale"))
from _doc import write_section  # noqa: E402

from evoforge.config import RtlSettings, SearchSettings, Settings  # noqa: E402
from evoforge.domain import DEFAULT_RTL_OBJECTIVES, JobStatus  # noqa: E402
from evoforge.search import jobs  # noqa: E402
from evoforge.search.evaluate import EvaluationOutcome  # noqa: E402
from evoforge.search.executor import EvaluationTask, Executor, Finished, LocalExecutor  # noqa: E402
from evoforge.store.engine import open_store  # noqa: E402
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target  # noqa: E402

SECTION = "## Beyond one machine: local executor vs Ray, SQLite vs PostgreSQL (issue 14)"


class Recording:
    """An executor that keeps every outcome its inner executor yields."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.outcomes: list[EvaluationOutcome] = []

    def capabilities(self) -> Any:
        return self.inner.capabilities()

    def run(self, tasks: list[EvaluationTask], *, parallel: int) -> Any:
        finished: Finished
        for finished in self.inner.run(tasks, parallel=parallel):
            if isinstance(finished[1], EvaluationOutcome):
                self.outcomes.append(finished[1])
            yield finished

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Result:
    label: str
    wall_s: float
    candidates: int
    cascade_s: list[float]
    store_s: list[float]
    overhead_s: list[float]

    @property
    def per_minute(self) -> float:
        return 60.0 * self.candidates / self.wall_s if self.wall_s else 0.0


def run_once(label: str, url: str, design: Path, settings: Settings, executor: Any, work: Path) -> Result:
    target = load_rtl_target([design], RtlTargetOptions(), workdir=work / f"load-{len(label)}")
    store = open_store(url)
    job_id = jobs.create_job(store, target, settings, DEFAULT_RTL_OBJECTIVES, status=JobStatus.RUNNING)
    recording = Recording(executor)
    start = time.perf_counter()
    jobs.run_job(store, job_id, settings, executor=recording)  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    store.close()
    outcomes = [o for o in recording.outcomes if o.verdict is not None]
    trips = executor.roundtrip_s
    return Result(
        label,
        wall,
        len(outcomes),
        [o.seconds_cascade for o in outcomes],
        [o.seconds_store for o in outcomes],
        [trips[o.candidate_id] - o.seconds_cascade for o in outcomes if o.candidate_id in trips],
    )


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", type=Path, default=ROOT / "examples" / "rtl" / "seq_detect.v")
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="evaluations in flight (and Ray worker CPUs)")
    parser.add_argument("--postgres", help="PostgreSQL URL (default: $EVOFORGE_TEST_POSTGRES_URL)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray configuration")
    parser.add_argument("--doc", action="store_true", help="write the result to docs/benchmarks.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="evoforge-scale-"))
    os.environ["EVOFORGE_DATA_DIR"] = str(work / "data")
    settings = Settings(
        data_dir=work / "data",
        rtl=RtlSettings(sim_cycles=1000, sim_seeds=1, probe_cycles=300),
        search=SearchSettings(budget=args.budget, workers=args.workers, proposer="offline", seed=0),
    )
    results: list[Result] = []
    print(f"scale: local executor, SQLite ({args.design.name}, budget {args.budget})", file=sys.stderr)
    results.append(
        run_once(
            "local / SQLite", f"sqlite:///{work / 'local.db'}", args.design, settings, LocalExecutor(), work
        )
    )
    cluster_s = None
    if not args.no_ray:
        from ray_cluster import LocalRayCluster

        from evoforge.search.ray_executor import RayExecutor

        print("scale: starting a Ray cluster on 127.0.0.1", file=sys.stderr)
        started = time.perf_counter()
        cluster = LocalRayCluster({"EVOFORGE_DATA_DIR": str(work / "ray-data")})
        try:
            cluster.start_head(cpus=0)
            cluster.add_worker(cpus=args.workers)
            cluster_s = time.perf_counter() - started
            ray_executor: Executor = RayExecutor(address=cluster.address)
            try:
                print("scale: Ray executor, SQLite", file=sys.stderr)
                url = f"sqlite:///{work / 'ray.db'}"
                results.append(run_once("Ray / SQLite", url, args.design, settings, ray_executor, work))
            finally:
                ray_executor.close()
        finally:
            cluster.stop()
    postgres = args.postgres or os.environ.get("EVOFORGE_TEST_POSTGRES_URL")
    if postgres:
        print("scale: local executor, PostgreSQL", file=sys.stderr)
        results.append(run_once("local / PostgreSQL", postgres, args.design, settings, LocalExecutor(), work))

    base_cascade = med(results[0].cascade_s)
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python bench/scale.py{' --doc' if args.doc else ''}` — "
        f"{args.design.name}, offline proposer, seed 0, budget {args.budget}, {args.workers} evaluations "
        f"in flight, short simulations (1000 cycles, 1 seed); {platform.machine()}, {os.cpu_count()} cores "
        "shared with other work while measured (wall times are upper bounds). The Ray cluster runs on this "
        f"machine: a head with no CPUs and one worker node with {args.workers} CPUs"
        + (f", started in {cluster_s:.0f} s (not counted below)." if cluster_s else "."),
        "",
        "| configuration | candidates | wall s | candidates/min | median cascade s | median overhead s "
        "(round trip − cascade) | overhead / median cascade | mean overhead s | median store s/candidate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.label} | {r.candidates} | {r.wall_s:.0f} | {r.per_minute:.1f} | {med(r.cascade_s):.2f} | "
            f"{med(r.overhead_s):.3f} | {100 * med(r.overhead_s) / base_cascade:.1f} % | "
            f"{statistics.fmean(r.overhead_s) if r.overhead_s else float('nan'):.3f} | {med(r.store_s):.3f} |"
        )
    lines += [
        "",
        "Overhead is what a candidate costs beyond its cascade, seen from the driver: for Ray, scheduling, "
        "serialising the task and its verdict, and — once per Ray worker process and job — rebuilding the "
        "verifier from the stored spec (the mean shows that one-off cost spread over the candidates); for "
        "both, the task's own store writes (attempt, stage rows, verdict; last column). "
        "The goal for Ray is a median overhead below 10 % of the median cascade.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.doc:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
