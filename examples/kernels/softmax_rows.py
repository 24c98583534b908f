"""Row-wise reduction: a temperature softmax ``softmax(x / temperature, dim=-1)`` over every row.

Torch eager divides in one pass and runs its (fused) softmax in a second; a fused kernel needs one.
"""

import torch
import torch.nn as nn

BATCH = 16
FEATURES = 256
BENCH_BATCH = 4096
BENCH_FEATURES = 1024
TEMPERATURE = 0.7


class Model(nn.Module):
    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x / self.temperature, dim=-1)


def get_inputs():
    return [torch.randn(BATCH, FEATURES)]


def get_init_inputs():
    return [TEMPERATURE]


def get_benchmark_inputs():
    return [torch.randn(BENCH_BATCH, BENCH_FEATURES)]
