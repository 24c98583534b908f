"""Issue 15.4/15.8: templates for GEMM, convolution, pooling, reductions over any dimension and
pointwise expression graphs — the patterns read from KernelBench-style models, the generated C
kernels checked against torch on small shapes (and odd ones: tails), and the reasons given when
no template applies or the machine cannot time a backend."""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from evoforge.agents.base import ProposalRequest
from evoforge.agents.kernel_templates.proposer import OfflineKernelProposer
from evoforge.domain import Metrics, SourceFile, Target, TargetKind
from evoforge.verifiers.kernel.fx_summary import summarise


class RmsDim1(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        rms = torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + self.eps)
        return x / rms


class SumDim1(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.sum(x, dim=self.dim, keepdim=True)


class SoftmaxDim1(nn.Module):
    def forward(self, x):
        return torch.softmax(x * 0.5, dim=1)


class ConvDilatedRelu(nn.Module):
    """stride 1 with padding and dilation: the im2col packing's contiguous runs and its padded edges"""

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=2, dilation=2)

    def forward(self, x):
        return torch.relu(self.conv(x))


class ConvReluBias(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, bias_shape):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=2, padding=1)
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x):
        x = self.conv(x)
        x = torch.relu(x)
        return x + self.bias


class MaxPool(nn.Module):
    def __init__(self, kernel_size, stride, padding, dilation):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)

    def forward(self, x):
        return self.pool(x)


class AvgPool(nn.Module):
    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x):
        return self.pool(x) * 2.0


class NewGelu(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Matmul(nn.Module):
    def forward(self, A, B):
        return torch.matmul(A, B)


class GemmMulLeaky(nn.Module):
    def __init__(self, in_features, out_features, multiplier, negative_slope):
        super().__init__()
        self.gemm = nn.Linear(in_features, out_features)
        self.multiplier = multiplier
        self.leaky_relu = nn.LeakyReLU(negative_slope)

    def forward(self, x):
        return self.leaky_relu(self.gemm(x) * self.multiplier)


class Cumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


#: (model, init inputs, inputs, expected pattern kind) — odd sizes so that every tail path runs
CASES: dict[str, tuple[type, list[Any], list[torch.Tensor], str]] = {
    "rmsnorm_dim1": (RmsDim1, [12], [torch.rand(3, 12, 5, 7)], "strided_reduction"),
    "sum_dim1": (SumDim1, [1], [torch.rand(4, 33, 301)], "strided_reduction"),
    "softmax_dim1": (SoftmaxDim1, [], [torch.randn(3, 17, 9)], "strided_reduction"),
    "conv_relu_bias": (ConvReluBias, [5, 13, 3, (13, 1, 1)], [torch.rand(2, 5, 19, 23)], "conv2d_epilogue"),
    "conv_dilated_relu": (ConvDilatedRelu, [3, 9, 3], [torch.rand(2, 3, 40, 37)], "conv2d_epilogue"),
    "maxpool": (MaxPool, [4, 1, 1, 1], [torch.randn(2, 3, 21, 34)], "pool2d"),
    "maxpool_dilated": (MaxPool, [3, 2, 1, 2], [torch.randn(2, 3, 20, 31)], "pool2d"),
    "avgpool": (AvgPool, [3, 2, 1], [torch.randn(2, 3, 20, 31)], "pool2d"),
    "new_gelu": (NewGelu, [], [torch.randn(37, 129)], "elementwise"),
    "matmul": (Matmul, [], [torch.randn(67, 45), torch.randn(45, 131)], "gemm_epilogue"),
    "gemm_mul_leaky": (GemmMulLeaky, [300, 77, 2.0, 0.1], [torch.randn(29, 300)], "gemm_epilogue"),
}


def _target(model_cls: type, init: list[Any], inputs: list[torch.Tensor], backends: list[str]) -> Target:
    import inspect
    import textwrap

    source = "import math\nimport torch\nimport torch.nn as nn\n\n\n" + textwrap.dedent(
        inspect.getsource(model_cls)
    ).replace(f"class {model_cls.__name__}(", "class Model(")
    torch.manual_seed(0)
    model = model_cls(*init)
    summary = summarise(model, inputs)
    summary["backends"] = backends
    return Target(TargetKind.KERNEL, "p", (SourceFile("p.py", source),), kernel_summary=summary)


def _request(target: Target, count: int = 4) -> ProposalRequest:
    return ProposalRequest(
        target=target, parent_source=target.source, parent_metrics=Metrics(), feedback={}, count=count, seed=0
    )


def _load(source: str, tmp_path: Path, name: str) -> Any:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", sorted(CASES))
def test_pattern_and_c_template_match_torch(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evoforge import runtime

    runtime.configure(build_dir=tmp_path / "build")
    model_cls, init, inputs, kind = CASES[case]
    target = _target(model_cls, init, inputs, ["c"])
    patterns = target.kernel_summary["patterns"]  # type: ignore[index]
    assert patterns and patterns[0]["kind"] == kind, target.kernel_summary
    proposals = OfflineKernelProposer().propose(_request(target, 2))
    assert proposals and all(p.origin.startswith("offline:") and p.origin.endswith(".c") for p in proposals)
    for k, proposal in enumerate(proposals):
        module = _load(proposal.source, tmp_path, f"cand_{case}_{k}")
        torch.manual_seed(0)
        reference = model_cls(*init).eval()
        torch.manual_seed(0)
        candidate = module.ModelNew(*init).eval()
        with torch.no_grad():
            expected = reference(*[t.clone() for t in inputs])
            got = candidate(*[t.clone() for t in inputs])
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()) + 1e-6)


def test_backends_follow_the_machine_and_the_request(caplog: pytest.LogCaptureFixture) -> None:
    model_cls, init, inputs, _ = CASES["gemm_mul_leaky"]
    only_c = OfflineKernelProposer().propose(_request(_target(model_cls, init, inputs, ["c"]), 8))
    assert {p.origin for p in only_c} == {"offline:gemm_epilogue.c"}
    both = OfflineKernelProposer().propose(_request(_target(model_cls, init, inputs, ["triton", "c"]), 8))
    assert {p.origin for p in both} == {"offline:gemm_epilogue.c", "offline:gemm_epilogue.triton"}
    conv_cls, conv_init, conv_inputs, _ = CASES["conv_relu_bias"]
    with caplog.at_level(logging.WARNING):
        none = OfflineKernelProposer().propose(
            _request(_target(conv_cls, conv_init, conv_inputs, ["triton"]))
        )
    assert none == []
    assert "no template for the conv2d_epilogue pattern in backend(s) triton" in caplog.text
    assert "templates exist for c" in caplog.text


def test_no_template_says_why(caplog: pytest.LogCaptureFixture) -> None:
    target = _target(Cumsum, [], [torch.rand(4, 8)], ["c"])
    assert "cumsum" in target.kernel_summary["no_pattern"]  # type: ignore[index]
    with caplog.at_level(logging.WARNING):
        assert OfflineKernelProposer().propose(_request(target)) == []
    assert "no template applies: unsupported op cumsum" in caplog.text
