"""A small stand-in for torch's C++ headers, so nvcc compiles a KernelBench CUDA source in seconds.

nvcc's front end spends 40-100 s parsing ``<torch/extension.h>``; the device code of a KernelBench
candidate never needs it (kernels take raw pointers). The stand-in declares just enough of the host
API (``torch::Tensor``, ``data_ptr<T>()``, ``empty_like``, ``TORCH_CHECK``,
``AT_DISPATCH_FLOATING_TYPES``, the current stream, guards) for the host wrappers to parse, and
nothing a kernel could use differently from the real headers: ``at::Half``, accessors and every
header not listed here are absent, so a source that needs them fails the fast compile and
:func:`evoforge.verifiers.kernel.aot.compile_cuda` compiles it again with the real headers.
"""

from __future__ import annotations

import re
from pathlib import Path

#: torch headers the stand-in replaces (each one includes the single stand-in header)
STUB_HEADERS = (
    "torch/extension.h",
    "torch/torch.h",
    "torch/types.h",
    "torch/all.h",
    "torch/python.h",
    "ATen/ATen.h",
    "ATen/cuda/CUDAContext.h",
    "c10/cuda/CUDAGuard.h",
    "c10/cuda/CUDAStream.h",
    "c10/cuda/CUDAException.h",
)

_TENSOR_METHODS = (
    "contiguous",
    "view",
    "reshape",
    "to",
    "clone",
    "transpose",
    "permute",
    "expand",
    "expand_as",
    "squeeze",
    "unsqueeze",
    "narrow",
    "select",
    "slice",
    "flatten",
    "copy_",
    "fill_",
    "zero_",
    "type_as",
    "add",
    "mul",
    "sub",
    "div",
    "sum",
    "mean",
    "max",
    "min",
    "t",
    "cuda",
    "cpu",
    "view_as",
    "index",
    "index_select",
    "detach",
)
_FUNCTIONS = (
    "empty",
    "empty_like",
    "zeros",
    "zeros_like",
    "ones",
    "ones_like",
    "full",
    "full_like",
    "randn",
    "rand",
    "arange",
    "cat",
    "stack",
    "matmul",
    "mm",
    "bmm",
    "relu",
    "tanh",
    "sigmoid",
    "exp",
    "softmax",
    "empty_strided",
)

HEADER = (
    r"""#pragma once
// evoforge: a stand-in for torch's headers, for device-code resource reports only.
#include <cstdint>
#include <cstddef>
#include <vector>
#include <string>
#include <tuple>
#include <utility>
#include <initializer_list>
#include <cuda_runtime.h>
#define EVOFORGE_TORCH_STANDIN 1
namespace c10 {
enum class ScalarType { Byte, Char, Short, Int, Long, Float, Double, Bool };
enum class DeviceType { CPU, CUDA };
enum class MemoryFormat { Contiguous, Preserve };
enum class Layout { Strided };
struct Device {
  Device() {}
  Device(DeviceType, int = 0) {}
  bool is_cuda() const { return true; }
  int index() const { return 0; }
  DeviceType type() const { return DeviceType::CUDA; }
};
struct IntArrayRef {
  IntArrayRef() {}
  IntArrayRef(std::initializer_list<int64_t>) {}
  IntArrayRef(const std::vector<int64_t>&) {}
  int64_t operator[](size_t) const { return 1; }
  size_t size() const { return 0; }
  const int64_t* begin() const { return nullptr; }
  const int64_t* end() const { return nullptr; }
  std::vector<int64_t> vec() const { return {}; }
};
struct TensorOptions {
  TensorOptions() {}
  template <class T> TensorOptions(T) {}
  template <class T> TensorOptions dtype(T) const { return *this; }
  template <class T> TensorOptions device(T) const { return *this; }
  template <class T> TensorOptions layout(T) const { return *this; }
  TensorOptions requires_grad(bool) const { return *this; }
  ScalarType dtype() const { return ScalarType::Float; }
};
struct Scalar {
  template <class T> Scalar(T) {}
  template <class T> T to() const { return T(); }
};
class Tensor {
 public:
  int64_t numel() const { return 0; }
  int64_t size(int64_t) const { return 0; }
  IntArrayRef sizes() const { return {}; }
  IntArrayRef strides() const { return {}; }
  int64_t stride(int64_t) const { return 0; }
  int64_t dim() const { return 0; }
  int64_t ndimension() const { return 0; }
  int64_t element_size() const { return 0; }
  template <class T> T* data_ptr() const { return nullptr; }
  void* data_ptr() const { return nullptr; }
  template <class T> T* mutable_data_ptr() const { return nullptr; }
  template <class T> const T* const_data_ptr() const { return nullptr; }
  TensorOptions options() const { return {}; }
  ScalarType scalar_type() const { return ScalarType::Float; }
  ScalarType dtype() const { return ScalarType::Float; }
  Device device() const { return {}; }
  bool is_cuda() const { return true; }
  bool is_contiguous() const { return true; }
  bool defined() const { return true; }
  template <class T> T item() const { return T(); }
  Tensor operator[](int64_t) const { return {}; }
"""
    + "".join(
        f"  template <class... A> Tensor {m}(A&&...) const {{ return {{}}; }}\n" for m in _TENSOR_METHODS
    )
    + r"""};
inline Tensor operator+(const Tensor&, const Tensor&) { return {}; }
inline Tensor operator*(const Tensor&, const Tensor&) { return {}; }
"""
    + "".join(f"template <class... A> Tensor {f}(A&&...) {{ return {{}}; }}\n" for f in _FUNCTIONS)
    + r"""constexpr ScalarType kFloat = ScalarType::Float, kFloat32 = ScalarType::Float;
constexpr ScalarType kDouble = ScalarType::Double, kFloat64 = ScalarType::Double;
constexpr ScalarType kInt = ScalarType::Int, kInt32 = ScalarType::Int, kLong = ScalarType::Long;
constexpr ScalarType kInt64 = ScalarType::Long, kBool = ScalarType::Bool, kByte = ScalarType::Byte;
constexpr ScalarType kUInt8 = ScalarType::Byte;
constexpr DeviceType kCUDA = DeviceType::CUDA, kCPU = DeviceType::CPU;
namespace cuda {
struct CUDAStream {
  operator cudaStream_t() const { return nullptr; }
  cudaStream_t stream() const { return nullptr; }
};
inline CUDAStream getCurrentCUDAStream(int = -1) { return {}; }
struct CUDAGuard { template <class T> explicit CUDAGuard(T) {} };
struct OptionalCUDAGuard { template <class T> explicit OptionalCUDAGuard(T) {} };
}  // namespace cuda
}  // namespace c10
namespace at {
using namespace c10;
using Dtype = c10::ScalarType;
namespace cuda { using namespace c10::cuda; }
}  // namespace at
namespace torch {
using namespace at;
using Dtype = c10::ScalarType;
}  // namespace torch
struct EvoforgeStandinModule { template <class... A> EvoforgeStandinModule& def(A&&...) { return *this; } };
#define PYBIND11_MODULE(name, m) static void evoforge_standin_module(EvoforgeStandinModule& m)
#define TORCH_CHECK(cond, ...) ((void)(cond))
#define TORCH_INTERNAL_ASSERT(cond, ...) ((void)(cond))
#define AT_ASSERTM(cond, ...) ((void)(cond))
#define C10_CUDA_KERNEL_LAUNCH_CHECK() ((void)0)
#define C10_CUDA_CHECK(x) ((void)(x))
#define AT_CUDA_CHECK(x) ((void)(x))
#define AT_DISPATCH_FLOATING_TYPES(TYPE, NAME, ...) \
  [&] { { using scalar_t = double; __VA_ARGS__(); } { using scalar_t = float; __VA_ARGS__(); } }()
"""
)

#: nvcc diagnostics that may come from something the stand-in lacks (then the real headers decide)
_GAP = re.compile(
    r"cannot open source file|is undefined|has no member|no instance of|not a template|"
    r"incomplete type|no suitable|too (many|few) arguments|cannot be applied|no operator|"
    r"is not a (type|class|member)|explicit type is missing|no default constructor|"
    r"cannot convert|a value of type|no conversion|ambiguous|does not match|deleted function|"
    r"No such file",
    re.I,
)


def write(directory: Path) -> Path:
    """Write the stand-in headers under ``directory``; return it (an include directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "evoforge_torch_standin.h").write_text(HEADER)
    for name in STUB_HEADERS:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('#pragma once\n#include "evoforge_torch_standin.h"\n')
    return directory


def may_be_stub_gap(log: str) -> bool:
    """Whether a failed compile against the stand-in could succeed with the real torch headers."""
    return bool(_GAP.search(log))
