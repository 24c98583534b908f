"""Benchmark of evoforge on public RTL it was not written around (``../shared/corpus/rtl``, sky130).

    .venv/bin/python bench/corpus.py [--budget 20] [--liberty PATH] [--only NAME ...] [--limit N]
                                     [--rows FILE] [--jobs N] [--design-timeout S] [--write]
    .venv/bin/python bench/corpus.py --propose-only [--only NAME ...] [--limit N] [--jobs N] [--write]

Per design: ``evoforge run <file> --proposer offline --budget N --liberty L --json`` in a fresh
database (a refusal is recorded with the message, which names the construct and line); the offline
rules' outcomes on the original (applied, or why not); and, for a reported best, an independent
re-check that shares no code with evoforge's verifier (``bench/corpus_check.py``: the plain Yosys
flow of ``tests/test_independent_check.py``, plus ``memory`` so that case tables Yosys turns into ROMs
reach SAT): a miter of original and best proven (combinational: ABC ``iprove`` on a two-valued
miter, else SAT over all inputs; sequential: from
reset — the reset inputs found on the original's flop reset pins held active in the first cycle,
whose outputs are not compared, then ``sat -tempinduct`` up to length 64; no reset: from the all-zero
state; "unproven" when induction does not close, and such a win is not counted; the row's
``check.method`` names the reset and polarity used), and area re-measured with the liberty. The
miter reads an x of the original as a don't-care and an x of the best as a mismatch
(``miter -ignore_gold_x``, ``sat -enable_undef``) — the contract evoforge's verifier checks too, so
a rewrite that gives a value to the original's ``default: y = 'x`` counts, one that leaves a defined
bit x does not. A win counts at
≥ 5 % / ≥ 20 % when evoforge's verified gain in area or delay reaches it and the independent check
proves equivalence (for area, the re-measured area must agree). ``--write`` replaces the section in
docs/benchmarks.md. ``--rows FILE`` appends each design's result to a JSON-lines file as soon as it
is measured and reuses the rows already there (a long run can be stopped and resumed; run it with
``nohup`` in the background); with ``--recheck`` the independent check is run again on reused rows it
did not confirm (rows that kept their best candidate's source). Goals (issue 12): a proposal on
≥ 80 % of accepted designs, a verified ≥ 5 % win on ≥ 40 %.

``--jobs N`` runs N designs at a time (each its own ``evoforge run`` process; wall times then overlap
and are upper bounds). ``--design-timeout S`` stops a design's run after S seconds: it is recorded
as ``cut off`` (counted as accepted with no result — never as a win); without it a run may take 1 h.

``--propose-only`` is the fast survey: per design, only the front end (the target loader: accepted
or the refusal) and the offline proposer's rules on the original, no verification — per rule its
number of sites or its reason for not applying. It prints each design's applying rules, the share of
accepted designs with at least one proposal, and per rule the designs it fires on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _doc import write_section
from corpus_check import independent_check

from evoforge.tools.liberty import prepare_liberty

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "rtl"
SKY130 = ROOT.parent / "shared" / "pdk" / "sky130hd_tt.lib.gz"
SECTION = "## RTL on the public corpus (issue 12)"
SURVEY_SECTION = "## RTL on the public corpus: what the rules find (issue 12)"


def designs() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*/*") if p.suffix in (".v", ".sv"))


def run_one(
    path: Path, budget: int, liberty: Path, lib_path: Path, work: Path, timeout_s: float | None = None
) -> dict[str, Any]:
    env = {**os.environ, "EVOFORGE_DATA_DIR": str(work / "data")}
    env.pop("EVOFORGE_DB", None)
    argv = [sys.executable, "-m", "evoforge.cli", "run", str(path), "--proposer", "offline"]
    argv += [
        "--budget",
        str(budget),
        "--db",
        f"sqlite:///{work / 'jobs.db'}",
        "--json",
        "--liberty",
        str(liberty),
    ]
    start = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout_s or 3600)
    except subprocess.TimeoutExpired:
        seconds = time.monotonic() - start
        if timeout_s:  # the design was accepted as far as we know; it just has no result
            return {"design": path.name, "cut_off": f"cut off after {timeout_s:.0f} s", "seconds": seconds}
        return {"design": path.name, "refused": "timed out after 1 h", "seconds": seconds}
    seconds = time.monotonic() - start
    out: dict[str, Any] = {"design": path.name, "seconds": seconds, "commit": _head()}
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        lines = [ln.strip() for ln in done.stderr.strip().splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.lower().startswith("error")]
        return out | {"refused": (errors or lines or ["?"])[0][:200]}
    if report.get("error") and report.get("status") != "succeeded":
        return out | {"refused": str(report.get("error"))[:200]}
    rules = report.get("rules") or []
    out |= {
        "proposed": (report.get("counts") or {}).get("proposed", 0),
        "applied": [r["rule"] for r in rules if r.get("applied")],
    }
    best = report.get("best")
    if best:
        out["lineage"] = _lineage(report, best.get("candidate_id"))
        gains = best.get("improvement") or {}
        out["gain"] = max(gains.get("area_um2", 0.0), gains.get("delay_ns", 0.0))
        out["gains"] = {k: gains.get(k) for k in ("area_um2", "delay_ns")}
        out["assurance"] = best.get("assurance")
        out["best_source"] = best["source"]  # kept so that the check can be re-run on its own
        out["top"] = report["target"]["name"]
        out["check"] = independent_check(
            path,
            best["source"],
            report["target"]["name"],
            lib_path,
            work / "check",
            hint=(report.get("interface") or {}).get("resets"),
        )
    return out


def _lineage(report: dict[str, Any], candidate: Any) -> list[str]:
    """The rules of the best candidate and its ancestors (oldest first)."""
    by_id = {c.get("id"): c for c in report.get("candidates") or ()}
    rules: list[str] = []
    seen = set()
    while candidate in by_id and candidate not in seen:
        seen.add(candidate)
        row = by_id[candidate]
        origin = str(row.get("origin") or "")
        if origin.startswith("offline:"):
            rules.extend(origin.removeprefix("offline:").split("+"))
        candidate = row.get("parent_id")
    return list(dict.fromkeys(reversed(rules)))


def counted(row: dict[str, Any], threshold: float) -> bool:
    """A win at ``threshold`` (1.05, 1.25) in area or delay that the independent check confirms."""
    check = row.get("check") or {}
    if not check.get("equivalent"):
        return False
    gains = row.get("gains") or {}
    area, delay = gains.get("area_um2") or 0.0, gains.get("delay_ns") or 0.0
    area_ok = area >= threshold and (check.get("area_gain") or 0.0) >= threshold * 0.98
    return area_ok or delay >= threshold


def _commits(rows: list[dict[str, Any]]) -> str:
    """Which commits the rows were measured at (a ``--rows`` file can span several runs)."""
    counts = Counter(str(r.get("commit") or "a commit before rows recorded it") for r in rows)
    return ", ".join(f"{commit} ({n} designs)" for commit, n in counts.most_common())


def _head() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return done.stdout.strip() or None if done.returncode == 0 else None


def render(rows: list[dict[str, Any]], budget: int, partial: str) -> str:
    accepted = [r for r in rows if "refused" not in r]
    refused = [r for r in rows if "refused" in r]
    proposing = [r for r in accepted if r.get("proposed")]
    win5 = [r for r in accepted if counted(r, 1.05)]
    win20 = [r for r in accepted if counted(r, 1.25)]
    cut = [r for r in accepted if "cut_off" in r]
    median = statistics.median(r["seconds"] for r in rows) if rows else 0.0

    def pct(part: list[Any]) -> str:
        return f"{len(part)}/{len(accepted)} ({100 * len(part) / max(1, len(accepted)):.0f} %)"

    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python bench/corpus.py --budget {budget} --write`{partial} "
        f"({os.cpu_count()} cores, shared with other work: wall times are upper bounds). "
        "Each design: `evoforge run <file> --proposer "
        f"offline --budget {budget} --liberty sky130hd_tt --json` in a fresh database; wins re-checked by an "
        "independent Yosys miter (`bench/corpus_check.py`: combinational designs by ABC `iprove`, else "
        "SAT with "
        "the original's x bits as don't-cares; sequential designs by "
        "induction from reset: the reset found on the original's flops held in the first cycle, whose "
        "outputs are not compared; designs without reset from the all-zero state) and area re-measured "
        "with the liberty.",
        "",
        f"- measured at: {_commits(rows)}",
        f"- designs: {len(rows)}; accepted {len(accepted)}, refused {len(refused)}",
        f"- cut off by --design-timeout (no result, not a win): {len(cut)}",
        f"- accepted designs with at least one proposal: {pct(proposing)} (goal ≥ 80 %)",
        f"- verified win ≥ 5 % in area or delay, independently re-checked: {pct(win5)} (goal ≥ 40 %)",
        f"- verified win ≥ 20 %: {pct(win20)}",
        f"- median wall time per design: {median:.0f} s",
        "",
        "| design | proposed | rules that apply | best gain (area, delay) | best's rules | assurance "
        "| independent check | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "refused" in r:
            lines.append(
                f"| {r['design']} | refused: {r['refused'].replace('|', '/')} "
                f"| | | | | | {r['seconds']:.0f} |"
            )
            continue
        if "cut_off" in r:
            lines.append(f"| {r['design']} | {r['cut_off']} | | | | | | {r['seconds']:.0f} |")
            continue
        gains = r.get("gains") or {}
        gain = ", ".join(f"{gains.get(k) or 0:.2f}×" for k in ("area_um2", "delay_ns")) if gains else "-"
        check = r.get("check")
        checked = (
            "-"
            if check is None
            else check.get("outcome") or ("equivalent" if check["equivalent"] else "unproven")
        )
        lines.append(
            f"| {r['design']} | {r.get('proposed', 0)} | {', '.join(r.get('applied') or []) or '-'} | {gain} "
            f"| {', '.join(r.get('lineage') or []) or '-'} | {r.get('assurance') or '-'} | {checked} "
            f"| {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def survey_one(path: Path, work: Path) -> dict[str, Any]:
    """Front end and offline rules on one design's original (no verification)."""
    from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer
    from evoforge.errors import EvoforgeError
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    start = time.monotonic()
    row: dict[str, Any] = {"design": path.name, "suite": path.parent.name}
    try:
        target = load_rtl_target([path], RtlTargetOptions(), workdir=work)
    except EvoforgeError as exc:
        return row | {"refused": exc.message[:200], "seconds": time.monotonic() - start}
    outcomes = OfflineRtlProposer().explain(target.source)
    row["rules"] = {o.rule: o.sites for o in outcomes if o.applied}
    row["why_not"] = {o.rule: o.reason[:160] for o in outcomes if not o.applied}
    return row | {"seconds": time.monotonic() - start}


def survey(chosen: list[Path], jobs: int) -> str:
    """Run the survey; print each design's line and return the summary (markdown)."""
    start = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="evoforge-survey-") as tmp,
        ThreadPoolExecutor(max_workers=jobs) as pool,
    ):
        rows = list(pool.map(lambda kp: survey_one(kp[1], Path(tmp) / str(kp[0])), enumerate(chosen)))
    accepted = [r for r in rows if "refused" not in r]
    proposing = [r for r in accepted if r["rules"]]
    fires: Counter[str] = Counter(rule for r in proposing for rule in r["rules"])
    for r in rows:
        if "refused" in r:
            print(f"{r['suite']}/{r['design']}: refused: {r['refused']}")
        else:
            rules = ", ".join(f"{k}×{v}" for k, v in r["rules"].items()) or "NONE"
            print(f"{r['suite']}/{r['design']}: {rules}")
    reasons: Counter[str] = Counter()
    for r in accepted:
        if not r["rules"]:
            for rule, why in r["why_not"].items():
                reasons[f"{rule}: {why[:90]}"] += 1
    share = 100 * len(proposing) / max(1, len(accepted))
    lines = [
        SURVEY_SECTION,
        "",
        f"Command: `.venv/bin/python bench/corpus.py --propose-only --jobs {jobs} --write` "
        f"({len(rows)} designs, {time.monotonic() - start:.0f} s). Front end and the offline rules on "
        "each original, no verification: what the rules find, not what verifies (that is the full run "
        "above).",
        "",
        f"Designs {len(rows)}, accepted {len(accepted)}, with at least one proposal: "
        f"**{len(proposing)}/{len(accepted)} ({share:.0f} %; goal ≥ 80 %)**.",
        "",
        "| rule | designs it proposes on |",
        "|---|---|",
        *(f"| `{rule}` | {n} |" for rule, n in fires.most_common()),
        "",
        "Designs with no proposal: "
        + (", ".join(f"{r['suite']}/{r['design']}" for r in accepted if not r["rules"]) or "none")
        + ".",
        "",
        "Why not, on the designs with no proposal (rule: reason × designs, the most common):",
        "",
        *(f"- {n} × {reason}" for reason, n in reasons.most_common(12)),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--liberty", type=Path, default=SKY130)
    parser.add_argument("--only", nargs="*", help="design file names (without folder)")
    parser.add_argument("--limit", type=int, help="the first N designs only")
    parser.add_argument("--rows", type=Path, help="JSON-lines file: append each result, reuse earlier ones")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="re-run the independent check on reused rows it did not confirm (rows that kept their best)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="designs run at a time")
    parser.add_argument("--design-timeout", type=float, help="seconds per design before it is cut off")
    parser.add_argument(
        "--propose-only", action="store_true", help="survey: front end + offline rules, no verification"
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"no corpus at {CORPUS}: nothing to measure", file=sys.stderr)
        return 2
    chosen = [p for p in designs() if not args.only or p.name in args.only or p.stem in args.only]
    if args.limit:
        chosen = chosen[: args.limit]
    if args.propose_only:
        summary = survey(chosen, max(1, args.jobs))
        print()
        print(summary)
        if args.write:
            write_section(SURVEY_SECTION, summary)
        return 0
    done: dict[str, dict[str, Any]] = {}
    if args.rows and args.rows.exists():
        for line in args.rows.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["design"]] = row
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="evoforge-corpus-") as tmp:
        lib = prepare_liberty(args.liberty, Path(tmp) / "cache")

        def measure(k: int, path: Path) -> dict[str, Any]:
            if path.name in done:
                row = done[path.name]
                unconfirmed = not (row.get("check") or {}).get("equivalent")
                if args.recheck and unconfirmed and row.get("best_source") and row.get("top"):
                    row["check"] = independent_check(
                        path, row["best_source"], row["top"], lib.path, Path(tmp) / f"{k}-check"
                    )
                    row["rechecked"] = True
                    if args.rows:  # appended: the later line is the one reused
                        with args.rows.open("a") as out:
                            out.write(json.dumps(row) + "\n")
                return row
            work = Path(tmp) / f"{k}"
            work.mkdir()
            row = run_one(path, args.budget, args.liberty, lib.path, work, args.design_timeout)
            print(json.dumps(row), file=sys.stderr)
            if args.rows:
                with args.rows.open("a") as out:  # one short append per row: whole lines
                    out.write(json.dumps(row) + "\n")
            return row

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = list(pool.map(measure, range(len(chosen)), chosen))
    partial = "" if len(chosen) == len(designs()) else f" (on {len(chosen)} of {len(designs())} designs)"
    text = render(rows, args.budget, partial)
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
