"""C candidate for scale_bias_gelu: one fused OpenMP pass, ``v = x*scale + bias; v * sigmoid(2u)``.

``0.5 * (1 + tanh(u)) == sigmoid(2u)``, so the tanh-GELU needs one exp per element, computed by an
inlined polynomial the compiler vectorises.
"""

import torch
import torch.nn as nn

from evoforge.runtime import load_c

_lib = load_c(r"""
#include <math.h>
#include <stdint.h>

/* exp(x) for float without libm calls, so loops vectorise: round-to-nearest by the 1.5*2^23
   trick, Cody-Waite reduction by ln 2, the Cephes degree-6 polynomial (about 1 ulp), then 2^n */
static inline float exp_f32(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float magic = 12582912.0f;
    float t = fmaf(x, 1.44269504088896341f, magic);
    float n = t - magic;
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p * r, r, r) + 1.0f;
    union { float f; int32_t i; } bits = {t}, scale;
    scale.i = (bits.i - 0x4B400000 + 127) << 23;
    return p * scale.f;
}

void scale_bias_gelu(float *out, const float *x, const float *bias, double scale, int64_t rows,
                     int64_t cols) {
    const float s = (float)scale;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * cols;
        float *o = out + r * cols;
        #pragma omp simd
        for (int64_t c = 0; c < cols; ++c) {
            float v = fmaf(xr[c], s, bias[c]);
            float u = 0.7978845608028654f * fmaf(0.044715f * v, v * v, v);
            o[c] = v / (1.0f + exp_f32(-2.0f * u));
        }
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
