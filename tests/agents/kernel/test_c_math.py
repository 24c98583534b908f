"""The templates' C exponentials against float64: the error they claim, and their edges."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evoforge import runtime

C_MATH = Path(runtime.__file__).parent / "kb" / "templates" / "kernel" / "c_math.jinja"

SOURCE = (
    "#include <stdint.h>\n#include <math.h>\n"
    + C_MATH.read_text()
    + """
void eval_exp(float *out, const float *x, int64_t n) {
    #pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = ef_exp(x[i]);
}
void eval_exp_nonpos(float *out, const float *x, int64_t n) {
    #pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = ef_exp_nonpos(x[i]);
}
"""
)


@pytest.fixture(scope="module")
def lib() -> runtime.CLibrary:
    return runtime.load_c(SOURCE, openmp=True)


def _run(lib: runtime.CLibrary, name: str, x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    getattr(lib, name)(out, x, x.numel())  # the vectorised loop, as the kernels run it
    return out


@pytest.mark.parametrize(
    ("name", "low", "high"), [("eval_exp", -87.0, 88.0), ("eval_exp_nonpos", -87.0, 0.0)]
)
def test_relative_error_over_the_range_stays_within_two_ulp(
    lib: runtime.CLibrary, name: str, low: float, high: float
) -> None:
    x = torch.cat([torch.linspace(low, high, 400_001), torch.empty(100_000).uniform_(-1.0, 0.0)])
    if high > 0:
        x = torch.cat([x, torch.empty(100_000).uniform_(0.0, 1.0)])
    got = _run(lib, name, x.float().contiguous()).double()
    want = torch.exp(x.float().double())
    error = ((got - want).abs() / want).max().item()
    assert error < 2.4e-7, f"{name}: max relative error {error:.3g}"


def test_the_non_positive_exp_keeps_its_edges(lib: runtime.CLibrary) -> None:
    x = torch.tensor([0.0, -0.0, -1e-30, float("nan"), float("-inf"), -1000.0, -87.0])
    got = _run(lib, "eval_exp_nonpos", x)
    assert got[0].item() == 1.0 and got[1].item() == 1.0 and got[2].item() == 1.0
    assert torch.isnan(got[3])
    # far below: clamped at exp(-87) ~ 1.6e-38, as ef_exp does (no NaN, nothing a sum would notice)
    assert all(0.0 <= v < 2e-38 for v in got[4:6].tolist())
    assert got[6].item() == pytest.approx(1.6458115e-38, rel=1e-6)
