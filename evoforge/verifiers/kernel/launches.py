"""Recording a candidate's Triton kernel launches, and knowing when a launch is in progress.

Runs inside the sandboxed harness child. :func:`install_triton_hooks` patches Triton's launch entry
points at class level — ``JITFunction.run`` (a real GPU launch) and, under ``TRITON_INTERPRET=1``,
``InterpretedFunction.run`` — so every ``kernel[grid](...)`` (autotuned and heuristics-wrapped
kernels end in the same ``run``) reports a JSON-able record before it executes::

    {"backend": "triton", "kernel": "add_kernel", "qualname": "add_kernel", "module": "candidate",
     "signature": {"x_ptr": "*fp32", "n": "i32", "scale": "fp32", "BLOCK": "constexpr"},
     "constexprs": {"BLOCK": 1024}, "divisible_by_16": ["x_ptr"],
     "options": {"num_warps": 4, "num_stages": 3}, "grid": [4, 1, 1]}

The signature and constexprs follow Triton's own specialisation rules (an integer argument equal
to 1 becomes a constexpr, pointers and integers divisible by 16 are marked), computed with Triton's
binder, so :func:`evoforge.verifiers.kernel.aot.compile_triton` compiles the same specialisation
the GPU would. A constexpr value that is not a number, string, bool, None or Triton dtype is
recorded as ``{"unsupported": repr}``; the ahead-of-time compile rejects it.

:func:`in_launch` is True while a Triton launch or an ``evoforge.runtime`` C call runs in this
thread: the harness's op recorder ignores torch ops dispatched then (the interpreter itself uses
torch to copy arguments).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

LaunchCallback = Callable[[dict[str, Any]], None]

#: Triton's defaults for CUDA when a launch passes none
DEFAULT_OPTIONS = {"num_warps": 4, "num_stages": 3}
#: launch keywords that are compile options, not kernel arguments (CUDAOptions fields a launch may set)
OPTION_KEYS = ("num_warps", "num_stages", "num_ctas", "maxnreg", "enable_fp_fusion", "launch_pdl")

_callbacks: list[LaunchCallback] = []
_local = threading.local()
_install_lock = threading.Lock()
_PATCHED = "__evoforge_launch_hook__"


def in_launch() -> bool:
    """True while a kernel launch (Triton, or an ``evoforge.runtime`` C call) runs in this thread."""
    if getattr(_local, "depth", 0) > 0:
        return True
    from evoforge import runtime

    return runtime.in_call()


@contextmanager
def _launching() -> Iterator[None]:
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def install_triton_hooks(on_launch: LaunchCallback) -> None:
    """Call ``on_launch(record)`` before every Triton kernel launch in this process (idempotent)."""
    with _install_lock:
        if on_launch not in _callbacks:
            _callbacks.append(on_launch)
        from triton.runtime import interpreter, jit

        for cls in (jit.JITFunction, interpreter.InterpretedFunction):
            run = cls.run
            if getattr(run, _PATCHED, False):
                continue
            wrapped = _wrap_run(run)
            setattr(wrapped, _PATCHED, True)
            cls.run = wrapped


def _wrap_run(run: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(run)
    def hooked(self: Any, *args: Any, grid: Any, warmup: Any, **kwargs: Any) -> Any:
        if warmup:  # a warm-up compiles, it launches nothing
            return run(self, *args, grid=grid, warmup=warmup, **kwargs)
        with _launching():
            record = launch_record(self, args, kwargs, grid)
            for callback in list(_callbacks):
                callback(record)
            return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    return hooked


# -- the record ------------------------------------------------------------------------------------


def launch_record(kernel: Any, args: tuple[Any, ...], kwargs: dict[str, Any], grid: Any) -> dict[str, Any]:
    """The JSON-able description of one launch of ``kernel`` (a JITFunction or InterpretedFunction)."""
    fn = kernel.fn
    options = dict(DEFAULT_OPTIONS)
    arguments = {}
    for key, value in kwargs.items():
        if key in OPTION_KEYS:
            if value is not None:
                options[key] = value
        else:
            arguments[key] = value
    record: dict[str, Any] = {
        "backend": "triton",
        "kernel": fn.__name__,
        "qualname": fn.__qualname__,
        "module": fn.__module__,
        "options": options,
    }
    try:
        binder, names = _binder(kernel)
        bound, specialization, _ = binder(*args, **arguments)
    except Exception as exc:  # the launch itself will raise the real error
        log.debug("could not bind the arguments of %s: %s", fn.__name__, exc)
        record.update(signature={}, constexprs={}, divisible_by_16=[], grid=None, error=str(exc))
        return record
    signature: dict[str, str] = {}
    constexprs: dict[str, Any] = {}
    divisible: list[str] = []
    for name, (kind, attribute) in zip(names, specialization, strict=True):
        signature[name] = str(kind)
        if kind == "constexpr":
            constexprs[name] = _json_value(bound[name])
        elif attribute == "D":
            divisible.append(name)
    record.update(signature=signature, constexprs=constexprs, divisible_by_16=divisible)
    record["grid"] = _grid(grid, bound)
    return record


def _binder(kernel: Any) -> tuple[Callable[..., Any], list[str]]:
    """Triton's argument binder for this kernel (cached on the kernel object)."""
    cached = getattr(kernel, "_evoforge_binder", None)
    if cached is not None:
        return cached
    from triton.backends.compiler import BaseBackend
    from triton.runtime.jit import KernelParam, create_function_from_signature

    signature = inspect.signature(kernel.fn)
    options = getattr(kernel, "kwargs", None) or {}  # InterpretedFunction keeps the jit() keywords
    dns = getattr(kernel, "do_not_specialize", None) or options.get("do_not_specialize") or []
    dns_align = (
        getattr(kernel, "do_not_specialize_on_alignment", None)
        or options.get("do_not_specialize_on_alignment")
        or []
    )
    params = [
        KernelParam(
            i,
            p,
            i in dns or p.name in dns,
            i in dns_align or p.name in dns_align,
        )
        for i, p in enumerate(signature.parameters.values())
    ]
    binder = create_function_from_signature(signature, params, BaseBackend)
    cached = (binder, [p.name for p in params])
    with contextlib.suppress(AttributeError):  # cached on the kernel object when it allows it
        kernel._evoforge_binder = cached
    return cached


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    inner = getattr(value, "value", None)  # tl.constexpr wraps the value
    if type(value).__name__ == "constexpr":
        return _json_value(inner)
    if type(value).__name__ == "dtype" and type(value).__module__.startswith("triton"):
        return {"dtype": str(value)}
    if isinstance(value, tuple | list):
        return {"tuple": [_json_value(v) for v in value]}
    return {"unsupported": repr(value)[:200]}


def _grid(grid: Any, bound: dict[str, Any]) -> list[int] | None:
    try:
        dims = grid(bound) if callable(grid) else grid
        values = [int(d) for d in dims]
    except Exception as exc:  # a grid the record cannot evaluate: the launch still runs
        log.debug("could not evaluate a launch grid: %s", exc)
        return None
    return [*values, 1, 1, 1][:3]
