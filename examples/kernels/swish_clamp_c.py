"""C candidate for swish_clamp: one fused OpenMP pass, ``clamp(2 * x / (1 + exp(-x)), -1, 1)``."""

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

void swish_clamp(float *out, const float *x, int64_t n) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        float v = x[i];
        float y = (v / (1.0f + exp_f32(-v))) * 2.0f;
        y = y < -1.0f ? -1.0f : y;
        out[i] = y > 1.0f ? 1.0f : y;
    }
}
""")


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        _lib.swish_clamp(out, x, x.numel())
        return out
