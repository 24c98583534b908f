"""WRONG candidate for layernorm_rows: the unbiased variance (divides by ``cols - 1``, like torch.var).

Off by a factor ``sqrt((n - 1) / n)`` — 0.2% for 256 columns — which the fp32 tolerance sees. The
correctness stage rejects it.
"""

import torch
import torch.nn as nn

from evoforge.runtime import load_c

_lib = load_c(r"""
#include <math.h>
#include <stdint.h>

void layernorm(float *out, const float *x, const float *w, const float *b, double eps, int64_t rows,
               int64_t cols) {
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * cols;
        float sum = 0.0f, ss = 0.0f;
        for (int64_t c = 0; c < cols; ++c) sum += xr[c];
        const float mean = sum / (float)cols;
        for (int64_t c = 0; c < cols; ++c) ss += (xr[c] - mean) * (xr[c] - mean);
        const float inv = 1.0f / sqrtf(ss / (float)(cols - 1) + (float)eps);
        for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = (xr[c] - mean) * inv * w[c] + b[c];
    }
}
""")


class ModelNew(nn.Module):
    def __init__(self, features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(features))
        self.bias = nn.Parameter(0.1 * torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        cols = x.shape[-1]
        _lib.layernorm(
            out, x, self.weight.contiguous(), self.bias.contiguous(), float(self.eps), x.numel() // cols, cols
        )
        return out
