"""Launch recording under the Triton interpreter, ahead-of-time compiles for sm_90 (Triton and CUDA).

The Triton parts run in child processes: ``TRITON_INTERPRET`` must be set (or unset) before Triton
is imported. The recorded launches of the first child are compiled by the second.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from evoforge.errors import GpuRequiredError, KernelCompileError
from evoforge.tools import process
from evoforge.tools.nvcc import find_nvcc

KERNELS = textwrap.dedent(
    """
    import triton
    import triton.language as tl

    def host_helper(x):  # plain Python: runs under the interpreter, not valid on the GPU
        return x * 2.0

    @triton.jit
    def scale_kernel(x_ptr, out_ptr, n, alpha: tl.float32, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) * alpha, mask=mask)

    @triton.jit
    def rowsum_kernel(x_ptr, out_ptr, cols, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        offs = tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * cols + offs, mask=offs < cols, other=0.0)
        tl.store(out_ptr + row, tl.sum(x, axis=0))

    @triton.jit
    def dot_kernel(a_ptr, b_ptr, c_ptr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
        rm = tl.arange(0, BM)
        rn = tl.arange(0, BN)
        rk = tl.arange(0, BK)
        a = tl.load(a_ptr + rm[:, None] * BK + rk[None, :])
        b = tl.load(b_ptr + rk[:, None] * BN + rn[None, :])
        tl.store(c_ptr + rm[:, None] * BN + rn[None, :], tl.dot(a, b))

    @triton.jit
    def heavy_kernel(x_ptr, out_ptr, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        x = tl.load(x_ptr + offs)
        y = tl.load(x_ptr + offs[:, None] * BLOCK + offs[None, :])
        z = tl.exp(y) * x[None, :] + tl.sin(y)
        tl.store(out_ptr + offs, tl.sum(z * tl.cos(z), axis=1))

    @triton.autotune(configs=[triton.Config({"BLOCK": 128}, num_warps=2)], key=["n"])
    @triton.jit
    def tuned_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + 1.0, mask=mask)

    @triton.jit
    def python_call_kernel(x_ptr, out_ptr, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        tl.store(out_ptr + offs, host_helper(tl.load(x_ptr + offs)))
    """
)

RECORD = textwrap.dedent(
    """
    import json, sys
    import torch
    from evoforge.verifiers.kernel import launches
    seen = []
    def on_launch(record):
        record["in_launch"] = launches.in_launch()
        seen.append(record)
    launches.install_triton_hooks(on_launch)
    launches.install_triton_hooks(on_launch)  # idempotent: still one record per launch
    import triton
    import kernels as k
    outside = launches.in_launch()
    x = torch.randn(1000)
    out = torch.empty(1000)
    k.scale_kernel[(triton.cdiv(1000, 256),)](x, out, 1000, 0.5, BLOCK=256)
    assert torch.allclose(out, x * 0.5)
    grid = lambda meta: (triton.cdiv(meta["n"], meta["BLOCK"]),)
    k.scale_kernel[grid](x, out, 1, 2.0, BLOCK=64, num_warps=2)
    m = torch.randn(8, 48)
    sums = torch.empty(8)
    k.rowsum_kernel[(8,)](m, sums, 48, BLOCK=64)
    assert torch.allclose(sums, m.sum(1), atol=1e-4)
    a, b, c = torch.randn(16, 16), torch.randn(16, 16), torch.empty(16, 16)
    k.dot_kernel[(1,)](a, b, c, BM=16, BN=16, BK=16)
    assert torch.allclose(c, a @ b, atol=1e-3)
    k.tuned_kernel[grid](x, out, 1000)
    k.python_call_kernel[(1,)](x, out, BLOCK=16)
    json.dump({"records": seen, "outside": outside}, open(sys.argv[1], "w"))
    """
)

COMPILE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import kernels as k
    from evoforge.errors import KernelCompileError
    from evoforge.verifiers.kernel import aot
    records = json.load(open(sys.argv[1]))["records"]
    extra = [
        {"backend": "triton", "kernel": "heavy_kernel", "qualname": "heavy_kernel", "module": "kernels",
         "signature": {"x_ptr": "*fp32", "out_ptr": "*fp32", "BLOCK": "constexpr"},
         "constexprs": {"BLOCK": 32}, "divisible_by_16": ["x_ptr", "out_ptr"],
         "options": {"num_warps": 1, "num_stages": 1, "maxnreg": 24}, "grid": [1, 1, 1]},
    ]
    good = [r for r in records if r["kernel"] != "python_call_kernel"]
    answer = {"kernels": aot.compile_triton(k, good + good + extra, workdir=Path(sys.argv[3]))}
    bad = [r for r in records if r["kernel"] == "python_call_kernel"]
    try:
        aot.compile_triton(k, bad, workdir=Path(sys.argv[3]))
    except KernelCompileError as exc:
        answer["error"] = str(exc)
    json.dump(answer, open(sys.argv[2], "w"))
    """
)


def _child(script: str, args: list[str], cwd: Path, *, interpret: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    env["PYTHONPATH"] = str(cwd)
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    (cwd / "child.py").write_text(script)
    done = process.run([sys.executable, "child.py", *args], timeout=240, cwd=cwd, env=env)
    assert done.ok, done.output[-4000:]


@pytest.fixture(scope="module")
def triton_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Record the launches under the interpreter, then compile them for sm_90 in a second child."""
    work = tmp_path_factory.mktemp("triton-aot")
    (work / "kernels.py").write_text(KERNELS)
    _child(RECORD, ["records.json"], work, interpret=True)
    _child(COMPILE, ["records.json", "compiled.json", str(work / "build")], work, interpret=False)
    recorded = json.loads((work / "records.json").read_text())
    compiled = json.loads((work / "compiled.json").read_text())
    return {"recorded": recorded, "compiled": compiled}


def test_interpreter_launches_are_recorded_with_their_specialisation(triton_run: dict[str, Any]) -> None:
    records = triton_run["recorded"]["records"]
    assert triton_run["recorded"]["outside"] is False
    assert [r["kernel"] for r in records] == [
        "scale_kernel",
        "scale_kernel",
        "rowsum_kernel",
        "dot_kernel",
        "tuned_kernel",
        "python_call_kernel",
    ]
    assert all(r["in_launch"] for r in records)
    first, second = records[0], records[1]
    assert first["signature"] == {
        "x_ptr": "*fp32",
        "out_ptr": "*fp32",
        "n": "i32",
        "alpha": "fp32",
        "BLOCK": "constexpr",
    }
    assert first["constexprs"] == {"BLOCK": 256}
    assert first["grid"] == [4, 1, 1]
    assert first["options"] == {"num_warps": 4, "num_stages": 3}
    assert set(first["divisible_by_16"]) == {"x_ptr", "out_ptr"}
    # an integer argument equal to 1 is a constexpr in Triton's specialisation, as on the GPU
    assert second["signature"]["n"] == "constexpr" and second["constexprs"]["n"] == 1
    assert second["options"]["num_warps"] == 2 and second["grid"] == [1, 1, 1]
    tuned = records[4]
    assert tuned["constexprs"] == {"BLOCK": 128} and tuned["options"]["num_warps"] == 2
    assert tuned["grid"] == [8, 1, 1]
    json.dumps(records)  # JSON-able


def test_recorded_launches_compile_for_sm90_with_resources(triton_run: dict[str, Any]) -> None:
    kernels = triton_run["compiled"]["kernels"]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for k in kernels:
        by_name.setdefault(k["kernel"], []).append(k)
    # duplicates are compiled once: two scale_kernel specialisations, one of everything else
    assert {n: len(v) for n, v in by_name.items()} == {
        "scale_kernel": 2,
        "rowsum_kernel": 1,
        "dot_kernel": 1,
        "tuned_kernel": 1,
        "heavy_kernel": 1,
    }
    for k in kernels:
        assert k["arch"] == "sm_90" and k["registers"] > 0 and len(k["cubin_sha256"]) == 64
    assert by_name["dot_kernel"][0]["shared_bytes"] > 0
    assert by_name["rowsum_kernel"][0]["shared_bytes"] >= 0
    assert all(k["spills"] == 0 for k in by_name["scale_kernel"])
    heavy = by_name["heavy_kernel"][0]
    assert heavy["registers"] <= 24 and heavy["spills"] > 0


def test_a_kernel_that_only_works_in_the_interpreter_fails_to_compile(triton_run: dict[str, Any]) -> None:
    error = triton_run["compiled"]["error"]
    assert "python_call_kernel" in error and "host_helper" in error


# -- CUDA in KernelBench's load_inline convention ---------------------------------------------------

CUDA_SOURCE = r"""
#include <torch/extension.h>
#include <cuda_runtime.h>

__global__ void elementwise_add_kernel(const float* a, const float* b, float* out, int size) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx < size) out[idx] = a[idx] + b[idx];
}

__global__ void tile_sum_kernel(const float* x, float* out, int n) {
    __shared__ float tile[256];
    tile[threadIdx.x] = threadIdx.x < n ? x[blockIdx.x * 256 + threadIdx.x] : 0.0f;
    __syncthreads();
    if (threadIdx.x == 0) { float s = 0; for (int i = 0; i < 256; ++i) s += tile[i]; out[blockIdx.x] = s; }
}

torch::Tensor elementwise_add_cuda(torch::Tensor a, torch::Tensor b) {
    TORCH_CHECK(a.is_cuda(), "a must be a CUDA tensor");
    auto size = a.numel();
    auto out = torch::zeros_like(a);
    const int block_size = 256;
    const int num_blocks = (size + block_size - 1) / block_size;
    elementwise_add_kernel<<<num_blocks, block_size, 0, at::cuda::getCurrentCUDAStream()>>>(
        a.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>(), size);
    return out;
}
"""
CPP_SOURCE = "torch::Tensor elementwise_add_cuda(torch::Tensor a, torch::Tensor b);"

CANDIDATE = f'''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

elementwise_add = load_inline(
    name="elementwise_add",
    cpp_sources="""{CPP_SOURCE}""",
    cuda_sources=r"""{CUDA_SOURCE}""",
    functions=["elementwise_add_cuda"],
    verbose=False,
    extra_cflags=[""],
    extra_ldflags=[""],
    extra_cuda_cflags=["-O3", "--use_fast_math", "-ccbin=/bin/false"],
)

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.elementwise_add = elementwise_add

    def forward(self, a, b):
        return self.elementwise_add.elementwise_add_cuda(a, b)
'''

needs_nvcc = pytest.mark.skipif(
    find_nvcc() is None, reason="nvcc is not installed (scripts/setup.sh installs it)"
)


def _load_candidate(tmp_path: Path) -> tuple[Any, list[dict[str, Any]]]:
    import importlib.util

    from evoforge.verifiers.kernel import aot

    path = tmp_path / "candidate_cuda.py"
    path.write_text(CANDIDATE)
    spec = importlib.util.spec_from_file_location("candidate_cuda_aot", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with aot.capture_load_inline() as captured:
        spec.loader.exec_module(module)
    return module, captured


def test_load_inline_is_captured_and_its_functions_need_a_gpu(tmp_path: Path) -> None:
    import torch
    import torch.utils.cpp_extension as cpp_extension

    real = cpp_extension.load_inline
    module, captured = _load_candidate(tmp_path)
    assert cpp_extension.load_inline is real  # restored
    assert len(captured) == 1
    build = captured[0]
    assert build["name"] == "elementwise_add"
    assert build["functions"] == ["elementwise_add_cuda"]
    assert "elementwise_add_kernel" in build["cuda_sources"][0]
    assert build["cpp_sources"] == [CPP_SOURCE]
    assert "--use_fast_math" in build["extra_cuda_cflags"]
    model = module.ModelNew()  # constructing works without a GPU
    if not torch.cuda.is_available():
        with pytest.raises(GpuRequiredError, match="elementwise_add_cuda"):
            model(torch.ones(4), torch.ones(4))


@needs_nvcc
def test_compile_cuda_reports_registers_and_shared_memory(tmp_path: Path) -> None:
    from evoforge.verifiers.kernel import aot

    _, captured = _load_candidate(tmp_path)
    kernels = aot.compile_cuda(captured[0], arch=90, workdir=tmp_path / "build", timeout_s=240)
    by_name = {k["kernel"]: k for k in kernels}
    assert set(by_name) == {"elementwise_add_kernel", "tile_sum_kernel"}
    assert all(k["registers"] > 0 and k["arch"] == "sm_90" and k["spills"] == 0 for k in kernels)
    assert by_name["tile_sum_kernel"]["shared_bytes"] == 1024
    assert by_name["elementwise_add_kernel"]["shared_bytes"] == 0
    assert by_name["elementwise_add_kernel"]["headers"] == "torch stand-in headers"
    assert kernels[0]["seconds"] < 30


@needs_nvcc
def test_a_cuda_syntax_error_names_nvccs_message(tmp_path: Path) -> None:
    from evoforge.verifiers.kernel import aot

    broken = CUDA_SOURCE.replace("out[idx] = a[idx] + b[idx];", "out[idx] = a[idx] + b[idx]")
    build = {"name": "broken", "cuda_sources": [broken], "cpp_sources": [], "functions": []}
    with pytest.raises(KernelCompileError) as info:
        aot.compile_cuda(build, arch=90, workdir=tmp_path, timeout_s=120)
    message = str(info.value)
    assert "nvcc could not compile load_inline('broken') for sm_90" in message
    assert 'expected a ";"' in message and "cuda.cu" in message


@needs_nvcc
def test_a_header_the_stand_in_lacks_falls_back_to_torchs_headers(tmp_path: Path) -> None:
    from evoforge.verifiers.kernel import aot

    source = (
        "#include <c10/macros/Macros.h>\n"
        "__global__ void k(float* x) { if (C10_LIKELY(threadIdx.x < 4)) x[threadIdx.x] *= 2.0f; }\n"
    )
    build = {"name": "uses_c10", "cuda_sources": [source], "no_implicit_headers": True}
    kernels = aot.compile_cuda(build, arch=90, workdir=tmp_path, timeout_s=240)
    assert [(k["kernel"], k["headers"]) for k in kernels] == [("k", "torch headers")]
    assert kernels[0]["registers"] > 0
