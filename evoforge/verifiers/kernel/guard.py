"""What the candidate's worker watches while it runs: torch ops outside kernels, timers.

``OpRecorder`` is a ``TorchDispatchMode`` that notes every aten op dispatched while no kernel launch
is in progress (``launches.in_launch()``). Allocation, views and copies are what a kernel wrapper
needs; any other op outside a launch means torch did (some of) the work — a library fallback when
the "must use a custom kernel" policy is on. ``Snapshot`` records the identities of the timing and
synchronisation functions before the candidate is imported, so that patching them is seen
afterwards. Both run inside the candidate's own process, so a candidate that knows this code can
defeat them: they explain honest mistakes; for C candidates the verdict rests on the replay
(``replay_host``), and threads left running are counted from outside (``procs.Watch``).
"""

from __future__ import annotations

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
    """Function identities taken before the candidate is imported."""

    functions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def take(cls) -> Snapshot:
        return cls({f"{owner}.{name}": getattr(_resolve(owner), name) for owner, name in WATCHED})

    def patched(self) -> list[str]:
        """Watched functions that are no longer the objects they were."""
        return [key for key, original in self.functions.items() if _current(key) is not original]


def _current(key: str) -> Any:
    owner, name = key.rsplit(".", 1)
    return getattr(_resolve(owner), name, None)
