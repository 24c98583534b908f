"""Elementwise chain: ``gelu_tanh(x * scale + bias)`` with a per-column bias (KernelBench format).

Torch eager runs three passes over memory (mul, add, gelu); a fused kernel reads ``x`` once.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 16
FEATURES = 256
BENCH_BATCH = 16384
SCALE = 1.7


class Model(nn.Module):
    def __init__(self, features: int, scale: float):
        super().__init__()
        self.scale = scale
        self.bias = nn.Parameter(torch.randn(features) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x * self.scale + self.bias, approximate="tanh")


def get_inputs():
    return [torch.randn(BATCH, FEATURES)]


def get_init_inputs():
    return [FEATURES, SCALE]


def get_benchmark_inputs():
    return [torch.randn(BENCH_BATCH, FEATURES)]
