"""Idioms written out as torch ops, folded into one head: silu, softmax, rmsnorm and layernorm.

``x * sigmoid(x)``, ``exp(x - max) / sum(exp(...))``, ``x * rsqrt(mean(x²) + eps)`` and
``(x - mean) / sqrt(var + eps)``; anything else returns None and the walk goes on op by op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import fx

from evoforge.verifiers.kernel.fx_nodes import Chain, arg, is_op, norm_head, op_key

if TYPE_CHECKING:
    from evoforge.verifiers.kernel.fx_patterns import Analyser


def idiom(an: Analyser, node: fx.Node, op: str, a: Any, b: Any) -> Chain | None:
    """silu, softmax, rmsnorm and layernorm written out as torch ops."""
    if not isinstance(a, fx.Node) or not isinstance(b, fx.Node):
        return None
    if op == "mul":
        for x, y in ((a, b), (b, a)):
            if is_op(y, "sigmoid") and y.args[0] is x:
                return an.same_shape(node, x).then({"op": "silu"})
            if is_op(y, "rsqrt"):
                found = norm_of(an, x, y.args[0])
                if found is not None:
                    return found
    if op == "div":
        if is_op(b, "sqrt"):
            found = norm_of(an, a, b.args[0])
            if found is not None:
                return found
        if is_op(a, "exp") and is_op(b, "sum") and b.args[0] is a and arg(b, 2, "keepdim", False):
            an.last_dim(b, arg(b, 1, "dim"))
            inner: Any = a.args[0]
            if is_op(inner, "sub") and is_row_max(an, inner.args[1], inner.args[0]):
                inner = inner.args[0]
            head = {"kind": "reduction", "op": "softmax", "row_dims": 1}
            return an.chain(inner).reduce(head)
    return None


def is_row_max(an: Analyser, m: Any, x: Any) -> bool:
    if is_op(m, "getitem") and m.args[1] == 0:
        m = m.args[0]
    if is_op(m, "getattr") and m.args[1] == "values":
        m = m.args[0]
    return is_op(m, "max", "amax") and m.args[0] is x and bool(arg(m, 2, "keepdim", False))


def norm_of(an: Analyser, x: Any, denom: Any) -> Chain | None:
    """``x * rsqrt(denom)`` / ``x / sqrt(denom)`` where denom is ``mean(x²) + eps`` or a variance."""
    if not (is_op(denom, "add") and isinstance(denom.args[1], int | float)):
        return None
    eps, stat = float(denom.args[1]), denom.args[0]
    if not is_op(stat, "mean", "var"):
        return None
    is_var = op_key(stat) == "var"
    if not arg(stat, 3 if is_var else 2, "keepdim", False):
        return None
    strided = an.reduced_dim(stat, arg(stat, 1, "dim"))
    if is_var:
        if strided is not None:
            return None
        unbiased = bool(arg(stat, 2, "unbiased", True)) and stat.kwargs.get("correction", 1) != 0
        sub_node = centred(an, x)
        if unbiased or sub_node is None or stat.args[0] is not sub_node.args[0]:
            return None
        return an.chain(sub_node.args[0]).reduce(norm_head("layernorm", eps))
    sq = stat.args[0]
    base = None
    if (
        (is_op(sq, "pow") and arg(sq, 1, "exponent") == 2)
        or (is_op(sq, "mul") and sq.args[0] is sq.args[1])
        or is_op(sq, "square")
    ):
        base = sq.args[0]
    if base is None:
        return None
    if base is x:
        sub_node = centred(an, x) if strided is None else None
        if sub_node is not None:
            return an.chain(sub_node.args[0]).reduce(norm_head("layernorm", eps))
        head = norm_head("rmsnorm", eps)
        if strided is not None:
            head["dim"] = strided
        return an.chain(x).reduce(head)
    if strided is not None:
        return None
    centred_x, centred_b = centred(an, x), centred(an, base)
    if centred_x is not None and centred_b is not None and centred_x.args[0] is centred_b.args[0]:
        return an.chain(centred_x.args[0]).reduce(norm_head("layernorm", eps))
    return None


def centred(an: Analyser, node: Any) -> Any:
    """``x - x.mean(-1, keepdim=True)`` (the sub node) or None."""
    if not is_op(node, "sub"):
        return None
    x, m = node.args[0], node.args[1]
    if is_op(m, "mean") and m.args[0] is x and arg(m, 2, "keepdim", False):
        an.last_dim(m, arg(m, 1, "dim"))
        return node
    return None
