"""Loading a KernelBench-format problem and a candidate inside a child process, and their tensors.

A problem file defines ``Model``, ``get_inputs()`` and ``get_init_inputs()`` (and, as an evoforge
extension, optionally ``get_benchmark_inputs()`` with larger shapes for timing). A candidate file
defines ``ModelNew`` with the same constructor. Inputs are always made here, from a seed the caller
chose (``seeded_inputs``), and parameters are created under a fixed init seed for the reference and
the candidate alike, as KernelBench does. Runs only inside the verifier's child processes.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

REQUIRED = ("Model", "get_inputs", "get_init_inputs")


class ProblemError(Exception):
    """The problem or candidate file is unusable; the message says what to fix."""


def load_module(path: Path, name: str) -> ModuleType:
    """Import ``path`` as module ``name`` (registered in ``sys.modules`` so Triton can find its kernels).

    The source is read and compiled here, never taken from a ``__pycache__`` file: a cached file
    next to it could have been planted by earlier candidate code.
    """
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProblemError(f"cannot read {path}: {exc}") from exc
    module = ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)
    return module


def check_problem(module: ModuleType) -> None:
    missing = [n for n in REQUIRED if not hasattr(module, n)]
    if missing:
        raise ProblemError(
            f"the problem file defines no {', '.join(missing)}: a KernelBench problem defines "
            "class Model(nn.Module), get_inputs() and get_init_inputs()"
        )


def seeded_inputs(module: ModuleType, seed: int, *, benchmark: bool = False) -> list[Any]:
    """``get_inputs()`` (or ``get_benchmark_inputs()``) under ``torch.manual_seed(seed)``."""
    maker: Callable[[], Any] = module.get_inputs
    if benchmark and hasattr(module, "get_benchmark_inputs"):
        maker = module.get_benchmark_inputs
    torch.manual_seed(seed)
    inputs = maker()
    if not isinstance(inputs, (list, tuple)):
        raise ProblemError(f"{maker.__name__}() returned a {type(inputs).__name__}, not a list of inputs")
    return list(inputs)


def construct(cls: type, module: ModuleType, init_seed: int, device: str = "cpu") -> Any:
    """``cls(*get_init_inputs())``, parameters created under ``init_seed``, in eval mode, on ``device``."""
    init_inputs = module.get_init_inputs()
    torch.manual_seed(init_seed)
    model = cls(*init_inputs)
    if isinstance(model, torch.nn.Module):
        model.eval()
        if device != "cpu":
            model = model.to(device)
    return model


def to_device(values: list[Any], device: str) -> list[Any]:
    return [v.to(device) if isinstance(v, torch.Tensor) else v for v in values]


def clone_inputs(values: list[Any]) -> list[Any]:
    return [v.detach().clone() if isinstance(v, torch.Tensor) else v for v in values]


def flatten_outputs(value: Any) -> list[Any]:
    """A tensor, or a (nested) tuple/list of them, as a flat list (other leaves kept as they are)."""
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in flatten_outputs(item)]
    return [value]


def tensor_digest(values: list[Any]) -> str:
    """sha256 over the bytes, dtypes and shapes of the tensors (other values by repr)."""
    digest = hashlib.sha256()
    for value in values:
        if isinstance(value, torch.Tensor):
            plain = value.detach().to("cpu").contiguous()
            digest.update(f"{plain.dtype}{tuple(plain.shape)}".encode())
            digest.update(plain.reshape(-1).view(torch.uint8).numpy().tobytes() if plain.numel() else b"")
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def describe(value: Any) -> dict[str, Any]:
    """Shape, dtype and device of a tensor (or the type of anything else), JSON-able."""
    if type(value) is torch.Tensor:
        return {
            "type": "Tensor",
            "shape": list(value.shape),
            "dtype": str(value.dtype),
            "device": value.device.type,
        }
    return {"type": type(value).__name__}
