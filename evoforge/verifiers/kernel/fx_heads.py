"""The heads of a chain that are not reductions: GEMM (``linear``/``matmul``), 2-D convolution, pooling.

Each reads its weights' shapes from the traced module and refuses (``NoMatch``) what the templates
cannot compute: computed weights, grouped convolutions, ops before the head, ``ceil_mode``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import fx

from evoforge.verifiers.kernel.fx_nodes import Chain, NoMatch, pair, shape_of

if TYPE_CHECKING:
    from evoforge.verifiers.kernel.fx_patterns import Analyser


def gemm(an: Analyser, node: fx.Node, x: Any, weight: Any, bias: Any, layout: str) -> Chain:
    if not isinstance(x, fx.Node):
        raise NoMatch("gemm of a constant")
    w = weight if isinstance(weight, dict) else an.source(weight)
    b = bias if isinstance(bias, dict) or bias is None else an.source(bias)
    if w is None or (bias is not None and b is None):
        raise NoMatch("gemm weight is computed")
    w_shape = param_shape(an, w)
    x_shape = shape_of(x)
    if w_shape is None or len(w_shape) != 2 or not x_shape:
        raise NoMatch("gemm weight is not 2-D")
    n_out, k_in = (w_shape[0], w_shape[1]) if layout == "nk" else (w_shape[1], w_shape[0])
    if x_shape[-1] != k_in:
        raise NoMatch("gemm shapes")
    chain = an.chain(x)
    head = {"kind": "gemm", "op": "linear", "in_features": k_in, "out_features": n_out}
    head.update(bias=b is not None, weight=w, bias_source=b, layout=layout)
    if chain.head is not None or chain.pre:
        raise NoMatch("gemm after other ops")
    return chain.reduce(head)


def conv(
    an: Analyser,
    node: fx.Node,
    x: Any,
    weight: dict[str, Any],
    bias: dict[str, Any] | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
) -> Chain:
    if not isinstance(x, fx.Node):
        raise NoMatch("conv of a constant")
    if groups != 1:
        raise NoMatch(f"grouped/depthwise convolution (groups={groups}) has no template")
    if isinstance(padding, str):
        if padding != "valid":
            raise NoMatch(f"conv2d padding={padding!r}")
        padding = 0
    w_shape, x_shape = param_shape(an, weight), shape_of(x)
    if w_shape is None or len(w_shape) != 4 or x_shape is None or len(x_shape) != 4:
        raise NoMatch("conv2d of other than a 4-D NCHW input and weight")
    chain = an.chain(x)
    if chain.head is not None or chain.pre:
        raise NoMatch("ops before a convolution")
    head = {
        "kind": "conv",
        "op": "conv2d",
        "in_channels": w_shape[1],
        "out_channels": w_shape[0],
        "kernel": w_shape[2:],
        "stride": pair(stride),
        "padding": pair(padding),
        "dilation": pair(dilation),
        "weight": weight,
        "bias_source": bias,
        "bias": bias is not None,
    }
    return chain.reduce(head)


def pool(an: Analyser, node: fx.Node, x: fx.Node, module: Any) -> Chain:
    kind = type(module).__name__
    x_shape = shape_of(x)
    if x_shape is None or len(x_shape) != 4:
        raise NoMatch(f"{kind} of other than a 4-D NCHW input")
    if getattr(module, "ceil_mode", False) or getattr(module, "return_indices", False):
        raise NoMatch(f"{kind} with ceil_mode or return_indices")
    head: dict[str, Any] = {
        "kind": "pool",
        "op": "max" if kind == "MaxPool2d" else "avg",
        "kernel": pair(module.kernel_size),
        "stride": pair(module.stride if module.stride is not None else module.kernel_size),
        "padding": pair(module.padding),
        "dilation": pair(getattr(module, "dilation", 1)),
    }
    if kind == "AvgPool2d":
        if module.divisor_override is not None:
            raise NoMatch("AvgPool2d with divisor_override")
        head["count_include_pad"] = bool(module.count_include_pad)
    chain = an.chain(x)
    if chain.head is not None or chain.pre:
        raise NoMatch("ops before a pooling")
    return chain.reduce(head)


def param_shape(an: Analyser, source: dict[str, Any]) -> list[int] | None:
    if "param" in source:
        try:
            return list(an.root.get_parameter(source["param"]).shape)
        except AttributeError:
            try:
                return list(an.root.get_buffer(source["param"]).shape)
            except AttributeError:
                return None
    return shape_of(an.placeholders[source["input"]])
