"""The program each kernel stage runs in its sandboxed child: ``python -m evoforge.verifiers.kernel.harness``.

The request is one JSON object on stdin (read before any candidate code is imported, so the seeds are
never in a file the candidate could read); the answer is one line ``EVOFORGE-RESULT <nonce> <json>``
on stdout, after which the process ends with ``os._exit`` (no exit hooks of the candidate run).
Tensors go to ``.pt`` files in the scratch directory.

Modes:

* ``target`` — the problem alone: entry points, its own inputs, determinism, the sentinel lint
  (all-zeros and constant outputs must fail), the traced graph summary, the reference's CPU time.
* ``compile`` — import and construct the candidate (C sources compile here; CUDA sources are captured
  and built with nvcc), then one probe forward that records kernel launches and the fingerprint.
* ``candidate`` — correctness, candidate side: fresh seeded trials, never running the reference, with
  the torch ops outside kernel launches, the launches, threads and timer identities watched.
* ``reference`` — correctness, reference side (no candidate code): regenerate the same inputs,
  check the candidate left them untouched, run the reference on private copies and compare.
* ``aot`` — ahead-of-time compile of the recorded Triton launches for the configured GPU.
* ``benchmark`` — time the candidate against torch eager in the same run.
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


class CandidateFailure(Exception):
    """The candidate misbehaved: reject it with this message."""


def main() -> None:
    request = json.loads(sys.stdin.read())
    nonce = str(request.get("nonce", ""))
    started = time.perf_counter()
    try:
        result = MODES[request["mode"]](request)
    except CandidateFailure as exc:
        result = {"ok": False, "kind": "candidate", "detail": str(exc)}
    except _ProblemFailure as exc:
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


class _ProblemFailure(Exception):
    """The problem file itself is unusable (bad input)."""


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
        model = problem.construct(module.Model, module, request["init_seed"])
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


# -- the candidate ---------------------------------------------------------------------------------


class _Watch:
    """Hooks installed before the candidate is imported: launch records and a snapshot of timers."""

    def __init__(self, request: dict[str, Any]) -> None:
        from evoforge import runtime
        from evoforge.verifiers.kernel import guard, launches

        self.snapshot = guard.Snapshot.take()
        self.triton: list[dict[str, Any]] = []
        if request.get("backend") == "triton":
            launches.install_triton_hooks(self.triton.append)
        runtime.configure(build_dir=request["build_dir"])
        self._runtime = runtime

    def launches(self) -> int:
        return len(self.triton) + self._runtime.launch_count()


def _candidate(request: dict[str, Any], module: Any) -> Any:
    """Import the candidate and build ``ModelNew`` (CUDA: with ``load_inline`` captured throughout)."""
    if request.get("backend") != "cuda":
        return _build_candidate(request, module)
    from evoforge.verifiers.kernel import aot

    with aot.capture_load_inline() as captured:
        model = _build_candidate(request, module)
    request["_captured"] = captured
    return model


def _build_candidate(request: dict[str, Any], module: Any) -> Any:
    from evoforge.verifiers.kernel import problem

    try:
        cand = problem.load_module(Path(request["candidate"]), "candidate")
    except Exception as exc:
        raise CandidateFailure(_failure_text("importing the candidate", exc)) from exc
    if not hasattr(cand, "ModelNew"):
        raise CandidateFailure("the candidate defines no ModelNew")
    try:
        return problem.construct(cand.ModelNew, module, request["init_seed"], request.get("device", "cpu"))
    except Exception as exc:
        raise CandidateFailure(_failure_text("ModelNew(*get_init_inputs())", exc)) from exc


def _run_candidate(model: Any, inputs: list[Any], what: str) -> list[Any]:
    from evoforge.verifiers.kernel import problem

    try:
        with _no_grad():
            value = model(*inputs)
    except Exception as exc:
        raise CandidateFailure(_failure_text(f"ModelNew.forward ({what})", exc)) from exc
    outputs = problem.flatten_outputs(value)
    for i, out in enumerate(outputs):
        if type(out).__name__ != "Tensor" or type(out).__module__ != "torch":
            kind = f"{type(out).__module__}.{type(out).__qualname__}"
            raise CandidateFailure(
                f"output {i} of ModelNew.forward ({what}) is a {kind}, not a plain torch.Tensor "
                "(a tensor subclass or lazy value could compute during the comparison)"
            )
    return outputs


def mode_compile(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from evoforge.verifiers.kernel import compare, problem

    _threads(request)
    watch = _Watch(request)
    module = _problem(request)
    model = _candidate(request, module)
    result: dict[str, Any] = {"ok": True, "launches": [], "kernels": []}
    if request.get("backend") == "cuda":
        from evoforge.verifiers.kernel import aot

        captured = request.get("_captured") or []
        if not captured:
            raise CandidateFailure("the candidate never called load_inline while being imported or built")
        for build in captured:
            try:
                result["kernels"] += aot.compile_cuda(
                    build,
                    arch=request["arch"],
                    workdir=Path(request["build_dir"]),
                    timeout_s=request["compile_timeout_s"],
                )
            except Exception as exc:
                raise CandidateFailure(f"nvcc failed: {exc}") from exc
        if not torch.cuda.is_available():
            result["runnable"] = False
            return result
    inputs = problem.to_device(problem.seeded_inputs(module, request["probe_seed"]), request["device"])
    before = watch.launches()
    outputs = _run_candidate(model, inputs, "probe")
    result["launch_count"] = watch.launches() - before
    result["launches"] = watch.triton
    result["fingerprint"] = compare.fingerprint(outputs)
    result["runnable"] = True
    return result


def mode_candidate(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from evoforge.verifiers.kernel import guard, problem

    _threads(request)
    watch = _Watch(request)
    module = _problem(request)
    model = _candidate(request, module)
    outdir = Path(request["outdir"])
    trials = []
    seeds = list(request["seeds"])
    for index, seed in enumerate([*seeds, seeds[0]]):
        what = f"trial {index + 1}" if index < len(seeds) else "determinism re-run of trial 1"
        inputs = problem.to_device(problem.seeded_inputs(module, seed), request["device"])
        digest_before = problem.tensor_digest(inputs)
        before = watch.launches()
        recorder = guard.OpRecorder()
        with recorder:
            outputs = _run_candidate(model, inputs, what)
        if request["device"] == "cuda":
            torch.cuda.synchronize()
        launched = watch.launches() - before
        saved = {
            "outputs": [o.detach().to("cpu").clone() for o in outputs],
            "inputs_after": [
                v.detach().to("cpu").clone() if isinstance(v, torch.Tensor) else v for v in inputs
            ],
        }
        torch.save(saved, outdir / f"trial{index}.pt")
        trials.append(
            {
                "seed_index": index if index < len(seeds) else 0,
                "what": what,
                "launches": launched,
                "compute_ops": recorder.compute_ops,
                "digest_before": digest_before,
                "outputs": [problem.describe(o) for o in outputs],
            }
        )
    patched = watch.snapshot.patched()
    threads = watch.snapshot.extra_threads()
    return {"ok": True, "trials": trials, "patched": patched, "extra_threads": threads}


def mode_reference(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from evoforge.verifiers.kernel import compare, problem

    _threads(request)
    module = _problem(request)
    model = problem.construct(module.Model, module, request["init_seed"], request["device"])
    outdir = Path(request["outdir"])
    seeds = list(request["seeds"])
    tol = request.get("tolerance", {})
    reports = []
    first_outputs: list[Any] = []
    for index in range(len(seeds) + 1):
        seed = seeds[index] if index < len(seeds) else seeds[0]
        saved = torch.load(outdir / f"trial{index}.pt", weights_only=True)
        inputs = problem.seeded_inputs(module, seed)
        mutated = [
            i
            for i, (fresh, after) in enumerate(zip(inputs, saved["inputs_after"], strict=False))
            if problem.tensor_digest([fresh]) != problem.tensor_digest([after])
        ]
        got = saved["outputs"]
        if index == 0:
            first_outputs = got
        report: dict[str, Any] = {"index": index, "mutated_inputs": mutated}
        if index == len(seeds):
            report["deterministic"] = problem.tensor_digest(got) == problem.tensor_digest(first_outputs)
            reports.append(report)
            continue
        expected = [o.to("cpu") for o in _reference_outputs(module, model, inputs, request["device"])]
        if len(got) != len(expected):
            report["comparison"] = {"ok": False, "reason": f"{len(got)} outputs, expected {len(expected)}"}
        else:
            for k, (exp, out) in enumerate(zip(expected, got, strict=True)):
                comparison = compare.compare_tensor(exp, out, **tol)
                if not comparison.ok:
                    report["comparison"] = {**comparison.to_dict(), "output": k}
                    report["mismatch_text"] = compare.describe_mismatches(comparison)
                    break
            else:
                report["comparison"] = {"ok": True}
        if index == 0:
            report["fingerprint"] = compare.fingerprint(expected)
        reports.append(report)
    return {"ok": True, "reports": reports}


def mode_aot(request: dict[str, Any]) -> dict[str, Any]:
    from evoforge.verifiers.kernel import aot, problem

    os.environ.pop("TRITON_INTERPRET", None)
    try:
        cand = problem.load_module(Path(request["candidate"]), "candidate")
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


def mode_benchmark(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from evoforge.verifiers.kernel import compare, problem, timing

    _threads(request)
    watch = _Watch(request)
    clock = watch.snapshot.perf_counter
    module = _problem(request)
    reference = problem.construct(module.Model, module, request["init_seed"], request["device"])
    model = _candidate(request, module)
    device = request["device"]

    def make(seed: int) -> list[Any]:
        return problem.to_device(problem.seeded_inputs(module, seed, benchmark=True), device)

    # the candidate at the benchmark shapes, checked once (candidate first) before it is timed
    check_inputs = make(request["seeds"][0])
    outputs = _run_candidate(model, problem.clone_inputs(check_inputs), "benchmark shapes")
    expected = _reference_outputs(module, reference, check_inputs, device)
    for k, (exp, out) in enumerate(zip(expected, outputs, strict=False)):
        comparison = compare.compare_tensor(exp, out, **request.get("tolerance", {}))
        if not comparison.ok:
            raise CandidateFailure(
                f"wrong at the benchmark shapes, output {k}: {comparison.reason}\n"
                + compare.describe_mismatches(comparison)
            )

    def ref_call(xs: list[Any]) -> Any:
        return reference(*xs)

    def cand_call(xs: list[Any]) -> Any:
        return model(*xs)

    with torch.no_grad():
        if device == "cuda":
            result = timing.time_cuda(
                ref_call,
                cand_call,
                make,
                repeats=request["repeats"],
                budget_s=request["budget_s"],
                seed=request["seeds"][1],
            )
        else:
            result = timing.time_cpu(
                ref_call,
                cand_call,
                make,
                clock=clock,
                repeats=request["repeats"],
                budget_s=request["budget_s"],
                seed=request["seeds"][1],
            )
    return {
        "ok": True,
        "device": device,
        "reference_ms": result.reference_ms,
        "candidate_ms": result.candidate_ms,
        "speedup": result.speedup,
        "rounds": result.rounds,
        "threads": torch.get_num_threads(),
        "patched": watch.snapshot.patched(),
        "extra_threads": watch.snapshot.extra_threads(),
        "reference_samples_ms": result.reference_samples_ms,
        "candidate_samples_ms": result.candidate_samples_ms,
    }


def _threads(request: dict[str, Any]) -> None:
    threads = request.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


MODES = {
    "target": mode_target,
    "compile": mode_compile,
    "candidate": mode_candidate,
    "reference": mode_reference,
    "aot": mode_aot,
    "benchmark": mode_benchmark,
}


if __name__ == "__main__":
    main()
