"""The kernel cascade, declared once as data, and the verifier object that runs it.

``KERNEL_CASCADE`` lists the stages in order (names are the contract of DESIGN.md). ``static`` reads
the source; every other stage runs the harness in a sandboxed child (``stages``). ``KernelVerifier``
holds what is known of the target (the problem file, the reference's summary) and runs the cascade
on a candidate, stopping at the first failure, reporting each stage as it ends. Benchmarks take an
exclusive lock so that no other stage of this verifier competes with them for the CPU.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoforge.config import KernelSettings
from evoforge.domain import Metrics, StageResult, Target, Verdict, VerdictContext
from evoforge.verifiers.kernel import stages
from evoforge.verifiers.kernel.scaling import scale_note
from evoforge.verifiers.kernel.stages import KernelContext
from evoforge.verifiers.kernel.target import PROBLEM_FILE, interpreter_source, runnable_source
from evoforge.verifiers.runner import merged_metrics, remember_stages, reused_stage, run_stage

log = logging.getLogger(__name__)

StageFn = Callable[[KernelContext], StageResult]
StageCallback = Callable[[StageResult], None]

KERNEL_CASCADE: tuple[tuple[str, StageFn], ...] = (
    ("static", stages.run_static),
    ("compile", stages.run_compile),
    ("correctness", stages.run_correctness),
    ("resources", stages.run_resources),
    ("benchmark", stages.run_benchmark),
)
#: stages whose result depends only on the compiled kernels and their launch configuration
IMPLEMENTATION_STAGES = ("resources",)
#: what an agent may run on a draft before handing it over (``quick_check``)
QUICK_STAGES = ("static", "compile")


class _SharedExclusive:
    """Many stages at once, or one benchmark alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


@dataclass
class KernelVerifier:
    target: Target
    settings: KernelSettings
    work_root: Path
    keep_workdirs: bool = False
    implementation_cache: dict[str, dict[str, StageResult]] = field(default_factory=dict)
    implementation_stages: tuple[str, ...] = IMPLEMENTATION_STAGES
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cpu: _SharedExclusive = field(default_factory=_SharedExclusive)

    def __post_init__(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.problem_path = self.work_root / PROBLEM_FILE
        self.problem_path.write_text(runnable_source(self.target))  # at the sizes the size check chose
        interpret = interpreter_source(self.target)
        self.interpret_problem_path: Path | None = None
        if interpret is not None:  # Triton's interpreter checks at smaller sizes still
            self.interpret_problem_path = self.work_root / "problem_interpret.py"  # to read; sent in requests
            self.interpret_problem_path.write_text(interpret)

    @property
    def probe(self) -> dict[str, Any]:
        return dict((self.target.kernel_summary or {}).get("probe") or {})

    def verdict_context(self) -> VerdictContext:
        """Every setting a cached verdict depends on: versions, knobs and the machine of the timings."""
        from evoforge.verifiers.kernel.versions import kernel_tool_versions
        from evoforge.verifiers.verdict_context import kernel_verdict_context

        # the verifier's own generation as a tool: verdicts of the in-harness verifier are not reused
        versions = f"{kernel_tool_versions()};verifier=replay-1"
        return kernel_verdict_context(self.settings, versions, self.probe)

    def _context(self, source: str, workdir: Path) -> KernelContext:
        return KernelContext(
            target=self.target,
            candidate_source=source,
            workdir=workdir,
            settings=self.settings,
            problem_path=self.problem_path,
            probe=self.probe,
        )

    def _workdir(self, label: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.work_root))

    def baseline(self) -> Verdict:
        """The reference as loaded: its CPU time (torch eager) at the benchmark shapes, and speed-up 1.

        The time is shown, never divided by a candidate's: candidates are compared with torch eager
        in their own benchmark run (``speedup``), and the original's speed-up over itself is 1.
        """
        runtime = self.probe.get("runtime_ms")
        metrics = Metrics(runtime_ms=round(float(runtime), 6) if runtime is not None else None, speedup=1.0)
        detail = (
            f"torch eager on the CPU: {runtime:.4g} ms (median, when the problem was loaded)"
            if runtime is not None
            else "not timed"
        )
        note = scale_note((self.target.kernel_summary or {}).get("scaling"))
        detail += f" — {note}" if note else ""
        stage = StageResult("benchmark", True, 0.0, metrics=metrics, detail=detail, data={"device": "cpu"})
        return Verdict(
            True,
            "benchmark",
            "original problem",
            metrics,
            (stage,),
            functional_hash=self.probe.get("fingerprint"),
        )

    def verify(self, source: str, *, on_stage: StageCallback | None = None, label: str = "cand") -> Verdict:
        """Run the cascade on ``source``; never raises for a bad candidate (that is a rejection)."""
        workdir = self._workdir(label)
        ctx = self._context(source, workdir)
        results: list[StageResult] = []
        try:
            for name, fn in KERNEL_CASCADE:
                result = self._cached_stage(name, ctx) or self._run(name, fn, ctx)
                results.append(result)
                if on_stage is not None:
                    on_stage(result)
                if not result.ok:
                    break
        finally:
            self._cleanup(workdir)
        verdict = _verdict(results, ctx)
        impl = verdict.implementation_hash
        if verdict.accepted:
            remember_stages(self.implementation_cache, self._lock, impl, results, self.implementation_stages)
        return verdict

    def quick_check(self, source: str) -> StageResult:
        """``static`` then ``compile``: the last one run, failed or ok (what the agents repair against)."""
        workdir = self._workdir("quick")
        ctx = self._context(source, workdir)
        result = StageResult("static", False, 0.0, detail="no stage ran", error=True)
        try:
            for name, fn in KERNEL_CASCADE:
                if name in QUICK_STAGES:
                    result = self._run(name, fn, ctx)
                    if not result.ok:
                        break
        finally:
            self._cleanup(workdir)
        return result

    def _run(self, name: str, fn: StageFn, ctx: KernelContext) -> StageResult:
        guard = self._cpu.exclusive() if name == "benchmark" else self._cpu.shared()
        with guard:
            return run_stage(name, fn, ctx)

    def _cached_stage(self, name: str, ctx: KernelContext) -> StageResult | None:
        if name not in self.implementation_stages:
            return None
        return reused_stage(
            self.implementation_cache, self._lock, ctx.artifacts.get("implementation_hash"), name
        )

    def _cleanup(self, workdir: Path) -> None:
        if not self.keep_workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


def _verdict(results: list[StageResult], ctx: KernelContext) -> Verdict:
    last = results[-1]
    functional = ctx.artifacts.get("functional_hash")
    impl = ctx.artifacts.get("implementation_hash")
    metrics = merged_metrics(results)
    stages_run = tuple(results)
    if last.error:
        reason = f"verifier error in {last.name}: {last.detail}"
        return Verdict(False, last.name, reason, metrics, stages_run, None, functional, impl, error=True)
    if not last.ok:
        return Verdict(False, last.name, last.detail, metrics, stages_run, None, functional, impl)
    speed = f"speedup {metrics.speedup:.2f}x" if metrics.speedup is not None else "speed unmeasured here"
    return Verdict(True, last.name, f"accepted ({speed})", metrics, stages_run, None, functional, impl)
