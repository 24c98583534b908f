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
from typing import Any

from evoforge.cli.bench import cmd_bench
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
from evoforge.cli.parser import UsageError, build_parser
from evoforge.config import Settings
from evoforge.domain import (
    DEFAULT_KERNEL_OBJECTIVES,
    DEFAULT_RTL_OBJECTIVES,
    KERNEL_STAGES,
    RTL_STAGES,
    JobStatus,
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
