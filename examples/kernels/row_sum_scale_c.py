"""C candidate for row_sum_scale: per row (OpenMP over rows) a vectorised sum of |x|, times scale."""

import torch
import torch.nn as nn

from evoforge.runtime import load_c

_lib = load_c(r"""
#include <math.h>
#include <stdint.h>

void row_abs_sum(float *out, const float *x, double scale, int64_t rows, int64_t cols) {
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * cols;
        float s = 0.0f;
        #pragma omp simd reduction(+:s)
        for (int64_t c = 0; c < cols; ++c) s += fabsf(xr[c]);
        out[r] = s * (float)scale;
    }
}
""")


class ModelNew(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        cols = x.shape[-1]
        out = x.new_empty(x.shape[:-1])
        _lib.row_abs_sum(out, x, float(self.scale), x.numel() // cols, cols)
        return out
