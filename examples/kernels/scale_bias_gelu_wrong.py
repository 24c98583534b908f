"""WRONG candidate for scale_bias_gelu: the exact erf GELU instead of the tanh approximation.

Plausible (both are "GELU") and close — the two differ by up to ~5e-4 — but the problem asks for
``approximate="tanh"``, and the fp32 tolerance sees the difference. The correctness stage rejects it.
"""

import torch
import torch.nn as nn

from evoforge.runtime import load_c

_lib = load_c(r"""
#include <math.h>
#include <stdint.h>

void scale_bias_gelu(float *out, const float *x, const float *bias, double scale, int64_t rows,
                     int64_t cols) {
    const float s = (float)scale;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            float v = x[r * cols + c] * s + bias[c];
            out[r * cols + c] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        }
}
""")


class ModelNew(nn.Module):
    def __init__(self, features: int, scale: float):
        super().__init__()
        self.scale = scale
        self.bias = nn.Parameter(torch.randn(features) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        cols = x.shape[-1]
        _lib.scale_bias_gelu(out, x, self.bias.contiguous(), float(self.scale), x.numel() // cols, cols)
        return out
