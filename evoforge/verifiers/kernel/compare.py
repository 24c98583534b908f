"""Comparing a candidate's outputs with the reference's: tolerances, mismatch reports, fingerprints.

The tolerance is scaled to the output: an element passes when
``|got - expected| <= rtol * |expected| + atol_scale * rms(expected)``. Defaults by dtype are tight
enough that fp16/bf16/TF32 arithmetic in an fp32 problem fails, and the RMS term keeps outputs of
tiny magnitude (softmax over thousands of columns) from passing as zeros. NaN must match NaN and
infinities must match exactly. Runs inside the verifier's child processes (imports torch).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

#: (rtol, atol_scale) by dtype; fp32 catches a downgrade to fp16/bf16/TF32 (relative error ≥ 2.4e-4)
DEFAULT_TOLERANCE: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}
MISMATCHES_SHOWN = 5
#: elements judged at a time: the float64 temporaries of a chunk stay in the cache (whole-tensor ones
#: of a 50 MB output cost seconds per comparison in fresh pages), and no larger than torch's grain
#: size (32768), so each operation stays on one thread — measured 10× slower at 65536 elements on a
#: loaded 2-CPU machine, where every operation waited for a second thread
CHUNK = 1 << 15


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol_scale: float

    @classmethod
    def for_dtype(
        cls, dtype: torch.dtype, rtol: float | None = None, atol_scale: float | None = None
    ) -> Tolerance:
        default = DEFAULT_TOLERANCE.get(dtype, (0.0, 0.0))  # integers and bools: exact
        return cls(
            rtol if rtol is not None else default[0], atol_scale if atol_scale is not None else default[1]
        )


@dataclass(frozen=True)
class Mismatch:
    index: list[int]
    expected: float
    got: float
    abs_error: float
    allowed: float


@dataclass(frozen=True)
class Comparison:
    ok: bool
    reason: str  # empty when ok
    mismatched: int = 0
    total: int = 0
    max_abs_error: float = 0.0
    mismatches: tuple[Mismatch, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mismatches"] = [asdict(m) for m in self.mismatches]
        return data


def compare_tensor(
    expected: torch.Tensor, got: Any, *, rtol: float | None = None, atol_scale: float | None = None
) -> Comparison:
    """Exact type, shape, dtype and device first; then the element-wise tolerance."""
    if type(got) is not torch.Tensor:
        return Comparison(
            False, f"the output is a {type(got).__module__}.{type(got).__qualname__}, not a torch.Tensor"
        )
    if got.dtype != expected.dtype:
        return Comparison(False, f"dtype {got.dtype}, expected {expected.dtype}")
    if tuple(got.shape) != tuple(expected.shape):
        return Comparison(False, f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    if got.device.type != expected.device.type:
        return Comparison(False, f"device {got.device}, expected {expected.device}")
    exp = expected.detach().to("cpu")
    out = got.detach().to("cpu")
    shape, flat_exp, flat_out = tuple(exp.shape), exp.reshape(-1), out.reshape(-1)
    if not exp.is_floating_point():
        return _scan(flat_exp, flat_out, shape, _exact, "values differ")
    if torch.equal(flat_exp, flat_out):  # the same values (a NaN anywhere makes this false)
        return Comparison(True, "", 0, flat_exp.numel(), 0.0)
    tol = Tolerance.for_dtype(exp.dtype, rtol, atol_scale)
    rms = _finite_rms(flat_exp)

    def judge(e: torch.Tensor, o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e64, o64 = e.to(torch.float64), o.to(torch.float64)
        allowed = tol.rtol * e64.abs() + tol.atol_scale * rms
        diff = (o64 - e64).abs()
        bad = ~(diff <= allowed)  # NaN differences count as bad …
        both_nan = torch.isnan(e64) & torch.isnan(o64)
        same_inf = torch.isinf(e64) & (o64 == e64)
        return bad & ~(both_nan | same_inf), allowed, diff  # … unless both are NaN, or the same infinity

    what = f"outside tolerance (rtol {tol.rtol:g}, atol {tol.atol_scale:g}×rms)"
    return _scan(flat_exp, flat_out, shape, judge, what)


def _exact(e: torch.Tensor, o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    diff = (o.to(torch.float64) - e.to(torch.float64)).abs()
    return o != e, torch.zeros(e.shape, dtype=torch.float64), diff


def _finite_rms(flat: torch.Tensor) -> float:
    """The root mean square of the finite elements (0.0 when none is)."""
    squares, count = 0.0, 0
    for start in range(0, flat.numel(), CHUNK):
        e64 = flat[start : start + CHUNK].to(torch.float64)
        finite = torch.isfinite(e64)
        squares += float(torch.where(finite, e64 * e64, 0.0).sum())
        count += int(finite.sum())
    return math.sqrt(squares / count) if count else 0.0


def _scan(
    flat_exp: torch.Tensor,
    flat_out: torch.Tensor,
    shape: tuple[int, ...],
    judge: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    what: str,
) -> Comparison:
    """Judge the elements a chunk at a time: the count outside tolerance, the largest finite error
    and the first ``MISMATCHES_SHOWN`` mismatches, by flat index."""
    total, count, max_err = flat_exp.numel(), 0, 0.0
    shown: list[Mismatch] = []
    for start in range(0, total, CHUNK):
        e, o = flat_exp[start : start + CHUNK], flat_out[start : start + CHUNK]
        bad, allowed, diff = judge(e, o)
        if diff.numel():  # the largest finite error (errors are ≥ 0: a non-finite one counts as 0)
            max_err = max(max_err, float(torch.where(torch.isfinite(diff), diff, 0.0).max()))
        bad_here = int(bad.sum())
        count += bad_here
        if bad_here and len(shown) < MISMATCHES_SHOWN:
            for i in torch.nonzero(bad).reshape(-1)[: MISMATCHES_SHOWN - len(shown)].tolist():
                index = list(_unravel(start + i, shape))
                shown.append(Mismatch(index, float(e[i]), float(o[i]), float(diff[i]), float(allowed[i])))
    if count == 0:
        return Comparison(True, "", 0, total, max_err)
    return Comparison(False, f"{count} of {total} elements {what}", count, total, max_err, tuple(shown))


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat % size if size else 0)
        flat //= size if size else 1
    return tuple(reversed(index))


def describe_mismatches(comparison: Comparison, limit: int = MISMATCHES_SHOWN) -> str:
    """``[i, j] expected 0.1234 got 0.2 (error 0.077 > 1.2e-05)``, one per line."""
    return "\n".join(
        f"  {m.index} expected {m.expected:.6g} got {m.got:.6g} "
        f"(error {m.abs_error:.3g} > allowed {m.allowed:.3g})"
        for m in comparison.mismatches[:limit]
    )


def fingerprint(outputs: list[Any]) -> str:
    """The functional fingerprint: outputs on a grid of ~1% of their magnitude, hashed with shapes, dtypes.

    Coarse on purpose: correct candidates that differ by rounding should usually share it. It names
    behaviour for caching and reporting; it never decides correctness.
    """
    digest = hashlib.sha256()
    for value in outputs:
        if type(value) is not torch.Tensor:
            digest.update(f"<{type(value).__name__}>".encode())
            continue
        plain = value.detach().to("cpu")
        digest.update(f"{plain.dtype}{tuple(plain.shape)}".encode())
        if plain.is_floating_point():
            data = plain.to(torch.float64)
            finite = torch.isfinite(data)
            rms = math.sqrt(float((data[finite] ** 2).mean())) if bool(finite.any()) else 1.0
            quantum = 10.0 ** (math.floor(math.log10(rms or 1.0)) - 2)  # a fixed grid per decade of RMS
            data = torch.where(finite, torch.round(data / quantum), data)
            digest.update(data.numpy().tobytes())
        elif plain.numel():
            digest.update(plain.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
