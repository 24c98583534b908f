"""WRONG candidate for softmax_rows: an off-by-one in the normalising sum (it skips column 0).

Every output is too large by a factor ``1 / (1 - p0)``; small for long rows, still far outside the
fp32 tolerance. The correctness stage rejects it.
"""

import torch
import torch.nn as nn

from evoforge.runtime import load_c

_lib = load_c(r"""
#include <math.h>
#include <stdint.h>

void softmax_rows(float *out, const float *x, double temperature, int64_t rows, int64_t cols) {
    const float inv_t = (float)(1.0 / temperature);
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * cols;
        float *o = out + r * cols;
        float m = xr[0];
        for (int64_t c = 1; c < cols; ++c) m = xr[c] > m ? xr[c] : m;
        for (int64_t c = 0; c < cols; ++c) o[c] = expf((xr[c] - m) * inv_t);
        float sum = 0.0f;
        for (int64_t c = 1; c < cols; ++c) sum += o[c];
        for (int64_t c = 0; c < cols; ++c) o[c] /= sum;
    }
}
""")


class ModelNew(nn.Module):
    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        cols = x.shape[-1]
        _lib.softmax_rows(out, x, float(self.temperature), x.numel() // cols, cols)
        return out
