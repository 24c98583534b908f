"""torch.compile beside torch eager: ``python -m evoforge.verifiers.kernel.compiled`` (a sandboxed child).

A KernelBench user compares a kernel with both eager and ``torch.compile``. This child loads the
problem (at the sizes the verifier runs), compiles ``Model`` with ``torch.compile`` (Inductor, which
needs a C++ compiler on the CPU), checks the compiled outputs against eager on one input, then
times both sides in the same process, interleaved on fresh inputs (the benchmark's own
``timing.time_cpu``). The answer holds both medians and their ratio, or why torch.compile does not
work here — it is recorded as unmeasured, never as a number. :func:`compile_baseline` runs it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

MARKER = "EVOFORGE-RESULT"


def run(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from evoforge.verifiers.kernel import compare, problem, timing

    if request.get("threads"):
        torch.set_num_threads(int(request["threads"]))
    module = problem.load_module(Path(request["problem"]), "problem")
    model = problem.construct(module.Model, module, int(request["init_seed"]))

    def make(seed: int) -> list[Any]:
        return problem.seeded_inputs(module, seed, benchmark=True)

    try:
        compiled = torch.compile(model)
        begin = time.perf_counter()
        with torch.no_grad():
            got = problem.flatten_outputs(compiled(*problem.clone_inputs(make(1))))
        compile_s = time.perf_counter() - begin
    except Exception as exc:  # Inductor missing a compiler, an op it cannot lower, …
        return {
            "ok": True,
            "works": False,
            "reason": f"torch.compile failed: {type(exc).__name__}: {str(exc)[:500]}",
        }
    with torch.no_grad():
        expected = problem.flatten_outputs(model(*make(1)))
    for k, (exp, out) in enumerate(zip(expected, got, strict=False)):
        verdict = compare.compare_tensor(exp, out, **request.get("tolerance", {}))
        if not verdict.ok:
            return {
                "ok": True,
                "works": False,
                "reason": f"torch.compile output {k} differs from eager: {verdict.reason}",
            }
    with torch.no_grad():
        result = timing.time_cpu(
            lambda xs: model(*xs),
            lambda xs: compiled(*xs),
            make,
            clock=time.perf_counter,
            repeats=int(request["repeats"]),
            budget_s=float(request["budget_s"]),
            seed=int(request["seed"]),
        )
    return {
        "ok": True,
        "works": True,
        "eager_ms": result.reference_ms,
        "compiled_ms": result.candidate_ms,
        "speedup": result.speedup,
        "rounds": result.rounds,
        "compile_s": round(compile_s, 3),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    request = json.loads(sys.stdin.read())
    nonce = str(request.get("nonce", ""))
    try:
        result = run(request)
    except BaseException as exc:
        result = {
            "ok": False,
            "detail": f"{type(exc).__name__}: {str(exc)[:1500]}",
            "log": traceback.format_exc()[-3000:],
        }
    sys.stdout.write(f"\n{MARKER} {nonce} {json.dumps(result, default=str)}\n")
    sys.stdout.flush()
    os._exit(0)


def compile_baseline(target: Any, settings: Any, workdir: Path) -> dict[str, Any]:
    """torch.compile vs eager for ``target`` (a kernel Target), measured in one sandboxed child.

    Returns ``{"works": True, "eager_ms", "compiled_ms", "speedup", ...}`` or ``{"works": False,
    "reason"}``; never raises for a problem torch.compile cannot handle.
    """
    import secrets

    from evoforge.errors import TargetError
    from evoforge.verifiers.kernel.budget import child_limits
    from evoforge.verifiers.kernel.child import KERNEL_LIMITS
    from evoforge.verifiers.kernel.scaling import run_program
    from evoforge.verifiers.kernel.target import INIT_SEED, runnable_source, tolerance_of

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "problem.py").write_text(runnable_source(target))
    request = {
        "problem": str(workdir / "problem.py"),
        "init_seed": INIT_SEED,
        "seed": secrets.randbits(31),
        "threads": settings.cpu_threads,
        "repeats": settings.benchmark_repeats,
        "budget_s": settings.benchmark_budget_s,
        "tolerance": tolerance_of(settings),
    }
    timeout = settings.compile_timeout_s + settings.stage_timeout_s
    try:
        answer = run_program(
            "evoforge.verifiers.kernel.compiled",
            request,
            workdir,
            settings,
            child_limits(settings, KERNEL_LIMITS),
            timeout,
        )
    except TargetError as exc:
        return {"works": False, "reason": f"the torch.compile child died: {exc.message[-300:]}"}
    if answer is None:
        return {"works": False, "reason": f"torch.compile did not finish within {timeout:.0f} s"}
    if not answer.get("ok"):
        return {"works": False, "reason": str(answer.get("detail"))}
    return {k: v for k, v in answer.items() if k not in ("ok", "seconds")}


if __name__ == "__main__":
    main()
