"""The fx summary recognises elementwise chains, row reductions and GEMM epilogues; never raises."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evoforge.verifiers.kernel.fx_summary import summarise


class BiasGelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(torch.relu(x * 2.0 + self.bias)).clamp(max=3.0) / 1.5


class ScaledSoftmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x * 0.5, dim=-1)


class SoftmaxWritten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = torch.exp(x - x.max(dim=-1, keepdim=True)[0])
        return e / e.sum(dim=-1, keepdim=True)


class RmsWritten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w


class LayerNormWritten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x - x.mean(-1, keepdim=True)
        return c / torch.sqrt(c.pow(2).mean(-1, keepdim=True) + 1e-5)


class LayerNormModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.ln(x))


class RowSum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(-1) * 3


class LinearSigmoid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(x)) * 2


class Cumsum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, 1)


class Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * torch.sigmoid(x)  # two chains of one input: an expression graph


class ControlFlow(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x
        return -x


def _pattern(model: nn.Module) -> dict | None:
    summary = summarise(model, [torch.randn(4, 16)])
    json.dumps(summary)  # JSON-able
    patterns = summary["patterns"]
    assert len(patterns) <= 1
    return patterns[0] if patterns else None


def test_elementwise_chain() -> None:
    pattern = _pattern(BiasGelu())
    assert pattern is not None and pattern["kind"] == "elementwise"
    assert [o["op"] for o in pattern["ops"]] == ["mul", "add", "relu", "gelu", "clamp", "div"]
    assert pattern["ops"][1]["operand"] == {"kind": "row", "source": {"param": "bias"}}
    assert pattern["ops"][4] == {"op": "clamp", "min": None, "max": 3.0}


@pytest.mark.parametrize(
    ("model", "op", "prologue", "epilogue"),
    [
        (ScaledSoftmax(), "softmax", ["mul"], []),
        (SoftmaxWritten(), "softmax", [], []),
        (RmsWritten(), "rmsnorm", [], ["mul"]),
        (LayerNormWritten(), "layernorm", [], []),
        (LayerNormModule(), "layernorm", [], ["relu"]),
        (RowSum(), "sum", [], ["mul"]),
    ],
)
def test_row_reductions(model: nn.Module, op: str, prologue: list[str], epilogue: list[str]) -> None:
    pattern = _pattern(model)
    assert pattern is not None and pattern["kind"] == "row_reduction"
    assert pattern["op"] == op
    assert [o["op"] for o in pattern["prologue"]] == prologue
    assert [o["op"] for o in pattern["epilogue"]] == epilogue


def test_layernorm_module_parameters() -> None:
    summary = summarise(LayerNormModule(), [torch.randn(4, 16)])
    pattern = summary["patterns"][0]
    assert pattern["weight"] == {"param": "ln.weight"} and pattern["bias"] == {"param": "ln.bias"}
    assert summary["modules"]["ln"]["normalized_shape"] == [16]
    assert summary["modules"]["ln"]["eps"] == pytest.approx(1e-5)


def test_gemm_epilogue() -> None:
    summary = summarise(LinearSigmoid(), [torch.randn(4, 16)])
    pattern = summary["patterns"][0]
    assert pattern["kind"] == "gemm_epilogue"
    assert (pattern["in_features"], pattern["out_features"], pattern["bias"]) == (16, 8, True)
    assert [o["op"] for o in pattern["epilogue"]] == ["sigmoid", "mul"]
    assert summary["modules"]["linear"] == {
        "type": "Linear",
        "in_features": 16,
        "out_features": 8,
        "bias": True,
        "parameters": {"weight": [8, 16], "bias": [8]},
    }
    targets = [n["target"] for n in summary["nodes"]]
    assert targets == ["placeholder:x", "call_module:linear", "torch.sigmoid", "mul", "output:output"]
    assert summary["output"] == {"shape": [4, 8], "dtype": "float32"}
    assert summary["inputs"] == [{"shape": [4, 16], "dtype": "float32"}]


def test_unrecognised_graphs_have_no_pattern_and_a_reason() -> None:
    summary = summarise(Cumsum(), [torch.randn(4, 16)])
    assert summary["patterns"] == [] and summary["nodes"]
    assert "cumsum" in summary["no_pattern"]


def test_pointwise_graph_that_is_not_one_chain_is_an_expression() -> None:
    summary = summarise(Branchy(), [torch.randn(4, 16)])
    (pattern,) = summary["patterns"]
    assert pattern["kind"] == "elementwise" and pattern["ops"][0]["op"] == "expr"
    steps = pattern["ops"][0]["steps"]
    assert [s["op"] for s in steps] == ["tanh", "sigmoid", "mul"]
    assert steps[2]["args"] == [{"step": 0}, {"step": 1}]


def test_untraceable_model_is_described_not_raised() -> None:
    summary = summarise(ControlFlow(), [torch.randn(4, 16)])
    assert "untraceable" in summary and summary["patterns"] == []
    assert summary["output"] == {"shape": [4, 16], "dtype": "float32"}
    json.dumps(summary)
