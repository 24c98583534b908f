"""What the evoforge subcommands share: exit codes, settings from flags, progress on stderr."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from evoforge.cli.kernel_options import apply_kernel_options
from evoforge.config import LlmSettings, Settings
from evoforge.errors import ConfigError

log = logging.getLogger("evoforge")

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT, EXIT_VERIFIER_ERROR = 0, 1, 2, 3
#: stdout closed by the reader (128 + SIGPIPE, what a shell reports for a program killed by it)
EXIT_BROKEN_PIPE = 141


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


def settings_from_args(args: argparse.Namespace) -> Settings:
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
    kernel = settings.kernel.model_copy()
    if getattr(args, "gpu_arch", None) is not None:
        kernel.gpu_arch = args.gpu_arch
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise ConfigError("--threads must be at least 1")
        kernel.cpu_threads = args.threads
    if getattr(args, "allow_library", False):
        kernel.require_custom_kernel = False
    kernel = apply_kernel_options(args, kernel)
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
    flags |= {"llm_calls": "call_budget", "llm_concurrency": "max_concurrency"}
    for flag, key in flags.items():
        if getattr(args, flag, None) is not None:
            setattr(llm, key, getattr(args, flag))
    try:
        llm = LlmSettings.model_validate(llm.model_dump())
    except ValueError as exc:
        raise ConfigError(f"invalid LLM option: {exc}") from exc
    return settings.model_copy(update={"rtl": rtl, "kernel": kernel, "search": search, "db": db, "llm": llm})


def open_store_from_args(args: argparse.Namespace) -> Any:
    from evoforge.store.engine import open_store

    settings = settings_from_args(args)
    return open_store(settings.database_url, create_dir=settings.db is None)


def format_metrics(metrics: dict[str, Any]) -> str:
    units = {"area_um2": " µm²", "delay_ns": " ns", "runtime_ms": " ms", "speedup": "x", "shared_bytes": " B"}
    names = {"shared_bytes": "shared"}
    return (
        ", ".join(f"{names.get(k, k.split('_')[0])} {v:.4g}{units.get(k, '')}" for k, v in metrics.items())
        or "-"
    )
