"""A small KernelBench problem (ReLU) and C candidates for it, shared by the scripted-LLM kernel tests."""

PROBLEM = """\
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(16, 1024)]


def get_init_inputs():
    return []


def get_benchmark_inputs():
    return [torch.randn(256, 4096)]
"""
CANDIDATE = '''\
import torch
import torch.nn as nn
from evoforge.runtime import load_c

_lib = load_c(r"""
#include <stdint.h>
void relu(float *out, const float *x, int64_t n) {
    #pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] > THRESHOLD ? x[i] : 0.0f;
}
""")


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        _lib.relu(out, x, x.numel())
        return out
'''
GOOD = CANDIDATE.replace("THRESHOLD", "0.0f")
WRONG = CANDIDATE.replace("THRESHOLD", "0.5f")  # zeroes (0, 0.5]: compiles, runs, wrong
