"""Elementwise chain: ``clamp(2 * x * sigmoid(x), -1, 1)`` (KernelBench format).

Torch eager runs four passes over memory (sigmoid, mul, mul, clamp); a fused kernel reads ``x`` once.
"""

import torch
import torch.nn as nn

BATCH = 16
FEATURES = 256
BENCH_BATCH = 4096
BENCH_FEATURES = 1024


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.sigmoid(x)
        y = y * 2.0
        return torch.clamp(y, min=-1.0, max=1.0)


def get_inputs():
    return [torch.randn(BATCH, FEATURES)]


def get_init_inputs():
    return []


def get_benchmark_inputs():
    return [torch.randn(BENCH_BATCH, BENCH_FEATURES)]
