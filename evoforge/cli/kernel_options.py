"""The kernel flags shared by ``run``, ``verify`` and ``bench``: sizes, memory, time limits, backends.

``add_kernel_options`` declares them on an argument group; ``apply_kernel_options`` folds the given
ones into a copy of ``KernelSettings`` (validated: a bad value is a ``ConfigError`` naming the flag).
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from evoforge.config import KERNEL_BACKENDS, KernelSettings
from evoforge.errors import ConfigError


def _size(text: str) -> tuple[str, int]:
    name, sep, value = text.rpartition("=")
    if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--size {text!r}: use NAME=VALUE with a positive integer")
    return name.strip(), int(value)


def add_kernel_options(group: Any) -> None:
    """The flags on ``group`` (an argparse parser or argument group)."""
    group.add_argument(
        "--scale",
        help="problem sizes: auto (shrink to fit when the problem does not fit this machine; the default "
        "without a GPU), none (as written), or F in (0, 1] (each size constant times F)",
    )
    group.add_argument(
        "--size",
        type=_size,
        action="append",
        metavar="NAME=VALUE",
        help="run with this value of the problem's size constant NAME (repeat; overrides --scale)",
    )
    group.add_argument(
        "--backend",
        action="append",
        choices=KERNEL_BACKENDS,
        help="kernel backend to propose (repeat; default: what this machine can time — C without a GPU)",
    )
    group.add_argument("--memory-limit", type=float, metavar="GiB", help="memory cap of each kernel child")
    group.add_argument("--stage-timeout", type=float, metavar="S", help="wall-clock limit of one stage (180)")
    group.add_argument("--compile-timeout", type=float, metavar="S", help="limit of one compile (300)")
    group.add_argument(
        "--target-timeout", type=float, metavar="S", help="limit of checking the problem itself (300)"
    )
    group.add_argument(
        "--slow-factor",
        type=float,
        metavar="X",
        help="stop a candidate slower than X times the reference (default 20)",
    )
    group.add_argument(
        "--call-budget", type=float, metavar="MS", help="--scale auto shrinks a reference call to this (100)"
    )


_FLAGS = {
    "scale": "scale",
    "backend": "backends",
    "memory_limit": "memory_limit_gib",
    "stage_timeout": "stage_timeout_s",
    "compile_timeout": "compile_timeout_s",
    "target_timeout": "target_timeout_s",
    "slow_factor": "slow_factor",
    "call_budget": "call_budget_ms",
}


def apply_kernel_options(args: argparse.Namespace, kernel: KernelSettings) -> KernelSettings:
    """``kernel`` with the flags given in ``args`` applied (validated)."""
    update: dict[str, Any] = {}
    for flag, key in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            update[key] = value
    sizes = getattr(args, "size", None)
    if sizes:
        update["sizes"] = dict(sizes)
    if not update:
        return kernel
    try:
        return KernelSettings.model_validate({**kernel.model_dump(), **update})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "?"
        flag = next((f for f, k in _FLAGS.items() if k == field), field).replace("_", "-")
        raise ConfigError(f"--{flag}: {first['msg']}") from exc
