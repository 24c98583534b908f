"""C candidate for layernorm_rows: per row (OpenMP over rows) mean, biased variance, affine write."""

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
        float *o = out + r * cols;
        float sum = 0.0f;
        #pragma omp simd reduction(+:sum)
        for (int64_t c = 0; c < cols; ++c) sum += xr[c];
        const float mean = sum / (float)cols;
        float ss = 0.0f;
        #pragma omp simd reduction(+:ss)
        for (int64_t c = 0; c < cols; ++c) {
            float d = xr[c] - mean;
            ss += d * d;
        }
        const float inv = 1.0f / sqrtf(ss / (float)cols + (float)eps);
        #pragma omp simd
        for (int64_t c = 0; c < cols; ++c) o[c] = (xr[c] - mean) * inv * w[c] + b[c];
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
