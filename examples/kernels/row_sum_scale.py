"""Row-wise reduction: ``sum(|x|, dim=-1) * scale`` — a scaled L1 norm of every row (KernelBench format)."""

import torch
import torch.nn as nn

BATCH = 16
FEATURES = 256
BENCH_BATCH = 4096
BENCH_FEATURES = 1024
SCALE = 0.25


class Model(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x).sum(dim=-1) * self.scale


def get_inputs():
    return [torch.randn(BATCH, FEATURES)]


def get_init_inputs():
    return [SCALE]


def get_benchmark_inputs():
    return [torch.randn(BENCH_BATCH, BENCH_FEATURES)]
