"""A JSON-able summary of a KernelBench reference ``Model``: its traced graph and recognised patterns.

:func:`summarise` traces the model with ``torch.fx.symbolic_trace``, runs ``ShapeProp`` on the given
inputs (so it may run the model: call it in a sandboxed child) and returns the graph's nodes in
order, the input and output shapes, the parameters of the called modules and the *patterns* the
offline kernel proposer has templates for — the whole graph read as one chain on a primary input:

* ``{"kind": "elementwise", "ops": [...]}``: pointwise ops only;
* ``{"kind": "row_reduction", "op": "softmax|log_softmax|layernorm|rmsnorm|sum|mean|max", "prologue",
  "epilogue", ...}``: one reduction over the last dimension(s), pointwise ops before and after (norms
  and softmax written out as torch ops are recognised too);
* ``{"kind": "gemm_epilogue", "in_features", "out_features", "bias", "epilogue", ...}``: ``nn.Linear``,
  ``F.linear`` or ``matmul`` by a 2-D weight, then pointwise ops.

A pointwise op is ``{"op": name, ...attributes}``; a binary one carries ``"operand"``: ``{"kind":
"scalar", "value"}`` or ``{"kind": "row"|"full"|"tensor_scalar", "source": {"param": name} |
{"input": index}}`` (a tensor of the row's width, of the value's shape, or of one element) and
``"reverse": true`` when the chain value is the right-hand side. Never raises: an untraceable model
gives ``{"untraceable": reason}`` with what could still be learned. The proposers only see the dict.
"""

from __future__ import annotations

import logging
import math
import operator
from typing import Any

import torch
from torch import fx

from evoforge.verifiers.kernel.fx_patterns import Analyser, meta

log = logging.getLogger(__name__)


def summarise(model: torch.nn.Module, inputs: list[Any]) -> dict[str, Any]:
    """The summary of ``model`` called on ``inputs`` (see the module docstring); never raises."""
    summary: dict[str, Any] = {"version": 1, "inputs": [_describe(v) for v in inputs], "patterns": []}
    try:
        graph_module = fx.symbolic_trace(model)
    except Exception as exc:
        summary["untraceable"] = f"{type(exc).__name__}: {exc}"[:500]
        summary["no_pattern"] = f"torch.fx cannot trace the model ({summary['untraceable'][:200]})"
        summary["output"] = _run_output(model, inputs)
        return summary
    try:
        from torch.fx.passes.shape_prop import ShapeProp

        ShapeProp(graph_module).propagate(*inputs)
        summary["shapes"] = True
    except Exception as exc:
        summary["shapes"] = False
        summary["shape_error"] = f"{type(exc).__name__}: {exc}"[:500]
    try:
        nodes = list(graph_module.graph.nodes)
        summary["nodes"] = [_node_row(n, graph_module) for n in nodes]
        summary["modules"] = _modules(graph_module, nodes)
        out = next((n for n in nodes if n.op == "output"), None)
        summary["output"] = (
            meta(out.args[0]) if out is not None and isinstance(out.args[0], fx.Node) else None
        )
        if summary["shapes"]:
            analyser = Analyser(graph_module, nodes)
            pattern = analyser.pattern()
            if pattern is not None:
                summary["patterns"].append(pattern)
            else:
                summary["no_pattern"] = analyser.why or "no recognised pattern"
        else:
            summary["no_pattern"] = f"shapes unknown ({summary.get('shape_error')})"
    except Exception as exc:  # a bug in the analysis must not lose the target
        log.warning("fx summary: analysis failed: %s", exc, exc_info=True)
        summary["analysis_error"] = f"{type(exc).__name__}: {exc}"[:500]
    return summary


# -- describing ------------------------------------------------------------------------------------


def _describe(value: Any) -> dict[str, Any]:
    if isinstance(value, torch.Tensor):
        return {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
    return {"value": _constant(value)}


def _run_output(model: torch.nn.Module, inputs: list[Any]) -> Any:
    try:
        with torch.no_grad():
            value = model(*inputs)
    except Exception:
        return None
    return _describe(value) if isinstance(value, torch.Tensor) else {"type": type(value).__name__}


def _constant(value: Any) -> Any:
    if isinstance(value, fx.Node):
        return {"node": value.name}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_constant(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _constant(v) for k, v in value.items()}
    return repr(value)


def target_name(node: fx.Node, root: fx.GraphModule | None = None) -> str:
    """``torch.relu``, ``add``, ``torch.nn.functional.gelu``, ``call_module:linear``, ``method:sum``."""
    if node.op == "call_function":
        module = getattr(node.target, "__module__", None) or ""
        name = getattr(node.target, "__name__", str(node.target))
        if module in ("_operator", "operator") or node.target in vars(operator).values():
            return name
        if module in ("torch._C._nn", "torch.nn.functional"):
            return f"torch.nn.functional.{name}"
        if module.startswith("torch"):
            return f"torch.{name}"
        return f"{module}.{name}" if module else name
    if node.op == "call_method":
        return f"method:{node.target}"
    if node.op == "call_module":
        kind = type(root.get_submodule(str(node.target))).__name__.lower() if root is not None else "?"
        return f"call_module:{kind}"
    return f"{node.op}:{node.target}"


def _node_row(node: fx.Node, root: fx.GraphModule) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": node.name,
        "op": node.op,
        "target": target_name(node, root),
        "args": _constant(list(node.args)),
        "kwargs": _constant(dict(node.kwargs)),
        "meta": meta(node),
    }
    if node.op == "call_module":
        row["module"] = str(node.target)
    return row


def _modules(root: fx.GraphModule, nodes: list[fx.Node]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for node in nodes:
        if node.op != "call_module":
            continue
        module: Any = root.get_submodule(str(node.target))
        row: dict[str, Any] = {"type": type(module).__name__}
        if isinstance(module, torch.nn.Linear):
            row.update(in_features=module.in_features, out_features=module.out_features)
            row["bias"] = module.bias is not None
        elif isinstance(module, torch.nn.LayerNorm):
            row.update(normalized_shape=list(module.normalized_shape), eps=module.eps)
            row["elementwise_affine"] = module.weight is not None
            row["bias"] = module.bias is not None
        elif type(module).__name__ == "RMSNorm":
            row.update(normalized_shape=list(module.normalized_shape), eps=module.eps)
            row["elementwise_affine"] = getattr(module, "weight", None) is not None
        row["parameters"] = {n: list(p.shape) for n, p in module.named_parameters()}
        out[str(node.target)] = row
    return out
