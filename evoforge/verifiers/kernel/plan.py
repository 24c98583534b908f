"""Launch plans: what a C candidate's ``forward`` asked its kernels to do, as data that can be replayed.

Recorded in the worker (:class:`PlanRecorder`, the runtime's launch recorder) and checked by the
supervisor (:func:`check_plan`). A plan names *buffers* and the *launches* on them::

    {"buffers": [{"kind": "input", "index": 0, "nbytes": 131072},
                 {"kind": "fresh", "nbytes": 131072, "fill": null},          # torch.empty: poisoned
                 {"kind": "fresh", "nbytes": 256, "fill": "00000000"},       # torch.zeros: filled
                 {"kind": "state", "nbytes": 4096, "blob": [0, 4096]}],      # a weight, as it was
     "launches": [{"library": "3f…", "function": "relu2",
                   "args": [{"buffer": 1, "offset": 0}, {"buffer": 0, "offset": 0}, {"int": 32768}]}],
     "outputs": [{"buffer": 1, "offset": 0, "shape": [16, 2048], "strides": [2048, 1],
                  "dtype": "float32"}]}

The worker's account is never trusted: a plan only says what to replay. The replay runs the
launches alone, in a process without torch, on buffers the supervisor made (inputs copied in,
fresh memory poisoned, state bytes as the worker captured them at first use in that call), and
*its* outputs are the ones compared. A plan that leaves out work, or claims false contents, replays
to a wrong answer. Fresh memory whose content at first use is the "uninitialised" fill of torch's
deterministic mode (NaN, or the largest integer) is poisoned like ``torch.empty``; another constant
is a fill the replay performs inside the timed call.
"""

from __future__ import annotations

import gc
from typing import Any

#: a fresh buffer's content the replay must not count on (torch.empty in deterministic mode)
_UNINITIALISED = {
    "float32": "0000c07f",
    "float64": "000000000000f87f",
    "float16": "007e",
    "bfloat16": "c07f",
    "int64": "ffffffffffffff7f",
    "int32": "ffffff7f",
    "int16": "ff7f",
    "int8": "7f",
    "uint8": "ff",
}
MAX_PLAN_BYTES = 16 << 30
MAX_LAUNCHES = 10_000


class PlanRecorder:
    """The runtime's launch recorder for one ``forward`` call (worker side; needs torch)."""

    def __init__(self) -> None:
        self.buffers: list[dict[str, Any]] = []
        self.launches: list[dict[str, Any]] = []
        self.blobs: list[bytes] = []
        self._by_base: dict[int, int] = {}
        self._inputs: dict[int, int] = {}
        self._alive: set[int] = set()
        self._blob_size = 0

    def begin(self, inputs: list[Any]) -> None:
        """Start a call: note the inputs' memory, and the memory of every tensor alive before it."""
        import torch

        self.buffers, self.launches, self.blobs = [], [], []
        self._by_base, self._inputs, self._blob_size = {}, {}, 0
        for index, value in enumerate(inputs):
            if isinstance(value, torch.Tensor):
                self._inputs.setdefault(_base(value), index)
        self._alive = {
            _base(obj)
            for obj in gc.get_objects()
            if isinstance(obj, torch.Tensor) and obj.device.type == "cpu" and _has_storage(obj)
        } - set(self._inputs)

    def record(self, library: str, function: str, args: tuple[Any, ...]) -> None:
        self.launches.append(
            {"library": library, "function": function, "args": [self._argument(a) for a in args]}
        )

    def finish(self, outputs: list[Any]) -> dict[str, Any]:
        described = []
        for out in outputs:
            entry = self._buffer_of(out, launched=False)
            described.append(
                {
                    **entry,
                    "shape": list(out.shape),
                    "strides": list(out.stride()),
                    "dtype": str(out.dtype).removeprefix("torch."),
                }
            )
        return {"buffers": self.buffers, "launches": self.launches, "outputs": described}

    def state_blob(self) -> bytes:
        return b"".join(self.blobs)

    def _argument(self, value: Any) -> dict[str, Any]:
        import torch

        if isinstance(value, bool):
            return {"int": int(value)}
        if isinstance(value, int):
            return {"int": value}
        if isinstance(value, float):
            return {"float": value}
        if type(value) is torch.Tensor or isinstance(value, torch.nn.Parameter):
            return self._buffer_of(value, launched=True)
        return {"opaque": type(value).__qualname__}

    def _buffer_of(self, tensor: Any, *, launched: bool) -> dict[str, Any]:
        import torch

        if not isinstance(tensor, torch.Tensor) or not _has_storage(tensor) or tensor.device.type != "cpu":
            return {"opaque": type(tensor).__qualname__}
        storage = tensor.untyped_storage()
        base, nbytes = storage.data_ptr(), storage.nbytes()
        offset = tensor.data_ptr() - base
        if base not in self._by_base:
            if base in self._inputs:
                entry: dict[str, Any] = {"kind": "input", "index": self._inputs[base], "nbytes": nbytes}
            elif base in self._alive:
                data = _bytes_of(storage)
                entry = {"kind": "state", "nbytes": nbytes, "blob": [self._blob_size, len(data)]}
                self.blobs.append(data)
                self._blob_size += len(data)
            else:
                fill = _fill_of(storage, tensor) if launched else None
                entry = {"kind": "fresh", "nbytes": nbytes, "fill": fill}
            self._by_base[base] = len(self.buffers)
            self.buffers.append(entry)
        return {"buffer": self._by_base[base], "offset": offset}


def _has_storage(tensor: Any) -> bool:
    try:
        tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return False
    return True


def _base(tensor: Any) -> int:
    return int(tensor.untyped_storage().data_ptr())


def _bytes_of(storage: Any) -> bytes:
    import torch

    raw = torch.empty(0, dtype=torch.uint8).set_(storage)
    return raw.numpy().tobytes()


def _fill_of(storage: Any, tensor: Any) -> str | None:
    """The repeated element pattern of ``storage`` (hex), or None when it is not one constant.

    Read through numpy: no torch op is dispatched, so nothing here looks like the candidate's work.
    """
    import torch

    size = tensor.element_size()
    nbytes = storage.nbytes()
    if nbytes == 0 or nbytes % size:
        return None
    raw = torch.empty(0, dtype=torch.uint8).set_(storage).numpy().reshape(-1, size)
    if not bool((raw == raw[0]).all()):
        return None
    pattern = raw[0].tobytes().hex()
    dtype = str(tensor.dtype).removeprefix("torch.")
    return None if _UNINITIALISED.get(dtype) == pattern else pattern


# -- supervisor side -------------------------------------------------------------------------------

DTYPE_SIZES = {
    "float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2,
    "int8": 1, "uint8": 1, "bool": 1,
}  # fmt: skip


def check_plan(plan: Any, *, inputs: list[int | None], libraries: set[str], blob_bytes: int) -> str | None:
    """What is wrong with a worker's plan (None when it can be replayed).

    ``inputs`` holds each input's byte size (None for a non-tensor input); ``libraries`` the builds
    the supervisor made; ``blob_bytes`` the size of the state bytes the worker sent.
    """
    if not isinstance(plan, dict):
        return "no launch plan was recorded"
    buffers, launches, outputs = plan.get("buffers"), plan.get("launches"), plan.get("outputs")
    if not isinstance(buffers, list) or not isinstance(launches, list) or not isinstance(outputs, list):
        return "the launch plan is malformed"
    if not launches:
        return "no custom kernel was launched during the call (kernel defined but never run)"
    if len(launches) > MAX_LAUNCHES:
        return f"{len(launches)} launches in one call (limit {MAX_LAUNCHES})"
    total = 0
    for i, buf in enumerate(buffers):
        problem = _buffer_problem(buf, inputs, blob_bytes)
        if problem:
            return f"buffer {i}: {problem}"
        total += int(buf["nbytes"])
    if total > MAX_PLAN_BYTES:
        return f"the launches use {total} bytes of memory (limit {MAX_PLAN_BYTES})"
    for j, launch in enumerate(launches):
        if not isinstance(launch, dict) or launch.get("library") not in libraries:
            return f"launch {j + 1} calls a library the verifier did not build"
        if not str(launch.get("function", "")).isidentifier():
            return f"launch {j + 1} names no function"
        for k, arg in enumerate(launch.get("args") or []):
            problem = _argument_problem(arg, buffers)
            if problem:
                return f"launch {j + 1} ({launch['function']}), argument {k}: {problem}"
    for k, out in enumerate(outputs):
        problem = _output_problem(out, buffers)
        if problem:
            return f"output {k}: {problem}"
    return None


def _buffer_problem(buf: Any, inputs: list[int | None], blob_bytes: int) -> str | None:
    if not isinstance(buf, dict) or not isinstance(buf.get("nbytes"), int) or buf["nbytes"] < 0:
        return "malformed"
    kind = buf.get("kind")
    if kind == "input":
        index = buf.get("index")
        if not isinstance(index, int) or not 0 <= index < len(inputs) or inputs[index] is None:
            return "names no tensor input"
        if buf["nbytes"] != inputs[index]:
            return "is an input of another size"
    elif kind == "state":
        blob = buf.get("blob")
        if not (isinstance(blob, list) and len(blob) == 2 and all(isinstance(v, int) for v in blob)):
            return "malformed"
        if blob[1] != buf["nbytes"] or blob[0] < 0 or blob[0] + blob[1] > blob_bytes:
            return "its bytes were not sent"
    elif kind == "fresh":
        fill = buf.get("fill")
        if fill is not None and (not isinstance(fill, str) or not fill or len(fill) > 16):
            return "malformed fill"
        if fill is not None:
            try:
                bytes.fromhex(fill)
            except ValueError:
                return "malformed fill"
    else:
        return f"unknown kind {kind!r}"
    return None


def _argument_problem(arg: Any, buffers: list[dict[str, Any]]) -> str | None:
    if not isinstance(arg, dict):
        return "malformed"
    if "opaque" in arg:
        return f"a {arg['opaque']} (pass plain CPU tensors, ints or floats)"
    if "int" in arg:
        return None if isinstance(arg["int"], int) and -(1 << 63) <= arg["int"] < (1 << 63) else "bad int"
    if "float" in arg:
        return None if isinstance(arg["float"], int | float) else "bad float"
    buffer, offset = arg.get("buffer"), arg.get("offset")
    if not isinstance(buffer, int) or not 0 <= buffer < len(buffers) or not isinstance(offset, int):
        return "names no buffer"
    if not 0 <= offset <= buffers[buffer]["nbytes"]:
        return "points outside its buffer"
    return None


def _output_problem(out: Any, buffers: list[dict[str, Any]]) -> str | None:
    if not isinstance(out, dict) or "opaque" in out:
        return "is not a plain CPU tensor"
    problem = _argument_problem(out, buffers)
    if problem:
        return problem
    if buffers[out["buffer"]]["kind"] == "input":
        return "is (a view of) an input: outputs must be new memory"
    shape, strides, dtype = out.get("shape"), out.get("strides"), out.get("dtype")
    if dtype not in DTYPE_SIZES or not isinstance(shape, list) or not isinstance(strides, list):
        return f"has an unsupported dtype or layout ({dtype})"
    if len(shape) != len(strides) or any(not isinstance(v, int) or v < 0 for v in [*shape, *strides]):
        return "has a malformed layout"
    size = DTYPE_SIZES[dtype]
    if 0 in shape:
        return None
    extent = out["offset"] + (sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) + 1) * size
    if extent > buffers[out["buffer"]]["nbytes"]:
        return "extends past the end of its memory"
    return None
