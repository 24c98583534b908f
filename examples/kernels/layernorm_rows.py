"""Row-wise reduction: LayerNorm written as torch ops (biased variance, affine weight and bias)."""

import torch
import torch.nn as nn

BATCH = 16
FEATURES = 256
BENCH_BATCH = 16384
EPS = 1e-5


class Model(nn.Module):
    def __init__(self, features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(features))
        self.bias = nn.Parameter(0.1 * torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        centered = x - mean
        var = (centered * centered).mean(-1, keepdim=True)
        return centered / torch.sqrt(var + self.eps) * self.weight + self.bias


def get_inputs():
    return [torch.randn(BATCH, FEATURES)]


def get_init_inputs():
    return [FEATURES, EPS]


def get_benchmark_inputs():
    return [torch.randn(BENCH_BATCH, FEATURES)]
