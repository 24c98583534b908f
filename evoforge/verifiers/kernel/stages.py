"""The five kernel stages. ``static`` reads the text; the others run the harness in a sandboxed child.

Each ``run_*`` takes the candidate's :class:`KernelContext` and returns a ``StageResult``: ``ok``
False with a ``detail`` a person (or the next prompt) can act on when the candidate fails,
``error`` True when the verifier itself could not do its job. What later stages need (the backend,
recorded launches, compiled kernels, hashes) travels in ``ctx.artifacts``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evoforge.config import KernelSettings
from evoforge.domain import Metrics, StageResult, Target
from evoforge.verifiers.kernel import static
from evoforge.verifiers.kernel.budget import child_limits, stage_budget
from evoforge.verifiers.kernel.child import KERNEL_LIMITS, ChildResult, run_harness
from evoforge.verifiers.kernel.scaling import scale_note
from evoforge.verifiers.kernel.target import INIT_SEED, PROBE_SEED, tolerance_of

CANDIDATE_FILE = "candidate.py"


@dataclass
class KernelContext:
    target: Target
    candidate_source: str
    workdir: Path
    settings: KernelSettings
    problem_path: Path
    probe: dict[str, Any]
    artifacts: dict[str, Any] = field(default_factory=dict)
    interpret_problem_path: Path | None = None  # the problem at the Triton interpreter's sizes

    @property
    def backend(self) -> str:
        return str(self.artifacts.get("backend") or "")

    @property
    def device(self) -> str:
        if self.backend == "cuda" or (self.backend == "triton" and self.probe.get("cuda")):
            return "cuda"
        return "cpu"

    @property
    def build_dir(self) -> Path:
        path = self.workdir / "build"
        path.mkdir(exist_ok=True)
        return path

    def request(self, **extra: Any) -> dict[str, Any]:
        return {
            "problem": str(self.problem_path),
            "candidate": str(self.workdir / CANDIDATE_FILE),
            "backend": self.backend,
            "device": self.device,
            "build_dir": str(self.build_dir),
            "outdir": str(self.workdir),
            "init_seed": INIT_SEED,
            "probe_seed": PROBE_SEED,
            "tolerance": tolerance_of(self.settings),
            "threads": self.settings.cpu_threads,
            "arch": self.settings.gpu_arch,
            "compile_timeout_s": self.settings.compile_timeout_s,
            **extra,
        }

    def env(self, *, interpret: bool) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": str(self.settings.cpu_threads)} if self.settings.cpu_threads else {}
        if interpret:
            env["TRITON_INTERPRET"] = "1"
        return env

    def harness(self, mode: str, *, interpret: bool | None = None, **extra: Any) -> ChildResult:
        if interpret is None:
            interpret = self.backend == "triton" and self.device == "cpu"
        if self.backend == "triton" and self.device == "cpu" and self.interpret_problem_path is not None:
            # both sides of every check at the interpreter's sizes (the reference side too)
            extra = {"problem": str(self.interpret_problem_path), **extra}
        budget = stage_budget(mode, self.settings, self.probe, backend=self.backend)  # too slow: stopped
        child = run_harness(
            mode,
            self.request(**extra),
            workdir=self.workdir,
            timeout_s=budget.seconds,
            env=self.env(interpret=interpret),
            limits=child_limits(self.settings, KERNEL_LIMITS),
            reads=(self.problem_path,),
        )
        if child.timed_out and budget.limited:
            child = replace(child, stopped_because=budget.reason)
        return child


def _result(name: str, start: float, ok: bool, detail: str, **kwargs: Any) -> StageResult:
    return StageResult(name, ok, round(time.monotonic() - start, 4), detail=detail, **kwargs)


def _child_failed(name: str, start: float, child: ChildResult) -> StageResult | None:
    """The stage's result when the child gave no usable answer or reported a failure; else None."""
    if not child.ok:
        # a hang or a crash inside candidate code (a segfaulting C kernel) is the candidate's failure
        return _result(name, start, False, f"the candidate {child.failure}", log=child.log)
    answer = child.answer
    if answer.get("ok"):
        return None
    kind = answer.get("kind")
    log = str(answer.get("log") or child.log)
    if kind == "candidate":
        return _result(name, start, False, str(answer.get("detail")), log=log)
    return _result(name, start, False, f"{kind} failure: {answer.get('detail')}", log=log, error=True)


# -- static ----------------------------------------------------------------------------------------


def run_static(ctx: KernelContext) -> StageResult:
    start = time.monotonic()
    (ctx.workdir / CANDIDATE_FILE).write_text(ctx.candidate_source)
    report = static.check(ctx.candidate_source, require_custom_kernel=ctx.settings.require_custom_kernel)
    ctx.artifacts["backend"] = report.backend
    data = {"backend": report.backend, "problems": list(report.problems)}
    return _result("static", start, report.ok, report.detail, data=data)


# -- compile ---------------------------------------------------------------------------------------


def run_compile(ctx: KernelContext) -> StageResult:
    start = time.monotonic()
    child = ctx.harness("compile")
    failed = _child_failed("compile", start, child)
    if failed is not None:
        return failed
    answer = child.answer
    ctx.artifacts.update(
        launches=answer.get("launches") or [],
        kernels=answer.get("kernels") or [],
        runnable=bool(answer.get("runnable")),
        functional_hash=answer.get("fingerprint"),
    )
    ctx.artifacts["implementation_hash"] = _implementation_hash(ctx)
    metrics = _resource_metrics(ctx.artifacts["kernels"])  # CUDA: nvcc reports them at compile time
    if not answer.get("runnable"):
        detail = (
            f"{ctx.backend}: compiled for sm_{ctx.settings.gpu_arch} with nvcc "
            f"({_listed(ctx.artifacts['kernels'])}); running it needs a CUDA GPU"
        )
    else:
        count = answer.get("launch_count")
        detail = f"{ctx.backend} on {ctx.device}: built; the probe forward made {count} launch(es)"
    data = {"backend": ctx.backend, "device": ctx.device, "launch_count": answer.get("launch_count")}
    return _result("compile", start, True, detail, metrics=metrics, data=data, log=child.log)


def _implementation_hash(ctx: KernelContext) -> str:
    """The compiled kernels and their launch configuration (C libraries by their build key)."""
    parts: dict[str, Any] = {"backend": ctx.backend}
    parts["libraries"] = sorted(p.name for p in ctx.build_dir.glob("k_*.so"))
    parts["launches"] = sorted(
        json.dumps(record, sort_keys=True, default=str) for record in ctx.artifacts["launches"]
    )
    parts["kernels"] = sorted(str(k.get("cubin_sha256") or k) for k in ctx.artifacts["kernels"])
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


# -- correctness -----------------------------------------------------------------------------------


def run_correctness(ctx: KernelContext) -> StageResult:
    start = time.monotonic()
    if not ctx.artifacts.get("runnable"):
        return _result(
            "correctness",
            start,
            False,
            "unverifiable here: a CUDA candidate runs only where a CUDA GPU is (no GPU on this machine)",
            error=True,
            data={"unmeasured": "no CUDA GPU"},
        )
    seeds = [secrets.randbits(31) for _ in range(ctx.settings.trials)]
    candidate = ctx.harness("candidate", seeds=seeds)
    failed = _child_failed("correctness", start, candidate)
    if failed is not None:
        return failed
    problem = _candidate_side_problem(ctx, candidate.answer)
    if problem:
        return _result("correctness", start, False, problem, data={"trials": candidate.answer.get("trials")})
    reference = ctx.harness("reference", interpret=False, seeds=seeds)
    failed = _child_failed("correctness", start, reference)
    if failed is not None:
        return replace_error(failed)
    reports = reference.answer["reports"]
    for report in reports:
        label = f"trial {report['index'] + 1}" if report["index"] < len(seeds) else "the determinism re-run"
        if report["mutated_inputs"]:
            which = ", ".join(str(i) for i in report["mutated_inputs"])
            return _result(
                "correctness", start, False, f"{label}: the candidate modified its input(s) {which}"
            )
        if "deterministic" in report and not report["deterministic"]:
            return _result(
                "correctness",
                start,
                False,
                "the same inputs gave different outputs on a re-run (uninitialised memory, a race, or "
                "state kept between calls)",
            )
        comparison = report.get("comparison") or {}
        if not comparison.get("ok", True):
            detail = f"{label}: output {comparison.get('output', 0)}: {comparison.get('reason')}"
            if report.get("mismatch_text"):
                detail += "; first mismatching elements:\n" + report["mismatch_text"]
            data = {
                "mismatches": comparison.get("mismatches", []),
                "max_abs_error": comparison.get("max_abs_error"),
            }
            return _result("correctness", start, False, detail, data=data)
    trials = candidate.answer["trials"]
    launches = [t["launches"] for t in trials]
    detail = (
        f"{len(seeds)} fresh trials + a determinism re-run match the reference; launches per call {launches}"
    )
    return _result(
        "correctness",
        start,
        True,
        detail,
        data={"launches": launches, "seconds_candidate": candidate.seconds},
    )


def replace_error(result: StageResult) -> StageResult:
    """A failure of the reference side is never the candidate's fault."""
    from dataclasses import replace

    return replace(result, error=True, detail=f"the reference side failed: {result.detail}")


def _candidate_side_problem(ctx: KernelContext, answer: dict[str, Any]) -> str | None:
    if answer.get("patched"):
        return f"the candidate patched {', '.join(answer['patched'])} (timers and checks are the verifier's)"
    if answer.get("extra_threads"):
        return f"the candidate left threads running after its call: {', '.join(answer['extra_threads'])}"
    for trial in answer.get("trials", []):
        what = trial["what"]
        devices = {o.get("device") for o in trial.get("outputs", [])}
        if devices - {ctx.device}:
            return f"{what}: outputs on {', '.join(sorted(map(str, devices)))}; expected {ctx.device}"
        if trial["launches"] == 0:
            return f"{what}: no custom kernel was launched during the call (kernel defined but never run)"
        ops = trial.get("compute_ops") or {}
        if ops and ctx.settings.require_custom_kernel:
            listed = ", ".join(f"{name}×{n}" for name, n in sorted(ops.items()))
            return (
                f"{what}: torch computed outside the custom kernels ({listed}): a library fallback; "
                "do the arithmetic in the kernel (policy: must use a custom kernel)"
            )
    return None


# -- resources -------------------------------------------------------------------------------------


def run_resources(ctx: KernelContext) -> StageResult:
    start = time.monotonic()
    arch = f"sm_{ctx.settings.gpu_arch}"
    if ctx.backend == "c":
        return _result(
            "resources", start, True, "C kernels run on the CPU: no GPU registers or shared memory to report"
        )
    kernels = list(ctx.artifacts.get("kernels") or [])
    if ctx.backend == "triton":
        if not ctx.artifacts.get("launches"):
            return _result(
                "resources", start, False, "no Triton launch was recorded to compile ahead of time"
            )
        child = ctx.harness("aot", interpret=False, launches=ctx.artifacts["launches"])
        failed = _child_failed("resources", start, child)
        if failed is not None:
            return failed
        kernels = child.answer["kernels"]
    metrics = _resource_metrics(kernels)
    return _result(
        "resources",
        start,
        True,
        f"{arch}: {_listed(kernels) or 'no kernels'}",
        metrics=metrics,
        data={"arch": arch, "kernels": kernels},
    )


def _listed(kernels: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{k.get('kernel')}: {k.get('registers')} registers, {k.get('spills')} B spilled, "
        f"{k.get('shared_bytes')} B shared"
        for k in kernels
    )


def _resource_metrics(kernels: list[dict[str, Any]]) -> Metrics:
    def values(key: str) -> list[int]:
        return [int(k[key]) for k in kernels if k.get(key) is not None]

    registers, spills, shared = values("registers"), values("spills"), values("shared_bytes")
    return Metrics(
        registers=max(registers) if registers else None,
        spills=sum(spills) if spills else None,
        shared_bytes=max(shared) if shared else None,
    )


# -- benchmark -------------------------------------------------------------------------------------


def run_benchmark(ctx: KernelContext) -> StageResult:
    start = time.monotonic()
    if ctx.device == "cuda" and not ctx.probe.get("cuda"):
        reason = f"{ctx.backend} kernels are timed on a CUDA GPU and there is none here"
        return _result(
            "benchmark", start, True, f"unmeasured: {reason}", data={"device": "cuda", "unmeasured": reason}
        )
    if ctx.backend == "triton" and ctx.device == "cpu":  # pragma: no branch - kept explicit
        reason = "Triton runs here only in its interpreter, whose timings say nothing about GPU speed"
        return _result(
            "benchmark", start, True, f"unmeasured: {reason}", data={"device": "cuda", "unmeasured": reason}
        )
    seeds = [secrets.randbits(31) for _ in range(2)]
    child = ctx.harness(
        "benchmark",
        seeds=seeds,
        repeats=ctx.settings.benchmark_repeats,
        budget_s=ctx.settings.benchmark_budget_s,
    )
    failed = _child_failed("benchmark", start, child)
    if failed is not None:
        return failed
    answer = child.answer
    if answer.get("patched"):
        return _result("benchmark", start, False, f"the candidate patched {', '.join(answer['patched'])}")
    if answer.get("extra_threads"):
        return _result(
            "benchmark", start, False, f"threads left running: {', '.join(answer['extra_threads'])}"
        )
    speedup = float(answer["speedup"])
    data = {k: answer[k] for k in ("device", "reference_ms", "candidate_ms", "speedup", "rounds", "threads")}
    data["unmeasured"] = None
    detail = (
        f"{answer['device']}: {answer['candidate_ms']:.4g} ms vs torch eager {answer['reference_ms']:.4g} ms "
        f"(median of {answer['rounds']} rounds, {answer['threads']} threads): speedup {speedup:.2f}x"
    )
    note = scale_note((ctx.target.kernel_summary or {}).get("scaling"))
    if note:
        data["scaled"] = note
        detail += f" — {note}"
    if speedup > ctx.settings.implausible_speedup:
        data["flag"] = "implausible"
        detail += f" — flagged: beyond {ctx.settings.implausible_speedup:g}x, check it by hand"
    metrics = Metrics(runtime_ms=round(float(answer["candidate_ms"]), 6), speedup=round(speedup, 4))
    return _result("benchmark", start, True, detail, metrics=metrics, data=data)
