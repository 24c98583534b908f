"""The supervisor's side of the replay: the candidate's kernels, run alone, watched from outside.

:class:`ReplayHost` compiles the C sources the worker used — again, into a new directory, after the
worker was killed, so no candidate process could have touched the builds — refuses any with code
that runs at load (``elf``), starts the replay process and lays each launch plan out in shared
memory it owns: inputs copied in, fresh memory poisoned (or filled, inside the call, when the
candidate's Python filled it), state as the worker captured it. :meth:`run` sends one call and
times it with the supervisor's clock; then, from ``/proc`` and the buffers — state the candidate
cannot write — it checks that the work ended when the call did: no thread the call started is still
alive, the process spends no CPU after returning or between calls, and the outputs read at return
equal the outputs a little later. The roofline kernel (:meth:`floor`, evoforge's own C) reads every
input byte and writes every output byte, on the same buffers: a reference point for the memory
traffic, not a wall (a kernel with wider loads or streaming stores can beat its median; the
benchmark refuses a time below 0.8 × its best round).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evoforge import runtime
from evoforge.verifiers.kernel import elf, ipc, procs
from evoforge.verifiers.kernel.awake import Window
from evoforge.verifiers.kernel.outcome import CandidateFailure
from evoforge.verifiers.kernel.plan import DTYPE_SIZES
from evoforge.verifiers.kernel.session import LibrarySource, same_bytes, tensor_bytes, torch_dtype

FLOOR_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <omp.h>

volatile uint64_t evoforge_floor_sink;

/* Read every input byte (xor of 64-bit words) and write every output byte (memset: the C library
   picks the fastest stores for the size), each thread its own contiguous part, in ONE parallel
   region: the least memory traffic and the least threading overhead any kernel that reads all its
   inputs and writes all its outputs can have. */
void evoforge_floor(void **ins, const int64_t *in_sizes, int64_t n_in,
                    void **outs, const int64_t *out_sizes, int64_t n_out) {
    uint64_t total = 0;
    #pragma omp parallel reduction(^ : total)
    {
        const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
        uint64_t acc = 0;
        for (int64_t k = 0; k < n_in; ++k) {
            const uint64_t *p = (const uint64_t *)ins[k];
            const int64_t words = in_sizes[k] / 8, begin = words * t / n, end = words * (t + 1) / n;
            #pragma omp simd reduction(^ : acc)
            for (int64_t i = begin; i < end; ++i) acc ^= p[i];
        }
        for (int64_t k = 0; k < n_out; ++k) {
            char *p = (char *)outs[k];
            const int64_t size = out_sizes[k], begin = size * t / n, end = size * (t + 1) / n;
            if (end > begin) memset(p + begin, (int)(acc & 0x7f), (size_t)(end - begin));
        }
        total ^= acc;
    }
    evoforge_floor_sink = total;
}
"""
FLOOR_KEY = "evoforge-floor"
#: CPU time the replay process may use outside its calls, or after one returned (noise, not work)
IDLE_CPU_NS = 2_000_000
#: CPU time the replay process may spend loading a call (converting its arguments), not counted as idle
LOAD_CPU_NS = 5_000_000
#: how long to wait for the replay process's main thread to stop running after evoforge's own work
SETTLE_LIMIT_S = 0.05
#: how long to wait, after a call returned, for its threads to stop running before the outputs are
#: read: short, since work done meanwhile is only counted (as CPU), not seen in the outputs
RETURN_SETTLE_S = 0.0005
#: how long a thread the call started may still be seen after the outputs' second read (the settle
#: time after the return): OpenMP ends pool threads a smaller team no longer needs, and such a thread
#: may be in its last microseconds at the return; a worker computing the call's results is not
LINGER_GRACE_S = 0.005


@dataclass
class Slot:
    id: int
    arena: ipc.Arena


@dataclass
class Prepared:
    """A plan laid out in a slot, ready to be loaded and run."""

    plan: dict[str, Any]
    slot: Slot
    offsets: list[int]
    inputs: dict[int, bytes]
    state: dict[int, bytes]
    poisoned: list[int]
    call_id: int = 0


@dataclass
class Replayed:
    seconds: float
    outputs: list[torch.Tensor]
    problems: list[str] = field(default_factory=list)
    mutated: list[int] = field(default_factory=list)
    cpu_ms: float = 0.0
    #: page faults (minor, major) of the replay process during the timed call
    faults: tuple[int, int] = (0, 0)


def layout(plan: dict[str, Any]) -> tuple[list[int], int]:
    """Each buffer's offset in a slot (page-aligned) and the slot size."""
    offsets, at = [], 0
    for buf in plan["buffers"]:
        offsets.append(at)
        at = ipc.aligned(at + int(buf["nbytes"]), 4096)
    return offsets, max(at, 4096)


class ReplayHost:
    def __init__(
        self,
        *,
        workdir: Path,
        libraries: Mapping[str, LibrarySource],
        cpus: list[int],
        env: Mapping[str, str],
    ) -> None:
        self.workdir = workdir
        self.sources = dict(libraries)
        self.cpus = cpus
        self.env = env
        self.child: procs.Child | None = None
        self.channel: ipc.Channel | None = None
        self.watch: procs.Watch | None = None
        self.seccomp = False
        self._slots: list[Slot] = []
        self._calls = 0
        self._last_cpu: int | None = None
        #: the threads the replay process may have between calls: its own and a full OpenMP pool
        self._thread_ceiling = 0
        #: entered around each timed request only (``awake.Awake.parked``: the CPUs kept busy between)
        self.window: Window = contextlib.nullcontext

    # -- start and stop ---------------------------------------------------------------------------

    def start(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="replay-build-", dir=self.workdir))
        paths: dict[str, str] = {}
        for key, lib in self.sources.items():
            try:
                path = runtime.build_library(
                    lib.source, openmp=lib.openmp, flags=lib.flags, directory=directory
                )
            except runtime.CompileError as exc:
                raise CandidateFailure(f"the C source did not compile again for the replay: {exc}") from exc
            problems = elf.load_time_problems(path)
            if problems:
                raise CandidateFailure(f"the compiled C library {'; '.join(problems)}")
            paths[key] = str(path)
        paths[FLOOR_KEY] = str(
            runtime.build_library(FLOOR_SOURCE, openmp=True, flags=(), directory=directory)
        )
        self.channel, theirs = ipc.Channel.pair()
        self.child = procs.spawn(
            "evoforge.verifiers.kernel.replay",
            [str(theirs.fileno()), ",".join(map(str, self.cpus))],
            fd=theirs.fileno(),
            workdir=self.workdir,
            # a team is never larger than the CPUs (whatever ``num_threads`` says), so that OpenMP's
            # pool has a known ceiling: its helpers, besides the process's own threads
            env={**self.env, "OMP_THREAD_LIMIT": str(len(self.cpus))},
            label="replay",
        )
        theirs.close()
        self.watch = procs.Watch(self.child.pid)
        ready = self._request({"op": "init", "libraries": paths}, expect_reply=True)
        self.seccomp = bool(ready.get("seccomp"))
        self._thread_ceiling = self.watch.threads() + len(self.cpus) - 1

    def close(self) -> None:
        if self.child is not None and self.child.alive():
            self.child.kill()
        if self.channel is not None:
            self.channel.close()
        for slot in self._slots:
            slot.arena.close()
        self._slots = []

    # -- preparing calls --------------------------------------------------------------------------

    def new_slot(self, nbytes: int) -> Slot:
        """Shared memory for calls, mapped and pre-faulted in the replay process (no call is timed
        with first touches of its memory); that work, done by the replay's main thread running
        evoforge's code, is not counted as the candidate's work between calls (other threads' is)."""
        slot = Slot(len(self._slots) + 1, ipc.Arena.create(nbytes, "replay"))
        assert self.watch is not None and self.child is not None
        main = self.child.pid
        self.watch.settle(SETTLE_LIMIT_S, [main])
        before = self.watch.thread_cpu_ns(main)
        self._request({"op": "arena", "id": slot.id, "nbytes": nbytes}, fds=[slot.arena.fd])
        self.watch.settle(SETTLE_LIMIT_S, [main])
        if self._last_cpu is not None:
            self._last_cpu += self.watch.thread_cpu_ns(main) - before
        self._slots.append(slot)
        return slot

    def prepare(
        self, plan: dict[str, Any], inputs: list[Any], state: bytes, slot: Slot | None = None
    ) -> Prepared:
        offsets, size = layout(plan)
        if slot is None or slot.arena.nbytes < size:
            slot = self.new_slot(size)
        placed: dict[int, bytes] = {}
        saved: dict[int, bytes] = {}
        poisoned: list[int] = []
        for index, buf in enumerate(plan["buffers"]):
            if buf["kind"] == "input":
                placed[index] = tensor_bytes(inputs[int(buf["index"])])
            elif buf["kind"] == "state":
                start, length = buf["blob"]
                saved[index] = state[start : start + length]
            elif buf.get("fill") is None:
                poisoned.append(index)
        self._calls += 1
        return Prepared(plan, slot, offsets, placed, saved, poisoned, self._calls)

    # -- running calls ----------------------------------------------------------------------------

    def run(self, prepared: Prepared, *, poison: bytes = b"\xff", settle_s: float = 0.02) -> Replayed:
        """Write the buffers, run the call, time it, and check that its work ended with it."""
        self.write(prepared, poison)
        loading = self._load_measured(prepared)
        assert self.watch is not None and self.child is not None
        # a thread the call started that is alive at its return: flagged at once when it is one more
        # than the process and a full OpenMP pool can have (``warm`` filled the pool), else when it is
        # still alive a little later (OpenMP ends and restarts pool threads when teams shrink and grow
        # again); threads are told apart by id, so that one outliving an earlier call hides nothing
        present = self.watch.tids()
        seconds, problems, cpu_ms, faults = self._timed(prepared.call_id, loading)
        flooded = self.child.output_limit()
        if flooded:  # said first: what else the call did is beside the point
            problems.insert(0, f"the process running the candidate's kernels {flooded}")
        tids_now, cpu_returned, process_now = (
            self.watch.tids(),
            self.watch.cpu_ns(),
            self.watch.process_cpu_ns(),
        )
        # a thread still on a CPU shows less than it used (see ``Watch.settle``): wait (briefly) until
        # all sleep, then read again; of the difference, at most the wall time waited per thread can
        # be work done after the return — the rest is the call's own, accounted late
        returned_ns = time.perf_counter_ns()
        self.watch.settle(RETURN_SETTLE_S)
        cpu_now = self.watch.cpu_ns()
        waited_ns = (time.perf_counter_ns() - returned_ns) * max(len(tids_now), 1)
        first = self._outputs(prepared)
        time.sleep(settle_s)
        cpu_later = self.watch.cpu_ns()
        process_later = self.watch.process_cpu_ns()
        later = self._outputs(prepared, copy=False)  # views of the slot, compared at once
        # live threads are measured to the nanosecond; threads that ended meanwhile only in clock ticks
        after = max(
            cpu_later - cpu_now + max(0, min(cpu_now - cpu_returned, waited_ns)),
            process_later - process_now - 2 * procs.TICK_NS,
        )
        started = tids_now - present
        if started and len(tids_now) > self._thread_ceiling:
            problems.append(
                f"{len(tids_now) - self._thread_ceiling} thread(s) started by the call were still running "
                "when it returned (more threads than the process and a full OpenMP pool)"
            )
        elif started and (lingering := self._lingering(started)):
            problems.append(
                f"{lingering} thread(s) started by the call were still running when it returned, and "
                f"{(time.perf_counter_ns() - returned_ns) / 1e6:.0f} ms later "
                "(threads of the kernel's process that did not exist before the call)"
            )
        if after > IDLE_CPU_NS:
            problems.append(
                f"the kernel's process kept computing for {after / 1e6:.1f} ms of CPU after the call returned"
            )
        for k, (a, b) in enumerate(zip(first, later, strict=True)):
            if not same_bytes(a, b):
                problems.append(
                    f"output {k} read at return differs from output {k} read {settle_s * 1e3:.0f} ms later"
                )
        self._last_cpu = cpu_later
        mutated = [
            int(prepared.plan["buffers"][index]["index"])
            for index, data in prepared.inputs.items()
            if not prepared.slot.arena.holds(prepared.offsets[index], data)
        ]
        return Replayed(seconds, first, problems, sorted(set(mutated)), cpu_ms, faults)

    def _lingering(self, started: frozenset[int]) -> int:
        """How many of the threads a call started (alive at its return) are alive still, after a grace
        of ``LINGER_GRACE_S``."""
        assert self.watch is not None
        deadline = time.monotonic() + LINGER_GRACE_S
        while started:
            started = started & self.watch.tids()
            if not started or time.monotonic() > deadline:
                break
            time.sleep(0.001)
        return len(started)

    def warm(self, prepared: Prepared) -> None:
        """Run a call whose thread pool may grow (OpenMP starts its threads on first use), then the
        roofline kernel, whose team is all the CPUs: the pool is full before the first checked call."""
        self.write(prepared)
        self._load(prepared)
        self._timed(prepared.call_id)
        self.write(prepared)
        self.floor(prepared)
        time.sleep(0.01)
        assert self.watch is not None
        self._last_cpu = self.watch.cpu_ns()

    def floor(self, prepared: Prepared) -> Replayed:
        """Seconds (and faults) of the roofline kernel on this call's input and output memory."""
        plan, offsets, slot = prepared.plan, prepared.offsets, prepared.slot
        ins = [(slot.id, offsets[i]) for i in prepared.inputs]
        in_sizes = [len(data) for data in prepared.inputs.values()]
        outs, out_sizes = [], []
        for out in plan["outputs"]:
            count = 1
            for n in out["shape"]:
                count *= int(n)
            outs.append((slot.id, offsets[out["buffer"]] + out["offset"]))
            out_sizes.append(count * DTYPE_SIZES[out["dtype"]])
        self._calls += 1
        call = self._calls
        args = [
            {"pointers": ins},
            {"int64s": in_sizes},
            {"int": len(ins)},
            {"pointers": outs},
            {"int64s": out_sizes},
            {"int": len(outs)},
        ]
        launch = {"library": FLOOR_KEY, "function": "evoforge_floor", "args": args}
        assert self.watch is not None
        before = self.watch.cpu_ns()
        self._request({"op": "load", "call": call, "fills": [], "launches": [launch]})
        seconds, problems, cpu_ms, faults = self._timed(call, self.watch.cpu_ns() - before)
        time.sleep(0.002)
        assert self.watch is not None
        self._last_cpu = self.watch.cpu_ns()
        return Replayed(seconds, [], problems, [], cpu_ms, faults)

    # -- helpers ----------------------------------------------------------------------------------

    def _load_measured(self, prepared: Prepared) -> int:
        """Load the call; the CPU the replay process spent on the request (evoforge's code only: it
        converts the arguments; no candidate code runs at load — libraries have no constructors)."""
        assert self.watch is not None
        before = self.watch.cpu_ns()
        self._load(prepared)
        return self.watch.cpu_ns() - before

    def _timed(self, call: int, loading_ns: int = 0) -> tuple[float, list[str], float, tuple[int, int]]:
        assert self.channel is not None and self.watch is not None
        problems: list[str] = []
        cpu_before = self.watch.cpu_ns()
        idle = (
            (cpu_before - self._last_cpu - min(loading_ns, LOAD_CPU_NS)) if self._last_cpu is not None else 0
        )
        if idle > IDLE_CPU_NS:
            problems.append(
                f"the kernel's process used {idle / 1e6:.1f} ms of CPU between calls "
                "(work done outside the timed calls)"
            )
        minor, major = self.watch.faults()
        with self.window():
            begin = time.perf_counter_ns()
            answer = self._request({"op": "go", "call": call})
            seconds = (time.perf_counter_ns() - begin) / 1e9
        minor_after, major_after = self.watch.faults()
        if not answer.get("ok"):
            raise CandidateFailure(f"the replayed launches failed: {answer.get('detail')}")
        faults = (minor_after - minor, major_after - major)
        return seconds, problems, (self.watch.cpu_ns() - cpu_before) / 1e6, faults

    def write(self, prepared: Prepared, poison: bytes = b"\xff") -> None:
        """Poison, state and inputs into the call's buffers (the supervisor's work, never timed).

        Inputs last: the reference's inputs too are written just before its call (the same bytes
        left in the caches on both sides)."""
        arena, offsets, buffers = prepared.slot.arena, prepared.offsets, prepared.plan["buffers"]
        for index in prepared.poisoned:
            arena.fill(offsets[index], int(buffers[index]["nbytes"]), poison)
        for index, data in prepared.state.items():
            arena.write(offsets[index], data)
        for index, data in prepared.inputs.items():
            arena.write(offsets[index], data)

    def _load(self, prepared: Prepared) -> None:
        slot, offsets, plan = prepared.slot, prepared.offsets, prepared.plan
        fills = [
            {"arena": slot.id, "offset": offsets[i], "size": int(buf["nbytes"]), "pattern": buf["fill"]}
            for i, buf in enumerate(plan["buffers"])
            if buf["kind"] == "fresh" and buf.get("fill") is not None
        ]
        launches = []
        for launch in plan["launches"]:
            args = []
            for arg in launch["args"]:
                if "buffer" in arg:
                    args.append({"arena": slot.id, "offset": offsets[arg["buffer"]] + int(arg["offset"])})
                else:
                    args.append(arg)
            launches.append({"library": launch["library"], "function": launch["function"], "args": args})
        answer = self._request({"op": "load", "call": prepared.call_id, "fills": fills, "launches": launches})
        if not answer.get("ok"):
            raise CandidateFailure(str(answer.get("detail")))

    def _outputs(self, prepared: Prepared, *, copy: bool = True) -> list[torch.Tensor]:
        """The call's outputs, copied out of the slot (each a tensor of its own memory) — or, with
        ``copy=False``, views of the slot, valid until its next call is written."""
        arena, offsets = prepared.slot.arena, prepared.offsets
        outputs = []
        for out in prepared.plan["outputs"]:
            dtype, size = torch_dtype(out["dtype"]), DTYPE_SIZES[out["dtype"]]
            buffer_bytes = int(prepared.plan["buffers"][out["buffer"]]["nbytes"])
            if out["offset"] % size or buffer_bytes < size:
                raise CandidateFailure("an output does not start on an element boundary of its memory")
            flat = torch.frombuffer(
                arena.map, dtype=dtype, count=buffer_bytes // size, offset=offsets[out["buffer"]]
            )
            view = torch.as_strided(flat, out["shape"], out["strides"], out["offset"] // size)
            outputs.append(view.clone() if copy else view)
        return outputs

    def _request(
        self, message: dict[str, Any], fds: list[int] | None = None, *, expect_reply: bool = True
    ) -> dict[str, Any]:
        assert self.channel is not None and self.child is not None
        try:
            self.channel.send(message, fds or [])
            answer, _ = self.channel.recv()
        except (OSError, ValueError) as exc:
            try:
                self.child.process.wait(timeout=2)
            except Exception:
                self.child.kill()
            raise CandidateFailure(
                f"the process running the candidate's kernels died ({self.child.exit_text()}):\n"
                f"{self.child.log()[-2000:]}"
            ) from exc
        return answer
