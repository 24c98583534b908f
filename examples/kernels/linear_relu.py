"""GEMM with an elementwise epilogue: ``relu(x @ W.T + b)`` through ``nn.Linear`` (KernelBench format)."""

import torch
import torch.nn as nn

BATCH = 16
IN_FEATURES = 256
OUT_FEATURES = 256
BENCH_BATCH = 4096


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


def get_inputs():
    return [torch.randn(BATCH, IN_FEATURES)]


def get_init_inputs():
    return [IN_FEATURES, OUT_FEATURES]


def get_benchmark_inputs():
    return [torch.randn(BENCH_BATCH, IN_FEATURES)]
