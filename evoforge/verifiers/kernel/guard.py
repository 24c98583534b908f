"""What the harness watches while a candidate runs: torch ops outside kernels, threads, timers.

``OpRecorder`` is a ``TorchDispatchMode`` that notes every aten op dispatched while no kernel launch
is in progress (``launches.in_launch()``). Allocation, views and copies are what a kernel wrapper
needs; any other op outside a launch means torch did (some of) the work — a library fallback when
the "must use a custom kernel" policy is on. ``Snapshot`` records the identities of the timing and
synchronisation functions and the live threads before the candidate is imported, so that patching
them or leaving work running on another thread is seen afterwards. Runs inside the child processes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: aten ops a kernel wrapper may run outside its kernels: allocation, views, copies, metadata
ALLOWED_OPS = frozenset(
    [
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "zeros",
        "zeros_like",
        "new_zeros",
        "ones",
        "ones_like",
        "new_ones",
        "full",
        "full_like",
        "new_full",
        "scalar_tensor",
        "arange",
        "lift_fresh",
        "lift_fresh_copy",
        "view",
        "_unsafe_view",
        "reshape",
        "_reshape_alias",
        "as_strided",
        "alias",
        "detach",
        "t",
        "transpose",
        "permute",
        "expand",
        "expand_as",
        "unsqueeze",
        "squeeze",
        "select",
        "slice",
        "narrow",
        "flatten",
        "unflatten",
        "unbind",
        "split",
        "split_with_sizes",
        "chunk",
        "contiguous",
        "clone",
        "copy_",
        "_to_copy",
        "to",
        "fill_",
        "zero_",
        "resize_",
        "set_",
        "_local_scalar_dense",
        "is_same_size",
        "stride",
        "size",
        "sym_size",
        "sym_stride",
        "sym_numel",
        "numel",
        "dim",
        "is_contiguous",
        "view_as",
        "movedim",
        "swapaxes",
    ]
)


def op_name(func: Any) -> str:
    packet = getattr(func, "overloadpacket", func)
    return str(getattr(packet, "__name__", packet)).split("::")[-1]


class OpRecorder(TorchDispatchMode):
    """Counts the aten ops run outside kernel launches, by name, while active."""

    def __init__(self) -> None:
        super().__init__()
        self.outside: Counter[str] = Counter()
        from evoforge.verifiers.kernel import launches

        self._in_launch = launches.in_launch  # Triton launches and evoforge.runtime C calls

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if not self._in_launch():
            self.outside[op_name(func)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def compute_ops(self) -> dict[str, int]:
        """Ops outside launches that are not allocation, views or copies."""
        return {
            name: n
            for name, n in self.outside.items()
            if name.rstrip("_") not in ALLOWED_OPS and name not in ALLOWED_OPS
        }


#: functions a candidate could patch to fool a timer
WATCHED = (
    ("time", "perf_counter"),
    ("time", "perf_counter_ns"),
    ("time", "monotonic"),
    ("time", "time"),
    ("torch.cuda", "synchronize"),
    ("torch.cuda.Event", "elapsed_time"),
    ("torch.cuda.Event", "record"),
    ("torch.cuda.Event", "synchronize"),
    ("torch", "allclose"),
    ("torch", "equal"),
)


def _resolve(path: str) -> Any:
    if path == "time":
        return time
    obj: Any = torch
    for part in path.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


@dataclass
class Snapshot:
    """Function identities and thread count taken before the candidate is imported."""

    functions: dict[str, Any] = field(default_factory=dict)
    threads: int = 0
    perf_counter: Any = None

    @classmethod
    def take(cls) -> Snapshot:
        functions = {f"{owner}.{name}": getattr(_resolve(owner), name) for owner, name in WATCHED}
        return cls(functions, threading.active_count(), time.perf_counter)

    def patched(self) -> list[str]:
        """Watched functions that are no longer the objects they were."""
        return [key for key, original in self.functions.items() if _current(key) is not original]

    def extra_threads(self, settle_s: float = 0.05) -> list[str]:
        """Threads alive now that were not before (after letting finished ones end)."""
        deadline = time.monotonic() + settle_s
        while threading.active_count() > self.threads and time.monotonic() < deadline:
            time.sleep(0.01)
        if threading.active_count() <= self.threads:
            return []
        return [t.name for t in threading.enumerate() if t is not threading.main_thread()]


def _current(key: str) -> Any:
    owner, name = key.rsplit(".", 1)
    return getattr(_resolve(owner), name, None)
