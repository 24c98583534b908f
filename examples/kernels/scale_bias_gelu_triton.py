"""Triton candidate for scale_bias_gelu: one program per row block, ``v * sigmoid(2u)`` (= tanh-GELU)."""

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def scale_bias_gelu_kernel(
    x_ptr, bias_ptr, out_ptr, rows, cols, scale, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr
):
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)[:, None]
    c = tl.arange(0, BLOCK_C)[None, :]
    mask = (r < rows) & (c < cols)
    x = tl.load(x_ptr + r * cols + c, mask=mask, other=0.0)
    b = tl.load(bias_ptr + c, mask=c < cols, other=0.0)
    v = x * scale + b
    u = 0.7978845608028654 * (v + 0.044715 * v * v * v)
    tl.store(out_ptr + r * cols + c, v / (1.0 + tl.exp(-2.0 * u)), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, features: int, scale: float):
        super().__init__()
        self.scale = scale
        self.bias = nn.Parameter(torch.randn(features) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        cols = x.shape[-1]
        rows = x.numel() // cols
        block_r = 8
        grid = (triton.cdiv(rows, block_r),)
        scale_bias_gelu_kernel[grid](
            x,
            self.bias,
            out,
            rows,
            cols,
            float(self.scale),
            BLOCK_R=block_r,
            BLOCK_C=triton.next_power_of_2(cols),
        )
        return out
