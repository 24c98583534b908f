"""What the kernel templates are filled with: pointwise ops as Triton / C code, and the ModelNew shell.

``op_lines`` turns the pointwise ops of an fx-summary pattern into statements on a value ``v`` for a
backend, reading tensor operands through index expressions the template's context supplies (the
flat index of an elementwise kernel, the column of a row kernel, the output tile of a GEMM).
``TensorArgs`` numbers the tensor operands (``t0``, ``t1``, …) and knows the Python expression that
fetches each (``self.bias``, a forward argument). ``model_shell`` reads the problem's source for
what ModelNew must keep: Model's ``__init__`` (copied, so parameters are created in the same order
with the same shapes and seeded initialisation matches) and ``forward``'s parameter list.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any


class Unsupported(ValueError):
    """The pattern uses something the templates cannot express."""


def c_float(value: float) -> str:
    if not math.isfinite(value):
        raise Unsupported(f"non-finite constant {value}")
    text = repr(float(value))
    return f"{text}f"


def py_float(value: float) -> str:
    if not math.isfinite(value):
        raise Unsupported(f"non-finite constant {value}")
    return repr(float(value))


_TRITON_UNARY = {
    "relu": "tl.maximum(v, 0.0)",
    "sigmoid": "tl.sigmoid(v)",
    "tanh": "2.0 * tl.sigmoid(2.0 * v) - 1.0",
    "silu": "v * tl.sigmoid(v)",
    "exp": "tl.exp(v)",
    "abs": "tl.abs(v)",
    "neg": "-v",
    "sqrt": "tl.sqrt(v)",
    "rsqrt": "tl.rsqrt(v)",
    "square": "v * v",
}
_C_UNARY = {
    "relu": "(v > 0.0f ? v : 0.0f)",
    "sigmoid": "1.0f / (1.0f + ef_exp(-v))",
    "tanh": "ef_tanh(v)",
    "silu": "v / (1.0f + ef_exp(-v))",
    "exp": "ef_exp(v)",
    "abs": "fabsf(v)",
    "neg": "-v",
    "sqrt": "sqrtf(v)",
    "rsqrt": "1.0f / sqrtf(v)",
    "square": "v * v",
}
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


@dataclass
class TensorArgs:
    """The tensor operands of one kernel, in argument order."""

    inputs: list[str]  # forward parameter names by placeholder index
    names: list[str] = field(default_factory=list)  # t0, t1, …
    exprs: list[str] = field(default_factory=list)  # the Python expression fetching each
    _by_source: dict[str, str] = field(default_factory=dict)

    def add(self, source: dict[str, Any]) -> str:
        key = repr(sorted(source.items()))
        if key not in self._by_source:
            name = f"t{len(self.names)}"
            self._by_source[key] = name
            self.names.append(name)
            self.exprs.append(self.python(source))
        return self._by_source[key]

    def python(self, source: dict[str, Any]) -> str:
        if "input" in source:
            index = int(source["input"])
            if index >= len(self.inputs):
                raise Unsupported(f"input {index} is not a forward parameter")
            return self.inputs[index]
        path = str(source["param"])
        if all(part.isidentifier() for part in path.split(".")):
            return f"self.{path}"
        return f"self.get_parameter({path!r})"


def op_lines(
    ops: list[dict[str, Any]], backend: str, index: dict[str, str], tensors: TensorArgs
) -> list[str]:
    """Statements applying ``ops`` to ``v``; ``index`` maps operand kinds to load expressions.

    ``index`` holds format strings with ``{t}`` for the tensor's name: for Triton e.g.
    ``{"full": "tl.load({t}_ptr + offs, mask=m, other=1.0)", "row": ..., "tensor_scalar": ...}``;
    for C e.g. ``{"full": "{t}[i]", "row": "{t}[c]", "tensor_scalar": "{t}[0]"}``.
    """
    lines = []
    end = ";" if backend == "c" else ""
    for op in ops:
        if op["op"] == "expr":
            lines += _steps(op["steps"], backend, index, tensors)
            continue
        lines.append(f"v = {_expression(op, backend, index, tensors)}{end}")
    return lines


def _steps(
    steps: list[dict[str, Any]], backend: str, index: dict[str, str], tensors: TensorArgs
) -> list[str]:
    """A pointwise expression graph as single assignments ``e0 = …; e1 = …;`` then ``v = eN``."""
    c = backend == "c"
    num = c_float if c else py_float
    lines = []

    def arg(ref: dict[str, Any]) -> str:
        if ref.get("x"):
            return "v"
        if "step" in ref:
            return f"e{int(ref['step'])}"
        if "scalar" in ref:
            return num(float(ref["scalar"]))
        operand = ref["operand"]
        if operand["kind"] not in index:
            raise Unsupported(f"operand kind {operand['kind']}")
        return index[operand["kind"]].format(t=tensors.add(operand["source"]))

    for k, step in enumerate(steps):
        args = [arg(a) for a in step["args"]]
        name = step["op"]
        if name in _SYMBOL:
            text = f"({args[0]}) {_SYMBOL[name]} ({args[1]})"
        elif name == "pow":
            a, exponent = f"({args[0]})", float(step["exponent"])
            powers = {1.0: a, 2.0: f"{a} * {a}", 3.0: f"{a} * {a} * {a}", 4.0: f"({a} * {a}) * ({a} * {a})"}
            if exponent in powers:
                text = powers[exponent]
            elif exponent == 0.5:
                text = f"sqrtf{a}" if c else f"tl.sqrt{a}"
            else:
                raise Unsupported(f"pow with exponent {exponent}")
        else:
            one = {key: value for key, value in step.items() if key != "args"}
            text = re.sub(r"\bv\b", f"({args[0]})", _expression(one, backend, index, tensors))
        lines.append(f"float e{k} = {text};" if c else f"e{k} = {text}")
    lines.append(f"v = e{len(steps) - 1};" if c else f"v = e{len(steps) - 1}")
    return lines


def _expression(op: dict[str, Any], backend: str, index: dict[str, str], tensors: TensorArgs) -> str:
    name = op["op"]
    c = backend == "c"
    num = c_float if c else py_float
    if name in _SYMBOL:
        operand = op["operand"]
        if operand["kind"] == "scalar":
            other = num(operand["value"])
        elif operand["kind"] in index:
            other = index[operand["kind"]].format(t=tensors.add(operand["source"]))
        else:
            raise Unsupported(f"operand kind {operand['kind']}")
        left, right = ("v", other) if not op.get("reverse") else (other, "v")
        return f"({left}) {_SYMBOL[name]} ({right})"
    if name == "gelu":
        if op.get("approximate", "none") == "tanh":
            if c:
                # 0.5 v (1 + tanh u) = v sigmoid(2u) = v / (1 + exp(-2u))
                return "v / (1.0f + ef_exp(-1.5957691216057308f * (v + 0.044715f * v * v * v)))"
            # 0.5 v (1 + tanh u) = v sigmoid(2u)
            return "v * tl.sigmoid(2.0 * (0.7978845608028654 * (v + 0.044715 * v * v * v)))"
        if c:
            return "0.5f * v * (1.0f + erff(v * 0.7071067811865476f))"
        return "0.5 * v * (1.0 + tl.erf(v * 0.7071067811865476))"
    if name == "leaky_relu":
        slope = num(float(op["slope"]))
        return f"(v > 0.0f ? v : v * {slope})" if c else f"tl.where(v > 0.0, v, v * {slope})"
    if name == "clamp":
        low, high = op.get("min"), op.get("max")
        if c:  # comparisons, not fmaxf/fminf: GCC 12 does not vectorise those without -ffinite-math-only
            expr = "v" if high is None else f"(v > {num(high)} ? {num(high)} : v)"
            return expr if low is None else f"(v < {num(low)} ? {num(low)} : {expr})"
        expr = "v"
        if low is not None:
            expr = f"tl.maximum({expr}, {num(low)})"
        if high is not None:
            expr = f"tl.minimum({expr}, {num(high)})"
        return expr
    table = _C_UNARY if c else _TRITON_UNARY
    if name not in table:
        raise Unsupported(f"pointwise op {name}")
    return table[name]


# -- the ModelNew shell ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shell:
    init: str  # the __init__ method, indented for a class body
    forward_params: str  # "self, x, y"
    inputs: list[str]  # the forward parameter names (no self)
    preamble: str  # module-level imports and constants the __init__ may need


#: imports every template's head already has
_HEAD_IMPORTS = {"import math", "import torch", "import torch.nn as nn", "from torch import nn"}


class _RenameSuper(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "super" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Name) and first.id == "Model":
                node.args[0] = ast.Name("ModelNew", ast.Load())
        return node


def _pure_constant(node: ast.AST) -> bool:
    return all(
        isinstance(
            n,
            ast.Constant
            | ast.Tuple
            | ast.List
            | ast.UnaryOp
            | ast.BinOp
            | ast.Name
            | ast.Load
            | ast.operator
            | ast.unaryop,
        )
        for n in ast.walk(node)
    )


def model_shell(source: str, placeholders: list[str]) -> Shell:
    """ModelNew's ``__init__`` and forward parameters from the problem's ``Model``."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise Unsupported(f"the problem does not parse: {exc}") from exc
    model = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)
    if model is None:
        raise Unsupported("the problem defines no class Model")
    methods = {n.name: n for n in model.body if isinstance(n, ast.FunctionDef)}
    init = methods.get("__init__")
    if init is not None:
        init_text = ast.unparse(ast.fix_missing_locations(_RenameSuper().visit(init)))
    else:
        init_text = "def __init__(self, *args, **kwargs):\n    super().__init__()"
    forward = methods.get("forward")
    if forward is not None and not forward.args.vararg and not forward.args.kwonlyargs:
        params = ast.unparse(forward.args)
        inputs = [a.arg for a in [*forward.args.posonlyargs, *forward.args.args][1:]]
    else:
        inputs = list(placeholders)
        params = ", ".join(["self", *inputs])
    preamble: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            module = stmt.module if isinstance(stmt, ast.ImportFrom) else stmt.names[0].name
            if isinstance(stmt, ast.Import) and len(stmt.names) > 1:
                continue
            root = (module or "").split(".")[0]
            text = ast.unparse(stmt)
            if text in _HEAD_IMPORTS:
                continue
            if root == "math" or (root == "torch" and module != "torch.nn.functional"):
                preamble.append(text)
        elif (
            isinstance(stmt, ast.Assign)
            and _pure_constant(stmt.value)
            and all(isinstance(t, ast.Name) for t in stmt.targets)
        ):
            preamble.append(ast.unparse(stmt))
    indented = "\n".join(("    " + line) if line else line for line in init_text.splitlines())
    return Shell(init=indented, forward_params=params, inputs=inputs, preamble="\n".join(preamble))
