"""Reading a traced reference as one chain of ops on a primary input: the patterns of the fx summary.

:class:`Analyser` walks back from the graph's output; each node extends the chain of its tensor
argument (pointwise ops before and after one head: a row reduction or a GEMM). Binary ops take a
*side operand* — a Python scalar, a parameter or another forward input of the value's shape, of the
row's width or of one element. Idioms written out as torch ops are folded first: ``x * sigmoid(x)``
(silu), ``exp(x - max) / sum(exp(...))`` (softmax), ``x * rsqrt(mean(x²) + eps)`` (rmsnorm) and
``(x - mean) / sqrt(var + eps)`` (layernorm; in :mod:`fx_idioms`). GEMM, convolution and pooling
heads are read in :mod:`fx_heads`. Anything else raises ``NoMatch``: no pattern.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import fx

from evoforge.verifiers.kernel.fx_heads import conv, gemm, pool
from evoforge.verifiers.kernel.fx_idioms import idiom
from evoforge.verifiers.kernel.fx_nodes import Chain, NoMatch, arg, is_op, meta, num, op_key, shape_of

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


# -- the chain analysis ----------------------------------------------------------------------------


class Analyser:
    def __init__(self, root: fx.GraphModule, nodes: list[fx.Node]) -> None:
        self.root = root
        self.nodes = nodes
        self.placeholders = [n for n in nodes if n.op == "placeholder"]
        self.memo: dict[fx.Node, Chain] = {}
        self.why = ""

    def pattern(self) -> dict[str, Any] | None:
        """The pattern of the graph, or None with the reason in ``self.why``."""
        self.why = ""
        try:
            return self._pattern()
        except NoMatch as exc:
            try:  # a pointwise graph that is not one chain: x * (1 + tanh(x + x³)) and friends
                return self._expression()
            except NoMatch:
                pass
            self.why = str(exc)
            log.debug("fx summary: no pattern: %s", exc)
            return None

    def _expression(self) -> dict[str, Any]:
        """The whole graph as pointwise steps on one input: ``{"op": "expr", "steps": [...]}``."""
        out = next(n for n in self.nodes if n.op == "output")
        result = out.args[0]
        if not isinstance(result, fx.Node) or (meta(result) or {}).get("dtype") != "float32":
            raise NoMatch("not one float32 output")
        shape = shape_of(result)
        primary = [i for i, p in enumerate(self.placeholders) if shape_of(p) == shape and meta(p)]
        if not primary:
            raise NoMatch("no input of the output's shape")
        steps: list[dict[str, Any]] = []
        ids: dict[fx.Node, int] = {}
        first = self.placeholders[primary[0]]

        def ref(value: Any) -> dict[str, Any]:
            if isinstance(value, bool):
                raise NoMatch("a boolean operand")
            if isinstance(value, int | float):
                return {"scalar": float(value)}
            if value is first:
                return {"x": True}
            if isinstance(value, fx.Node) and value in ids:
                return {"step": ids[value]}
            operand = self._operand(value, shape)
            if operand is None or operand["kind"] == "scalar":
                raise NoMatch(f"operand {value!r}")
            return {"operand": operand}

        for node in self.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            if node.op == "call_module":
                module: Any = self.root.get_submodule(str(node.target))
                name = MODULE_UNARY.get(type(module).__name__)
                if name is None or shape_of(node) != shape:
                    raise NoMatch(f"module {type(module).__name__} in a pointwise expression")
                step: dict[str, Any] = {"op": name, "args": [ref(node.args[0])]}
                if name == "gelu":
                    step["approximate"] = module.approximate
            elif node.op in ("call_function", "call_method"):
                key = op_key(node)
                if shape_of(node) != shape:
                    raise NoMatch(f"{node.name} changes the shape")
                if key in BINARY:
                    if "alpha" in node.kwargs:
                        raise NoMatch("add/sub with alpha")
                    step = {"op": BINARY[key], "args": [ref(node.args[0]), ref(arg(node, 1, "other"))]}
                elif key == "pow":
                    exponent = arg(node, 1, "exponent")
                    if not isinstance(exponent, int | float) or float(exponent) not in (
                        0.5,
                        1.0,
                        2.0,
                        3.0,
                        4.0,
                    ):
                        raise NoMatch(f"pow with exponent {exponent!r}")
                    step = {"op": "pow", "exponent": float(exponent), "args": [ref(node.args[0])]}
                elif key in UNARY and isinstance(node.args[0], fx.Node):
                    step = {**self._unary(node, UNARY[key]), "args": [ref(node.args[0])]}
                else:
                    raise NoMatch(f"{key} in a pointwise expression")
            else:
                raise NoMatch(f"{node.op} in a pointwise expression")
            ids[node] = len(steps)
            steps.append(step)
        if result not in ids:
            raise NoMatch("the output is not computed pointwise")
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
            raise NoMatch("the forward returns more than one tensor")
        if any(m is None or m["dtype"] != "float32" for m in metas):
            raise NoMatch("an input is not a float32 tensor (the templates are float32)")
        if (meta(result) or {}).get("dtype") != "float32":
            raise NoMatch("the output is not float32")
        chain = self.chain(result)
        base: dict[str, Any] = {"input": chain.input, "shape": shape_of(self.placeholders[chain.input])}
        if chain.head is None:
            if not chain.pre:
                raise NoMatch("the forward returns its input unchanged")
            return {"kind": "elementwise", **base, "ops": chain.pre}
        head = dict(chain.head)
        head_kind = head.pop("kind")
        if head_kind == "gemm":
            if chain.pre:
                raise NoMatch("pointwise ops before a GEMM")
            return {"kind": "gemm_epilogue", **base, **head, "epilogue": chain.post}
        if "dim" in head:
            if head["op"] not in ("sum", "mean", "max", "softmax", "rmsnorm"):
                raise NoMatch(f"{head['op']} over a dimension other than the last")
            for op in [*chain.pre, *chain.post]:
                if op.get("operand", {"kind": "scalar"})["kind"] not in ("scalar", "tensor_scalar"):
                    raise NoMatch("a tensor operand around a reduction over an inner dimension")
            if head["op"] == "rmsnorm" and (head.get("weight") or head.get("bias")):
                raise NoMatch("an affine RMSNorm over an inner dimension")
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
                raise NoMatch("a tensor operand after a pooling")
            return {"kind": "pool2d", **base, **head, "epilogue": chain.post}
        if head["op"] in ("sum", "mean", "max") and any(
            op.get("operand", {"kind": "scalar"})["kind"] != "scalar" for op in chain.post
        ):
            # the reduced value has another shape: only scalars broadcast onto it
            raise NoMatch("a tensor operand after a sum/mean/max reduction")
        return {"kind": "row_reduction", **base, **head, "prologue": chain.pre, "epilogue": chain.post}

    # -- one node ----------------------------------------------------------------------------------

    def chain(self, node: Any) -> Chain:
        if not isinstance(node, fx.Node):
            raise NoMatch(f"a constant where a tensor was expected: {node!r}")
        if node not in self.memo:
            self.memo[node] = self._chain(node)
        return self.memo[node]

    def _chain(self, node: fx.Node) -> Chain:
        if node.op == "placeholder":
            return Chain(self.placeholders.index(node))
        if node.op == "call_module":
            return self._module(node)
        if node.op not in ("call_function", "call_method"):
            raise NoMatch(f"{node.op} {node.target}")
        key = op_key(node)
        x: Any = node.args[0] if node.args else None
        if key in ("contiguous", "clone", "detach") and isinstance(x, fx.Node):
            return self.chain(x)
        if key in UNARY and isinstance(x, fx.Node):
            return self.same_shape(node, x).then(self._unary(node, UNARY[key]))
        if key == "pow" and isinstance(x, fx.Node) and arg(node, 1, "exponent") == 2:
            return self.same_shape(node, x).then({"op": "square"})
        if key in BINARY:
            return self._binary(node, BINARY[key])
        if key in ("softmax", "log_softmax"):
            return self._reduce(node, key, dim=arg(node, 1, "dim"))
        if key in REDUCTIONS:
            return self._reduce(node, "max" if key == "amax" else key, dim=arg(node, 1, "dim"))
        if key == "getitem" and is_op(x, "max") and node.args[1] == 0:
            return self.chain(x)  # torch.max(x, dim)[0]: the values
        if key == "getattr" and is_op(x, "max") and node.args[1] == "values":
            return self.chain(x)
        if key == "layer_norm":
            shape = arg(node, 1, "normalized_shape")
            weight, bias = arg(node, 2, "weight"), arg(node, 3, "bias")
            eps = arg(node, 4, "eps", 1e-5)
            return self._norm(node, "layernorm", len(shape), eps, self.source(weight), self.source(bias))
        if key == "linear":
            return gemm(self, node, x, arg(node, 1, "weight"), arg(node, 2, "bias"), "nk")
        if key == "conv2d":
            weight, bias = self.source(arg(node, 1, "weight")), arg(node, 2, "bias")
            if weight is None or (bias is not None and self.source(bias) is None):
                raise NoMatch("conv2d weight or bias is computed")
            return conv(
                self,
                node,
                x,
                weight,
                self.source(bias) if bias is not None else None,
                arg(node, 3, "stride", 1),
                arg(node, 4, "padding", 0),
                arg(node, 5, "dilation", 1),
                arg(node, 6, "groups", 1),
            )
        if key in ("matmul", "mm"):
            w: Any = node.args[1]
            if is_op(w, "t") or (is_op(w, "getattr") and w.args[1] == "T"):
                return gemm(self, node, x, w.args[0], None, "nk")
            return gemm(self, node, x, w, None, "kn")
        raise NoMatch(f"unsupported op {key}")

    def same_shape(self, node: fx.Node, x: fx.Node) -> Chain:
        if shape_of(node) != shape_of(x):
            raise NoMatch(f"{node.name} broadcasts its input")
        return self.chain(x)

    def _unary(self, node: fx.Node, op: str) -> dict[str, Any]:
        if op == "gelu":
            return {"op": "gelu", "approximate": str(node.kwargs.get("approximate", "none"))}
        if op == "leaky_relu":
            return {"op": "leaky_relu", "slope": float(arg(node, 1, "negative_slope", 0.01))}
        if op == "clamp":
            key = op_key(node)
            if key == "hardtanh":
                lo, hi = arg(node, 1, "min_val", -1.0), arg(node, 2, "max_val", 1.0)
            elif key == "clamp_max":
                lo, hi = None, arg(node, 1, "max")
            else:
                lo, hi = arg(node, 1, "min"), arg(node, 2, "max")
            if not all(v is None or isinstance(v, int | float) for v in (lo, hi)):
                raise NoMatch("clamp by a tensor")
            return {"op": "clamp", "min": num(lo), "max": num(hi)}
        return {"op": op}

    def _module(self, node: fx.Node) -> Chain:
        module: Any = self.root.get_submodule(str(node.target))
        kind = type(module).__name__
        x = node.args[0]
        if not isinstance(x, fx.Node):
            raise NoMatch("module on a constant")
        path = str(node.target)
        if kind in MODULE_UNARY:
            op: dict[str, Any] = {"op": MODULE_UNARY[kind]}
            if kind == "GELU":
                op["approximate"] = module.approximate
            elif kind == "LeakyReLU":
                op["slope"] = float(module.negative_slope)
            elif kind == "Hardtanh":
                op.update(min=float(module.min_val), max=float(module.max_val))
            return self.same_shape(node, x).then(op)
        if kind in ("Identity", "Dropout") and (kind == "Identity" or module.p == 0):
            return self.chain(x)
        if kind in ("Softmax", "LogSoftmax"):
            return self._reduce(node, "softmax" if kind == "Softmax" else "log_softmax", dim=module.dim)
        if kind == "Linear":
            bias = f"{path}.bias" if module.bias is not None else None
            return gemm(self, node, x, {"param": f"{path}.weight"}, {"param": bias} if bias else None, "nk")
        if kind == "Conv2d":
            if module.padding_mode != "zeros":
                raise NoMatch(f"Conv2d with padding_mode={module.padding_mode!r}")
            conv_bias = {"param": f"{path}.bias"} if module.bias is not None else None
            return conv(
                self,
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
            return pool(self, node, x, module)
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
        raise NoMatch(f"unsupported module {kind}")

    # -- reductions --------------------------------------------------------------------------------

    def last_dim(self, node: fx.Node, dim: Any) -> None:
        if self.reduced_dim(node, dim) is not None:
            raise NoMatch("reduction not over the last dimension")

    def reduced_dim(self, node: fx.Node, dim: Any) -> int | None:
        """None for the last dimension, else the (non-negative) dimension reduced over."""
        shape = shape_of(node.args[0])
        if isinstance(dim, list | tuple) and len(dim) == 1:
            dim = dim[0]
        if shape is None or not isinstance(dim, int) or not -len(shape) <= dim < len(shape):
            raise NoMatch(f"reduction over {dim!r} (one dimension, given as an int, is supported)")
        dim %= len(shape)
        return None if dim == len(shape) - 1 else dim

    def _reduce(self, node: fx.Node, op: str, *, dim: Any) -> Chain:
        x = node.args[0]
        if not isinstance(x, fx.Node):
            raise NoMatch("reduction of a constant")
        strided = self.reduced_dim(node, dim)
        head: dict[str, Any] = {"kind": "reduction", "op": op, "row_dims": 1}
        if strided is not None:
            head["dim"] = strided
        if op in ("sum", "mean", "max"):
            head["keepdim"] = bool(arg(node, 2, "keepdim", False))
            if arg(node, 3 if op != "max" else 99, "dtype") is not None:
                raise NoMatch("reduction with a dtype")
        return self.chain(x).reduce(head)

    def _norm(
        self,
        node: fx.Node,
        op: str,
        row_dims: int,
        eps: Any,
        weight: dict[str, Any] | None,
        bias: dict[str, Any] | None,
    ) -> Chain:
        x = node.args[0]
        if not isinstance(x, fx.Node) or not isinstance(eps, int | float):
            raise NoMatch("norm of a constant or with a tensor eps")
        head = {"kind": "reduction", "op": op, "row_dims": row_dims, "eps": float(eps)}
        head.update(weight=weight, bias=bias)
        return self.chain(x).reduce(head)

    # -- binary ops and the written-out idioms -----------------------------------------------------

    def _binary(self, node: fx.Node, op: str) -> Chain:
        a, b = node.args[0], arg(node, 1, "other")
        folded = idiom(self, node, op, a, b)
        if folded is not None:
            return folded
        if "alpha" in node.kwargs:
            raise NoMatch("add/sub with alpha")
        shape = shape_of(node)
        for value, side, reverse in ((a, b, False), (b, a, True)):
            if not isinstance(value, fx.Node) or shape_of(value) != shape:
                continue
            operand = self._operand(side, shape)
            if operand is None:
                continue
            chain = self.chain(value)
            step: dict[str, Any] = {"op": op, "operand": operand}
            if reverse and op in ("sub", "div"):
                step["reverse"] = True
            return chain.then(step)
        raise NoMatch(f"{node.name}: operands not recognised")

    def _operand(self, side: Any, shape: list[int] | None) -> dict[str, Any] | None:
        if isinstance(side, bool):
            return None
        if isinstance(side, int | float):
            return {"kind": "scalar", "value": float(side)}
        source = self.source(side)
        if source is None or shape is None:
            return None
        side_shape = shape_of(side)
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

    def source(self, value: Any) -> dict[str, Any] | None:
        if not isinstance(value, fx.Node):
            return None
        if value.op == "get_attr":
            return {"param": str(value.target)}
        if value.op == "placeholder":
            return {"input": self.placeholders.index(value)}
        return None
