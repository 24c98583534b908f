"""WRONG candidate for row_sum_scale: an off-by-one mask (``c < cols - 1``) drops each row's last column.

Each sum is short by one ``|x|`` term (~0.3% of a 256-column row): the correctness stage rejects it.
"""

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def row_abs_sum_kernel(x_ptr, out_ptr, cols, scale, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, cols, BLOCK):
        c = start + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * cols + c, mask=c < cols - 1, other=0.0)
        acc += tl.abs(x)
    tl.store(out_ptr + row, tl.sum(acc, axis=0) * scale)


class ModelNew(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        cols = x.shape[-1]
        rows = x.numel() // cols
        out = x.new_empty(x.shape[:-1])
        row_abs_sum_kernel[(rows,)](x, out, cols, float(self.scale), BLOCK=128)
        return out
