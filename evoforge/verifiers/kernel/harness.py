"""What each kernel stage runs in its sandboxed child: ``python -I -B -m evoforge.verifiers.kernel.harness``.

Isolated mode (``-I``): neither the working directory nor ``PYTHONPATH`` is on the import path, so
no file a candidate wrote can stand in for this code. The request is one JSON object on stdin (read
before anything else, so seeds and the nonce are never in a file); the answer is one line
``EVOFORGE-RESULT <nonce> <json>`` on stdout, after which the process ends with ``os._exit``.

For ``compile``, ``correctness`` and ``benchmark`` this process is the **supervisor**: it never
imports candidate code. The candidate's Python runs in a worker process, a C candidate's kernels
are replayed alone in a process without torch, and the reference is timed in a worker of its own
(``supervise``, ``checks``, ``bench``); every buffer, clock and comparison that decides the verdict
is here, where candidate code cannot write.

Modes:

* ``target`` — the problem alone: entry points, its own inputs, determinism, the target lint
  (all-zeros and constant outputs must fail; trivial kernels that pass on the problem's own inputs
  are reported), the traced graph summary, the reference's CPU time.
* ``compile`` — the candidate's worker imports and builds it; one probe call (the fingerprint).
* ``correctness`` — trials, a re-run, a call on the same tensors changed in place, transformed
  inputs; C launches replayed alone and their outputs compared.
* ``aot`` — ahead-of-time compile of the recorded Triton launches for the configured GPU (this
  mode imports the candidate: its numbers are reported, never used to accept anything).
* ``benchmark`` — interleaved rounds against torch eager, every timed output checked.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import traceback
from pathlib import Path
from typing import Any

MARKER = "EVOFORGE-RESULT"


class _ProblemFailure(Exception):
    """The problem file itself is unusable (bad input), in the ``target`` mode."""


def main() -> None:
    request = json.loads(sys.stdin.read())
    nonce = str(request.get("nonce", ""))
    started = time.perf_counter()
    from evoforge.verifiers.kernel.outcome import CandidateFailure, ProblemFailure

    try:
        if request["mode"] in ("compile", "correctness", "benchmark"):
            from evoforge.verifiers.kernel import supervise  # torch-free: the worker starts first

            request["_early_worker"] = supervise.start_candidate(request)
        result = _modes()[request["mode"]](request)
    except CandidateFailure as exc:
        result = {"ok": False, "kind": "candidate", "detail": str(exc), "data": exc.data}
    except (_ProblemFailure, ProblemFailure) as exc:
        result = {"ok": False, "kind": "problem", "detail": str(exc)}
    except BaseException as exc:  # a harness bug: the stage reports a verifier error
        result = {
            "ok": False,
            "kind": "harness",
            "detail": f"{type(exc).__name__}: {exc}",
            "log": traceback.format_exc(),
        }
    result["seconds"] = round(time.perf_counter() - started, 4)
    sys.stdout.write(f"\n{MARKER} {nonce} {json.dumps(result, default=str)}\n")
    sys.stdout.flush()
    os._exit(0)


def _failure_text(what: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "evoforge/verifiers" not in frame.filename and "site-packages" not in frame.filename:
            where = f" (at {Path(frame.filename).name}:{frame.lineno}: {frame.line})"
            break
    return f"{what} raised {type(exc).__name__}: {str(exc)[:1500]}{where}"


# -- the problem ----------------------------------------------------------------------------------


def _problem(request: dict[str, Any]) -> Any:
    from evoforge.verifiers.kernel import problem

    try:
        module = problem.load_module(Path(request["problem"]), "problem")
        problem.check_problem(module)
    except problem.ProblemError as exc:
        raise _ProblemFailure(str(exc)) from exc
    except Exception as exc:
        raise _ProblemFailure(_failure_text("importing the problem file", exc)) from exc
    return module


def _reference_outputs(module: Any, model: Any, inputs: list[Any], device: str) -> list[Any]:
    from evoforge.verifiers.kernel import problem

    try:
        with _no_grad():
            value = model(*problem.to_device(problem.clone_inputs(inputs), device))
    except Exception as exc:
        raise _ProblemFailure(_failure_text("the reference Model on its own inputs", exc)) from exc
    outputs = problem.flatten_outputs(value)
    bad = [type(o).__name__ for o in outputs if type(o).__name__ != "Tensor"]
    if bad:
        raise _ProblemFailure(f"the reference Model returns {', '.join(bad)}; outputs must be tensors")
    return outputs


def _no_grad() -> Any:
    import torch

    return torch.no_grad()


def mode_target(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from evoforge.verifiers.kernel import compare, problem, timing

    _threads(request)
    module = _problem(request)
    device = request.get("device", "cpu")
    try:
        model = problem.construct(module.Model, module, request["init_seed"], device)
        inputs = problem.seeded_inputs(module, request["probe_seed"])
    except Exception as exc:
        raise _ProblemFailure(_failure_text("building the reference Model and its inputs", exc)) from exc
    first = _reference_outputs(module, model, inputs, device)
    again = _reference_outputs(module, model, inputs, device)
    if problem.tensor_digest(first) != problem.tensor_digest(again):
        raise _ProblemFailure("the reference Model gives different outputs on the same inputs (random?)")
    tol = request.get("tolerance", {})
    loose = []
    for label, sentinel in (("all-zeros", torch.zeros_like), ("constant", _constant_like)):
        if all(compare.compare_tensor(o, sentinel(o), **tol).ok for o in first):
            loose.append(label)
    summary: dict[str, Any]
    try:
        from evoforge.verifiers.kernel.fx_summary import summarise

        summary = summarise(model, problem.to_device(problem.clone_inputs(inputs), device))
    except Exception as exc:  # the proposers then have no pattern to work from; not an error
        summary = {"untraceable": f"{type(exc).__name__}: {exc}"}

    def make(seed: int) -> list[Any]:
        return problem.to_device(problem.seeded_inputs(module, seed, benchmark=True), device)

    with torch.no_grad():
        runtime_ms = timing.time_reference_cpu(lambda xs: model(*xs), make, clock=time.perf_counter)
    return {
        "ok": True,
        "inputs": [problem.describe(v) for v in inputs],
        "outputs": [problem.describe(o) for o in first],
        "benchmark_inputs": hasattr(module, "get_benchmark_inputs"),
        "too_loose": loose,
        "trivial": _trivial_kernels(first, inputs, tol),
        "summary": summary,
        "runtime_ms": runtime_ms,
        "device": device,
        "fingerprint": compare.fingerprint(first),
        "cuda": bool(torch.cuda.is_available()),
    }


def _constant_like(tensor: Any) -> Any:
    import torch

    value = float(tensor.to(torch.float64).mean()) if tensor.is_floating_point() else 1
    return torch.full_like(tensor, value)


def _trivial_kernels(outputs: list[Any], inputs: list[Any], tol: dict[str, Any]) -> list[str]:
    """Trivial kernels that pass on the problem's own inputs: the identity, negation, absolute value."""
    import torch

    from evoforge.verifiers.kernel import compare

    found = []
    for k, out in enumerate(outputs):
        for j, value in enumerate(inputs):
            if not isinstance(value, torch.Tensor) or value.shape != out.shape or value.dtype != out.dtype:
                continue
            for name, fn in (("the identity", lambda t: t), ("negation", torch.neg), ("abs", torch.abs)):
                if compare.compare_tensor(out, fn(value).to(out.device), **tol).ok:
                    found.append(f"{name} (output {k} = {name}(input {j}))")
    return found


# -- the supervised stages ------------------------------------------------------------------------


def mode_compile(request: dict[str, Any]) -> dict[str, Any]:
    from evoforge.verifiers.kernel import supervise

    return supervise.mode_compile(request)


def mode_correctness(request: dict[str, Any]) -> dict[str, Any]:
    from evoforge.verifiers.kernel import checks

    return checks.mode_correctness(request)


def mode_benchmark(request: dict[str, Any]) -> dict[str, Any]:
    from evoforge.verifiers.kernel import bench

    if request.get("device") == "cuda":
        return bench.mode_benchmark_gpu(request)
    return bench.mode_benchmark(request)


def mode_aot(request: dict[str, Any]) -> dict[str, Any]:
    from evoforge.verifiers.kernel import aot, problem
    from evoforge.verifiers.kernel.outcome import CandidateFailure

    os.environ.pop("TRITON_INTERPRET", None)
    path = Path.cwd() / f"candidate_{secrets.token_hex(8)}.py"
    path.write_text(request["candidate_source"])
    try:
        cand = problem.load_module(path, "candidate")
    except Exception as exc:
        raise CandidateFailure(
            _failure_text("importing the candidate for the ahead-of-time compile", exc)
        ) from exc
    try:
        kernels = aot.compile_triton(
            cand, request["launches"], arch=request["arch"], workdir=Path(request["build_dir"])
        )
    except Exception as exc:
        raise CandidateFailure(f"the ahead-of-time compile for sm_{request['arch']} failed: {exc}") from exc
    return {"ok": True, "kernels": kernels}


def _threads(request: dict[str, Any]) -> None:
    threads = request.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _modes() -> dict[str, Any]:
    return {
        "target": mode_target,
        "compile": mode_compile,
        "correctness": mode_correctness,
        "aot": mode_aot,
        "benchmark": mode_benchmark,
    }


if __name__ == "__main__":
    main()
