"""How big a problem is, without running it at its size: ``python -m evoforge.verifiers.kernel.sizing``.

Runs in a sandboxed child (it executes the problem's code). The request on stdin names the problem
file and its integer size constants (found by :mod:`evoforge.verifiers.kernel.scaling` in the
parent, without executing anything); the child executes the problem with chosen values for those
constants, builds ``Model(*get_init_inputs())`` and the inputs on the ``meta`` device (shapes only,
no memory) and runs the forward there under a dispatch mode that counts, for every op, the bytes it
reads and writes and the floating-point operations it does (``FlopCounterMode``). From those counts
and this machine's copy bandwidth and matmul rate (measured here, in the same process) it estimates
the memory a stage child needs and the time of one reference call.

With ``scale`` ``auto`` it then shrinks the largest size constant step by step until the estimate
fits (memory within the budget, a call within ``call_budget_ms``); with a factor it multiplies every
size constant by it; with explicit ``sizes`` it takes them. The answer (one
``EVOFORGE-RESULT <nonce> <json>`` line) holds the estimates as written and as chosen, the chosen
values and the machine's rates. A problem whose forward cannot run on ``meta`` is estimated from its
inputs and parameters alone, and the answer says so.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import traceback
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MARKER = "EVOFORGE-RESULT"
#: constants whose names say they are not extents (a kernel of 3 stays 3 however small the problem)
NOT_A_SIZE = re.compile(r"kernel|stride|pad|dilat|group|head|eps|axis|seed|dim_?idx|reduce_dim", re.I)
#: constants smaller than this are left alone (kernel sizes, head counts, reduction dims, small batches)
MIN_SCALABLE = 32
#: no constant is shrunk below this
FLOOR = 16
#: per-op dispatch overhead of torch eager, for the time estimate
OP_OVERHEAD_S = 5e-6
#: copies of the inputs and outputs a stage child holds at once (trial, clones, saved copies, reference)
COPIES = 3


@dataclass(frozen=True)
class Estimate:
    """One evaluation of the problem at given sizes (bytes, FLOPs, seconds)."""

    input_shapes: list[list[int]]
    output_shapes: list[list[int]]
    input_bytes: int
    output_bytes: int
    param_bytes: int
    intermediate_bytes: int  # the largest single op output that is not a final output
    read_bytes: int  # bytes read by every op of the forward
    written_bytes: int  # bytes of the tensors every op creates (fresh memory: page faults included)
    flops: int
    ops: int
    forward_error: str | None  # why the forward did not run on meta (inputs and parameters only)

    @property
    def footprint_bytes(self) -> int:
        """What a stage child holds at once (copies of inputs and outputs, parameters, temporaries)."""
        return (
            self.param_bytes + COPIES * (self.input_bytes + self.output_bytes) + 2 * self.intermediate_bytes
        )

    @property
    def io_bytes(self) -> int:
        """One trial's inputs and outputs (what one saved trial file holds)."""
        return self.input_bytes + self.output_bytes


@dataclass(frozen=True)
class Machine:
    copy_bytes_per_s: float  # reading and writing memory already mapped
    fresh_bytes_per_s: float  # writing a new tensor (the kernel maps its pages on first touch)
    matmul_flops_per_s: float
    cuda: bool
    threads: int

    def seconds(self, est: Estimate) -> float:
        return (
            est.flops / self.matmul_flops_per_s
            + est.read_bytes / self.copy_bytes_per_s
            + est.written_bytes / self.fresh_bytes_per_s
            + est.ops * OP_OVERHEAD_S
        )


class SizingError(Exception):
    """The problem cannot be evaluated at some sizes (the message says why)."""


# -- executing the problem at given sizes ----------------------------------------------------------


def scaled_text(text: str, spans: dict[str, list[int]], values: dict[str, int]) -> str:
    """``text`` with the value expression of each constant in ``values`` replaced (lines kept)."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits = []
    for name, value in values.items():
        line0, col0, line1, col1 = spans[name]
        start, end = offsets[line0 - 1] + col0, offsets[line1 - 1] + col1
        edits.append((start, end, f"({value}" + "\n" * (line1 - line0) + ")"))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def load_at(text: str, spans: dict[str, list[int]], values: dict[str, int]) -> types.ModuleType:
    module = types.ModuleType("problem")
    module.__file__ = "problem.py"
    sys.modules["problem"] = module
    exec(compile(scaled_text(text, spans, values), "problem.py", "exec"), module.__dict__)
    for name in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, name):
            raise SizingError(f"the problem defines no {name}")
    return module


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def _nbytes(tensors: list[Any]) -> int:
    return sum(int(t.numel()) * int(t.element_size()) for t in tensors)


def estimate(module: types.ModuleType) -> Estimate:
    """Shapes, bytes and FLOPs of ``module``'s problem on the meta device (no memory used)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        torch.manual_seed(0)
        try:
            init = module.get_init_inputs()
            maker = getattr(module, "get_benchmark_inputs", module.get_inputs)
            inputs = list(maker())
            model = module.Model(*init)
        except Exception as exc:
            raise SizingError(
                f"building the problem on the meta device: {type(exc).__name__}: {exc}"
            ) from exc
    inputs_t = _tensors(inputs)
    params = [*model.parameters(), *model.buffers()] if isinstance(model, torch.nn.Module) else []
    input_shapes = [list(t.shape) for t in inputs_t]
    input_bytes, param_bytes = _nbytes(inputs_t), _nbytes(params)

    class Counter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.read = 0
            self.written = 0
            self.ops = 0
            self.largest = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            if func.__name__.split(".")[0] in (
                "detach",
                "view",
                "_unsafe_view",
                "t",
                "transpose",
                "permute",
                "expand",
                "alias",
                "unsqueeze",
                "squeeze",
                "reshape",
                "as_strided",
                "slice",
                "select",
            ):
                return out
            written = _nbytes(_tensors(out))
            self.read += _nbytes(_tensors(list(args)))
            self.written += written
            self.ops += 1
            self.largest = max(self.largest, written)
            return out

    counter = Counter()
    flops = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), flops, counter:
            output = model(*inputs)
    except Exception as exc:  # data-dependent ops, a CPU tensor made inside forward, …
        io = input_bytes
        return Estimate(
            output_shapes=[],
            output_bytes=io,
            intermediate_bytes=io,
            read_bytes=io + param_bytes,
            written_bytes=io,
            flops=0,
            ops=1,
            forward_error=f"{type(exc).__name__}: {str(exc)[:300]}",
            input_shapes=input_shapes,
            input_bytes=input_bytes,
            param_bytes=param_bytes,
        )
    outs = _tensors(output)
    return Estimate(
        output_shapes=[list(t.shape) for t in outs],
        output_bytes=_nbytes(outs),
        intermediate_bytes=counter.largest,
        read_bytes=counter.read,
        written_bytes=counter.written,
        flops=int(flops.get_total_flops()),
        ops=counter.ops,
        forward_error=None,
        input_shapes=input_shapes,
        input_bytes=input_bytes,
        param_bytes=param_bytes,
    )


def measure_machine(threads: int | None) -> Machine:
    """Copy bandwidth and matmul rate of this machine now (best of a few short runs)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    src = torch.ones(8 << 20)  # 32 MiB
    dst = torch.empty_like(src)
    a = torch.ones(512, 512)
    torch.mm(a, a)  # warm-up: the BLAS sets up its threads on the first call
    best_copy = best_fresh = best_mm = math.inf
    for _ in range(5):
        begin = time.perf_counter()
        dst.copy_(src)
        best_copy = min(best_copy, time.perf_counter() - begin)
        begin = time.perf_counter()
        torch.empty_like(src).fill_(1.0)
        best_fresh = min(best_fresh, time.perf_counter() - begin)
        begin = time.perf_counter()
        torch.mm(a, a)
        best_mm = min(best_mm, time.perf_counter() - begin)
    nbytes = src.numel() * 4
    return Machine(
        copy_bytes_per_s=2 * nbytes / max(best_copy, 1e-6),
        fresh_bytes_per_s=nbytes / max(best_fresh, 1e-6),
        matmul_flops_per_s=2 * 512**3 / max(best_mm, 1e-6),
        cuda=bool(torch.cuda.is_available()),
        threads=torch.get_num_threads(),
    )


# -- choosing sizes --------------------------------------------------------------------------------


def shrink(value: int, target: float) -> int:
    """``target`` rounded down to the alignment of ``value`` (its power-of-two factor, up to 16)."""
    align = 1
    while align < 16 and value % (align * 2) == 0:
        align *= 2
    floor = min(value, FLOOR)
    new = int(target)
    if new >= align:
        new = new // align * align
    return max(floor, min(value, new))


@dataclass
class Search:
    text: str
    spans: dict[str, list[int]]
    problem: dict[str, int]  # the constants as written
    machine: Machine
    memory_budget_bytes: int
    io_budget_bytes: int
    call_budget_s: float

    def at(self, values: dict[str, int]) -> Estimate:
        return estimate(load_at(self.text, self.spans, values))

    def fits(self, est: Estimate) -> list[str]:
        """Why ``est`` does not fit (empty: it fits)."""
        why = []
        if est.footprint_bytes > self.memory_budget_bytes:
            why.append(
                f"needs ~{_gib(est.footprint_bytes)} per check, more than {_gib(self.memory_budget_bytes)}"
            )
        if est.io_bytes > self.io_budget_bytes:
            why.append(
                f"one trial's tensors take {_gib(est.io_bytes)}, more than {_gib(self.io_budget_bytes)}"
            )
        seconds = self.machine.seconds(est)
        if seconds > self.call_budget_s:
            why.append(
                f"a reference call takes ~{seconds * 1e3:.4g} ms, more than {self.call_budget_s * 1e3:.4g} ms"
            )
        return why

    def scalable(self, base: Estimate) -> list[str]:
        """Constants that are extents: big enough, not named like a kernel size, and changing the work."""
        names = []
        for name, value in self.problem.items():
            if value < MIN_SCALABLE or NOT_A_SIZE.search(name):
                continue
            try:
                other = self.at({**self.problem, name: shrink(value, value / 2)})
            except Exception:
                continue
            if (other.input_shapes, other.output_shapes, other.param_bytes, other.flops) != (
                base.input_shapes,
                base.output_shapes,
                base.param_bytes,
                base.flops,
            ):
                names.append(name)
        return names

    def auto(self, base: Estimate, names: list[str]) -> tuple[dict[str, int], Estimate]:
        """Halve the largest shrinkable constant until the estimate fits (or nothing shrinks more)."""
        values = dict(self.problem)
        est = base
        frozen: set[str] = set()
        for _ in range(400):
            if not self.fits(est):
                return values, est
            open_ = [n for n in names if n not in frozen and values[n] > min(self.problem[n], FLOOR)]
            if not open_:
                break
            name = max(open_, key=lambda n: values[n])
            trial = {**values, name: shrink(self.problem[name], values[name] / 2)}
            if trial[name] == values[name]:
                frozen.add(name)
                continue
            try:
                est = self.at(trial)
            except Exception:
                frozen.add(name)
                continue
            values = trial
        return values, est  # as small as it goes: the caller refuses it if memory still does not fit

    def factor(self, names: list[str], factor: float) -> dict[str, int]:
        return {**self.problem, **{n: shrink(self.problem[n], self.problem[n] * factor) for n in names}}


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.3g} GiB" if n >= 1 << 28 else f"{n / (1 << 20):.3g} MiB"


def run(request: dict[str, Any]) -> dict[str, Any]:
    text = Path(request["problem"]).read_text(encoding="utf-8")
    spans = {k: list(v) for k, v in request["spans"].items()}
    problem = {k: int(v) for k, v in request["constants"].items()}
    machine = measure_machine(request.get("threads"))
    search = Search(
        text=text,
        spans=spans,
        problem=problem,
        machine=machine,
        memory_budget_bytes=int(request["memory_budget_bytes"]),
        io_budget_bytes=int(request["io_budget_bytes"]),
        call_budget_s=float(request["call_budget_ms"]) / 1e3,
    )
    try:
        base = search.at(problem)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, SizingError) else f"{type(exc).__name__}: {str(exc)[:300]}"
        return {"ok": True, "estimated": False, "reason": reason, "machine": asdict(machine)}
    answer: dict[str, Any] = {
        "ok": True,
        "estimated": True,
        "machine": asdict(machine),
        "problem": _row(search, base),
        "problem_misfit": search.fits(base),
    }
    scale = str(request.get("scale", "auto"))
    names = search.scalable(base) if problem else []
    answer["scalable"] = names
    chosen, est = problem, base
    if request.get("sizes"):
        unknown = sorted(set(request["sizes"]) - set(problem))
        if unknown:
            listed = ", ".join(sorted(problem)) or "none"
            answer.update(ok=False, detail=f"no size constant {', '.join(unknown)} (the problem's: {listed})")
            return answer
        chosen = {**problem, **{k: int(v) for k, v in request["sizes"].items()}}
        est = search.at(chosen)
        answer["mode"] = "pinned"
    elif scale == "auto" and not machine.cuda:
        answer["mode"] = "auto"
        chosen, est = search.auto(base, names)
    elif scale not in ("auto", "none"):
        answer["mode"] = f"factor {scale}"
        chosen = search.factor(names, float(scale))
        est = search.at(chosen)
    else:
        answer["mode"] = "as written" if scale == "none" else "as written (a GPU machine)"
    answer["chosen"] = _row(search, est)
    answer["chosen_misfit"] = search.fits(est)
    answer["values"] = {n: chosen[n] for n in problem if chosen[n] != problem[n]}
    return answer


def _row(search: Search, est: Estimate) -> dict[str, Any]:
    return {
        **asdict(est),
        "footprint_bytes": est.footprint_bytes,
        "call_ms": round(search.machine.seconds(est) * 1e3, 4),
    }


def main() -> None:
    request = json.loads(sys.stdin.read())
    nonce = str(request.get("nonce", ""))
    try:
        result = run(request)
    except SizingError as exc:
        result = {"ok": False, "detail": str(exc)}
    except BaseException as exc:  # the problem's own code failed while being sized
        result = {
            "ok": False,
            "detail": f"{type(exc).__name__}: {str(exc)[:1500]}",
            "log": traceback.format_exc()[-4000:],
        }
    sys.stdout.write(f"\n{MARKER} {nonce} {json.dumps(result, default=str)}\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
