"""The GPU paths (Triton on the device, CUDA through load_inline, CUDA-event timing): run only with a GPU.

On a machine without one these skip, saying so; the same candidates are covered on the CPU by the
interpreter (Triton) and by the ahead-of-time compile (resources) elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RELU_TRITON

from evoforge.config import KernelSettings
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.target import load_kernel_target

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")

RELU_CUDA = r'''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_src = """
#include <torch/extension.h>
__global__ void relu2_kernel(const float* x, float* o, int64_t n) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = (x[i] > 0.f ? x[i] : 0.f) * 2.f + 1.f;
}
torch::Tensor relu2(torch::Tensor x) {
    auto o = torch::empty_like(x);
    int64_t n = x.numel();
    relu2_kernel<<<(n + 255) / 256, 256>>>(x.data_ptr<float>(), o.data_ptr<float>(), n);
    return o;
}
"""
mod = load_inline(name="relu2_ext", cpp_sources="torch::Tensor relu2(torch::Tensor x);",
                  cuda_sources=cuda_src, functions=["relu2"])


class ModelNew(nn.Module):
    def forward(self, x):
        return mod.relu2(x.contiguous())
'''


@pytest.mark.parametrize("source", [RELU_TRITON, RELU_CUDA], ids=["triton", "cuda"])
def test_gpu_candidates_are_checked_and_timed_on_the_device(
    source: str, relu_problem: Path, kernel_settings: KernelSettings, tmp_path: Path
) -> None:  # pragma: no cover - needs a GPU
    target = load_kernel_target(relu_problem, kernel_settings, work_dir=tmp_path / "t")
    verdict = KernelVerifier(target, kernel_settings, tmp_path / "v").verify(source)
    assert verdict.accepted, verdict.reason
    bench = verdict.stages[-1]
    assert bench.data["device"] == "cuda" and bench.data["unmeasured"] is None
    assert verdict.metrics.speedup is not None and verdict.metrics.runtime_ms is not None
