"""The vocabulary of the fx pattern reader: node metadata, the chain being built and small node tests.

:mod:`fx_patterns` (the walk), :mod:`fx_heads` (GEMM, convolution and pooling heads) and
:mod:`fx_idioms` (softmax and norms written out as torch ops) share these; nothing here knows a
pattern.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import fx


def meta(node: Any) -> dict[str, Any] | None:
    meta = getattr(node, "meta", {}).get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        return None
    return {"shape": list(meta.shape), "dtype": str(meta.dtype).replace("torch.", "")}


class NoMatch(Exception):
    pass


@dataclass
class Chain:
    input: int  # the placeholder index of the primary input
    head: dict[str, Any] | None = None  # the reduction or GEMM
    pre: list[dict[str, Any]] = field(default_factory=list)
    post: list[dict[str, Any]] = field(default_factory=list)

    def then(self, op: dict[str, Any]) -> Chain:
        if self.head is None:
            return Chain(self.input, None, [*self.pre, op], [])
        return Chain(self.input, self.head, self.pre, [*self.post, op])

    def reduce(self, head: dict[str, Any]) -> Chain:
        if self.head is not None:
            raise NoMatch("two reductions")
        return Chain(self.input, head, self.pre, [])


def shape_of(node: Any) -> list[int] | None:
    found = meta(node)
    return found["shape"] if found else None


def is_op(node: Any, *names: str) -> bool:
    return isinstance(node, fx.Node) and node.op in ("call_function", "call_method") and op_key(node) in names


def op_key(node: fx.Node) -> str:
    if node.op == "call_method":
        return str(node.target)
    return str(getattr(node.target, "__name__", node.target))


def arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def norm_head(op: str, eps: float) -> dict[str, Any]:
    return {"kind": "reduction", "op": op, "row_dims": 1, "eps": eps, "weight": None, "bias": None}


def pair(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value, value]
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [int(value[0]), int(value[1])]
    raise NoMatch(f"a 2-D window parameter {value!r}")


def num(value: Any) -> float | None:
    return None if value is None else float(value)
