"""Where evaluation tasks run: one interface, two executors (local threads, a Ray cluster).

The search loop hands an executor ``EvaluationTask`` values and receives each task's outcome (or the
exception that ended it) as it completes; it never knows where a task ran. ``local`` runs tasks on a
thread pool of this process (each thread drives the verifier's sandboxed child processes: today's
behaviour); ``ray`` (``ray_executor.py``) submits them to a Ray cluster. ``make_executor`` is the
one getter (``EXECUTORS`` lists the names).

Resources are declared per stage (``STAGE_NEEDS``): a kernel's ``correctness`` and ``benchmark``
stages need a GPU when the job must be timed on one. A task runs a whole cascade, so it asks for
what its most demanding stage needs (``task_resources``): Ray places a GPU job's tasks only on
nodes that have a GPU. An executor reports what it can offer (``capabilities``): a worker advertises
it when claiming jobs, so a GPU job is never claimed by a worker without a GPU.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from evoforge.domain import TargetKind, VerdictContext
from evoforge.errors import ConfigError
from evoforge.search.evaluate import CandidateSlot, EvaluationOutcome, TargetRef, evaluate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageNeeds:
    """What one stage needs of the machine it runs on."""

    cpus: float = 1.0
    gpu: Literal["never", "when_required"] = "never"


_CPU = StageNeeds()
_GPU_WHEN_REQUIRED = StageNeeds(gpu="when_required")

#: per target kind, per stage (the cascade's stage names): what the stage needs
STAGE_NEEDS: dict[TargetKind, dict[str, StageNeeds]] = {
    TargetKind.RTL: {
        "parse": _CPU,
        "lint": _CPU,
        "interface": _CPU,
        "simulate": _CPU,
        "equivalence": _CPU,
        "synthesis": _CPU,
        "timing": _CPU,
    },
    TargetKind.KERNEL: {
        "static": _CPU,
        "compile": _CPU,
        "correctness": _GPU_WHEN_REQUIRED,  # the kernel runs on the device it will be timed on
        "resources": _CPU,
        "benchmark": _GPU_WHEN_REQUIRED,
    },
}


@dataclass(frozen=True)
class TaskResources:
    cpus: float
    gpus: int


def task_resources(kind: TargetKind, needs_gpu: bool) -> TaskResources:
    """What a task running ``kind``'s whole cascade asks for: its most demanding stage's needs."""
    stages = STAGE_NEEDS[kind].values()
    gpus = 1 if needs_gpu and any(s.gpu == "when_required" for s in stages) else 0
    return TaskResources(cpus=max(s.cpus for s in stages), gpus=gpus)


@dataclass(frozen=True)
class EvaluationTask:
    """One candidate to evaluate: the arguments of ``evaluate`` and where the task may run."""

    target: TargetRef
    context: VerdictContext  # the job's verdict context (a frozen value: pickled to Ray workers)
    source: str
    slot: CandidateSlot
    resources: TaskResources

    @property
    def candidate_id(self) -> int:
        return self.slot.candidate_id


@dataclass(frozen=True)
class TaskFactory:
    """Makes a job's tasks: everything but the candidate is the same for all of them."""

    target: TargetRef
    context: VerdictContext
    database_url: str
    job_id: int
    lease_token: str | None

    def task(self, candidate_id: int, source: str) -> EvaluationTask:
        slot = CandidateSlot(self.database_url, self.job_id, candidate_id, self.lease_token)
        resources = task_resources(self.target.kind, self.target.needs_gpu)
        return EvaluationTask(self.target, self.context, source, slot, resources)


def run_task(task: EvaluationTask) -> EvaluationOutcome:
    """The task itself (what a thread or a Ray worker runs)."""
    return evaluate(task.target, task.context, task.source, task.slot)


@dataclass(frozen=True)
class Capabilities:
    """What an executor can offer a job (a worker advertises it when claiming)."""

    gpus: int
    where: str


Finished = tuple[EvaluationTask, EvaluationOutcome | BaseException]


class Executor(Protocol):
    name: str

    def capabilities(self) -> Capabilities: ...
    def run(self, tasks: Sequence[EvaluationTask], *, parallel: int) -> Iterator[Finished]:
        """Run ``tasks``, at most ``parallel`` at a time; each with its outcome as it completes."""
        ...

    def close(self) -> None: ...


_NVIDIA_DEVICE = re.compile(r"nvidia\d+")


def local_gpu_count(dev: Path = Path("/dev")) -> int:
    """GPUs this machine has (NVIDIA device nodes; no GPU library is loaded to find out)."""
    try:
        return sum(1 for p in dev.iterdir() if _NVIDIA_DEVICE.fullmatch(p.name))
    except OSError:
        return 0


class LocalExecutor:
    """Tasks on threads of this process (the verifier's children do the work).

    Like every executor it keeps at most ``parallel`` tasks in flight and records, per candidate,
    the seconds from submission to the outcome in the submitting process (``roundtrip_s``).
    """

    name = "local"

    def __init__(self) -> None:
        self.roundtrip_s: dict[int, float] = {}

    def capabilities(self) -> Capabilities:
        return Capabilities(gpus=local_gpu_count(), where="this machine")

    def run(self, tasks: Sequence[EvaluationTask], *, parallel: int) -> Iterator[Finished]:
        if not tasks:
            return
        waiting = list(tasks)
        pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="evaluate")
        in_flight: dict[Future[EvaluationOutcome], tuple[EvaluationTask, float]] = {}
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < max(1, parallel):
                    task = waiting.pop(0)
                    in_flight[pool.submit(run_task, task)] = (task, time.perf_counter())
                done, _ = wait(set(in_flight), return_when=FIRST_COMPLETED)
                for future in done:
                    task, submitted = in_flight.pop(future)
                    self.roundtrip_s[task.candidate_id] = time.perf_counter() - submitted
                    error = future.exception()
                    yield task, error if error is not None else future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass


#: executor names (``--executor``, ``EVOFORGE_EXECUTOR``)
EXECUTORS: dict[str, str] = {
    "local": "threads of this process, each driving sandboxed child processes",
    "ray": "tasks on a Ray cluster (--ray-address ray://HOST:10001 | auto; none: a local cluster)",
}


def make_executor(name: str | None, *, ray_address: str | None = None) -> Executor:
    """The executor called ``name`` (None: local); ``ConfigError`` naming the valid ones otherwise."""
    chosen = name or "local"
    if chosen == "local":
        return LocalExecutor()
    if chosen == "ray":
        from evoforge.search.ray_executor import RayExecutor

        return RayExecutor(address=ray_address)
    raise ConfigError(
        f"unknown executor {chosen!r}",
        hint="use one of: " + "; ".join(f"{k} ({v})" for k, v in EXECUTORS.items()),
    )
