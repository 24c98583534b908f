"""Row-wise reduction: RMSNorm written as torch ops, ``x * rsqrt(mean(x^2) + eps) * weight``."""

import torch
import torch.nn as nn

BATCH = 16
FEATURES = 256
BENCH_BATCH = 16384
EPS = 1e-6


class Model(nn.Module):
    def __init__(self, features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def get_inputs():
    return [torch.randn(BATCH, FEATURES)]


def get_init_inputs():
    return [FEATURES, EPS]


def get_benchmark_inputs():
    return [torch.randn(BENCH_BATCH, FEATURES)]
