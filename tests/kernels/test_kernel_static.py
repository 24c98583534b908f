"""The static stage on candidate sources: backends, policy, and the reward hacks it can see in text."""

from __future__ import annotations

import pytest

from evoforge.verifiers.kernel.static import check, detect_backend

C_OK = '''
import torch
import torch.nn as nn
from evoforge.runtime import load_c

_lib = load_c(r"""
#include <stdint.h>
void relu(float *o, const float *x, int64_t n) {
    #pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) o[i] = x[i] > 0 ? x[i] : 0;
}""")

class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        _lib.relu(out, x, x.numel())
        return out.view(x.shape)
'''

TRITON_OK = """
import torch
import torch.nn as nn
import triton
import triton.language as tl

@triton.jit
def k(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m)
    tl.store(o_ptr + offs, tl.exp(x) / tl.sum(x, axis=0), mask=m)

class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.empty_like(x)
        k[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
        return out
"""

CUDA_OK = """
import torch
from torch.utils.cpp_extension import load_inline
src = "__global__ void k(float* x) {}"
mod = load_inline(name="k", cpp_sources="", cuda_sources=src, functions=["k"])
class ModelNew(torch.nn.Module):
    def forward(self, x):
        return mod.k(x)
"""


def test_correct_candidates_pass_with_their_backend() -> None:
    for source, backend in ((C_OK, "c"), (TRITON_OK, "triton"), (CUDA_OK, "cuda")):
        report = check(source)
        assert report.ok, report.detail
        assert report.backend == backend


def test_syntax_error_and_missing_modelnew() -> None:
    report = check("class ModelNew(:\n")
    assert not report.ok and "syntax error at line 1" in report.detail
    report = check(C_OK.replace("class ModelNew", "class Model2"))
    assert not report.ok and "defines no ModelNew" in report.detail


def test_no_kernel_is_refused_by_policy_and_allowed_without_it() -> None:
    source = (
        "import torch\nclass ModelNew(torch.nn.Module):\n"
        "    def forward(self, x):\n        return x.clone()\n"
    )
    assert "no custom kernel" in check(source).detail
    assert check(source, require_custom_kernel=False).ok


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("        return torch.softmax(x, -1)", "calls torch.softmax"),
        ("        return F.gelu(x)", "calls F.gelu"),
        ("        return x @ x", "@ operator"),
        ("        return x.sum(-1)", ".sum() on a tensor"),
        ("        try:\n            pass\n        except Exception:\n            pass", "try/except"),
        ("        import threading", "imports threading"),
        ("        time.perf_counter = lambda: 0.0", "imports time"),
        ("        torch.cuda.synchronize = lambda: None", "assigns torch.cuda.synchronize"),
        ("        s = torch.cuda.Stream()", "extra CUDA stream"),
        ("        import numpy", "numpy"),
        ("        sys.modules['x'] = None", "sys.modules"),
        ("        exec('1')", "calls exec()"),
    ],
)
def test_hacks_visible_in_the_text_are_refused(snippet: str, expected: str) -> None:
    source = C_OK.replace("        return out.view(x.shape)", snippet + "\n        return out")
    if "time." in snippet:
        source = "import time\n" + source
    report = check(source)
    assert not report.ok
    assert expected in report.detail, report.detail


def test_result_caches_and_subclassing_the_reference() -> None:
    cached = C_OK.replace("_lib = load_c", "_CACHE = {}\n_lib = load_c").replace(
        "        return out.view(x.shape)", "        _CACHE[x.shape] = out\n        return out"
    )
    assert "result cache" in check(cached).detail
    selfcache = C_OK.replace(
        "class ModelNew(nn.Module):",
        "class ModelNew(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.memo = {}\n",
    ).replace("        return out.view(x.shape)", "        self.memo[x.shape] = out\n        return out")
    assert "self.memo" in check(selfcache).detail
    sub = "from problem import Model\n" + C_OK.replace("class ModelNew(nn.Module)", "class ModelNew(Model)")
    assert "subclasses the reference Model" in check(sub).detail


def test_triton_device_code_may_use_reductions() -> None:
    # tl.sum / tl.exp inside @triton.jit are the kernel, not a fallback
    assert check(TRITON_OK).ok
    assert detect_backend(__import__("ast").parse(TRITON_OK)) == "triton"
