"""The supervisor's side of a worker: start it, hand it inputs, build what it asks for, read its answers.

A :class:`WorkerSession` owns one worker process (see ``worker``): the candidate's Python, or the
reference for timing. Inputs go into shared memory the supervisor made (and re-reads afterwards:
an input the call changed is the candidate's fault); answers are claims — outputs, a launch plan,
launch counts — that the caller checks. While a request is pending the worker may ask for a C
source to be compiled: the supervisor builds it (the worker cannot start programs) and remembers
the source, so that the replay later uses builds made while no candidate process was alive.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evoforge import runtime
from evoforge.verifiers.kernel import elf, ipc, procs
from evoforge.verifiers.kernel.awake import Window
from evoforge.verifiers.kernel.outcome import CandidateFailure, ProblemFailure

if TYPE_CHECKING:  # torch is imported when first needed: the worker starts before it is loaded here
    import torch

#: the dtypes outputs may have (by the name ``str(dtype)`` gives without ``torch.``)
DTYPE_NAMES = (
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
)


def torch_dtype(name: str) -> torch.dtype:
    import torch

    if name not in DTYPE_NAMES:
        raise CandidateFailure(f"an output of dtype {name}, which the verifier does not compare")
    return getattr(torch, name)


#: the largest answer (outputs and captured state) a worker may hand over
MAX_ANSWER_BYTES = 16 << 30


@dataclass(frozen=True)
class LibrarySource:
    source: str
    openmp: bool
    flags: tuple[str, ...]


@dataclass
class Forward:
    """A worker's answer to one call (claims, to be checked)."""

    outputs: list[torch.Tensor]
    devices: list[str]
    plan: dict[str, Any] | None
    state: bytes
    launches: int
    triton: list[dict[str, Any]] = field(default_factory=list)
    compute_ops: dict[str, int] = field(default_factory=dict)
    patched: list[str] = field(default_factory=list)
    mutated: list[int] = field(default_factory=list)
    threads_after: int = 0


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    import torch

    plain = tensor.detach().to("cpu").contiguous()
    if plain.numel() == 0:
        return b""
    return plain.reshape(-1).view(torch.uint8).numpy().tobytes()


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors hold the same bytes (NaN payloads included: not ``torch.equal``)."""
    import torch

    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    raw_a, raw_b = (t.contiguous().reshape(-1).view(torch.uint8) for t in (a, b))
    return torch.equal(raw_a, raw_b)


def tensor_from(data: bytes | bytearray | memoryview, shape: list[int], dtype: str) -> torch.Tensor:
    """A tensor over ``data`` when it is writable memory of the caller's own (a ``bytearray`` or a
    view of one: the tensor keeps it alive), else over a copy of it — never over shared memory."""
    import torch

    kind = torch_dtype(dtype)
    if not len(data):
        return torch.empty(shape, dtype=kind)
    owned = isinstance(data, bytearray) or (
        isinstance(data, memoryview) and not data.readonly and isinstance(data.obj, bytearray)
    )
    flat = torch.frombuffer(data if owned else bytearray(data), dtype=torch.uint8).view(kind)
    return flat.reshape(shape)


def _disjoint(specs: list[dict[str, Any]], label: str) -> None:
    """Outputs are tensors over one answer's memory (``tensor_from``): no two may share a byte."""
    end = 0
    for start, nbytes in sorted((int(s["offset"]), int(s["nbytes"])) for s in specs):
        if nbytes == 0:
            continue
        if start < end or start < 0 or nbytes < 0:
            raise CandidateFailure(f"{label}: the process answered with overlapping outputs")
        end = start + nbytes


class WorkerSession:
    """One worker process and the shared memory handed to it."""

    def __init__(
        self,
        *,
        role: str,
        workdir: Path,
        backend: str,
        cpus: list[int],
        env: Mapping[str, str],
        build_dir: Path | None = None,
    ) -> None:
        self.role = role
        self.setup_answer: dict[str, Any] = {}
        self.libraries: dict[str, LibrarySource] = {}
        self.build_dir = build_dir or workdir / "build" / "worker"
        self._arena: ipc.Arena | None = None
        self._arena_id = 0
        #: entered around each timed request only (``awake.Awake.parked``: the CPUs kept busy between)
        self.window: Window = contextlib.nullcontext
        self._layout: list[dict[str, Any]] = []
        self._sent: list[bytes | None] = []
        self.channel, theirs = ipc.Channel.pair()
        self.child = procs.spawn(
            "evoforge.verifiers.kernel.worker",
            [role, str(theirs.fileno()), ",".join(map(str, cpus)), backend],
            fd=theirs.fileno(),
            workdir=workdir,
            env=env,
            label=f"worker-{role}",
        )
        theirs.close()
        self.watch = procs.Watch(self.child.pid)
        self.seccomp: bool | None = None  # known once the worker said hello (after its start-up)

    # -- requests ---------------------------------------------------------------------------------

    def request(
        self, message: dict[str, Any], fds: list[int] | None = None
    ) -> tuple[dict[str, Any], list[int]]:
        """Send ``message``; serve compile requests until the answer comes."""
        if self.seccomp is None:
            hello, _ = self._recv()
            self.seccomp = bool(hello.get("seccomp"))
        self._send(message, fds or [])
        while True:
            answer, got = self._recv()
            if answer.get("op") != "compile":
                return answer, got
            self._send(self._compile(answer), [])

    def setup(self, **fields: Any) -> dict[str, Any]:
        answer, _ = self.request({"op": "setup", **fields})
        self._raise_for(answer)
        self.setup_answer = answer
        return answer

    def forward(self, inputs: list[Any], *, label: str, reuse: bool = False) -> Forward:
        """One call of the model on ``inputs`` (``reuse``: the same tensor objects as the last call)."""
        specs, reused = self._place(inputs, reuse=reuse)
        answer, fds = self.request({"op": "forward", "inputs": specs, "reuse": reused, "label": label})
        flooded = self.child.output_limit()
        if flooded:
            for fd in fds:
                os.close(fd)
            raise CandidateFailure(f"{label}: the candidate's process {flooded}")
        self._raise_for(answer)
        threads = self.watch.threads()
        data = memoryview(self._received(fds, label))
        _disjoint(answer.get("outputs") or [], label)
        outputs = []
        for spec in answer.get("outputs") or []:
            start, nbytes = int(spec["offset"]), int(spec["nbytes"])
            outputs.append(tensor_from(data[start : start + nbytes], list(spec["shape"]), str(spec["dtype"])))
        state_at, state_size = (int(v) for v in answer.get("state") or (0, 0))
        return Forward(
            outputs=outputs,
            devices=[str(s.get("device")) for s in answer.get("outputs") or []],
            plan=answer.get("plan"),
            state=bytes(data[state_at : state_at + state_size]),
            launches=int(answer.get("launches") or 0),
            triton=list(answer.get("triton") or []),
            compute_ops=dict(answer.get("compute_ops") or {}),
            patched=list(answer.get("patched") or []),
            mutated=self._mutated(),
            threads_after=threads,
        )

    def timed_run(self, specs: list[dict[str, Any]]) -> tuple[float, tuple[int, int]]:
        """Seconds of the reference's call on inputs already placed (``place``), by our clock, and the
        page faults (minor, major) its process took meanwhile; ``window`` is entered around the
        request only."""
        message = {"op": "run", "inputs": specs}
        minor, major = self.watch.faults()
        with self.window():
            begin = time.perf_counter_ns()
            answer, _ = self.request(message)
            seconds = (time.perf_counter_ns() - begin) / 1e9
        minor_after, major_after = self.watch.faults()
        self._raise_for(answer)
        return seconds, (minor_after - minor, major_after - major)

    def reserve(self, nbytes: int) -> int:
        """Have the reference's process fault ``nbytes`` of heap in (and keep it); the bytes reserved."""
        answer, _ = self.request({"op": "reserve", "nbytes": nbytes})
        self._raise_for(answer)
        return int(answer.get("reserved") or 0)

    def collect(self) -> list[torch.Tensor]:
        """The outputs of the last ``timed_run`` (fetched after the clock stopped)."""
        answer, fds = self.request({"op": "collect"})
        self._raise_for(answer)
        data = memoryview(self._received(fds, "collect"))
        _disjoint(answer.get("outputs") or [], "collect")
        return [
            tensor_from(
                data[int(s["offset"]) : int(s["offset"]) + int(s["nbytes"])],
                list(s["shape"]),
                str(s["dtype"]),
            )
            for s in answer.get("outputs") or []
        ]

    def place(self, inputs: list[Any]) -> list[dict[str, Any]]:
        return self._place(inputs, reuse=False)[0]

    def close(self) -> None:
        if self.child.alive():
            self.child.kill()
        self.channel.close()
        if self._arena is not None:
            self._arena.close()
            self._arena = None

    # -- helpers ----------------------------------------------------------------------------------

    def _received(self, fds: list[int], label: str) -> bytearray:
        """The bytes of the shared memory the worker answered with (one descriptor, a sane size)."""
        for extra in fds[1:]:
            os.close(extra)
        if not fds:
            raise CandidateFailure(f"{label}: the candidate's process answered without its outputs")
        try:
            size = os.fstat(fds[0]).st_size
            if size > MAX_ANSWER_BYTES:
                raise CandidateFailure(f"{label}: the candidate's process answered with {size} bytes")
            arena = ipc.Arena(fds[0], size)
        except (OSError, ValueError) as exc:
            os.close(fds[0])
            raise CandidateFailure(f"{label}: the candidate's process answered with unusable memory") from exc
        try:
            with memoryview(arena.map) as view, view[:size] as answer:
                return bytearray(answer)  # one copy, writable: tensors are made from it in place
        finally:
            arena.close()

    def _compile(self, ask: dict[str, Any]) -> dict[str, Any]:
        source, openmp = str(ask.get("source", "")), bool(ask.get("openmp", True))
        flags = tuple(str(f) for f in ask.get("flags") or ())
        try:
            path = runtime.build_library(source, openmp=openmp, flags=flags, directory=self.build_dir)
            problems = elf.load_time_problems(path)
        except (runtime.CompileError, elf.ElfError, OSError) as exc:
            return {"ok": False, "detail": str(exc)}
        if problems:
            return {"ok": False, "detail": f"the compiled C library {'; '.join(problems)}"}
        self.libraries[path.stem.removeprefix("k_")] = LibrarySource(source, openmp, flags)
        return {"ok": True, "path": str(path)}

    def _place(self, inputs: list[Any], *, reuse: bool) -> tuple[list[dict[str, Any]], bool]:
        """Write the tensors into shared memory (the same places when ``reuse`` and the sizes allow)."""
        import torch

        blobs = [tensor_bytes(v) if isinstance(v, torch.Tensor) else None for v in inputs]
        same = len(blobs) == len(self._layout) and all(
            (b is None) == ("value" in spec) and (b is None or len(b) == spec["nbytes"])
            for b, spec in zip(blobs, self._layout, strict=False)
        )
        reuse = reuse and same
        if not reuse:
            specs, offset = [], 0
            for value, blob in zip(inputs, blobs, strict=True):
                if blob is None:
                    specs.append({"value": _plain_value(value)})
                    continue
                specs.append(
                    {
                        "arena": None,
                        "offset": offset,
                        "nbytes": len(blob),
                        "shape": list(value.shape),
                        "dtype": str(value.dtype).removeprefix("torch."),
                    }
                )
                offset = ipc.aligned(offset + len(blob), 64)
            self._ensure_arena(offset)
            for spec in specs:
                if "arena" in spec:
                    spec["arena"] = self._arena_id
            self._layout = specs
        assert self._arena is not None
        for spec, blob in zip(self._layout, blobs, strict=True):
            if blob is not None:
                self._arena.write(int(spec["offset"]), blob)
        self._sent = blobs
        return self._layout, reuse

    def _ensure_arena(self, nbytes: int) -> None:
        if self._arena is not None and self._arena.nbytes >= nbytes:
            return
        if self._arena is not None:
            self._arena.close()
        self._arena_id += 1
        self._arena = ipc.Arena.create(max(nbytes, 64), "inputs")
        answer, _ = self.request(
            {"op": "arena", "id": self._arena_id, "nbytes": self._arena.nbytes}, [self._arena.fd]
        )
        self._raise_for(answer)

    def _mutated(self) -> list[int]:
        arena = self._arena
        return [
            index
            for index, (spec, blob) in enumerate(zip(self._layout, self._sent, strict=True))
            if blob is not None and arena is not None and arena.read(int(spec["offset"]), len(blob)) != blob
        ]

    def _send(self, message: dict[str, Any], fds: list[int]) -> None:
        try:
            self.channel.send(message, fds)
        except OSError as exc:
            raise self._died() from exc

    def _recv(self) -> tuple[dict[str, Any], list[int]]:
        try:
            return self.channel.recv()
        except (OSError, ValueError) as exc:
            raise self._died() from exc

    def _died(self) -> Exception:
        try:
            self.child.process.wait(timeout=2)
        except Exception:  # still running: it broke the protocol
            self.child.kill()
        text = f"the {self.role}'s process died ({self.child.exit_text()}):\n{self.child.log()[-2000:]}"
        return ProblemFailure(text) if self.role == "reference" else CandidateFailure(text)

    def _raise_for(self, answer: dict[str, Any]) -> None:
        if answer.get("ok"):
            return
        detail = str(answer.get("detail") or "failed")
        if answer.get("kind") == "problem" or self.role == "reference":
            raise ProblemFailure(detail)
        raise CandidateFailure(detail)


def _plain_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, bool | int | float) for v in value):
        return list(value)
    raise ProblemFailure(
        f"get_inputs() returned a {type(value).__name__}; inputs must be tensors, numbers or strings"
    )
