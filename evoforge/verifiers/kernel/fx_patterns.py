"""Reading a traced reference as one chain of ops on a primary input: the patterns of the fx summary.

:class:`Analyser` walks back from the graph's output; each node extends the chain of its tensor
argument (pointwise ops before and after one head: a row reduction or a GEMM). Binary ops take a
*side operand* — a Python scalar, a parameter or another forward input of the value's shape, of the
row's width or of one element. Idioms written out as torch ops are folded first: ``x * sigmoid(x)``
(silu), ``exp(x - max) / sum(exp(...))`` (softmax), ``x * rsqrt(mean(x²) + eps)`` (rmsnorm) and
``(x - mean) / sqrt(var + eps)`` (layernorm). Anything else raises ``_NoMatch``: no pattern.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx

log = logging.getLogger(__name__)

#: pointwise ops with one tensor argument (canonical names)
UNARY = {
    "relu": "relu",
    "relu_": "relu",
    "gelu": "gelu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "silu": "silu",
    "exp": "exp",
    "abs": "abs",
    "neg": "neg",
    "sqrt": "sqrt",
    "rsqrt": "rsqrt",
    "square": "square",
    "clamp": "clamp",
    "clip": "clamp",
    "clamp_min": "clamp",
    "clamp_max": "clamp",
    "hardtanh": "clamp",
    "leaky_relu": "leaky_relu",
}
BINARY = {
    "add": "add",
    "iadd": "add",
    "sub": "sub",
    "isub": "sub",
    "mul": "mul",
    "imul": "mul",
    "div": "div",
    "truediv": "div",
    "itruediv": "div",
    "true_divide": "div",
}
MODULE_UNARY = {
    "ReLU": "relu",
    "GELU": "gelu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "SiLU": "silu",
    "LeakyReLU": "leaky_relu",
    "Hardtanh": "clamp",
}
REDUCTIONS = {"sum", "mean", "max", "amax"}


def meta(node: Any) -> dict[str, Any] | None:
    meta = getattr(node, "meta", {}).get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        return None
    return {"shape": list(meta.shape), "dtype": str(meta.dtype).replace("torch.", "")}


# -- the chain analysis ----------------------------------------------------------------------------


class _NoMatch(Exception):
    pass


@dataclass
class _Chain:
    input: int  # the placeholder index of the primary input
    head: dict[str, Any] | None = None  # the reduction or GEMM
    pre: list[dict[str, Any]] = field(default_factory=list)
    post: list[dict[str, Any]] = field(default_factory=list)

    def then(self, op: dict[str, Any]) -> _Chain:
        if self.head is None:
            return _Chain(self.input, None, [*self.pre, op], [])
        return _Chain(self.input, self.head, self.pre, [*self.post, op])

    def reduce(self, head: dict[str, Any]) -> _Chain:
        if self.head is not None:
            raise _NoMatch("two reductions")
        return _Chain(self.input, head, self.pre, [])


def _shape(node: Any) -> list[int] | None:
    found = meta(node)
    return found["shape"] if found else None


def _is(node: Any, *names: str) -> bool:
    return isinstance(node, fx.Node) and node.op in ("call_function", "call_method") and _key(node) in names


def _key(node: fx.Node) -> str:
    if node.op == "call_method":
        return str(node.target)
    return str(getattr(node.target, "__name__", node.target))


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


class Analyser:
    def __init__(self, root: fx.GraphModule, nodes: list[fx.Node]) -> None:
        self.root = root
        self.nodes = nodes
        self.placeholders = [n for n in nodes if n.op == "placeholder"]
        self.memo: dict[fx.Node, _Chain] = {}
        self.why = ""

    def pattern(self) -> dict[str, Any] | None:
        """The pattern of the graph, or None with the reason in ``self.why``."""
        self.why = ""
        try:
            return self._pattern()
        except _NoMatch as exc:
            try:  # a pointwise graph that is not one chain: x * (1 + tanh(x + x³)) and friends
                return self._expression()
            except _NoMatch:
                pass
            self.why = str(exc)
            log.debug("fx summary: no pattern: %s", exc)
            return None

    def _expression(self) -> dict[str, Any]:
        """The whole graph as pointwise steps on one input: ``{"op": "expr", "steps": [...]}``."""
        out = next(n for n in self.nodes if n.op == "output")
        result = out.args[0]
        if not isinstance(result, fx.Node) or (meta(result) or {}).get("dtype") != "float32":
            raise _NoMatch("not one float32 output")
        shape = _shape(result)
        primary = [i for i, p in enumerate(self.placeholders) if _shape(p) == shape and meta(p)]
        if not primary:
            raise _NoMatch("no input of the output's shape")
        steps: list[dict[str, Any]] = []
        ids: dict[fx.Node, int] = {}
        first = self.placeholders[primary[0]]

        def ref(value: Any) -> dict[str, Any]:
            if isinstance(value, bool):
                raise _NoMatch("a boolean operand")
            if isinstance(value, int | float):
                return {"scalar": float(value)}
            if value is first:
                return {"x": True}
            if isinstance(value, fx.Node) and value in ids:
                return {"step": ids[value]}
            operand = self._operand(value, shape)
            if operand is None or operand["kind"] == "scalar":
                raise _NoMatch(f"operand {value!r}")
            return {"operand": operand}

        for node in self.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            if node.op == "call_module":
                module: Any = self.root.get_submodule(str(node.target))
                name = MODULE_UNARY.get(type(module).__name__)
                if name is None or _shape(node) != shape:
                    raise _NoMatch(f"module {type(module).__name__} in a pointwise expression")
                step: dict[str, Any] = {"op": name, "args": [ref(node.args[0])]}
                if name == "gelu":
                    step["approximate"] = module.approximate
            elif node.op in ("call_function", "call_method"):
                key = _key(node)
                if _shape(node) != shape:
                    raise _NoMatch(f"{node.name} changes the shape")
                if key in BINARY:
                    if "alpha" in node.kwargs:
                        raise _NoMatch("add/sub with alpha")
                    step = {"op": BINARY[key], "args": [ref(node.args[0]), ref(_arg(node, 1, "other"))]}
                elif key == "pow":
                    exponent = _arg(node, 1, "exponent")
                    if not isinstance(exponent, int | float) or float(exponent) not in (
                        0.5,
                        1.0,
                        2.0,
                        3.0,
                        4.0,
                    ):
                        raise _NoMatch(f"pow with exponent {exponent!r}")
                    step = {"op": "pow", "exponent": float(exponent), "args": [ref(node.args[0])]}
                elif key in UNARY and isinstance(node.args[0], fx.Node):
                    step = {**self._unary(node, UNARY[key]), "args": [ref(node.args[0])]}
                else:
                    raise _NoMatch(f"{key} in a pointwise expression")
            else:
                raise _NoMatch(f"{node.op} in a pointwise expression")
            ids[node] = len(steps)
            steps.append(step)
        if result not in ids:
            raise _NoMatch("the output is not computed pointwise")
        steps = steps[: ids[result] + 1]
        return {
            "kind": "elementwise",
            "input": primary[0],
            "shape": shape,
            "ops": [{"op": "expr", "steps": steps}],
        }

    def _pattern(self) -> dict[str, Any] | None:
        out = next(n for n in self.nodes if n.op == "output")
        result = out.args[0]
        metas = [meta(p) for p in self.placeholders]
        if not isinstance(result, fx.Node):
            raise _NoMatch("the forward returns more than one tensor")
        if any(m is None or m["dtype"] != "float32" for m in metas):
            raise _NoMatch("an input is not a float32 tensor (the templates are float32)")
        if (meta(result) or {}).get("dtype") != "float32":
            raise _NoMatch("the output is not float32")
        chain = self.chain(result)
        base: dict[str, Any] = {"input": chain.input, "shape": _shape(self.placeholders[chain.input])}
        if chain.head is None:
            if not chain.pre:
                raise _NoMatch("the forward returns its input unchanged")
            return {"kind": "elementwise", **base, "ops": chain.pre}
        head = dict(chain.head)
        head_kind = head.pop("kind")
        if head_kind == "gemm":
            if chain.pre:
                raise _NoMatch("pointwise ops before a GEMM")
            return {"kind": "gemm_epilogue", **base, **head, "epilogue": chain.post}
        if "dim" in head:
            if head["op"] not in ("sum", "mean", "max", "softmax", "rmsnorm"):
                raise _NoMatch(f"{head['op']} over a dimension other than the last")
            for op in [*chain.pre, *chain.post]:
                if op.get("operand", {"kind": "scalar"})["kind"] not in ("scalar", "tensor_scalar"):
                    raise _NoMatch("a tensor operand around a reduction over an inner dimension")
            if head["op"] == "rmsnorm" and (head.get("weight") or head.get("bias")):
                raise _NoMatch("an affine RMSNorm over an inner dimension")
            return {
                "kind": "strided_reduction",
                **base,
                "op": head["op"],
                "dim": head["dim"],
                "keepdim": bool(head.get("keepdim", False)),
                "eps": float(head.get("eps", 0.0)),
                "prologue": chain.pre,
                "epilogue": chain.post,
            }
        if head_kind == "conv":
            return {"kind": "conv2d_epilogue", **base, **head, "epilogue": chain.post}
        if head_kind == "pool":
            if any(
                op.get("operand", {"kind": "scalar"})["kind"] not in ("scalar", "channel")
                for op in chain.post
            ):
                raise _NoMatch("a tensor operand after a pooling")
            return {"kind": "pool2d", **base, **head, "epilogue": chain.post}
        if head["op"] in ("sum", "mean", "max") and any(
            op.get("operand", {"kind": "scalar"})["kind"] != "scalar" for op in chain.post
        ):
            # the reduced value has another shape: only scalars broadcast onto it
            raise _NoMatch("a tensor operand after a sum/mean/max reduction")
        return {"kind": "row_reduction", **base, **head, "prologue": chain.pre, "epilogue": chain.post}

    # -- one node ----------------------------------------------------------------------------------

    def chain(self, node: Any) -> _Chain:
        if not isinstance(node, fx.Node):
            raise _NoMatch(f"a constant where a tensor was expected: {node!r}")
        if node not in self.memo:
            self.memo[node] = self._chain(node)
        return self.memo[node]

    def _chain(self, node: fx.Node) -> _Chain:
        if node.op == "placeholder":
            return _Chain(self.placeholders.index(node))
        if node.op == "call_module":
            return self._module(node)
        if node.op not in ("call_function", "call_method"):
            raise _NoMatch(f"{node.op} {node.target}")
        key = _key(node)
        x: Any = node.args[0] if node.args else None
        if key in ("contiguous", "clone", "detach") and isinstance(x, fx.Node):
            return self.chain(x)
        if key in UNARY and isinstance(x, fx.Node):
            return self._same_shape(node, x).then(self._unary(node, UNARY[key]))
        if key == "pow" and isinstance(x, fx.Node) and _arg(node, 1, "exponent") == 2:
            return self._same_shape(node, x).then({"op": "square"})
        if key in BINARY:
            return self._binary(node, BINARY[key])
        if key in ("softmax", "log_softmax"):
            return self._reduce(node, key, dim=_arg(node, 1, "dim"))
        if key in REDUCTIONS:
            return self._reduce(node, "max" if key == "amax" else key, dim=_arg(node, 1, "dim"))
        if key == "getitem" and _is(x, "max") and node.args[1] == 0:
            return self.chain(x)  # torch.max(x, dim)[0]: the values
        if key == "getattr" and _is(x, "max") and node.args[1] == "values":
            return self.chain(x)
        if key == "layer_norm":
            shape = _arg(node, 1, "normalized_shape")
            weight, bias = _arg(node, 2, "weight"), _arg(node, 3, "bias")
            eps = _arg(node, 4, "eps", 1e-5)
            return self._norm(node, "layernorm", len(shape), eps, self._source(weight), self._source(bias))
        if key == "linear":
            return self._gemm(node, x, _arg(node, 1, "weight"), _arg(node, 2, "bias"), "nk")
        if key == "conv2d":
            weight, bias = self._source(_arg(node, 1, "weight")), _arg(node, 2, "bias")
            if weight is None or (bias is not None and self._source(bias) is None):
                raise _NoMatch("conv2d weight or bias is computed")
            return self._conv(
                node,
                x,
                weight,
                self._source(bias) if bias is not None else None,
                _arg(node, 3, "stride", 1),
                _arg(node, 4, "padding", 0),
                _arg(node, 5, "dilation", 1),
                _arg(node, 6, "groups", 1),
            )
        if key in ("matmul", "mm"):
            w: Any = node.args[1]
            if _is(w, "t") or (_is(w, "getattr") and w.args[1] == "T"):
                return self._gemm(node, x, w.args[0], None, "nk")
            return self._gemm(node, x, w, None, "kn")
        raise _NoMatch(f"unsupported op {key}")

    def _same_shape(self, node: fx.Node, x: fx.Node) -> _Chain:
        if _shape(node) != _shape(x):
            raise _NoMatch(f"{node.name} broadcasts its input")
        return self.chain(x)

    def _unary(self, node: fx.Node, op: str) -> dict[str, Any]:
        if op == "gelu":
            return {"op": "gelu", "approximate": str(node.kwargs.get("approximate", "none"))}
        if op == "leaky_relu":
            return {"op": "leaky_relu", "slope": float(_arg(node, 1, "negative_slope", 0.01))}
        if op == "clamp":
            key = _key(node)
            if key == "hardtanh":
                lo, hi = _arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0)
            elif key == "clamp_max":
                lo, hi = None, _arg(node, 1, "max")
            else:
                lo, hi = _arg(node, 1, "min"), _arg(node, 2, "max")
            if not all(v is None or isinstance(v, int | float) for v in (lo, hi)):
                raise _NoMatch("clamp by a tensor")
            return {"op": "clamp", "min": _num(lo), "max": _num(hi)}
        return {"op": op}

    def _module(self, node: fx.Node) -> _Chain:
        module: Any = self.root.get_submodule(str(node.target))
        kind = type(module).__name__
        x = node.args[0]
        if not isinstance(x, fx.Node):
            raise _NoMatch("module on a constant")
        path = str(node.target)
        if kind in MODULE_UNARY:
            op: dict[str, Any] = {"op": MODULE_UNARY[kind]}
            if kind == "GELU":
                op["approximate"] = module.approximate
            elif kind == "LeakyReLU":
                op["slope"] = float(module.negative_slope)
            elif kind == "Hardtanh":
                op.update(min=float(module.min_val), max=float(module.max_val))
            return self._same_shape(node, x).then(op)
        if kind in ("Identity", "Dropout") and (kind == "Identity" or module.p == 0):
            return self.chain(x)
        if kind in ("Softmax", "LogSoftmax"):
            return self._reduce(node, "softmax" if kind == "Softmax" else "log_softmax", dim=module.dim)
        if kind == "Linear":
            bias = f"{path}.bias" if module.bias is not None else None
            return self._gemm(node, x, {"param": f"{path}.weight"}, {"param": bias} if bias else None, "nk")
        if kind == "Conv2d":
            if module.padding_mode != "zeros":
                raise _NoMatch(f"Conv2d with padding_mode={module.padding_mode!r}")
            conv_bias = {"param": f"{path}.bias"} if module.bias is not None else None
            return self._conv(
                node,
                x,
                {"param": f"{path}.weight"},
                conv_bias,
                module.stride,
                module.padding,
                module.dilation,
                module.groups,
            )
        if kind in ("MaxPool2d", "AvgPool2d"):
            return self._pool(node, x, module)
        if kind in ("LayerNorm", "RMSNorm"):
            affine = getattr(module, "weight", None) is not None
            has_bias = getattr(module, "bias", None) is not None
            eps = module.eps if module.eps is not None else torch.finfo(torch.float32).eps
            return self._norm(
                node,
                "layernorm" if kind == "LayerNorm" else "rmsnorm",
                len(module.normalized_shape),
                eps,
                {"param": f"{path}.weight"} if affine else None,
                {"param": f"{path}.bias"} if has_bias else None,
            )
        raise _NoMatch(f"unsupported module {kind}")

    # -- reductions --------------------------------------------------------------------------------

    def _last_dim(self, node: fx.Node, dim: Any) -> None:
        if self._reduced_dim(node, dim) is not None:
            raise _NoMatch("reduction not over the last dimension")

    def _reduced_dim(self, node: fx.Node, dim: Any) -> int | None:
        """None for the last dimension, else the (non-negative) dimension reduced over."""
        shape = _shape(node.args[0])
        if isinstance(dim, list | tuple) and len(dim) == 1:
            dim = dim[0]
        if shape is None or not isinstance(dim, int) or not -len(shape) <= dim < len(shape):
            raise _NoMatch(f"reduction over {dim!r} (one dimension, given as an int, is supported)")
        dim %= len(shape)
        return None if dim == len(shape) - 1 else dim

    def _reduce(self, node: fx.Node, op: str, *, dim: Any) -> _Chain:
        x = node.args[0]
        if not isinstance(x, fx.Node):
            raise _NoMatch("reduction of a constant")
        strided = self._reduced_dim(node, dim)
        head: dict[str, Any] = {"kind": "reduction", "op": op, "row_dims": 1}
        if strided is not None:
            head["dim"] = strided
        if op in ("sum", "mean", "max"):
            head["keepdim"] = bool(_arg(node, 2, "keepdim", False))
            if _arg(node, 3 if op != "max" else 99, "dtype") is not None:
                raise _NoMatch("reduction with a dtype")
        return self.chain(x).reduce(head)

    def _norm(
        self,
        node: fx.Node,
        op: str,
        row_dims: int,
        eps: Any,
        weight: dict[str, Any] | None,
        bias: dict[str, Any] | None,
    ) -> _Chain:
        x = node.args[0]
        if not isinstance(x, fx.Node) or not isinstance(eps, int | float):
            raise _NoMatch("norm of a constant or with a tensor eps")
        head = {"kind": "reduction", "op": op, "row_dims": row_dims, "eps": float(eps)}
        head.update(weight=weight, bias=bias)
        return self.chain(x).reduce(head)

    # -- binary ops and the written-out idioms -----------------------------------------------------

    def _binary(self, node: fx.Node, op: str) -> _Chain:
        a, b = node.args[0], _arg(node, 1, "other")
        idiom = self._idiom(node, op, a, b)
        if idiom is not None:
            return idiom
        if "alpha" in node.kwargs:
            raise _NoMatch("add/sub with alpha")
        shape = _shape(node)
        for value, side, reverse in ((a, b, False), (b, a, True)):
            if not isinstance(value, fx.Node) or _shape(value) != shape:
                continue
            operand = self._operand(side, shape)
            if operand is None:
                continue
            chain = self.chain(value)
            step: dict[str, Any] = {"op": op, "operand": operand}
            if reverse and op in ("sub", "div"):
                step["reverse"] = True
            return chain.then(step)
        raise _NoMatch(f"{node.name}: operands not recognised")

    def _operand(self, side: Any, shape: list[int] | None) -> dict[str, Any] | None:
        if isinstance(side, bool):
            return None
        if isinstance(side, int | float):
            return {"kind": "scalar", "value": float(side)}
        source = self._source(side)
        if source is None or shape is None:
            return None
        side_shape = _shape(side)
        if side_shape is None:
            return None
        trimmed = list(side_shape)
        while trimmed and trimmed[0] == 1 and len(trimmed) > 1:
            trimmed.pop(0)
        if math.prod(side_shape) == 1:
            return {"kind": "tensor_scalar", "source": source}
        if side_shape == shape:
            return {"kind": "full", "source": source}
        if shape and trimmed == [shape[-1]]:
            return {"kind": "row", "source": source}
        if len(shape) >= 3 and trimmed == [shape[1]] + [1] * (len(shape) - 2):
            return {"kind": "channel", "source": source}  # (C, 1, 1): one value per channel, NCHW
        return None

    def _source(self, value: Any) -> dict[str, Any] | None:
        if not isinstance(value, fx.Node):
            return None
        if value.op == "get_attr":
            return {"param": str(value.target)}
        if value.op == "placeholder":
            return {"input": self.placeholders.index(value)}
        return None

    def _gemm(self, node: fx.Node, x: Any, weight: Any, bias: Any, layout: str) -> _Chain:
        if not isinstance(x, fx.Node):
            raise _NoMatch("gemm of a constant")
        w = weight if isinstance(weight, dict) else self._source(weight)
        b = bias if isinstance(bias, dict) or bias is None else self._source(bias)
        if w is None or (bias is not None and b is None):
            raise _NoMatch("gemm weight is computed")
        w_shape = self._param_shape(w)
        x_shape = _shape(x)
        if w_shape is None or len(w_shape) != 2 or not x_shape:
            raise _NoMatch("gemm weight is not 2-D")
        n_out, k_in = (w_shape[0], w_shape[1]) if layout == "nk" else (w_shape[1], w_shape[0])
        if x_shape[-1] != k_in:
            raise _NoMatch("gemm shapes")
        chain = self.chain(x)
        head = {"kind": "gemm", "op": "linear", "in_features": k_in, "out_features": n_out}
        head.update(bias=b is not None, weight=w, bias_source=b, layout=layout)
        if chain.head is not None or chain.pre:
            raise _NoMatch("gemm after other ops")
        return chain.reduce(head)

    def _conv(
        self,
        node: fx.Node,
        x: Any,
        weight: dict[str, Any],
        bias: dict[str, Any] | None,
        stride: Any,
        padding: Any,
        dilation: Any,
        groups: Any,
    ) -> _Chain:
        if not isinstance(x, fx.Node):
            raise _NoMatch("conv of a constant")
        if groups != 1:
            raise _NoMatch(f"grouped/depthwise convolution (groups={groups}) has no template")
        if isinstance(padding, str):
            if padding != "valid":
                raise _NoMatch(f"conv2d padding={padding!r}")
            padding = 0
        w_shape, x_shape = self._param_shape(weight), _shape(x)
        if w_shape is None or len(w_shape) != 4 or x_shape is None or len(x_shape) != 4:
            raise _NoMatch("conv2d of other than a 4-D NCHW input and weight")
        chain = self.chain(x)
        if chain.head is not None or chain.pre:
            raise _NoMatch("ops before a convolution")
        head = {
            "kind": "conv",
            "op": "conv2d",
            "in_channels": w_shape[1],
            "out_channels": w_shape[0],
            "kernel": w_shape[2:],
            "stride": _pair(stride),
            "padding": _pair(padding),
            "dilation": _pair(dilation),
            "weight": weight,
            "bias_source": bias,
            "bias": bias is not None,
        }
        return chain.reduce(head)

    def _pool(self, node: fx.Node, x: fx.Node, module: Any) -> _Chain:
        kind = type(module).__name__
        x_shape = _shape(x)
        if x_shape is None or len(x_shape) != 4:
            raise _NoMatch(f"{kind} of other than a 4-D NCHW input")
        if getattr(module, "ceil_mode", False) or getattr(module, "return_indices", False):
            raise _NoMatch(f"{kind} with ceil_mode or return_indices")
        head: dict[str, Any] = {
            "kind": "pool",
            "op": "max" if kind == "MaxPool2d" else "avg",
            "kernel": _pair(module.kernel_size),
            "stride": _pair(module.stride if module.stride is not None else module.kernel_size),
            "padding": _pair(module.padding),
            "dilation": _pair(getattr(module, "dilation", 1)),
        }
        if kind == "AvgPool2d":
            if module.divisor_override is not None:
                raise _NoMatch("AvgPool2d with divisor_override")
            head["count_include_pad"] = bool(module.count_include_pad)
        chain = self.chain(x)
        if chain.head is not None or chain.pre:
            raise _NoMatch("ops before a pooling")
        return chain.reduce(head)

    def _param_shape(self, source: dict[str, Any]) -> list[int] | None:
        if "param" in source:
            try:
                return list(self.root.get_parameter(source["param"]).shape)
            except AttributeError:
                try:
                    return list(self.root.get_buffer(source["param"]).shape)
                except AttributeError:
                    return None
        return _shape(self.placeholders[source["input"]])

    def _idiom(self, node: fx.Node, op: str, a: Any, b: Any) -> _Chain | None:
        """silu, softmax, rmsnorm and layernorm written out as torch ops."""
        if not isinstance(a, fx.Node) or not isinstance(b, fx.Node):
            return None
        if op == "mul":
            for x, y in ((a, b), (b, a)):
                if _is(y, "sigmoid") and y.args[0] is x:
                    return self._same_shape(node, x).then({"op": "silu"})
                if _is(y, "rsqrt"):
                    found = self._norm_of(x, y.args[0])
                    if found is not None:
                        return found
        if op == "div":
            if _is(b, "sqrt"):
                found = self._norm_of(a, b.args[0])
                if found is not None:
                    return found
            if _is(a, "exp") and _is(b, "sum") and b.args[0] is a and _arg(b, 2, "keepdim", False):
                self._last_dim(b, _arg(b, 1, "dim"))
                inner: Any = a.args[0]
                if _is(inner, "sub") and self._is_row_max(inner.args[1], inner.args[0]):
                    inner = inner.args[0]
                head = {"kind": "reduction", "op": "softmax", "row_dims": 1}
                return self.chain(inner).reduce(head)
        return None

    def _is_row_max(self, m: Any, x: Any) -> bool:
        if _is(m, "getitem") and m.args[1] == 0:
            m = m.args[0]
        if _is(m, "getattr") and m.args[1] == "values":
            m = m.args[0]
        return _is(m, "max", "amax") and m.args[0] is x and bool(_arg(m, 2, "keepdim", False))

    def _norm_of(self, x: Any, denom: Any) -> _Chain | None:
        """``x * rsqrt(denom)`` / ``x / sqrt(denom)`` where denom is ``mean(x²) + eps`` or a variance."""
        if not (_is(denom, "add") and isinstance(denom.args[1], int | float)):
            return None
        eps, stat = float(denom.args[1]), denom.args[0]
        if not _is(stat, "mean", "var"):
            return None
        is_var = _key(stat) == "var"
        if not _arg(stat, 3 if is_var else 2, "keepdim", False):
            return None
        strided = self._reduced_dim(stat, _arg(stat, 1, "dim"))
        if is_var:
            if strided is not None:
                return None
            unbiased = bool(_arg(stat, 2, "unbiased", True)) and stat.kwargs.get("correction", 1) != 0
            centred = self._centred(x)
            if unbiased or centred is None or stat.args[0] is not centred.args[0]:
                return None
            return self.chain(centred.args[0]).reduce(_norm_head("layernorm", eps))
        sq = stat.args[0]
        base = None
        if (
            (_is(sq, "pow") and _arg(sq, 1, "exponent") == 2)
            or (_is(sq, "mul") and sq.args[0] is sq.args[1])
            or _is(sq, "square")
        ):
            base = sq.args[0]
        if base is None:
            return None
        if base is x:
            centred = self._centred(x) if strided is None else None
            if centred is not None:
                return self.chain(centred.args[0]).reduce(_norm_head("layernorm", eps))
            head = _norm_head("rmsnorm", eps)
            if strided is not None:
                head["dim"] = strided
            return self.chain(x).reduce(head)
        if strided is not None:
            return None
        centred_x, centred_b = self._centred(x), self._centred(base)
        if centred_x is not None and centred_b is not None and centred_x.args[0] is centred_b.args[0]:
            return self.chain(centred_x.args[0]).reduce(_norm_head("layernorm", eps))
        return None

    def _centred(self, node: Any) -> Any:
        """``x - x.mean(-1, keepdim=True)`` (the sub node) or None."""
        if not _is(node, "sub"):
            return None
        x, m = node.args[0], node.args[1]
        if _is(m, "mean") and m.args[0] is x and _arg(m, 2, "keepdim", False):
            self._last_dim(m, _arg(m, 1, "dim"))
            return node
        return None


def _norm_head(op: str, eps: float) -> dict[str, Any]:
    return {"kind": "reduction", "op": op, "row_dims": 1, "eps": eps, "weight": None, "bias": None}


def _pair(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value, value]
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [int(value[0]), int(value[1])]
    raise _NoMatch(f"a 2-D window parameter {value!r}")


def _num(value: Any) -> float | None:
    return None if value is None else float(value)
