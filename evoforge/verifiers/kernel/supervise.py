"""What every supervised stage shares: the files, the problem, the CPUs, the children's environments.

The harness process of a ``compile``, ``correctness`` or ``benchmark`` stage is the *supervisor*: it
never imports candidate code. :func:`prepare` makes it undumpable (its memory is out of reach of
its children), writes the problem and the candidate from the request's text under fresh random
names (never a file an earlier stage's candidate could have replaced, nor a ``__pycache__`` it could
have planted), imports the problem itself (inputs and expected outputs are made here), and fixes
the CPUs and threads both sides get — the verifier's, not the candidate's: every child is pinned to
the same CPUs and may not change that. ``mode_compile`` is the ``compile`` stage.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from evoforge.verifiers.kernel import procs
from evoforge.verifiers.kernel.outcome import CandidateFailure, ProblemFailure
from evoforge.verifiers.kernel.session import WorkerSession


@dataclass
class Supervised:
    request: dict[str, Any]
    workdir: Path
    module: ModuleType
    cpus: list[int]
    backend: str
    device: str

    @property
    def threads(self) -> int:
        return len(self.cpus)

    def env(self, *, role: str) -> dict[str, str]:
        return child_env(self.threads, role=role)

    def problem_file(self) -> Path:
        """The problem's text under a new random name (each child that imports it gets its own)."""
        path = self.workdir / f"problem_{secrets.token_hex(8)}.py"
        path.write_text(self.request["problem_source"])
        return path

    def candidate_file(self) -> Path:
        path = self.workdir / f"candidate_{secrets.token_hex(8)}.py"
        path.write_text(self.request["candidate_source"])
        return path

    def worker(self) -> WorkerSession:
        """The candidate's process, set up (imported and constructed)."""
        session = self.request.pop("_early_worker", None) or start_candidate(self.request)
        try:
            session.setup(
                problem=str(self.problem_file()),
                candidate=str(self.candidate_file()),
                init_seed=self.request["init_seed"],
                device=self.device,
            )
        except BaseException:
            session.close()
            raise
        return session

    def reference_worker(self) -> WorkerSession:
        session = WorkerSession(
            role="reference",
            workdir=self.workdir,
            backend=self.backend,
            cpus=self.cpus,
            env=self.env(role="reference"),
        )
        try:
            session.setup(
                problem=str(self.problem_file()), init_seed=self.request["init_seed"], device=self.device
            )
        except BaseException:
            session.close()
            raise
        return session

    def inputs(self, seed: int, *, benchmark: bool = False) -> list[Any]:
        from evoforge.verifiers.kernel import problem

        try:
            return problem.seeded_inputs(self.module, seed, benchmark=benchmark)
        except Exception as exc:
            raise ProblemFailure(f"get_inputs() failed: {type(exc).__name__}: {exc}") from exc


def cpus_of(request: dict[str, Any]) -> list[int]:
    """The CPUs both sides get: the first ``threads`` this process may use (all when unset)."""
    allowed = sorted(os.sched_getaffinity(0))
    wanted = int(request.get("threads") or len(allowed))
    return allowed[: max(1, min(wanted, len(allowed)))]


def child_env(threads: int, *, role: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE", OMP_DYNAMIC="false")
    for key in ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "GOMP_SPINCOUNT"):
        env.pop(key, None)
    if role in ("reference", "replay"):
        # the same allocator policy for both timed sides: large blocks from a heap that is never given
        # back, so freed memory comes back pre-faulted (the reference's outputs and temporaries; a
        # kernel's own malloc). The reference's heap is also faulted in before it is timed
        # (``bench._settle_reference``), as the replay's slots are when they are mapped.
        env.update(MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_=str(1 << 40))
    return env


def start_candidate(request: dict[str, Any]) -> WorkerSession:
    """Start the candidate's worker process (its start-up runs while this process imports torch)."""
    procs.protect_supervisor()
    workdir = Path.cwd()
    cpus = cpus_of(request)
    return WorkerSession(
        role="candidate",
        workdir=workdir,
        backend=str(request.get("backend") or ""),
        cpus=cpus,
        env=child_env(len(cpus), role="candidate"),
        build_dir=workdir / f"build-worker-{secrets.token_hex(4)}",
    )


def prepare(request: dict[str, Any]) -> Supervised:
    from evoforge.verifiers.kernel import problem

    procs.protect_supervisor()
    workdir = Path.cwd()
    path = workdir / f"problem_{secrets.token_hex(8)}.py"
    path.write_text(request["problem_source"])
    try:
        module = problem.load_module(path, "problem")
        problem.check_problem(module)
    except problem.ProblemError as exc:
        raise ProblemFailure(str(exc)) from exc
    except Exception as exc:
        raise ProblemFailure(f"importing the problem file raised {type(exc).__name__}: {exc}") from exc
    cpus = cpus_of(request)
    import torch

    torch.set_num_threads(len(cpus))
    backend, device = str(request.get("backend") or ""), request.get("device", "cpu")
    return Supervised(request, workdir, module, cpus, backend, device)


def mode_compile(request: dict[str, Any]) -> dict[str, Any]:
    """Import and build the candidate in its worker; one probe call (its outputs: the fingerprint)."""
    import torch

    from evoforge.verifiers.kernel import compare

    stage = prepare(request)
    result: dict[str, Any] = {"ok": True, "launches": [], "kernels": []}
    session = stage.worker()
    try:
        if stage.backend == "cuda":
            from evoforge.verifiers.kernel import aot

            captured = session.setup_answer.get("captured") or []
            if not captured:
                raise CandidateFailure("the candidate never called load_inline while being imported or built")
            for build in captured:
                try:
                    result["kernels"] += aot.compile_cuda(
                        build,
                        arch=request["arch"],
                        workdir=stage.workdir,
                        timeout_s=request["compile_timeout_s"],
                    )
                except Exception as exc:
                    raise CandidateFailure(f"nvcc failed: {exc}") from exc
            if not torch.cuda.is_available():
                result["runnable"] = False
                result["libraries"] = []
                return result
        inputs = stage.inputs(request["probe_seed"])
        call = session.forward(inputs, label="probe")
        result["launch_count"] = call.launches
        result["launches"] = call.triton
        result["fingerprint"] = compare.fingerprint(call.outputs)
        result["runnable"] = True
        result["libraries"] = sorted(session.libraries)
        result["seccomp"] = session.seccomp
        return result
    finally:
        session.close()
