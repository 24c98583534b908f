"""The ``evoforge`` command: run, verify, jobs, show, export, kb, serve, worker.

The only place that prints and chooses exit codes: 0 success / accepted, 1 rejected or failed,
2 unusable input, 3 the verifier itself failed. ``--json`` prints exactly one JSON object on stdout;
progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evoforge import __version__
from evoforge.config import LlmSettings, Settings
from evoforge.domain import (
    DEFAULT_RTL_OBJECTIVES,
    Assurance,
    JobStatus,
    Objective,
    Target,
    Verdict,
    improvement,
)
from evoforge.errors import BadInputError, ConfigError, EvoforgeError, NotFoundError

log = logging.getLogger("evoforge")

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT, EXIT_VERIFIER_ERROR = 0, 1, 2, 3


# -- progress on stderr ----------------------------------------------------------------------------


class StderrProgress:
    """A one-line progress bar on a terminal; one line per update otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def update(self, done: int, total: int, message: str) -> None:
        if not self.enabled:
            return
        width = 24
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        line = f"[{bar}] {done}/{total} {message}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line[:120])
            if done >= total and message == "done":
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


# -- argument parsing ------------------------------------------------------------------------------


def _objectives(text: str) -> tuple[Objective, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    aliases = {
        "area": Objective.AREA,
        "delay": Objective.DELAY,
        "cells": Objective.CELLS,
        "depth": Objective.DEPTH,
    }
    out = []
    for name in names:
        objective = aliases.get(name) or next((o for o in Objective if o.value == name), None)
        if objective is None:
            raise argparse.ArgumentTypeError(
                f"unknown objective {name!r} (choose from {', '.join(sorted(aliases))})"
            )
        out.append(objective)
    if not out:
        raise argparse.ArgumentTypeError("give at least one objective")
    return tuple(out)


def _assurance(text: str) -> str:
    try:
        Assurance.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top", help="top module (inferred when only one module is not instantiated)")
    parser.add_argument("--clock", help="clock port (default: found by name; 'none' for combinational)")
    parser.add_argument("--reset", help="reset port (default: found by name; 'none' for no reset)")
    polarity = parser.add_mutually_exclusive_group()
    polarity.add_argument("--reset-active-low", dest="reset_low", action="store_true", default=None)
    polarity.add_argument("--reset-active-high", dest="reset_low", action="store_false")
    parser.add_argument("--test", type=Path, help="a cocotb test module run against every candidate too")
    parser.add_argument("--liberty", type=Path, help="liberty file (.lib or .lib.gz); default: generic")
    parser.add_argument(
        "--assurance", type=_assurance, help="minimum: simulated (default), bounded(N), proven"
    )
    parser.add_argument("--clock-period", type=float, help="timing constraint in ns (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evoforge", description="Make RTL smaller and faster, verified.")
    parser.add_argument("--version", action="version", version=f"evoforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="optimise a target: search, verify, store")
    run.add_argument("target", type=Path, nargs="*", help="design file(s)")
    _add_target_options(run)
    run.add_argument("--budget", type=int, help="candidates to propose (default 20)")
    run.add_argument(
        "--proposer",
        choices=("offline", "llm", "mixed"),
        help="who proposes rewrites (default: mixed when an LLM endpoint is configured, else offline)",
    )
    llm = run.add_argument_group("LLM endpoint (the API key is read from OPENAI_API_KEY only)")
    llm.add_argument("--base-url", help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    llm.add_argument("--model", help="coder model (default: $EVOFORGE_MODEL, or the endpoint's only model)")
    llm.add_argument("--planner-model", help="planner model (default: the coder model)")
    llm.add_argument("--token-budget", type=int, help="stop asking the LLM after this many tokens (per job)")
    llm.add_argument("--llm-timeout", type=float, help="seconds per LLM request (default 120)")
    llm.add_argument("--max-repairs", type=int, help="coder repairs after a failed quick check (default 2)")
    run.add_argument(
        "--objective", type=_objectives, help="comma-separated, first is primary (default area,delay)"
    )
    run.add_argument("--seed", type=int, help="random seed of the search (default 0)")
    run.add_argument("--workers", type=int, help="parallel evaluations (default 2)")
    run.add_argument("--db", help="SQLAlchemy database URL (default: SQLite in the data directory)")
    run.add_argument("--resume", type=int, metavar="JOB", help="continue a killed or failed job")

    verify = sub.add_parser("verify", help="run the verifier cascade on one candidate")
    verify.add_argument("target", type=Path, help="the original design")
    verify.add_argument("candidate", type=Path, help="the rewrite to check")
    _add_target_options(verify)

    jobs = sub.add_parser("jobs", help="list jobs")
    jobs.add_argument("--db")
    jobs.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="a job and its candidates (or one candidate with --candidate)")
    show.add_argument("job", type=int)
    show.add_argument("--candidate", type=int, help="show one candidate's stages")
    show.add_argument("--db")
    show.add_argument("--json", action="store_true")

    export = sub.add_parser("export", help="write a job's best candidate to a file")
    export.add_argument("job", type=int)
    export.add_argument("--best", action="store_true", default=True, help="the best candidate (default)")
    export.add_argument("--candidate", type=int, help="a specific candidate instead of the best")
    export.add_argument("-o", "--output", type=Path, required=True)
    export.add_argument("--db")

    serve = sub.add_parser("serve", help="web UI + JSON API, with an embedded worker by default")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="queue jobs only; run `evoforge worker`")
    serve.add_argument("--db")
    worker = sub.add_parser("worker", help="claim queued jobs from the database and run them")
    worker.add_argument("--db")
    worker.add_argument("--max-jobs", type=int, help="exit after this many jobs (default: run forever)")
    worker.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")

    kb = sub.add_parser("kb", help="the knowledge base: optimisation rules and learned rewrites")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    kb_list = kb_sub.add_parser("list", help="list entries (built-in and learned, kept apart)")
    kb_search = kb_sub.add_parser("search", help="entries that best match a query (tags + text)")
    kb_search.add_argument("query", help="words, e.g. signal names on a critical path")
    kb_search.add_argument("-k", type=int, default=5, help="how many entries (default 5)")
    for p in (kb_list, kb_search):
        p.add_argument("--domain", choices=("rtl", "kernel"))
        p.add_argument("--tag", action="append", default=[], help="keep entries with this tag/goal (repeat)")
    kb_list.add_argument("--learned", action="store_true", help="only learned entries")
    kb_list.add_argument("--builtin", action="store_true", help="only built-in entries")
    kb_show = kb_sub.add_parser("show", help="one entry in full")
    kb_show.add_argument("id")
    for p in (kb_list, kb_search, kb_show):
        p.add_argument("--json", action="store_true")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    rtl = settings.rtl.model_copy()
    if getattr(args, "liberty", None) is not None:
        rtl.liberty = args.liberty
    if getattr(args, "assurance", None):
        rtl.min_assurance = args.assurance
    if getattr(args, "clock_period", None):
        if args.clock_period <= 0:
            raise ConfigError("--clock-period must be positive (ns)")
        rtl.clock_period_ns = args.clock_period
    search = settings.search.model_copy()
    for field in ("budget", "seed", "workers", "proposer"):
        value = getattr(args, field, None)
        if value is not None:
            setattr(search, field, value)
    if search.budget < 1:
        raise ConfigError("--budget must be at least 1")
    if search.workers < 1:
        raise ConfigError("--workers must be at least 1")
    db = getattr(args, "db", None) or settings.db
    llm = settings.llm.model_copy()
    flags = {"base_url": "base_url", "model": "model", "planner_model": "planner_model"}
    flags |= {"token_budget": "token_budget", "llm_timeout": "timeout_s", "max_repairs": "max_repairs"}
    for flag, key in flags.items():
        if getattr(args, flag, None) is not None:
            setattr(llm, key, getattr(args, flag))
    try:
        llm = LlmSettings.model_validate(llm.model_dump())
    except ValueError as exc:
        raise ConfigError(f"invalid LLM option: {exc}") from exc
    return settings.model_copy(update={"rtl": rtl, "search": search, "db": db, "llm": llm})


# -- commands --------------------------------------------------------------------------------------


def _target_options(args: argparse.Namespace) -> Any:
    from evoforge.verifiers.rtl.target import RtlTargetOptions

    return RtlTargetOptions(
        top=args.top, clock=args.clock, reset=args.reset, reset_active_low=args.reset_low, user_test=args.test
    )


def _verifier(target: Target, settings: Settings) -> Any:
    from evoforge.search.jobs import make_verifier

    return make_verifier(target, settings)


def _load_target(paths: Sequence[Path], args: argparse.Namespace, settings: Settings) -> Target:
    from evoforge.verifiers.rtl.target import load_rtl_target

    if any(p.suffix == ".py" for p in paths):
        raise BadInputError(
            "kernel targets (KernelBench .py problems) are not supported by this version",
            hint="pass a Verilog design (.v / .sv)",
        )
    return load_rtl_target(paths, _target_options(args), workdir=settings.work_dir() / "target")


def _stage_rows(verdict: Verdict) -> list[dict[str, Any]]:
    return [
        {"name": r.name, "ok": r.ok, "seconds": round(r.seconds, 3), "detail": r.detail, "cached": r.cached}
        for r in verdict.stages
    ]


def cmd_verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    target = _load_target([args.target], args, settings)
    if not args.candidate.is_file():
        raise BadInputError(f"{args.candidate}: no such file", hint="pass the candidate's Verilog file")
    source = args.candidate.read_text(errors="replace")
    verifier = _verifier(target, settings)
    progress = StderrProgress(enabled=not args.json)
    baseline = verifier.baseline()
    stages = len(verifier_stage_names())
    verdict = verifier.verify(
        source,
        on_stage=lambda r: progress.update(
            verifier_stage_names().index(r.name) + 1, stages, f"{r.name}: {'ok' if r.ok else 'FAILED'}"
        ),
    )
    gain = improvement(baseline.metrics, verdict.metrics) if verdict.accepted else {}
    verdict_name = "error" if verdict.error else ("accepted" if verdict.accepted else "rejected")
    payload = {
        "verdict": verdict_name,
        "stage": verdict.stage,
        "reason": verdict.reason,
        "assurance": str(verdict.assurance) if verdict.assurance else None,
        "metrics": verdict.metrics.to_dict(),
        "baseline": baseline.metrics.to_dict(),
        "improvement": gain,
        "functional_hash": verdict.functional_hash,
        "implementation_hash": verdict.implementation_hash,
        "stages": _stage_rows(verdict),
    }
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        _print_verdict(payload)
    if verdict.error:
        return EXIT_VERIFIER_ERROR
    return EXIT_OK if verdict.accepted else EXIT_REJECTED


def verifier_stage_names() -> list[str]:
    from evoforge.verifiers.rtl.cascade import RTL_CASCADE

    return [name for name, _ in RTL_CASCADE]


def _print_verdict(payload: dict[str, Any]) -> None:
    for stage in payload["stages"]:
        mark = "ok  " if stage["ok"] else "FAIL"
        print(f"  {mark} {stage['name']:<12} {stage['seconds']:7.2f}s  {stage['detail']}")
    print(f"verdict: {payload['verdict']} at {payload['stage']}: {payload['reason']}")
    if payload["assurance"]:
        print(f"assurance: {payload['assurance']}")
    if payload["improvement"]:
        gains = ", ".join(f"{k} {v:.3f}x" for k, v in payload["improvement"].items())
        print(f"improvement (original/candidate): {gains}")


def cmd_run(args: argparse.Namespace) -> int:
    from evoforge.search import jobs
    from evoforge.search.report import job_report
    from evoforge.store.engine import open_store

    settings = _settings(args)
    store = open_store(settings.database_url)
    if args.resume is not None:
        if args.target:
            raise ConfigError("--resume JOB takes no target file", hint="evoforge run --resume 3")
        job_id = args.resume
        budget = args.budget
    else:
        if not args.target:
            raise BadInputError("no design file given", hint="evoforge run design.v [--top TOP]")
        target = _load_target(args.target, args, settings)
        settings = jobs.choose_proposer(settings)  # a bad endpoint is reported before a job exists
        objectives = args.objective or DEFAULT_RTL_OBJECTIVES
        job_id = jobs.create_job(store, target, settings, objectives, status=JobStatus.RUNNING)
        budget = None
    log.info("job %s (%s)", job_id, settings.database_url)
    jobs.run_job(
        store,
        job_id,
        settings,
        StderrProgress(enabled=not args.json),
        budget=budget,
        clear_cancel=args.resume is not None,
    )
    with store.transaction() as session:
        report = job_report(session, job_id)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_job(report)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from evoforge.web import create_app, is_loopback

    settings = _settings(args)
    if not is_loopback(args.host) and not settings.web_token:
        raise ConfigError(
            f"--host {args.host} is not a loopback address: writes need a token",
            hint="set EVOFORGE_WEB_TOKEN=SECRET (clients send 'Authorization: Bearer SECRET')",
        )
    app = create_app(settings, embedded_worker=not args.no_worker, require_token=not is_loopback(args.host))
    print(f"evoforge: serving on http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from evoforge.search.jobs import Worker
    from evoforge.store.engine import open_store

    settings = _settings(args)
    worker = Worker(open_store(settings.database_url), settings)
    print(f"evoforge: {worker.name} waiting for queued jobs", file=sys.stderr)
    done = worker.run_forever(max_jobs=args.max_jobs)
    print(f"evoforge: {worker.name} ran {done} job(s)", file=sys.stderr)
    return EXIT_OK


def _fmt_metrics(metrics: dict[str, Any]) -> str:
    units = {"area_um2": "µm²", "delay_ns": "ns"}
    return ", ".join(f"{k.split('_')[0]} {v:g}{units.get(k, '')}" for k, v in metrics.items()) or "-"


def _print_job(report: dict[str, Any]) -> None:
    counts = report["counts"]
    print(f"job {report['job_id']}: {report['status']}  target {report['target']['name']}")
    if report.get("error"):
        print(f"  error: {report['error']}")
    print(f"  baseline: {_fmt_metrics(report['baseline']['metrics'])}")
    print(
        f"  {counts['proposed']} proposed, {counts['evaluated']} evaluated, "
        f"{counts['cache_hits']} cache hits, {counts['rejected']} rejected"
    )
    llm = report.get("llm") or {}
    if llm.get("calls"):
        print(
            f"  LLM: {llm['calls']} calls ({llm['errors']} failed), "
            f"{llm['prompt_tokens']} prompt + {llm['completion_tokens']} completion tokens"
        )
    best = report["best"]
    if best is None:
        print("  no improvement found")
    else:
        gains = ", ".join(f"{k} {v:.3f}x" for k, v in best["improvement"].items())
        print(f"  best: candidate {best['candidate_id']} ({best['origin']}, {best['assurance']}): {gains}")
        print(f"        {_fmt_metrics(best['metrics'])}")
        for step in best.get("lineage") or []:
            print(f"        ← #{step['candidate_id']} {step['origin']}: {step['note'][:100]}")
    _print_front(report.get("pareto_front") or [])
    for c in report["candidates"]:
        where = f" at {c['rejected_stage']}" if c["rejected_stage"] else ""
        hit = f" [cache: {c['cache_hit']}]" if c["cache_hit"] else ""
        print(f"  #{c['id']:<5} {c['status']}{where}{hit}  {c['origin']}  {c['reason'][:90]}")


def _print_front(front: list[dict[str, Any]]) -> None:
    """The area/delay trade-offs: a rewrite that saves area but adds delay is shown, not dropped."""
    if len(front) < 1:
        return
    print(f"  Pareto front (area, delay): {len(front)} point(s)")
    for row in front:
        gains = ", ".join(f"{k.split('_')[0]} {v:.2f}x" for k, v in row["improvement"].items())
        print(f"    #{row['candidate_id']:<5} {row['origin']:<32} {row['assurance'] or '-':<20} {gains}")


def _open(args: argparse.Namespace) -> Any:
    from evoforge.store.engine import open_store

    return open_store(_settings(args).database_url)


def cmd_jobs(args: argparse.Namespace) -> int:
    from evoforge.store import repository

    with _open(args).transaction() as session:
        jobs: list[dict[str, Any]] = [
            {
                "job_id": j.id,
                "status": j.status,
                "kind": j.kind,
                "target": j.target_name,
                "created_at": j.created_at.isoformat(),
                "proposed": j.proposed,
                "best_candidate_id": j.best_candidate_id,
            }
            for j in repository.list_jobs(session)
        ]
    if args.json:
        print(json.dumps({"jobs": jobs}, indent=2))
    elif not jobs:
        print("no jobs yet: start one with `evoforge run design.v`")
    else:
        for j in jobs:
            print(
                f"{j['job_id']:>5}  {j['status']:<10} {j['kind']:<6} {j['target']:<24} "
                f"{j['created_at'][:19]}  {j['proposed']} proposed, best #{j['best_candidate_id']}"
            )
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from evoforge.search.report import candidate_row, job_report, llm_call_rows
    from evoforge.store import repository

    with _open(args).transaction() as session:
        if args.candidate is not None:
            candidate = repository.get_candidate(session, args.candidate)
            if candidate.job_id != args.job:
                raise NotFoundError(f"candidate {args.candidate} does not belong to job {args.job}")
            payload = candidate_row(candidate) | {
                "source": candidate.source,
                "stages": [
                    {
                        "name": r.name,
                        "ok": r.ok,
                        "error": r.error,
                        "cached": r.cached,
                        "seconds": r.seconds,
                        "detail": r.detail,
                        "metrics": r.metrics,
                        "data": r.data,
                    }
                    for r in candidate.stage_runs
                ],
                "llm_calls": llm_call_rows(session, args.job, candidate.id),
            }
        else:
            payload = job_report(session, args.job)
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    elif args.candidate is not None:
        print(f"candidate {payload['id']} ({payload['origin']}): {payload['status']}  {payload['reason']}")
        if payload["assurance"]:
            print(f"assurance: {payload['assurance']}")
        for stage in payload["stages"]:
            mark = "ok  " if stage["ok"] else ("ERR " if stage["error"] else "FAIL")
            print(f"  {mark} {stage['name']:<12} {stage['seconds']:7.2f}s  {stage['detail']}")
        for call in payload["llm_calls"]:
            _print_llm_call(call)
    else:
        _print_job(payload)
    return EXIT_OK


def _excerpt(text: str | None, limit: int = 300) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _print_llm_call(call: dict[str, Any]) -> None:
    tokens = f"{call['prompt_tokens'] or 0}+{call['completion_tokens'] or 0} tokens"
    latency = f"{call['latency_s']:.2f}s" if call["latency_s"] is not None else "-"
    print(f"  llm call {call['id']} {call['role']} ({call['model']}, {tokens}, {latency})")
    if call["error"]:
        print(f"    error:  {call['error']}")
    print(f"    prompt: {_excerpt(call['prompt'][-600:])}")
    print(f"    reply:  {_excerpt(call['reply'])}")


def cmd_export(args: argparse.Namespace) -> int:
    from evoforge.store import repository

    with _open(args).transaction() as session:
        job = repository.get_job(session, args.job)
        cid = args.candidate if args.candidate is not None else job.best_candidate_id
        if cid is None:
            raise NotFoundError(
                f"job {args.job} has no best candidate (no verified improvement)",
                hint=f"see its candidates with: evoforge show {args.job}",
            )
        candidate = repository.get_candidate(session, cid)
        source = candidate.source
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(source)
    print(f"wrote candidate {cid} of job {args.job} to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_kb(args: argparse.Namespace) -> int:
    from evoforge.kb import KnowledgeBase, learned_path

    kb = KnowledgeBase.load(learned=learned_path(Settings().data_dir))
    if args.kb_command == "show":
        entry = kb.get(args.id)
        if args.json:
            print(json.dumps(entry.to_json(), indent=2))
        else:
            print(entry.as_prompt())
        return EXIT_OK
    if args.kb_command == "search":
        hits = kb.ranked(args.query, domain=args.domain, tags=args.tag, k=args.k)
        rows = [h.entry.row() | {"score": round(h.score, 3)} for h in hits]
        if args.json:
            print(json.dumps({"query": args.query, "entries": rows}, indent=2))
        for row in [] if args.json else rows:
            print(f"{row['score']:7.2f}  {row['id']:<28} {row['kind']:<8} {row['title']}")
        return EXIT_OK
    where = {"domain": args.domain, "tags": args.tag}
    groups = {
        "builtin": [] if args.learned else kb.filter(**where, include_learned=False),
        "learned": [] if args.builtin else kb.filter(**where, include_builtin=False),
    }
    if args.json:
        print(json.dumps({k: [e.row() for e in v] for k, v in groups.items()}, indent=2))
        return EXIT_OK
    for kind, entries in groups.items():
        if (kind == "learned" and args.builtin) or (kind == "builtin" and args.learned):
            continue
        print(f"{kind} ({len(entries)}):")
        for e in entries:
            print(f"  {e.id:<28} {e.domain:<6} {','.join(e.goals):<18} {e.title}")
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "verify": cmd_verify,
    "jobs": cmd_jobs,
    "show": cmd_show,
    "export": cmd_export,
    "kb": cmd_kb,
    "serve": cmd_serve,
    "worker": cmd_worker,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return COMMANDS[args.command](args)
    except EvoforgeError as exc:
        print(f"evoforge: error: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, BadInputError | NotFoundError) else EXIT_REJECTED
    except KeyboardInterrupt:
        print("evoforge: interrupted (a run can continue with --resume JOB)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
