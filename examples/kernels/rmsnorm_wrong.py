"""WRONG candidate for rmsnorm: a real Triton kernel that does the arithmetic in fp16, then casts back.

Half precision has a relative error of ~5e-4, above the fp32 tolerance: the correctness stage
rejects it (a verifier comparing with ``atol=1e-2`` would not).
"""

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def rmsnorm_kernel(x_ptr, w_ptr, out_ptr, cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    c = tl.arange(0, BLOCK)
    mask = c < cols
    x = tl.load(x_ptr + row * cols + c, mask=mask, other=0.0).to(tl.float16)
    w = tl.load(w_ptr + c, mask=mask, other=0.0).to(tl.float16)
    ms = (tl.sum(x * x, axis=0) / cols).to(tl.float16)
    inv = (1.0 / tl.sqrt((ms + eps).to(tl.float32))).to(tl.float16)
    tl.store(out_ptr + row * cols + c, (x * inv * w).to(tl.float32), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        cols = x.shape[-1]
        rows = x.numel() // cols
        rmsnorm_kernel[(rows,)](
            x, self.weight, out, cols, float(self.eps), BLOCK=triton.next_power_of_2(cols)
        )
        return out
