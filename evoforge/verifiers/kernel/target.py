"""Loading a kernel target: a KernelBench-format problem file, sized and checked in sandboxed children.

First the size check (:mod:`evoforge.verifiers.kernel.scaling`): the memory and time the problem
needs, worked out on the meta device and compared with this machine; where it does not fit and
``scale`` allows, smaller values for its size constants (the file is not edited: the verifier runs
:func:`runnable_source`). The problem must import, define ``Model``, ``get_inputs`` and
``get_init_inputs``, run on its own inputs, and give the same outputs twice. The target lint then
refuses a problem whose tolerance an all-zeros or a constant output would pass (too loose to
optimise against: any candidate could win). What the children learn — the size record
(``summary["scaling"]``), input and output shapes, the reference's CPU time, whether a GPU is here,
and the traced graph summary the offline proposers read — goes into ``Target.kernel_summary``, with
the backends to propose (``summary["backends"]``: the configured ones, or those this machine can
time). Every failure is a :class:`TargetError` that says what to do.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from evoforge.config import KernelSettings
from evoforge.domain import SourceFile, Target, TargetKind
from evoforge.errors import TargetError, VerifierError
from evoforge.verifiers.kernel.child import KERNEL_LIMITS, run_harness
from evoforge.verifiers.kernel.scaling import (
    INTERPRET_CALL_MS,
    INTERPRET_IO_BYTES,
    check_size,
    child_limits,
    scaled_source,
    size_report,
)

log = logging.getLogger(__name__)

KERNEL_SUFFIXES = (".py",)
PROBLEM_FILE = "problem.py"
#: seeds of the fixed probe (fingerprints) and of parameter initialisation: public on purpose
PROBE_SEED = 1234
INIT_SEED = 42
PROBLEM_HINT = (
    "a KernelBench problem defines class Model(nn.Module), get_inputs() and get_init_inputs() "
    "(see examples/kernels/)"
)


def tolerance_of(settings: KernelSettings) -> dict[str, float | None]:
    return {"rtol": settings.rtol, "atol_scale": settings.atol_scale}


def load_kernel_target(path: Path, settings: KernelSettings, *, work_dir: Path) -> Target:
    """Read and check the problem at ``path``; the returned target carries its summary."""
    if not path.is_file():
        raise TargetError(f"no such problem file: {path}", hint=PROBLEM_HINT)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"cannot read {path}: {exc}") from exc
    if not text.strip():
        raise TargetError(f"{path} is empty", hint=PROBLEM_HINT)
    return kernel_target_from_source(text, path.stem, settings, work_dir=work_dir)


def kernel_target_from_source(text: str, name: str, settings: KernelSettings, *, work_dir: Path) -> Target:
    try:
        compile(text, f"{name}.py", "exec")
    except SyntaxError as exc:
        raise TargetError(
            f"{name}.py: syntax error at line {exc.lineno}: {exc.msg}", hint=PROBLEM_HINT
        ) from exc
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="target-", dir=work_dir))
    try:
        scaling = check_size(text, settings, scratch, child_limits(settings, KERNEL_LIMITS))
        (scratch / PROBLEM_FILE).write_text(scaled_source(text, scaling))
        answer = probe_problem(scratch / PROBLEM_FILE, settings, scratch, scaling)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = dict(answer.get("summary") or {})
    summary["probe"] = {
        k: answer[k]
        for k in ("inputs", "outputs", "benchmark_inputs", "runtime_ms", "device", "fingerprint", "cuda")
    }
    summary["lint"] = [
        f"{trivial} passes on the problem's own inputs: evoforge also checks candidates on transformed "
        "inputs (sign-flipped, scaled, special values), but consider inputs that exercise the whole op"
        for trivial in answer.get("trivial") or []
    ]
    for note in summary["lint"]:
        log.warning("kernel problem %s: %s", name, note)
    summary["scaling"] = scaling
    summary["backends"] = list(settings.backends) or default_backends(bool(answer.get("cuda")))
    if "triton" in summary["backends"] and not answer.get("cuda"):
        summary["interpret_scaling"] = interpreter_sizes(text, settings, work_dir)
    return Target(
        kind=TargetKind.KERNEL,
        name=name,
        sources=(SourceFile(f"{name}.py", text),),
        kernel_summary=summary,
    )


def interpreter_sizes(text: str, settings: KernelSettings, work_dir: Path) -> dict[str, Any]:
    """Smaller sizes for Triton's interpreter (no GPU): it runs one program at a time in numpy, so
    checking a candidate at the timing sizes would spend the stage limit; its checks run at these."""
    tiny = settings.model_copy(update={"scale": "auto", "sizes": None, "call_budget_ms": INTERPRET_CALL_MS})
    scratch = Path(tempfile.mkdtemp(prefix="interpret-", dir=work_dir))
    try:
        return check_size(
            text, tiny, scratch, child_limits(settings, KERNEL_LIMITS), io_budget_bytes=INTERPRET_IO_BYTES
        )
    except TargetError as exc:  # Triton candidates are then checked at the timing sizes
        log.info("no smaller sizes for the Triton interpreter: %s", exc.message)
        return {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def interpreter_source(target: Target) -> str | None:
    """The problem at the Triton interpreter's sizes, or None when they are the timing sizes."""
    record = (target.kernel_summary or {}).get("interpret_scaling") or {}
    if not record.get("values"):
        return None
    return scaled_source(target.source, record)


def default_backends(cuda: bool) -> list[str]:
    """What this machine can time: C on the CPU; with a CUDA GPU, Triton and CUDA too."""
    return ["triton", "cuda", "c"] if cuda else ["c"]


def runnable_source(target: Target) -> str:
    """The problem as the verifier runs it: the target's source at the sizes its size check chose."""
    return scaled_source(target.source, (target.kernel_summary or {}).get("scaling"))


def scaling_of(target: Target) -> dict[str, Any]:
    return dict((target.kernel_summary or {}).get("scaling") or {})


def pinned_kernel_options(settings: KernelSettings, target: Target) -> dict[str, Any]:
    """The kernel settings a job keeps: ``sizes`` pinned to what the size check chose for ``target``."""
    options = settings.model_dump()
    if target.kind is TargetKind.KERNEL:
        options["sizes"] = dict(scaling_of(target).get("values") or {}) or None
    return options


def probe_problem(
    problem: Path, settings: KernelSettings, workdir: Path, scaling: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the ``target`` mode of the harness on ``problem``; raise ``TargetError`` on any failure."""
    request = {
        "problem": str(problem),
        "init_seed": INIT_SEED,
        "probe_seed": PROBE_SEED,
        "tolerance": tolerance_of(settings),
        "threads": settings.cpu_threads,
        "device": "cpu",
    }
    env = {"OMP_NUM_THREADS": str(settings.cpu_threads)} if settings.cpu_threads else {}
    result = run_harness(
        "target",
        request,
        workdir=workdir,
        timeout_s=settings.target_timeout_s,
        env=env,
        limits=child_limits(settings, KERNEL_LIMITS),
    )
    sized = size_report(scaling)
    hint = PROBLEM_HINT
    if not result.ok or result.answer.get("kind") == "harness":
        hint = "if it ran out of memory or time: --scale auto or --scale F, or --memory-limit GiB"
    if not result.ok:
        raise TargetError(
            f"checking the problem failed: {result.failure}" + (f"\nsize check: {sized}" if sized else ""),
            hint=hint,
        )
    answer = result.answer
    if not answer.get("ok"):
        if answer.get("kind") == "harness":
            detail = str(answer.get("detail"))
            if "memory" in detail.lower():
                raise TargetError(
                    f"the problem ran out of memory: {detail}" + (f"\nsize check: {sized}" if sized else ""),
                    hint=hint,
                )
            raise VerifierError(f"checking the problem crashed the verifier: {detail}")
        raise TargetError(str(answer.get("detail")), hint=PROBLEM_HINT)
    if answer.get("too_loose"):
        which = " and ".join(answer["too_loose"])
        raise TargetError(
            f"the problem is too loose to optimise against: an {which} output passes its correctness check",
            hint="make the outputs depend on the inputs with a meaningful magnitude, or tighten "
            "EVOFORGE_KERNEL__RTOL / EVOFORGE_KERNEL__ATOL_SCALE",
        )
    return answer
