"""Issue 15: the strided reduction template's ``CHUNK`` follows the shape — a chunk holds whole rows
of the dimensions after the reduced one (one contiguous slab per job), except that an op reading its
block twice keeps the block within half of L2 — in the proposer's first instance, whichever way the
problem spells the reduction."""

from __future__ import annotations

from typing import Any

import pytest

from evoforge.agents.base import ProposalRequest
from evoforge.agents.kernel_templates import tiling
from evoforge.agents.kernel_templates.catalogue import load_templates, parse_header
from evoforge.agents.kernel_templates.proposer import OfflineKernelProposer
from evoforge.domain import Metrics, SourceFile, Target, TargetKind
from evoforge.verifiers.kernel.fx_summary import summarise

CHUNKS = (256, 512, 1024, 2048, 4096)

PROBLEM = """import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return {expression}


def get_inputs():
    return [torch.rand({shape})]


def get_init_inputs():
    return []
"""


def test_a_chunk_holds_a_whole_row_unless_a_reread_block_outgrows_l2() -> None:
    assert tiling.strided_chunks(511, 512, False, CHUNKS) == [512, 1024]
    assert tiling.strided_chunks(512, 512, False, CHUNKS) == [512, 1024]
    assert tiling.strided_chunks(2000, 128, False, CHUNKS) == [2048, 4096]
    assert tiling.strided_chunks(300, 768, False, CHUNKS) == [512, 1024]
    assert tiling.strided_chunks(9000, 4, False, CHUNKS) == [4096]  # no value holds the row
    assert tiling.strided_chunks(1, 64, False, CHUNKS)[0] == 256
    # read twice: the reduced rows × CHUNK floats stay within half of L2
    l2 = tiling.l2_bytes()
    for inner, reduced in [(4096, 64), (4096, 1024), (300, 4096), (64, 64)]:
        best = tiling.strided_chunks(inner, reduced, True, CHUNKS)[0]
        assert best == CHUNKS[0] or 4 * reduced * best <= l2 // 2, (inner, reduced, best)
        assert best <= tiling.strided_chunks(inner, reduced, False, CHUNKS)[0]


def _first_c_instance(expression: str, shape: str) -> dict[str, Any]:
    import torch

    text = PROBLEM.format(expression=expression, shape=shape)
    problem: dict[str, Any] = {}
    exec(compile(text, "problem", "exec"), problem)
    torch.manual_seed(0)
    summary = summarise(problem["Model"](), problem["get_inputs"]())
    summary["backends"] = ["c"]
    assert summary["patterns"][0]["kind"] == "strided_reduction", summary
    target = Target(TargetKind.KERNEL, "p", (SourceFile("problem.py", text),), kernel_summary=summary)
    request = ProposalRequest(
        target=target, parent_source=text, parent_metrics=Metrics(), feedback={}, count=2, seed=0
    )
    proposals = OfflineKernelProposer(backends=("c",)).propose(request)
    headers = [parse_header(p.source) for p in proposals]
    assert len(headers) == 2 and all(h is not None for h in headers)
    assert headers[0].params != headers[1].params  # type: ignore[union-attr]
    return headers[0].params  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("expression", "shape", "chunk"),
    [
        ("torch.sum(x, dim=1, keepdim=True)", "8, 64, 511", 512),
        ("x.sum(1)", "8, 16, 2000", 2048),
        ("x.sum(dim=-2)", "4, 32, 300", 512),
        ("torch.mean(x, 1)", "2, 8, 33, 32", 2048),  # the row is 33 × 32 = 1056 floats
        ("x.amax(dim=1)", "8, 16, 3000", 4096),
    ],
)
def test_the_first_instance_reduces_whole_rows(expression: str, shape: str, chunk: int) -> None:
    assert _first_c_instance(expression, shape)["CHUNK"] == chunk


def test_rmsnorm_over_dim_1_keeps_its_block_in_l2() -> None:
    expression = "x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-5)"
    template = next(t for t in load_templates() if t.id == "strided_reduction.c")
    values = next(p.values for p in template.params if p.name == "CHUNK")
    params = _first_c_instance(expression, "2, 64, 64, 64")
    assert params["CHUNK"] == tiling.strided_chunks(4096, 64, True, values)[0]
    assert 4 * 64 * params["CHUNK"] <= tiling.l2_bytes() // 2 or params["CHUNK"] == values[0]
