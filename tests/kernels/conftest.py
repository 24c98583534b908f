"""Kernel test fixtures: fast kernel settings and small inline problems and candidates."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.config import KernelSettings

ROOT = Path(__file__).resolve().parents[2]
KERNEL_EXAMPLES = ROOT / "examples" / "kernels"
KERNEL_HOSTILE = ROOT / "tests" / "fixtures" / "kernel_hostile"
KERNEL_BAD = ROOT / "tests" / "fixtures" / "kernel_bad"

RELU_PROBLEM = """
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0 + 1.0


def get_inputs():
    return [torch.randn(16, 256)]


def get_init_inputs():
    return []


def get_benchmark_inputs():
    return [torch.randn(512, 4096)]
"""

RELU_C = '''
import torch
import torch.nn as nn
from evoforge.runtime import load_c

_lib = load_c(r"""
#include <stdint.h>
void relu2(float *o, const float *x, int64_t n) {
    #pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) o[i] = (x[i] > 0.0f ? x[i] : 0.0f) * 2.0f + 1.0f;
}""")


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        _lib.relu2(out, x, x.numel())
        return out
'''

RELU_TRITON = """
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu2(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m)
    tl.store(o_ptr + offs, tl.maximum(x, 0.0) * 2.0 + 1.0, mask=m)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        relu2[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
        return out
"""


@pytest.fixture
def kernel_settings() -> KernelSettings:
    """Fewer timed rounds and shorter limits, so that a cascade takes seconds.

    ``max_interval`` is lifted: these tests check the pipeline, and a loaded shared machine would turn
    every speed-up into "too noisy" (the spread gate is tested in ``test_kernel_integrity.py``).
    """
    return KernelSettings(
        benchmark_repeats=8, benchmark_budget_s=5.0, stage_timeout_s=120.0, max_interval=1000.0
    )


@pytest.fixture
def relu_problem(tmp_path: Path) -> Path:
    path = tmp_path / "relu2.py"
    path.write_text(RELU_PROBLEM)
    return path
