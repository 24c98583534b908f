"""The ``evoforge`` command line's grammar: every subcommand, its options and their checks.

Refusals raise ``UsageError`` (instead of argparse's own exit) so that ``cli.main`` can answer them in
JSON with exit code 2 like any other bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from evoforge import __version__
from evoforge.cli.bench import add_bench_parser
from evoforge.cli.kernel_options import add_kernel_options
from evoforge.domain import Assurance, Objective


def _objectives(text: str) -> tuple[Objective, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    out = []
    for name in names:
        objective = Objective.named(name)
        if objective is None:
            choices = ", ".join(sorted(o.value.split("_")[0] for o in Objective))
            raise argparse.ArgumentTypeError(f"unknown objective {name!r} (choose from {choices})")
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
