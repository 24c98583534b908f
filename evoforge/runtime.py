"""The small runtime that CPU kernel candidates import: C source → shared library → calls on tensors.

A candidate writes its kernel in C, compiles it once with :func:`load_c` (the system C compiler,
``-O3 -march=native -fPIC -shared``, OpenMP on by default) and calls its functions on tensor
buffers::

    from evoforge.runtime import load_c
    _lib = load_c(r'''
    #include <stdint.h>
    void relu(float *out, const float *x, int64_t n) {
        #pragma omp parallel for simd
        for (int64_t i = 0; i < n; ++i) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }''')
    ...
    _lib.relu(out, x, x.numel())

Argument convention: a ``torch.Tensor`` is passed as a pointer to its first element (it must be a
contiguous CPU tensor: anything else raises ``KernelCallError``), a Python ``int`` as ``int64_t``, a
``float`` as ``double``, a ``bool`` as ``int64_t`` 0/1. Functions return nothing (``void``).

Every call is a *launch*. Inside the verifier, the process that runs the candidate's Python cannot
start the compiler itself: :func:`configure` installs a ``builder`` (the verifier compiles the
source and hands back the library) and a ``recorder`` that sees every launch with its arguments
(the verifier replays the recorded launches, alone, in another process: what they compute there is
what counts). Outside the verifier, builds are cached by a hash of the source, the flags and the
compiler in a per-user temporary directory. Libraries are linked without start files
(``-nostartfiles``): a kernel library has no code that runs when it is loaded. This module imports
nothing from the rest of evoforge and reads no environment variables except ``CC`` (the compiler),
so candidates can import it cheaply. It is also why it starts the compiler with ``subprocess``
itself rather than through ``evoforge.tools.process``: it runs inside the stage's sandbox, already
under its limits.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CLibrary", "CompileError", "KernelCallError", "configure", "launch_count", "load_c"]

BASE_FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-std=c11", "-nostartfiles")
OPENMP_FLAG = "-fopenmp"
#: extra flags a candidate may add: optimisation, code generation, machine and macro flags only
_ALLOWED_FLAG = re.compile(r"^(-O[0-3s]|-f(?!plugin)[A-Za-z0-9][\w\-=.]*|-m[\w\-=.]+|-D\w+(=[\w.]+)?)$")
COMPILE_TIMEOUT_S = 120.0

_lock = threading.Lock()
_state: dict[str, Any] = {"build_dir": None, "launches": 0, "builder": None, "recorder": None}
_calls = threading.local()  # depth of C calls in progress in this thread

#: ``builder(source, openmp, flags) -> path of the built library`` (set by the verifier)
Builder = Callable[[str, bool, tuple[str, ...]], str]
#: ``recorder(library_key, function_name, args)``, called before every launch (set by the verifier)
Recorder = Callable[[str, str, tuple[Any, ...]], None]


class CompileError(RuntimeError):
    """The C compiler rejected the source; the message holds its diagnostics."""


class KernelCallError(TypeError):
    """A kernel was called with an argument the runtime cannot pass (non-contiguous, not on the CPU, …)."""


def configure(
    *,
    build_dir: str | os.PathLike[str] | None = None,
    builder: Builder | None = None,
    recorder: Recorder | None = None,
) -> None:
    """Where builds go, who builds them and who sees each launch (the verifier sets all three)."""
    _state["build_dir"] = None if build_dir is None else Path(build_dir)
    _state["builder"] = builder
    _state["recorder"] = recorder


def launch_count() -> int:
    """Kernel calls made through any :class:`CLibrary` in this process so far."""
    return int(_state["launches"])


def in_call() -> bool:
    """True while a C kernel call runs in this thread (the verifier ignores torch ops then)."""
    return getattr(_calls, "depth", 0) > 0


def _build_dir() -> Path:
    configured = _state["build_dir"]
    path = Path(configured) if configured else Path(tempfile.gettempdir()) / f"evoforge-c-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _compiler() -> str:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        raise CompileError("no C compiler found: install gcc (Debian: apt-get install gcc) or set CC")
    return compiler


def check_flags(flags: tuple[str, ...]) -> None:
    bad = [f for f in flags if not _ALLOWED_FLAG.match(f)]
    if bad:
        raise CompileError(f"flags not allowed: {' '.join(bad)} (allowed: -O*, -f*, -m*, -DNAME[=VALUE])")


def library_key(source: str, openmp: bool, flags: tuple[str, ...], compiler: str) -> str:
    """The build's name: a hash of the compiler, every flag and the source."""
    argv_flags = [*BASE_FLAGS, *([OPENMP_FLAG] if openmp else []), *flags]
    return hashlib.sha256("\0".join([compiler, *argv_flags, source]).encode()).hexdigest()[:24]


def build_library(source: str, *, openmp: bool, flags: tuple[str, ...], directory: Path) -> Path:
    """Compile ``source`` into ``directory`` (reused when the same build is there) and return its path."""
    check_flags(flags)
    compiler = _compiler()
    argv_flags = [*BASE_FLAGS, *([OPENMP_FLAG] if openmp else []), *flags]
    key = library_key(source, openmp, flags, compiler)
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / f"k_{key}.so"
    with _lock:
        if not library.exists():
            src = directory / f"k_{key}.c"
            src.write_text(source)
            partial = directory / f"k_{key}.{os.getpid()}.so"
            try:
                done = subprocess.run(
                    [compiler, *argv_flags, str(src), "-o", str(partial), "-lm"],
                    capture_output=True,
                    text=True,
                    timeout=COMPILE_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise CompileError(f"the C compiler took longer than {COMPILE_TIMEOUT_S:.0f} s") from exc
            if done.returncode != 0:
                raise CompileError(f"C compilation failed:\n{done.stderr.strip()[:4000]}")
            partial.replace(library)
    return library


def load_c(source: str, *, openmp: bool = True, flags: tuple[str, ...] = ()) -> CLibrary:
    """Compile ``source`` into a shared library (cached) and return its functions as a :class:`CLibrary`."""
    flags = tuple(flags)
    check_flags(flags)
    builder = _state["builder"]
    if builder is not None:
        path = str(builder(source, openmp, flags))
        key = Path(path).stem.removeprefix("k_")
    else:
        path = str(build_library(source, openmp=openmp, flags=flags, directory=_build_dir()))
        key = Path(path).stem.removeprefix("k_")
    return CLibrary(ctypes.CDLL(path), path, key)


class CLibrary:
    """The functions of a compiled C source; ``lib.name(*args)`` calls ``name`` (one launch)."""

    def __init__(self, handle: ctypes.CDLL, path: str, key: str = "") -> None:
        self._handle = handle
        self.path = path
        self.key = key

    def __getattr__(self, name: str) -> _CFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            function = getattr(self._handle, name)
        except AttributeError as exc:
            raise AttributeError(f"the compiled C source defines no function {name!r}") from exc
        function.restype = None
        return _CFunction(name, function, self.key)


class _CFunction:
    def __init__(self, name: str, function: Any, key: str = "") -> None:
        self.name = name
        self._function = function
        self._key = key

    def __call__(self, *args: Any) -> None:
        converted = [_c_argument(self.name, i, a) for i, a in enumerate(args)]
        with _lock:
            _state["launches"] += 1
        recorder = _state["recorder"]
        if recorder is not None:
            recorder(self._key, self.name, args)
        _calls.depth = getattr(_calls, "depth", 0) + 1
        try:
            self._function(*converted)
        finally:
            _calls.depth -= 1


def _c_argument(name: str, index: int, value: Any) -> Any:
    if isinstance(value, bool):
        return ctypes.c_int64(int(value))
    if isinstance(value, int):
        return ctypes.c_int64(value)
    if isinstance(value, float):
        return ctypes.c_double(value)
    data_ptr = getattr(value, "data_ptr", None)
    if data_ptr is None:
        raise KernelCallError(
            f"{name}: argument {index} is a {type(value).__name__}; pass tensors, ints or floats"
        )
    if value.device.type != "cpu":
        raise KernelCallError(f"{name}: argument {index} is on {value.device}; C kernels take CPU tensors")
    if not value.is_contiguous():
        raise KernelCallError(f"{name}: argument {index} is not contiguous; call .contiguous() first")
    return ctypes.c_void_p(data_ptr())
