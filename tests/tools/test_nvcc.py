"""nvcc and cuobjdump wrappers on real CUDA sources (compiled for sm_90; no GPU needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.tools.cuobjdump import (
    Cuobjdump,
    demangle_base,
    parse_ptxas_log,
    parse_res_usage,
    triton_bin_dir,
)
from evoforge.tools.nvcc import Nvcc, find_nvcc

pytestmark = pytest.mark.skipif(
    find_nvcc() is None, reason="nvcc is not installed (scripts/setup.sh installs it)"
)

SOURCE = r"""
__global__ void scale(const float* x, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = x[i] * 2.0f;
}
template <typename T>
__global__ void staged(const T* x, T* out) {
    __shared__ T buf[128];
    buf[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    out[threadIdx.x] = buf[127 - threadIdx.x];
}
template __global__ void staged<float>(const float*, float*);
"""


def test_version_probe_reports_a_cuda_release() -> None:
    version = Nvcc().version()
    assert version.name == "nvcc" and version.numbers[:1] >= (11,)


def test_compile_cubin_parses_ptxas_and_agrees_with_cuobjdump(tmp_path: Path) -> None:
    source = tmp_path / "k.cu"
    source.write_text(SOURCE)
    run = Nvcc().compile_cubin(source, arch=90, out=tmp_path / "k.cubin")
    assert run.ok, run.log
    assert "Compiling entry function" in run.log  # the raw log is kept
    by_name = {demangle_base(k.symbol): k for k in run.kernels}
    assert set(by_name) == {"scale", "staged"}
    assert by_name["staged"].shared_bytes == 512 and by_name["scale"].shared_bytes == 0
    assert all(k.registers > 0 and k.spill_bytes == 0 for k in run.kernels)
    assert run.cubin_sha256 is not None and len(run.cubin_sha256) == 64
    usage = {k.symbol: k for k in Cuobjdump().resource_usage(tmp_path / "k.cubin")}
    for kernel in run.kernels:
        assert usage[kernel.symbol].registers == kernel.registers
        # cuobjdump adds the 1 KiB sm_90 reserves per block to a kernel that uses shared memory
        reserved = 1024 if kernel.shared_bytes else 0
        assert usage[kernel.symbol].shared_bytes == kernel.shared_bytes + reserved


def test_a_syntax_error_is_not_ok_and_keeps_nvccs_message(tmp_path: Path) -> None:
    source = tmp_path / "bad.cu"
    source.write_text("__global__ void k(float* x) { x[0] = 1.0f }\n")
    run = Nvcc().compile_cubin(source, arch=90, out=tmp_path / "bad.cubin")
    assert not run.ok and run.cubin is None and run.kernels == ()
    assert 'expected a ";"' in run.errors and "bad.cu" in run.errors


def test_cuobjdump_is_found_in_the_triton_wheel() -> None:
    bundled = triton_bin_dir()
    assert bundled is not None
    assert Cuobjdump().executable_path == str(bundled / "cuobjdump")
    assert Cuobjdump().version().numbers[:1] >= (12,)


def test_parsers_read_the_reports() -> None:
    log = (
        "ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_90'\n"
        "ptxas info    : Function properties for _Z3fooPf\n"
        "    48 bytes stack frame, 40 bytes spill stores, 36 bytes spill loads\n"
        "ptxas info    : Used 32 registers, used 1 barriers, 2048 bytes smem, 360 bytes cmem[0]\n"
    )
    (kernel,) = parse_ptxas_log(log)
    assert (kernel.symbol, kernel.registers, kernel.spill_bytes, kernel.shared_bytes, kernel.local_bytes) == (
        "_Z3fooPf",
        32,
        40,
        2048,
        48,
    )
    usage = parse_res_usage(
        "Resource usage:\n Common:\n  GLOBAL:0\n Function add_kernel:\n"
        "  REG:14 STACK:0 SHARED:1024 LOCAL:8 CONSTANT[0]:576 TEXTURE:0\n"
    )
    assert [(k.symbol, k.registers, k.shared_bytes, k.local_bytes) for k in usage] == [
        ("add_kernel", 14, 1024, 8)
    ]
    assert demangle_base("_ZN2ns6kernelIfEEvPT_") == "kernel"
