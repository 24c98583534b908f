"""WRONG candidate for swish_clamp: clamps before doubling, so outputs reach +-2 instead of +-1.

Exact wherever ``|2 * swish(x)| < 1`` (most small inputs); the correctness stage rejects it on the
elements beyond the clamp.
"""

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def swish_clamp_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    y = x / (1.0 + tl.exp(-x))
    y = tl.minimum(tl.maximum(y, -1.0), 1.0) * 2.0
    tl.store(out_ptr + offs, y, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        swish_clamp_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
        return out
