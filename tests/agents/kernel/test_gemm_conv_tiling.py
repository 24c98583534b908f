"""Issue 15.4: the GEMM and convolution C templates' tile sizes follow the shape and the machine
(the first proposal is the chosen one, no proposal spills the register file), and instances with
small and large tiles, several K blocks and both thread splits are correct through the real
verifier on odd shapes (M, N, K not multiples of the tile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evoforge.agents.base import ProposalRequest
from evoforge.agents.kernel_templates import tiling
from evoforge.agents.kernel_templates.catalogue import load_templates, parse_header
from evoforge.agents.kernel_templates.proposer import OfflineKernelProposer, instantiate
from evoforge.config import KernelSettings
from evoforge.domain import Metrics, SourceFile, StageResult, Target, TargetKind
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.fx_summary import summarise
from evoforge.verifiers.kernel.target import load_kernel_target

LINEAR = """import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.gemm = nn.Linear(in_features, out_features)

    def forward(self, x):
        return torch.nn.functional.leaky_relu(self.gemm(x) * 2.0, 0.1)


batch_size = {m}
in_features = {k}
out_features = {n}


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]
"""

MATMUL = """import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, A, B):
        return torch.matmul(A, B)


M = {m}
K = {k}
N = {n}


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
"""

CONV = """import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, bias_shape):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride={stride}, padding={padding})
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x):
        return torch.relu(self.conv(x)) + self.bias


batch_size = 3
in_channels = {c}
out_channels = {m}
height = 17
width = 21
kernel_size = 3
bias_shape = (out_channels, 1, 1)


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size, bias_shape]
"""

SPACE = {
    "KC": (128, 192, 256, 384, 512),
    "NCT": (64, 128, 256, 384, 512, 768, 1024),
    "MCP": (2, 4, 8, 16, 32),
}


def test_tiles_fit_the_registers_and_follow_the_shape() -> None:
    width = tiling.vector_floats()
    for m, n, k in [(1024, 1024, 1024), (1024, 2048, 2048), (29, 77, 300), (1, 5, 3), (4096, 64, 9000)]:
        choices = tiling.gemm_params(m, n, k, SPACE)
        assert choices, (m, n, k)
        for params in choices:
            assert tiling.fits(params["MR"], params["NV"])
            assert all(params[name] in values for name, values in SPACE.items())
        best = choices[0]
        blocks = -(-k // best["KC"])
        assert -(-k // blocks) <= 384 or best["KC"] == max(SPACE["KC"])  # K blocks of at most ~384
        # the packed KC × NCT block of W fits half of L2
        assert (
            best["NCT"] == SPACE["NCT"][0]
            or 4 * min(k, best["KC"]) * best["NCT"] <= tiling.l2_bytes() // 2 + 4 * best["NCT"] * 64
        )
        if m % 8 == 0 and tiling.fits(8, best["NV"]):
            assert best["MR"] == 8  # no padded rows: the height measured best
    assert tiling.gemm_params(29, 77, 300, SPACE)[0]["MR"] == 6  # 8 would pad 3 of 29 rows
    if width == 16:
        assert tiling.fits(14, 2) and not tiling.fits(12, 4) and not tiling.fits(8, 4)


def _target(tmp_path: Path, text: str, threads: int = 2) -> tuple[Target, KernelSettings]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "problem.py"
    path.write_text(text)
    settings = KernelSettings(
        scale="1",
        cpu_threads=threads,
        benchmark_repeats=5,
        benchmark_budget_s=3.0,
        stage_timeout_s=120.0,
        max_interval=1000.0,
    )
    return load_kernel_target(path, settings, work_dir=tmp_path / "t"), settings


def test_first_proposal_is_the_shaped_instance_and_none_spills() -> None:
    target = _summarised(LINEAR.format(m=64, k=1000, n=96))
    template = next(t for t in load_templates() if t.id == "gemm_epilogue.c")
    space = {p.name: p.values for p in template.params}
    request = ProposalRequest(
        target=target, parent_source=target.source, parent_metrics=Metrics(), feedback={}, count=12, seed=3
    )
    proposals = OfflineKernelProposer(backends=("c",)).propose(request)
    headers = [parse_header(p.source) for p in proposals]
    assert all(h is not None for h in headers)
    assert headers[0].params == tiling.gemm_params(64, 96, 1000, space)[0]  # type: ignore[union-attr]
    assert headers[0].params["MR"] == 8 and headers[0].params["KC"] == 384  # type: ignore[union-attr]
    assert not [h for h in headers if not tiling.fits(h.params["MR"], h.params["NV"])]  # type: ignore[union-attr]
    # a parent instance's neighbours do not spill either
    again = ProposalRequest(
        target=target,
        parent_source=proposals[0].source,
        parent_metrics=Metrics(),
        feedback={},
        count=12,
        seed=5,
    )
    for proposal in OfflineKernelProposer(backends=("c",)).propose(again):
        header = parse_header(proposal.source)
        assert header is not None and tiling.fits(header.params["MR"], header.params["NV"])


#: (problem, instances): odd shapes, the proposer's first instance (None) and small/large tiles
#: with several K blocks, W blocks or pixel chunks narrower than a thread's share, both thread splits
IN_PROCESS = {
    # M = 37, K = 301, N = 77 (3 panels: two threads split M)
    "linear_split_m": (
        LINEAR.format(m=37, k=301, n=77),
        [
            None,
            {"MR": 14, "NV": 2, "KC": 128, "MCP": 2, "NCT": 64},
            {"MR": 4, "NV": 1, "KC": 512, "MCP": 32, "NCT": 1024},
        ],
    ),
    # N = 291 (10 panels: two threads split N)
    "linear_split_n": (
        LINEAR.format(m=23, k=129, n=291),
        [None, {"MR": 6, "NV": 3, "KC": 128, "MCP": 4, "NCT": 64}],
    ),
    # W as [K, N]
    "matmul": (
        MATMUL.format(m=41, k=517, n=203),
        [None, {"MR": 12, "NV": 1, "KC": 192, "MCP": 2, "NCT": 128}],
    ),
    # M = 13 out channels, K = 7 × 9 = 63, padding and stride 2 (strided gathers)
    "conv_strided": (
        CONV.format(c=7, m=13, stride=2, padding=1),
        [None, {"MR": 14, "NV": 2, "KC": 128, "NCT": 64}],
    ),
    # K = 41 × 9 = 369: several K blocks with KC = 128, pixel chunks narrower than an image
    "conv_deep": (
        CONV.format(c=41, m=19, stride=1, padding=0),
        [None, {"MR": 6, "NV": 1, "KC": 128, "NCT": 64}],
    ),
}


def _summarised(text: str) -> Target:
    """The problem as a target, its summary traced in this process (no verifier child: fast)."""
    import torch

    problem: dict[str, Any] = {}
    exec(compile(text, "problem", "exec"), problem)
    torch.manual_seed(0)
    summary = summarise(problem["Model"](*problem["get_init_inputs"]()), problem["get_inputs"]())
    summary["backends"] = ["c"]
    return Target(TargetKind.KERNEL, "p", (SourceFile("problem.py", text),), kernel_summary=summary)


def _instances(target: Target, params: list[dict[str, Any] | None]) -> list[str]:
    summary = target.kernel_summary or {}
    pattern = summary["patterns"][0]
    template = next(t for t in load_templates() if t.pattern == pattern["kind"] and t.backend == "c")
    request = ProposalRequest(
        target=target, parent_source=target.source, parent_metrics=Metrics(), feedback={}, count=1, seed=0
    )
    return [
        OfflineKernelProposer(backends=("c",)).propose(request)[0].source
        if chosen is None
        else instantiate(template, pattern, chosen, target.source, summary)
        for chosen in params
    ]


@pytest.mark.parametrize("case", sorted(IN_PROCESS))
def test_instances_match_torch_on_odd_shapes(case: str, tmp_path: Path) -> None:
    import torch

    from evoforge import runtime

    runtime.configure(build_dir=tmp_path / "build")
    text, params = IN_PROCESS[case]
    sources = _instances(_summarised(text), params)
    problem: dict[str, Any] = {}
    exec(compile(text, "problem", "exec"), problem)
    for source in sources:
        module: dict[str, Any] = {}
        exec(compile(source, "candidate", "exec"), module)
        torch.manual_seed(0)
        reference = problem["Model"](*problem["get_init_inputs"]())
        candidate = module["ModelNew"](*problem["get_init_inputs"]())
        candidate.load_state_dict(reference.state_dict())
        inputs = problem["get_inputs"]()
        with torch.no_grad():
            expected, got = reference(*inputs), candidate(*inputs)
        scale = float(expected.abs().max())
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * scale, msg=source.splitlines()[0])


class _Checked(Exception):
    """Raised from the stage callback once correctness has run: the benchmark is not this test's."""


@pytest.mark.slow
@pytest.mark.parametrize(("case", "instance", "threads"), [("linear_split_m", 1, 2), ("conv_deep", 0, 1)])
def test_instances_pass_the_verifier_on_odd_shapes(
    case: str, instance: int, threads: int, tmp_path: Path
) -> None:
    text, params = IN_PROCESS[case]
    target, settings = _target(tmp_path, text, threads)
    (source,) = _instances(target, [params[instance]])
    verifier = KernelVerifier(target=target, settings=settings, work_root=tmp_path / "v")
    seen: list[StageResult] = []

    def stage(result: StageResult) -> None:
        seen.append(result)
        if result.name == "correctness" or not result.ok:
            raise _Checked

    with pytest.raises(_Checked):
        verifier.verify(source, on_stage=stage)
    assert seen[-1].name == "correctness" and seen[-1].ok, (source.splitlines()[0], seen[-1].detail)
