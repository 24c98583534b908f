"""WRONG candidate for linear_relu: the ReLU is applied before the bias add (``relu(xW^T) + b``).

Equal wherever the pre-activation is positive and the bias small; wrong elsewhere. The correctness
stage rejects it.
"""

import torch
import torch.nn as nn

from evoforge.runtime import load_c

_lib = load_c(r"""
#include <stdint.h>

void linear_relu(float *out, const float *x, const float *w, const float *bias, int64_t m, int64_t n,
                 int64_t k) {
    #pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            float s = 0.0f;
            for (int64_t p = 0; p < k; ++p) s += x[i * k + p] * w[j * k + p];
            out[i * n + j] = (s > 0.0f ? s : 0.0f) + bias[j];
        }
}
""")


class ModelNew(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        k = x.shape[-1]
        m = x.numel() // k
        n = self.linear.out_features
        out = x.new_empty((*x.shape[:-1], n))
        _lib.linear_relu(out, x, self.linear.weight.contiguous(), self.linear.bias.contiguous(), m, n, k)
        return out
