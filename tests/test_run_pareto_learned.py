"""`evoforge run`: the Pareto front and the winning lineage in the report; the win becomes a learned entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FAST_ENV = {
    "EVOFORGE_RTL__SIM_CYCLES": "1000",
    "EVOFORGE_RTL__SIM_SEEDS": "1",
    "EVOFORGE_RTL__PROBE_CYCLES": "300",
}

#: two muxed products: sharing them saves a multiplier and adds a mux level before it
MULSEL = """\
module mulsel(input s, input [5:0] a, b, c, d, output [11:0] y);
  assign y = s ? a * b : c * d;
endmodule
"""


def evoforge(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evoforge.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **FAST_ENV},
        timeout=600,
    )


def test_run_reports_the_front_and_learns_the_win(tmp_path: Path, _isolated_data_dir: Path) -> None:
    design = tmp_path / "mulsel.v"
    design.write_text(MULSEL)
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    done = evoforge("run", design, "--budget", "2", "--db", db, "--proposer", "offline", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    best = report["best"]
    assert best is not None and best["improvement"]["area_um2"] > 1.0

    # the front: accepted, non-dominated on (area, delay), each with metrics, assurance and improvement
    front = report["pareto_front"]
    assert front and {"candidate_id", "metrics", "assurance", "improvement"} <= set(front[0])
    accepted = {c["id"] for c in report["candidates"] if c["status"] == "accepted"}
    assert {r["candidate_id"] for r in front} <= accepted | {None} | _original_ids(db)
    assert best["candidate_id"] in {r["candidate_id"] for r in front}
    points = [(r["metrics"]["area_um2"], r["metrics"]["delay_ns"]) for r in front]
    for i, (area, delay) in enumerate(points):
        others = points[:i] + points[i + 1 :]
        assert not any(a <= area and d <= delay and (a, d) != (area, delay) for a, d in others)

    # the lineage explains the win: which rule, which rooms of the design
    step = best["lineage"][-1]
    assert step["candidate_id"] == best["candidate_id"]
    assert "rule resource_sharing" in step["note"] or "resource_sharing" in step["origin"]
    assert "touched" in step["note"] and "y" in step["note"]

    # human output shows the front too
    job = str(report["job_id"])
    shown = evoforge("show", job, "--db", db)
    assert shown.returncode == 0 and "Pareto front" in shown.stdout

    # the win is a learned knowledge-base entry, apart from the built-in ones
    from evoforge.search.learned_store import learned_entries
    from evoforge.store import open_store

    (entry,) = learned_entries(open_store(db))  # in the store, shared by every worker
    assert entry.job_id == report["job_id"] and entry.candidate_id == best["candidate_id"]
    assert entry.rule == "resource_sharing" and entry.assurance == best["assurance"]
    assert entry.improvement["area_um2"] == best["improvement"]["area_um2"]
    assert "*" in entry.excerpt and entry.excerpt.startswith("---")


def _original_ids(db: str) -> set[int]:
    import sqlite3

    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        return {row[0] for row in conn.execute("select id from candidates where origin = 'original'")}
