"""The ``evoforge`` command: run, verify, jobs, show, export, kb, serve, worker.

The only place that prints and chooses exit codes: 0 success / accepted, 1 rejected or failed,
2 unusable input (``BadInputError``, an unknown id, bad flags), 3 the verifier or its machinery
failed (a missing or crashing tool, ``ToolError``, ``VerifierError``, ``StoreError``), 130
interrupted, 141 stdout closed early (``evoforge jobs | head -1``). ``--json`` prints exactly one
JSON object on stdout — an error too (``{"error": …, "hint": …, "exit_code": …}``); progress and
logs go to stderr, with or without ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from evoforge import __version__
from evoforge.cli.bench import add_bench_parser, cmd_bench
from evoforge.cli.browse import cmd_export, cmd_jobs, cmd_kb, cmd_show, print_job
from evoforge.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_VERIFIER_ERROR,
    StderrProgress,
    settings_from_args,
)
from evoforge.cli.kernel_options import add_kernel_options
from evoforge.config import Settings
from evoforge.domain import (
    DEFAULT_KERNEL_OBJECTIVES,
    DEFAULT_RTL_OBJECTIVES,
    KERNEL_STAGES,
    RTL_STAGES,
    Assurance,
    JobStatus,
    Objective,
    Target,
    TargetKind,
    Verdict,
    improvement,
)
from evoforge.errors import (
    BadInputError,
    ConfigError,
    EvoforgeError,
    ExecutorError,
    NotFoundError,
    StoreError,
    ToolError,
    VerifierError,
)

log = logging.getLogger("evoforge")


# -- argument parsing ------------------------------------------------------------------------------


def _objectives(text: str) -> tuple[Objective, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    aliases = {
        "area": Objective.AREA,
        "delay": Objective.DELAY,
        "cells": Objective.CELLS,
        "depth": Objective.DEPTH,
        "runtime": Objective.RUNTIME,
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
    parser.add_argument(
        "--clock",
        help="clock port(s), comma-separated, main first (default: the inputs that drive flop clock "
        "pins; 'none' for combinational)",
    )
    parser.add_argument(
        "--reset",
        help="reset port(s), comma-separated (default: the inputs that reset flops; 'none' for no reset)",
    )
    polarity = parser.add_mutually_exclusive_group()
    polarity.add_argument(
        "--reset-active-low",
        dest="reset_low",
        action="store_true",
        default=None,
        help="the resets are active low (default: the polarity the logic shows)",
    )
    polarity.add_argument(
        "--reset-active-high", dest="reset_low", action="store_false", help="the resets are active high"
    )
    parser.add_argument("--test", type=Path, help="a cocotb test module run against every candidate too")
    parser.add_argument("--liberty", type=Path, help="liberty file (.lib or .lib.gz); default: generic")
    parser.add_argument(
        "--assurance",
        type=_assurance,
        help="minimum: sampled, simulated (default: reached the state horizon), bounded(N), proven",
    )
    parser.add_argument("--clock-period", type=float, help="timing constraint in ns (default 10)")
    kernel = parser.add_argument_group("kernel targets (KernelBench .py problems)")
    kernel.add_argument(
        "--gpu-arch", type=int, help="GPU architecture of the ahead-of-time compile (default 90)"
    )
    kernel.add_argument(
        "--threads", type=int, help="CPU threads for torch and OpenMP when timing (default all)"
    )
    kernel.add_argument(
        "--allow-library",
        action="store_true",
        help="allow torch compute outside the custom kernels (turns off the must-use-a-kernel policy)",
    )
    kernel.add_argument(
        "--gpu",
        action="store_true",
        help="time on a GPU: only a worker (or Ray node) with one evaluates the job",
    )
    add_kernel_options(kernel)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")


class UsageError(Exception):
    """A command line argparse refuses (raised instead of argparse's own exit, to answer in JSON)."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}", self.format_usage())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evoforge", description="Make RTL smaller and faster, verified.")
    parser.add_argument("--version", action="version", version=f"evoforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    llm.add_argument(
        "--llm-calls", type=int, help="stop asking the LLM after this many requests (default 4 × budget)"
    )
    llm.add_argument(
        "--llm-concurrency", type=int, help="LLM requests in flight (default 1 for a local server, else 4)"
    )
    llm.add_argument("--max-repairs", type=int, help="coder repairs after a failed quick check (default 2)")
    run.add_argument(
        "--objective", type=_objectives, help="comma-separated, first is primary (default area,delay)"
    )
    run.add_argument("--seed", type=int, help="random seed of the search (default 0)")
    run.add_argument("--workers", type=int, help="parallel evaluations (default 2)")
    run.add_argument("--db", help="SQLAlchemy database URL (default: SQLite in the data directory)")
    run.add_argument("--resume", type=int, metavar="JOB", help="continue a killed or failed job")
    _executor_arguments(run)

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
    export.add_argument("--diff", action="store_true", help="write a diff against the original instead")
    export.add_argument("--db")

    serve = sub.add_parser("serve", help="web UI + JSON API, with an embedded worker by default")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="queue jobs only; run `evoforge worker`")
    serve.add_argument("--db")
    worker = sub.add_parser("worker", help="claim queued jobs from the database and run them")
    worker.add_argument("--db")
    worker.add_argument("--max-jobs", type=int, help="exit after this many jobs (default: run forever)")
    _executor_arguments(worker)
    worker.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")

    add_bench_parser(sub)
    kb = sub.add_parser("kb", help="the knowledge base: optimisation rules and learned rewrites")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True, parser_class=_Parser)
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
        p.add_argument("--db", help="the database whose learned entries to include")
    return parser


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
        from evoforge.verifiers.kernel.target import load_kernel_target

        if len(paths) != 1:
            raise BadInputError("a kernel target is one problem file", hint="evoforge run problem.py")
        return load_kernel_target(paths[0], settings.kernel, work_dir=settings.work_dir() / "target")
    target = load_rtl_target(paths, _target_options(args), workdir=settings.work_dir() / "target")
    if target.rtl is not None:
        for note in target.rtl.notes:  # how clocks and resets were found, guesses included
            print(f"target {target.name}: {note}", file=sys.stderr)
    return target


def _stage_rows(verdict: Verdict) -> list[dict[str, Any]]:
    return [
        {"name": r.name, "ok": r.ok, "seconds": round(r.seconds, 3), "detail": r.detail, "cached": r.cached}
        for r in verdict.stages
    ]


def cmd_verify(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    target = _load_target([args.target], args, settings)
    if not args.candidate.is_file():
        raise BadInputError(f"{args.candidate}: no such file", hint="pass the candidate's source file")
    source = args.candidate.read_text(errors="replace")
    verifier = _verifier(target, settings)
    progress = StderrProgress()
    baseline = verifier.baseline()
    names = verifier_stage_names(target.kind)
    verdict = verifier.verify(
        source,
        on_stage=lambda r: progress.update(
            names.index(r.name) + 1, len(names), f"{r.name}: {'ok' if r.ok else 'FAILED'}"
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


def verifier_stage_names(kind: TargetKind = TargetKind.RTL) -> list[str]:
    return list(KERNEL_STAGES if kind is TargetKind.KERNEL else RTL_STAGES)


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
    from evoforge.search import jobs, proposing
    from evoforge.search.report import job_report
    from evoforge.store.engine import open_store

    settings = settings_from_args(args)
    store = open_store(settings.database_url, create_dir=settings.db is None)
    if args.resume is not None:
        if args.target:
            raise ConfigError("--resume JOB takes no target file", hint="evoforge run --resume 3")
        job_id = args.resume
        budget = args.budget
    else:
        if not args.target:
            raise BadInputError(
                "no target file given", hint="evoforge run design.v [--top TOP], or evoforge run problem.py"
            )
        target = _load_target(args.target, args, settings)
        settings = proposing.choose_proposer(settings)  # a bad endpoint is reported before a job exists
        default = DEFAULT_KERNEL_OBJECTIVES if target.kind is TargetKind.KERNEL else DEFAULT_RTL_OBJECTIVES
        objectives = args.objective or default
        job_id = jobs.create_job(store, target, settings, objectives, status=JobStatus.RUNNING)
        budget = None
    log.info("job %s (%s)", job_id, settings.database_url)
    # stdout carries only the result: what libraries print meanwhile (Ray's worker-death notices) goes
    # to stderr
    with contextlib.redirect_stdout(sys.stderr):
        jobs.run_job(
            store,
            job_id,
            settings,
            StderrProgress(),
            budget=budget,
            clear_cancel=args.resume is not None,
        )
    with store.transaction() as session:
        report = job_report(session, job_id)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_job(report)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from evoforge.web import create_app, is_loopback

    settings = settings_from_args(args)
    if not is_loopback(args.host) and not settings.web_token:
        raise ConfigError(
            f"--host {args.host} is not a loopback address: writes need a token",
            hint="set EVOFORGE_WEB_TOKEN=SECRET (clients send 'Authorization: Bearer SECRET')",
        )
    app = create_app(
        settings, embedded_worker=not args.no_worker, require_token=not is_loopback(args.host), host=args.host
    )
    print(f"evoforge: serving on http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from evoforge.search.jobs import JobEnd, Worker
    from evoforge.store.engine import open_store

    settings = settings_from_args(args)

    def ended(end: JobEnd) -> None:
        if end.status == "lost":
            print(
                f"evoforge: {worker.name}: job {end.job_id} lost its lease (another worker finishes it)",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"evoforge: {worker.name}: job {end.job_id} ended {end.status}", file=sys.stderr, flush=True
            )

    worker = Worker(open_store(settings.database_url, create_dir=settings.db is None), settings, on_end=ended)
    print(f"evoforge: {worker.name} waiting for queued jobs", file=sys.stderr, flush=True)
    try:
        done = worker.run_forever(max_jobs=args.max_jobs)
    finally:
        worker.close()
    print(f"evoforge: {worker.name} ran {done} job(s)", file=sys.stderr)
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
    "bench": cmd_bench,
}


def _executor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        help="where candidates are evaluated: local threads (default) or a Ray cluster ($EVOFORGE_EXECUTOR)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster: ray://HOST:10001, auto, or HOST:6379 (default: $EVOFORGE_RAY_ADDRESS; "
        "none: start a local cluster)",
    )


def exit_code_of(exc: EvoforgeError) -> int:
    """2 for bad input and unknown ids; 3 when the verifier's machinery failed; 1 otherwise."""
    if isinstance(exc, BadInputError | NotFoundError):
        return EXIT_BAD_INPUT
    if isinstance(exc, ToolError | VerifierError | StoreError | ExecutorError):
        return EXIT_VERIFIER_ERROR
    return EXIT_REJECTED


def _fail(json_mode: bool, code: int, message: str, hint: str | None, kind: str) -> int:
    """Report an error: on stderr always; on stdout as the one JSON object under ``--json``."""
    print(f"evoforge: error: {message}" + (f"\n  hint: {hint}" if hint else ""), file=sys.stderr)
    if json_mode:
        print(json.dumps({"error": message, "hint": hint, "kind": kind, "exit_code": code}, indent=2))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in argv
    try:
        code = _main(argv, json_mode)
        sys.stdout.flush()  # inside the try: a reader that left must not cost a traceback at exit
        return code
    except BrokenPipeError:
        # stdout was closed early (``| head``): not an error worth a traceback; quiet the final flush
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: list[str], json_mode: bool) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        if not json_mode:
            sys.stderr.write(exc.usage)
        return _fail(json_mode, EXIT_BAD_INPUT, str(exc), "see evoforge --help", "UsageError")
    json_mode = bool(getattr(args, "json", False))
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return COMMANDS[args.command](args)
    except EvoforgeError as exc:
        return _fail(json_mode, exit_code_of(exc), exc.message, exc.hint, type(exc).__name__)
    except KeyboardInterrupt:
        return _fail(
            json_mode, 130, "interrupted", "a run can continue with: evoforge run --resume JOB", "Interrupted"
        )


if __name__ == "__main__":
    sys.exit(main())
