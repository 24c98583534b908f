"""Ahead-of-time compiles of a candidate's GPU kernels, for their resource usage; no GPU needed.

Runs inside the sandboxed harness child. Three parts:

* :func:`compile_triton` — each distinct recorded Triton launch (see :mod:`.launches`) compiled with
  ``triton.compile`` for ``GPUTarget("cuda", arch, 32)``; shared memory from the kernel metadata,
  registers from ``cuobjdump -res-usage`` on the cubin, spills from ptxas's own ``-v`` report.
* :func:`capture_load_inline` — records every ``torch.utils.cpp_extension.load_inline`` call of a
  KernelBench CUDA candidate; without a GPU it returns a stub module whose functions raise
  :class:`~evoforge.errors.GpuRequiredError`, so the candidate still imports and constructs.
* :func:`compile_cuda` — ``nvcc -cubin -Xptxas -v`` of the captured CUDA sources. Parsing torch's
  headers costs nvcc's front end 40-100 s, so the sources are first compiled against a small
  stand-in for the torch headers (:mod:`.cuda_stub`): the device code is the candidate's own text,
  so registers, spills and shared memory are the same. When the stand-in lacks something the
  source uses, the compile is redone with the real torch headers (slow, exact).

Every kernel is reported as ``{"kernel", "registers", "spills" (bytes of spill stores),
"shared_bytes" (static), "local_bytes", "cubin_sha256", "arch", "seconds"}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from evoforge.errors import GpuRequiredError, KernelCompileError
from evoforge.tools.cuobjdump import Cuobjdump, demangle_base, parse_ptxas_log
from evoforge.tools.nvcc import Nvcc
from evoforge.verifiers.kernel import cuda_stub
from evoforge.verifiers.kernel.launches import OPTION_KEYS

log = logging.getLogger(__name__)

#: flags torch's load_inline gives nvcc (torch/utils/cpp_extension.py COMMON_NVCC_FLAGS, -std)
TORCH_NVCC_FLAGS = (
    "-std=c++20",
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
    "--expt-relaxed-constexpr",
    "-DTORCH_API_INCLUDE_EXTENSION_H",
    "-w",
)
#: candidate nvcc flags that change the device code and are passed on (others are ignored)
_ALLOWED_CUDA_FLAG = re.compile(
    r"^(-O[0-3]|--?use_fast_math|-D\w+(=[\w.]+)?|--?maxrregcount[= ]?\d+|-lineinfo|"
    r"--?(ftz|prec-div|prec-sqrt|fmad)=(true|false)|--?expt-(relaxed-constexpr|extended-lambda)|"
    r"--?extended-lambda|-std=c\+\+\d\d|-Xptxas[= ]?-O[0-3])$"
)


# -- Triton ----------------------------------------------------------------------------------------


def compile_triton(
    module: ModuleType, launches: list[dict[str, Any]], *, arch: int = 90, workdir: Path
) -> list[dict[str, Any]]:
    """Compile each distinct launch of ``module``'s Triton kernels for ``sm_<arch>``; one dict each."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    workdir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, dict[str, Any]] = {}
    for record in launches:
        key = json.dumps(
            [record.get(k) for k in ("module", "qualname", "kernel", "signature", "constexprs")]
            + [record.get("divisible_by_16"), record.get("options")],
            sort_keys=True,
        )
        seen.setdefault(key, record)
    results = []
    cuobjdump = Cuobjdump()
    for index, record in enumerate(seen.values()):
        name = str(record.get("kernel"))
        if record.get("error") or not record.get("signature"):
            raise KernelCompileError(f"{name}: the launch could not be recorded ({record.get('error')})")
        fn = _find_kernel(module, record)
        params = list(fn.arg_names)
        constexprs = {k: _decode(name, k, v) for k, v in (record.get("constexprs") or {}).items()}
        attrs = {(params.index(p),): [["tt.divisibility", 16]] for p in record.get("divisible_by_16") or []}
        options = {k: v for k, v in (record.get("options") or {}).items() if k in OPTION_KEYS}
        source = ASTSource(fn=fn, signature=dict(record["signature"]), constexprs=constexprs, attrs=attrs)
        start = time.monotonic()
        printed = io.StringIO()
        try:
            with _triton_env(workdir), contextlib.redirect_stdout(printed):
                compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
        except Exception as exc:
            detail = str(exc).strip() or type(exc).__name__
            raise KernelCompileError(
                f"Triton could not compile {name} for sm_{arch}: {detail[-4000:]}",
                hint="the kernel runs under the interpreter but is not valid Triton for the GPU",
            ) from exc
        seconds = time.monotonic() - start
        cubin = workdir / f"triton_{index}_{name}.cubin"
        cubin.write_bytes(compiled.asm["cubin"])
        usage = cuobjdump.resource_usage(cubin)
        spills = {k.symbol: k.spill_bytes for k in parse_ptxas_log(printed.getvalue())}
        for kernel in usage or []:
            results.append(
                {
                    "kernel": name,
                    "registers": kernel.registers,
                    "spills": spills.get(kernel.symbol, kernel.local_bytes),
                    "shared_bytes": int(compiled.metadata.shared),
                    "local_bytes": kernel.local_bytes,
                    "cubin_sha256": hashlib.sha256(cubin.read_bytes()).hexdigest(),
                    "arch": f"sm_{arch}",
                    "seconds": round(seconds, 3),
                    "constexprs": record.get("constexprs") or {},
                    "options": options,
                }
            )
    return results


@contextlib.contextmanager
def _triton_env(workdir: Path) -> Iterator[None]:
    """Triton's cache in ``workdir`` (HOME may be read-only), ptxas's ``-v`` log on stdout, no reuse."""
    wanted = {
        "TRITON_CACHE_DIR": str(workdir / "triton-cache"),
        "TRITON_DUMP_PTXAS_LOG": "1",
        "TRITON_ALWAYS_COMPILE": "1",  # a cached kernel would skip ptxas and its spill report
    }
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _find_kernel(module: ModuleType, record: dict[str, Any]) -> Any:
    from triton.runtime.jit import JITFunction

    def unwrap(obj: Any) -> Any:
        for _ in range(8):  # Autotuner / Heuristics wrap the JITFunction in .fn
            if isinstance(obj, JITFunction):
                return obj
            obj = getattr(obj, "fn", None)
        return None

    found = []
    for value in vars(module).values():
        fn = unwrap(value)
        if fn is not None and fn.fn.__qualname__ == record.get("qualname", record.get("kernel")):
            found.append(fn)
    if not found:
        raise KernelCompileError(
            f"the launched Triton kernel {record.get('kernel')!r} is not a module-level @triton.jit "
            "function of the candidate (TRITON_INTERPRET must be unset for the ahead-of-time compile)"
        )
    return found[0]


def _decode(kernel: str, name: str, value: Any) -> Any:
    import triton.language as tl

    if isinstance(value, dict):
        if "dtype" in value:
            return tl.dtype(value["dtype"])
        if "tuple" in value:
            return tuple(_decode(kernel, name, v) for v in value["tuple"])
        raise KernelCompileError(
            f"{kernel}: constexpr {name} = {value.get('unsupported')} cannot be compiled for the GPU "
            "(constexprs are numbers, strings, booleans, None or Triton dtypes)"
        )
    return value


# -- CUDA (KernelBench load_inline) ----------------------------------------------------------------


class _GpuOnlyModule:
    """What ``load_inline`` returns without a GPU: importable, but every function call raises."""

    def __init__(self, name: str, functions: list[str]) -> None:
        self._name = name
        self._functions = functions

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)

        def gpu_only(*args: Any, **kwargs: Any) -> Any:
            raise GpuRequiredError(
                f"{self._name}.{attr} is a CUDA kernel: it was compiled for checking, but this "
                "machine has no GPU to run it",
                hint="run the candidate on a machine with an NVIDIA GPU",
            )

        return gpu_only


@contextlib.contextmanager
def capture_load_inline() -> Iterator[list[dict[str, Any]]]:
    """Patch ``torch.utils.cpp_extension.load_inline``; yield the list of calls it records."""
    import torch
    import torch.utils.cpp_extension as cpp_extension

    captured: list[dict[str, Any]] = []
    real = cpp_extension.load_inline

    def as_list(value: Any) -> list[str]:
        if value is None:
            return []
        return [value] if isinstance(value, str) else [str(v) for v in value]

    def recording_load_inline(
        name: str, cpp_sources: Any, cuda_sources: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        functions = kwargs.get("functions")
        if isinstance(functions, dict):
            functions = list(functions)
        captured.append(
            {
                "name": str(name),
                "cpp_sources": as_list(cpp_sources),
                "cuda_sources": as_list(cuda_sources),
                "functions": as_list(functions),
                "extra_cuda_cflags": as_list(kwargs.get("extra_cuda_cflags")),
                "no_implicit_headers": bool(kwargs.get("no_implicit_headers", False)),
            }
        )
        if torch.cuda.is_available():
            return real(name, cpp_sources, cuda_sources, *args, **kwargs)
        return _GpuOnlyModule(str(name), as_list(functions))

    cpp_extension.load_inline = recording_load_inline
    try:
        yield captured
    finally:
        cpp_extension.load_inline = real


def compile_cuda(
    captured: dict[str, Any], *, arch: int = 90, workdir: Path, timeout_s: float
) -> list[dict[str, Any]]:
    """nvcc the CUDA sources of one captured ``load_inline`` call for ``sm_<arch>``; one dict per kernel."""
    name = re.sub(r"\W", "_", str(captured.get("name") or "cuda"))[:64]
    sources = list(captured.get("cuda_sources") or [])
    if not sources:
        raise KernelCompileError(f"load_inline({name!r}) has no cuda_sources: nothing to compile for the GPU")
    if not captured.get("no_implicit_headers"):
        sources = ["#include <torch/types.h>", "#include <cuda.h>", "#include <cuda_runtime.h>", *sources]
    text = "\n".join(sources) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    directory = workdir / f"cuda_{name}_{digest}"
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "cuda.cu"
    source.write_text(text)
    flags = [*TORCH_NVCC_FLAGS, f"-DTORCH_EXTENSION_NAME={name}"]
    for flag in captured.get("extra_cuda_cflags") or []:
        if _ALLOWED_CUDA_FLAG.match(flag):
            flags.append(flag)
        else:
            log.info("ignoring nvcc flag %r of load_inline(%r)", flag, name)
    nvcc = Nvcc(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    stub_dir = cuda_stub.write(directory / "stub_include")
    run = nvcc.compile_cubin(
        source, arch=arch, out=directory / "stub.cubin", flags=flags, include_dirs=[stub_dir]
    )
    how = "torch stand-in headers"
    if not run.ok and cuda_stub.may_be_stub_gap(run.log):
        log.info(
            "%s: the torch stand-in is not enough (%s); compiling with torch's headers", name, run.errors
        )
        remaining = max(deadline - time.monotonic(), 1.0)
        run = nvcc.compile_cubin(
            source,
            arch=arch,
            out=directory / "torch.cubin",
            flags=flags,
            include_dirs=_torch_include_dirs(),
            timeout=remaining,
        )
        how = "torch headers"
    if not run.ok:
        raise KernelCompileError(
            f"nvcc could not compile load_inline({name!r}) for sm_{arch}:\n{run.errors[-4000:]}",
            hint=f"the source is in {source}",
        )
    log.info("%s: nvcc with %s in %.1f s", name, how, run.seconds)
    sha = run.cubin_sha256
    return [
        {
            "kernel": demangle_base(k.symbol),
            "symbol": k.symbol,
            "registers": k.registers,
            "spills": k.spill_bytes,
            "shared_bytes": k.shared_bytes,
            "local_bytes": k.local_bytes,
            "cubin_sha256": sha,
            "arch": f"sm_{arch}",
            "seconds": round(run.seconds, 3),
            "headers": how,
        }
        for k in run.kernels
    ]


def _torch_include_dirs() -> list[str]:
    from torch.utils.cpp_extension import include_paths

    return [*include_paths(), sysconfig.get_paths()["include"]]
