"""The ``correctness`` stage, in the supervisor: the calls to check, and the verdict on each.

The calls (:func:`cases`), on inputs made here from seeds the candidate never sees: several fresh
trials; a re-run of the first (determinism; for C with a different poison, so an element the
kernels never write shows); a call on **the same tensor objects** after their contents were changed
in place (a cache keyed on identity or address returns a stale answer); and the first trial's
inputs transformed — sign-flipped, scaled by 10 and by 0.1, sprinkled with special values —
wherever the reference stays finite (a kernel right only on ``torch.rand``'s range fails).

The candidate's worker answers every call first; then it is killed. For a C candidate the launches
it recorded are replayed alone (``replay_host``) and the replay's outputs are the ones compared; the
worker's own outputs only say whether work was done outside the kernels. Triton and CUDA
candidates are judged on the worker's outputs (see ``docs/security.md`` for what that leaves open).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from evoforge.verifiers.kernel import compare, plan, problem
from evoforge.verifiers.kernel.outcome import CandidateFailure, ProblemFailure
from evoforge.verifiers.kernel.replay_host import Replayed, ReplayHost
from evoforge.verifiers.kernel.session import Forward, same_bytes
from evoforge.verifiers.kernel.supervise import Supervised, prepare

SPECIAL_VALUES = (0.0, -0.0, 1e-40, -1e-40, 64.0, -64.0)
IN_PLACE = "the call on the same tensor objects after their contents were changed in place"


@dataclass
class Case:
    label: str
    inputs: list[Any]
    expected: list[torch.Tensor]
    reuse: bool = False
    rerun_of: int | None = None


def _special(t: torch.Tensor) -> torch.Tensor:
    out = t.clone()
    flat = out.view(-1)
    for k, at in enumerate(range(0, flat.numel(), 37)):
        flat[at] = SPECIAL_VALUES[k % len(SPECIAL_VALUES)]
    return out


TRANSFORMS: tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...] = (
    ("sign-flipped inputs (trial 1's, times -1)", lambda t: -t),
    ("inputs scaled by 10 (trial 1's)", lambda t: t * 10),
    ("inputs scaled by 0.1 (trial 1's)", lambda t: t * 0.1),
    ("special values (0, -0, subnormals, ±64) in trial 1's inputs", _special),
)


def reference_outputs(stage: Supervised, model: Any, inputs: list[Any]) -> list[torch.Tensor]:
    try:
        with torch.no_grad():
            value = model(*problem.to_device(problem.clone_inputs(inputs), stage.device))
    except Exception as exc:
        raise ProblemFailure(
            f"the reference Model failed on its inputs: {type(exc).__name__}: {exc}"
        ) from exc
    outputs = problem.flatten_outputs(value)
    if any(type(o) is not torch.Tensor for o in outputs):
        raise ProblemFailure("the reference Model returns something other than tensors")
    return [o.detach().to("cpu") for o in outputs]


def cases(stage: Supervised, model: Any, seeds: list[int]) -> list[Case]:
    found = []
    for index, seed in enumerate(seeds):
        inputs = stage.inputs(seed)
        found.append(Case(f"trial {index + 1}", inputs, reference_outputs(stage, model, inputs)))
    first = found[0]
    found.append(Case("the determinism re-run of trial 1", first.inputs, first.expected, rerun_of=0))
    changed = stage.inputs(seeds[-1] ^ 0x5A5A5A5)
    found.append(Case(IN_PLACE, changed, reference_outputs(stage, model, changed), reuse=True))
    finite = [torch.isfinite(o) if o.is_floating_point() else None for o in first.expected]
    for label, transform in TRANSFORMS:
        inputs = [
            transform(v) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in first.inputs
        ]
        if all(not isinstance(v, torch.Tensor) or not v.is_floating_point() for v in first.inputs):
            break
        expected = reference_outputs(stage, model, inputs)
        stays_finite = all(
            mask is None or bool(torch.isfinite(out)[mask].all())
            for out, mask in zip(expected, finite, strict=True)
        )
        if stays_finite:
            found.append(Case(label, inputs, expected))
    return found


def mode_correctness(request: dict[str, Any]) -> dict[str, Any]:
    stage = prepare(request)
    tolerance = dict(request.get("tolerance") or {})
    model = problem.construct(stage.module.Model, stage.module, request["init_seed"], stage.device)
    checks = cases(stage, model, list(request["seeds"]))
    session = stage.worker()
    calls: list[Forward] = []
    try:
        for case in checks:
            call = session.forward(case.inputs, label=case.label, reuse=case.reuse)
            _worker_checks(stage, case, call)
            calls.append(call)
        libraries = dict(session.libraries)
        filtered = session.seccomp
    finally:
        session.close()
    data: dict[str, Any] = {
        "launches": [c.launches for c in calls],
        "cases": [c.label for c in checks],
        "worker_seccomp": filtered,
    }
    if stage.backend != "c":
        for case, call in zip(checks, calls, strict=True):
            _judge(case, call.outputs, None, [c.outputs for c in calls], tolerance)
        return {"ok": True, "data": {**data, "replayed": False}}
    host = ReplayHost(
        workdir=stage.workdir, libraries=libraries, cpus=stage.cpus, env=stage.env(role="replay")
    )
    try:
        host.start()
        assert calls[0].plan is not None
        host.warm(host.prepare(calls[0].plan, checks[0].inputs, calls[0].state))
        replayed: list[list[torch.Tensor]] = []
        for case, call in zip(checks, calls, strict=True):
            assert call.plan is not None
            poison = b"\x7f" if case.rerun_of is not None else b"\xff"
            result = host.run(host.prepare(call.plan, case.inputs, call.state), poison=poison)
            _replay_checks(case, result)
            replayed.append(result.outputs)
            _judge(case, result.outputs, call.outputs, replayed, tolerance)
        data.update(replayed=True, replay_seccomp=host.seccomp)
    finally:
        host.close()
    return {"ok": True, "data": data}


def _worker_checks(stage: Supervised, case: Case, call: Forward) -> None:
    if call.mutated:
        raise CandidateFailure(
            f"{case.label}: the candidate modified its input(s) {', '.join(map(str, call.mutated))}"
        )
    if call.patched:
        raise CandidateFailure(
            f"the candidate patched {', '.join(call.patched)} (timers and checks are the verifier's)"
        )
    devices = set(call.devices) - {stage.device}
    if devices:
        raise CandidateFailure(
            f"{case.label}: outputs on {', '.join(sorted(devices))}; expected {stage.device}"
        )
    if stage.backend == "c":
        sizes = [v.numel() * v.element_size() if isinstance(v, torch.Tensor) else None for v in case.inputs]
        problem_text = plan.check_plan(
            call.plan, inputs=sizes, libraries=set(_libraries_of(call)), blob_bytes=len(call.state)
        )
        if problem_text:
            raise CandidateFailure(f"{case.label}: {problem_text}")
    elif call.launches == 0:
        raise CandidateFailure(
            f"{case.label}: no custom kernel was launched during the call (kernel defined but never run)"
        )
    if call.compute_ops and stage.request.get("require_custom_kernel", True):
        listed = ", ".join(f"{name}×{n}" for name, n in sorted(call.compute_ops.items()))
        raise CandidateFailure(
            f"{case.label}: torch computed outside the custom kernels ({listed}): a library fallback; "
            "do the arithmetic in the kernel (policy: must use a custom kernel)"
        )


def _libraries_of(call: Forward) -> list[str]:
    return [str(launch.get("library")) for launch in (call.plan or {}).get("launches", [])]


def _replay_checks(case: Case, result: Replayed) -> None:
    if result.problems:
        raise CandidateFailure(
            f"{case.label}: the kernel's work did not end when its call returned: "
            + "; ".join(result.problems)
        )
    if result.mutated:
        raise CandidateFailure(
            f"{case.label}: the candidate modified its input(s) {', '.join(map(str, result.mutated))} "
            "(in the replayed kernels)"
        )


def _judge(
    case: Case,
    outputs: list[torch.Tensor],
    worker_outputs: list[torch.Tensor] | None,
    judged: list[list[torch.Tensor]],
    tolerance: dict[str, Any],
) -> None:
    """Raise CandidateFailure when ``outputs`` (the replay's, or the worker's) are wrong for ``case``."""
    if case.rerun_of is not None:
        previous = judged[case.rerun_of]
        if len(outputs) != len(previous) or not all(map(same_bytes, outputs, previous)):
            raise CandidateFailure(
                "the same inputs gave different outputs on a re-run (uninitialised memory, a race, or state "
                "kept between calls)"
            )
        return
    failure = first_mismatch(case.expected, outputs, tolerance)
    if failure is None:
        return
    text, data = failure
    if worker_outputs is not None and first_mismatch(case.expected, worker_outputs, tolerance) is None:
        raise CandidateFailure(
            f"{case.label}: output {data.get('output', 0)} as forward returned it is right, but the kernel "
            f"launches replayed alone (no Python, no torch) do not produce it: {text}; so work was done "
            "outside the kernels",
            data,
        )
    raise CandidateFailure(f"{case.label}: {text}", data)


def first_mismatch(
    expected: list[torch.Tensor], got: list[torch.Tensor], tolerance: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """``(text, data)`` of the first output outside tolerance, or None when all match."""
    if len(got) != len(expected):
        return f"{len(got)} outputs, expected {len(expected)}", {}
    for k, (exp, out) in enumerate(zip(expected, got, strict=True)):
        comparison = compare.compare_tensor(exp, out, **tolerance)
        if not comparison.ok:
            text = f"output {k}: {comparison.reason}"
            shown = compare.describe_mismatches(comparison)
            if shown:
                text += "; first mismatching elements:\n" + shown
            data = {
                "output": k,
                "mismatches": [m.__dict__ for m in comparison.mismatches],
                "max_abs_error": comparison.max_abs_error,
            }
            return text, data
    return None
