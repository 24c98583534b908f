"""The worker: the one process that runs a candidate's Python (or, for timing, the reference's).

``python -I -m evoforge.verifiers.kernel.worker ROLE FD CPUS BACKEND``, started by the supervisor.
Trusted start-up code runs first — :func:`procs.harden` (die with the supervisor, pinned CPUs, no
capabilities), torch imported and its threads set, then the system-call filter (C candidates and
the reference: no new processes or programs, no reaching other processes) — and only then is any
problem or candidate code imported. After that nothing in this process is trusted: the supervisor
treats what it says (outputs, the launch plan, launch counts) as claims to check. For a C candidate
the launches it records are replayed alone by the supervisor; its own outputs only explain a
failure. The worker asks the supervisor to compile C sources (it cannot start the compiler itself).

Requests (one JSON message each, answered by one): ``setup``, ``arena`` (shared memory handed
over), ``forward`` (one call on inputs in shared memory: outputs come back in new shared memory),
``run`` (the reference's timed call: no outputs), ``collect`` (its outputs), ``reserve`` (heap
faulted in before the reference is timed) and ``exit``.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from evoforge.verifiers.kernel import ipc, procs, seccomp


class Refusal(Exception):
    """The request cannot be served: reported with ``kind`` (candidate or problem)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class Worker:
    def __init__(self, role: str, channel: ipc.Channel, backend: str) -> None:
        self.role = role
        self.channel = channel
        self.backend = backend
        self.arenas: dict[int, ipc.Arena] = {}
        self.model: Any = None
        self.module: Any = None
        self.device = "cpu"
        self.previous: list[Any] = []
        self.triton: list[dict[str, Any]] = []
        self.snapshot: Any = None
        self.last: Any = None
        from evoforge.verifiers.kernel.plan import PlanRecorder

        self.recorder = PlanRecorder()

    # -- requests ---------------------------------------------------------------------------------

    def setup(self, msg: dict[str, Any], _fds: list[int]) -> dict[str, Any]:
        from evoforge.verifiers.kernel import guard, problem

        self.device = str(msg.get("device") or "cpu")
        try:
            self.module = problem.load_module(Path(msg["problem"]), "problem")
            problem.check_problem(self.module)
        except Exception as exc:
            raise Refusal("problem", _failure_text("importing the problem file", exc)) from exc
        if self.role == "reference":
            try:
                self.model = problem.construct(self.module.Model, self.module, msg["init_seed"], self.device)
            except Exception as exc:
                raise Refusal("problem", _failure_text("building the reference Model", exc)) from exc
            return {"ok": True}
        self._prepare_candidate()
        self.snapshot = guard.Snapshot.take()
        captured: list[dict[str, Any]] = []
        if self.backend == "cuda":
            from evoforge.verifiers.kernel import aot

            with aot.capture_load_inline() as captured:
                self.model = self._build(msg)
        else:
            self.model = self._build(msg)
        return {"ok": True, "captured": captured}

    def arena(self, msg: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        old = self.arenas.pop(int(msg["id"]), None)
        if old is not None:
            old.close()
        arena = ipc.Arena(fds[0], int(msg["nbytes"]))
        arena.prefault()  # the reference's timed calls read inputs without first touches, as the replay's do
        self.arenas[int(msg["id"])] = arena
        return {"ok": True}

    def forward(self, msg: dict[str, Any], _fds: list[int]) -> dict[str, Any]:
        import torch

        from evoforge import runtime
        from evoforge.verifiers.kernel import guard, problem

        inputs = self._inputs(msg)
        if self.backend == "c":
            self.recorder.begin(inputs)
        launches_before = runtime.launch_count() + len(self.triton)
        ops = guard.OpRecorder()
        try:
            with torch.no_grad(), ops:
                value = self.model(*inputs)
            if self.device == "cuda":
                torch.cuda.synchronize()
        except Exception as exc:
            raise Refusal("candidate", _failure_text(f"ModelNew.forward ({msg.get('label')})", exc)) from exc
        outputs = problem.flatten_outputs(value)
        for i, out in enumerate(outputs):
            if type(out) is not torch.Tensor:
                kind = f"{type(out).__module__}.{type(out).__qualname__}"
                raise Refusal(
                    "candidate",
                    f"output {i} of ModelNew.forward ({msg.get('label')}) is a {kind}, not a plain "
                    "torch.Tensor (a tensor subclass or lazy value could compute during the comparison)",
                )
        plan = self.recorder.finish(outputs) if self.backend == "c" else None
        state = self.recorder.state_blob() if self.backend == "c" else b""
        described, size = _layout(outputs)
        reply = {
            "ok": True,
            "outputs": described,
            "state": [size, len(state)],
            "plan": plan,
            "launches": runtime.launch_count() + len(self.triton) - launches_before,
            "triton": list(self.triton[-64:]),
            "compute_ops": ops.compute_ops,
            "patched": self.snapshot.patched() if self.snapshot else [],
        }
        arena = ipc.Arena.create(size + len(state), "outputs")
        _write_outputs(arena, outputs)
        arena.write(size, state)
        self.channel.send(reply, [arena.fd])
        arena.close()
        return {}

    def run(self, msg: dict[str, Any], _fds: list[int]) -> dict[str, Any]:
        import torch

        inputs = self._inputs(msg)
        self.last = None
        with torch.no_grad():
            self.last = self.model(*inputs)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return {"ok": True}

    def collect(self, _msg: dict[str, Any], _fds: list[int]) -> dict[str, Any]:
        """The last ``run``'s outputs, in new shared memory (after the supervisor's clock stopped)."""
        from evoforge.verifiers.kernel import problem

        outputs = problem.flatten_outputs(self.last)
        described, size = _layout(outputs)
        arena = ipc.Arena.create(size, "outputs")
        _write_outputs(arena, outputs)
        self.channel.send({"ok": True, "outputs": described}, [arena.fd])
        arena.close()
        return {}

    def reserve(self, msg: dict[str, Any], _fds: list[int]) -> dict[str, Any]:
        """Fault ``nbytes`` of heap in and give it back (the reference only): its outputs and
        temporaries then come from pages already mapped — its heap never shrinks and never maps
        blocks of its own (``child_env``) — as the replay's buffers are pre-faulted. Without it the
        heap keeps growing into fresh pages on some calls and not on others (aligned blocks do not
        fit the holes freed ones leave), and the reference's time swings by a fault a page."""
        import ctypes

        if self.role != "reference":
            return {"ok": False, "kind": "worker", "detail": "only the reference's heap is reserved"}
        libc = ctypes.CDLL(None)
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
        nbytes = max(0, int(msg["nbytes"]))
        block = libc.malloc(nbytes)
        if not block:  # over the memory cap: the calls fault their memory in, as before
            return {"ok": True, "reserved": 0}
        ctypes.memset(block, 0, nbytes)
        libc.free(block)
        return {"ok": True, "reserved": nbytes}

    def time_gpu(self, msg: dict[str, Any], _fds: list[int]) -> dict[str, Any]:  # pragma: no cover - GPU
        """GPU timing in this process (CUDA events): the reference built here too."""
        import torch

        from evoforge.verifiers.kernel import problem, timing

        reference = problem.construct(self.module.Model, self.module, msg["init_seed"], self.device)

        def make(seed: int) -> list[Any]:
            return problem.to_device(problem.seeded_inputs(self.module, seed, benchmark=True), self.device)

        with torch.no_grad():
            result = timing.time_cuda(
                lambda xs: reference(*xs),
                lambda xs: self.model(*xs),
                make,
                repeats=int(msg["repeats"]),
                budget_s=float(msg["budget_s"]),
                seed=int(msg["seeds"][1]),
            )
        return {
            "ok": True,
            "reference_samples_ms": list(result.reference_samples_ms),
            "candidate_samples_ms": list(result.candidate_samples_ms),
        }

    # -- helpers ----------------------------------------------------------------------------------

    def _prepare_candidate(self) -> None:
        import torch

        from evoforge import runtime
        from evoforge.verifiers.kernel import launches

        if self.backend == "c":
            torch.use_deterministic_algorithms(True)  # torch.empty is NaN-filled: never "happens to be 0"
            runtime.configure(builder=self._compile, recorder=self.recorder.record)
        elif self.backend == "triton":
            launches.install_triton_hooks(self.triton.append)

    def _compile(self, source: str, openmp: bool, flags: tuple[str, ...]) -> str:
        from evoforge import runtime

        answer, _ = self.channel.request(
            {"op": "compile", "source": source, "openmp": openmp, "flags": list(flags)}
        )
        if not answer.get("ok"):
            raise runtime.CompileError(str(answer.get("detail")))
        return str(answer["path"])

    def _build(self, msg: dict[str, Any]) -> Any:
        from evoforge.verifiers.kernel import problem

        try:
            cand = problem.load_module(Path(msg["candidate"]), "candidate")
        except Exception as exc:
            raise Refusal("candidate", _failure_text("importing the candidate", exc)) from exc
        if not hasattr(cand, "ModelNew"):
            raise Refusal("candidate", "the candidate defines no ModelNew")
        try:
            return problem.construct(cand.ModelNew, self.module, msg["init_seed"], self.device)
        except Exception as exc:
            raise Refusal("candidate", _failure_text("ModelNew(*get_init_inputs())", exc)) from exc

    def _inputs(self, msg: dict[str, Any]) -> list[Any]:
        import torch

        fresh = []
        for spec in msg["inputs"]:
            if "value" in spec:
                fresh.append(spec["value"])
                continue
            arena = self.arenas[int(spec["arena"])]
            dtype = getattr(torch, spec["dtype"])
            flat = torch.frombuffer(arena.map, dtype=torch.uint8, count=spec["nbytes"], offset=spec["offset"])
            fresh.append(
                flat.view(dtype).reshape(spec["shape"]) if spec["nbytes"] else torch.empty(0, dtype=dtype)
            )
        if self.device != "cpu":
            if msg.get("reuse") and self.previous:
                for old, new in zip(self.previous, fresh, strict=True):
                    if isinstance(old, torch.Tensor):
                        old.copy_(new)  # the same objects, changed in place
                return self.previous
            fresh = [v.to(self.device) if isinstance(v, torch.Tensor) else v for v in fresh]
        elif msg.get("reuse") and self.previous:
            return self.previous  # views of the same memory, which the supervisor rewrote
        self.previous = fresh
        return fresh


def _layout(outputs: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """Where each output goes in the answer's shared memory (one after another), and the total size."""
    described, offset = [], 0
    for out in outputs:
        nbytes = out.numel() * out.element_size()
        described.append(
            {
                "offset": offset,
                "nbytes": nbytes,
                "shape": list(out.shape),
                "dtype": str(out.dtype).removeprefix("torch."),
                "device": out.device.type,
            }
        )
        offset += nbytes
    return described, offset


def _write_outputs(arena: ipc.Arena, outputs: list[Any]) -> None:
    """Each output's bytes straight into the shared memory (one copy, no intermediate bytes)."""
    offset = 0
    for out in outputs:
        plain = out.detach().to("cpu").contiguous()
        if plain.numel():
            flat = plain.reshape(-1).view(_byte_dtype()).numpy()
            arena.write(offset, memoryview(flat).cast("B"))
            offset += flat.nbytes


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def _failure_text(what: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "evoforge/verifiers" not in frame.filename and "site-packages" not in frame.filename:
            where = f" (at {Path(frame.filename).name}:{frame.lineno}: {frame.line})"
            break
    return f"{what} raised {type(exc).__name__}: {str(exc)[:1500]}{where}"


def main() -> None:
    role, fd, cpus, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    cpu_set = [int(c) for c in cpus.split(",") if c]
    procs.harden(cpu_set)
    import torch

    torch.set_num_threads(max(1, len(cpu_set)))
    filtered = False
    if (backend == "c" or role == "reference") and seccomp.available():
        seccomp.install(seccomp.WORKER)
        filtered = True
    channel = ipc.Channel.from_fd(fd)
    worker = Worker(role, channel, backend)
    channel.send({"op": "hello", "seccomp": filtered, "pid": os.getpid()})
    handlers = {
        "setup": worker.setup,
        "arena": worker.arena,
        "forward": worker.forward,
        "run": worker.run,
        "collect": worker.collect,
        "reserve": worker.reserve,
        "time_gpu": worker.time_gpu,
    }
    while True:
        try:
            msg, fds = channel.recv()
        except ipc.ChannelClosed:
            os._exit(0)
        if msg.get("op") == "exit":
            os._exit(0)
        try:
            reply = handlers[msg["op"]](msg, fds)
        except Refusal as exc:
            reply = {"ok": False, "kind": exc.kind, "detail": str(exc)}
        except Exception as exc:  # a bug here, or the candidate broke this process's code
            reply = {"ok": False, "kind": "worker", "detail": f"{type(exc).__name__}: {exc}"[:2000]}
            reply["log"] = traceback.format_exc()[-4000:]
        if reply:
            channel.send(reply)


if __name__ == "__main__":
    main()
