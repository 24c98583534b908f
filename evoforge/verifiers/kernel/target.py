"""Loading a kernel target: a KernelBench-format problem file, checked in a sandboxed child.

The problem must import, define ``Model``, ``get_inputs`` and ``get_init_inputs``, run on its own
inputs, and give the same outputs twice. The target lint then refuses a problem whose tolerance an
all-zeros or a constant output would pass (too loose to optimise against: any candidate could win).
What the child learns — input and output shapes, the reference's CPU time, whether a GPU is here,
and the traced graph summary the offline proposers read — goes into ``Target.kernel_summary``.
Every failure is a :class:`TargetError` that says what to do.
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
from evoforge.verifiers.kernel.child import run_harness

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
        (scratch / PROBLEM_FILE).write_text(text)
        answer = probe_problem(scratch / PROBLEM_FILE, settings, scratch)
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
    return Target(
        kind=TargetKind.KERNEL,
        name=name,
        sources=(SourceFile(f"{name}.py", text),),
        kernel_summary=summary,
    )


def probe_problem(problem: Path, settings: KernelSettings, workdir: Path) -> dict[str, Any]:
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
    result = run_harness("target", request, workdir=workdir, timeout_s=settings.stage_timeout_s, env=env)
    if not result.ok:
        raise TargetError(f"checking the problem failed: {result.failure}", hint=PROBLEM_HINT)
    answer = result.answer
    if not answer.get("ok"):
        if answer.get("kind") == "harness":
            raise VerifierError(f"checking the problem crashed the verifier: {answer.get('detail')}")
        raise TargetError(str(answer.get("detail")), hint=PROBLEM_HINT)
    if answer.get("too_loose"):
        which = " and ".join(answer["too_loose"])
        raise TargetError(
            f"the problem is too loose to optimise against: an {which} output passes its correctness check",
            hint="make the outputs depend on the inputs with a meaningful magnitude, or tighten "
            "EVOFORGE_KERNEL__RTOL / EVOFORGE_KERNEL__ATOL_SCALE",
        )
    return answer
