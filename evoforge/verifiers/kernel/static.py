"""The ``static`` stage: what the candidate's source says before any of it runs.

Checks (each a reward hack of ``reward-hacks.md`` or a policy): the file parses and defines
``ModelNew``; it uses a custom-kernel backend (Triton, CUDA through ``load_inline``, or C through
``evoforge.runtime``) — the "must use a custom kernel" policy; no library fallbacks (torch compute
functions, ``nn.functional``, ``@``, subclassing or importing the reference ``Model``); no
``try``/``except`` that could fall back; no threads, processes, extra CUDA streams or events; no
patching of timers or other modules' attributes; no module-level or ``self`` result caches; none of
the introspection that could reach the harness (frames, ``gc``, ``atexit``, ``sys.modules``).
Pure: stdlib ``ast`` only, so it runs in the verifier's process on text.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

#: modules a candidate may not import (threads, processes, introspection, raw memory, I/O back doors)
FORBIDDEN_MODULES = {
    "threading": "starts threads (work must finish inside the call that is checked and timed)",
    "_thread": "starts threads",
    "concurrent": "starts threads or processes",
    "multiprocessing": "starts processes",
    "subprocess": "starts processes",
    "asyncio": "runs work outside the checked call",
    "signal": "installs signal handlers",
    "socket": "opens network connections",
    "ctypes": "calls native code outside the evoforge runtime (use evoforge.runtime.load_c)",
    "cffi": "calls native code outside the evoforge runtime (use evoforge.runtime.load_c)",
    "inspect": "inspects the caller's frames",
    "gc": "reaches other objects through the garbage collector",
    "atexit": "runs code after the harness finished",
    "importlib": "imports modules dynamically",
    "builtins": "patches builtins",
    "pickle": "deserialises arbitrary objects",
    "numpy": "computes outside a custom kernel (numpy)",
    "time": "touches timers (the verifier times; candidates do not)",
    "timeit": "touches timers",
}
#: torch.* / F.* functions that do the work a kernel should do (library fallback)
TORCH_COMPUTE = set(
    [
        "matmul",
        "mm",
        "bmm",
        "addmm",
        "baddbmm",
        "einsum",
        "softmax",
        "log_softmax",
        "relu",
        "relu_",
        "sigmoid",
        "tanh",
        "exp",
        "log",
        "log1p",
        "expm1",
        "sum",
        "mean",
        "var",
        "std",
        "var_mean",
        "std_mean",
        "max",
        "min",
        "amax",
        "amin",
        "norm",
        "layer_norm",
        "group_norm",
        "batch_norm",
        "instance_norm",
        "rms_norm",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "linear",
        "gelu",
        "silu",
        "mish",
        "elu",
        "selu",
        "leaky_relu",
        "hardtanh",
        "hardswish",
        "softplus",
        "add",
        "sub",
        "mul",
        "div",
        "true_divide",
        "pow",
        "rsqrt",
        "sqrt",
        "abs",
        "clamp",
        "clip",
        "cumsum",
        "cumprod",
        "sort",
        "topk",
        "argmax",
        "argmin",
        "where",
        "erf",
        "erfc",
        "sin",
        "cos",
        "square",
        "reciprocal",
        "neg",
        "maximum",
        "minimum",
        "logsumexp",
        "prod",
        "dot",
        "mv",
        "outer",
        "tensordot",
        "cross",
        "dropout",
        "scaled_dot_product_attention",
        "max_pool1d",
        "max_pool2d",
        "avg_pool1d",
        "avg_pool2d",
        "adaptive_avg_pool2d",
        "normalize",
        "cosine_similarity",
        "pairwise_distance",
        "cdist",
    ]
)
#: tensor methods that compute (x.sum(), x.softmax(-1), …)
TENSOR_COMPUTE = TORCH_COMPUTE - {"add", "sub", "mul", "div", "where", "max", "min"} | {"exp_", "relu_"}
FORBIDDEN_CALLS = {
    "exec": "executes generated code",
    "eval": "evaluates generated code",
    "compile": "compiles generated code",
    "__import__": "imports modules dynamically",
    "setattr": "patches attributes",
    "globals": "reaches module globals",
    "open": "opens files",
}
FORBIDDEN_ATTRIBUTES = {
    "Stream": "uses an extra CUDA stream",
    "stream": "uses an extra CUDA stream",
    "Event": "records CUDA events (the verifier times)",
    "_getframe": "inspects frames",
    "_exit": "exits the process",
    "fork": "forks the process",
    "system": "runs shell commands",
    "popen": "runs shell commands",
    "_C": "reaches torch internals",
    "_python_dispatch": "touches the dispatcher",
    "__subclasses__": "reaches other classes",
    "__globals__": "reaches function globals",
    "__builtins__": "patches builtins",
}


@dataclass(frozen=True)
class StaticReport:
    ok: bool
    backend: str | None  # "triton" | "cuda" | "c" | None
    problems: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        if self.ok:
            extra = f"; notes: {'; '.join(self.warnings)}" if self.warnings else ""
            return f"{self.backend} candidate, no forbidden patterns{extra}"
        return "; ".join(self.problems)


def detect_backend(tree: ast.AST) -> str | None:
    names = _imported(tree)
    text_calls = {_call_name(n) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    if "load_inline" in text_calls or any(n.endswith("cpp_extension") for n in names):
        return "cuda"
    if any(n == "triton" or n.startswith("triton.") for n in names):
        return "triton"
    if "evoforge.runtime" in names or "load_c" in text_calls:
        return "c"
    return None


def check(source: str, *, require_custom_kernel: bool = True) -> StaticReport:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return StaticReport(False, None, (f"syntax error at line {exc.lineno}: {exc.msg}",))
    problems: list[str] = []
    warnings: list[str] = []
    backend = detect_backend(tree)
    if not _defines(tree, "ModelNew"):
        problems.append("the candidate defines no ModelNew (a class with Model's constructor and forward)")
    if backend is None and require_custom_kernel:
        problems.append(
            "no custom kernel: write the work as a Triton kernel, CUDA through load_inline, or C through "
            "evoforge.runtime.load_c (policy: must use a custom kernel)"
        )
    in_kernels = {id(n) for f in _kernel_functions(tree) for n in ast.walk(f)}
    in_kernels |= _kernel_library_calls(tree)
    for node in ast.walk(tree):
        problems.extend(_node_problems(node, require_custom_kernel and id(node) not in in_kernels))
        if isinstance(node, ast.Attribute) and node.attr == "modules" and _dotted(node.value) == "sys":
            problems.append(f"line {node.lineno}: uses sys.modules (reaches other modules)")
    problems.extend(_cache_problems(tree))
    if backend == "triton" and not any(_is_triton_jit(d) for d in _decorators(tree)):
        problems.append("imports triton but defines no @triton.jit kernel")
    return StaticReport(not problems, backend, tuple(dict.fromkeys(problems)), tuple(warnings))


def _node_problems(node: ast.AST, policy: bool) -> list[str]:
    out: list[str] = []
    line = getattr(node, "lineno", "?")
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for module in modules:
            root = module.split(".")[0]
            if root in FORBIDDEN_MODULES and not (root == "numpy" and not policy):
                out.append(f"line {line}: imports {module}, which {FORBIDDEN_MODULES[root]}")
        if (isinstance(node, ast.ImportFrom) and node.level > 0) or any(
            m.split(".")[0] == "problem" for m in modules
        ):
            out.append(f"line {line}: imports the reference problem (a library fallback)")
        if isinstance(node, ast.ImportFrom) and node.module == "torch.nn.functional" and policy:
            names = [a.name for a in node.names if a.name in TORCH_COMPUTE]
            if names:
                out.append(
                    f"line {line}: imports {', '.join(names)} from torch.nn.functional (library fallback)"
                )
    elif isinstance(node, ast.Try | ast.TryStar):
        out.append(f"line {line}: try/except (a kernel failure must fail the candidate, not fall back)")
    elif isinstance(node, ast.Call):
        name = _call_name(node)
        if name in FORBIDDEN_CALLS:
            out.append(f"line {line}: calls {name}(), which {FORBIDDEN_CALLS[name]}")
        if policy:
            out.extend(_fallback_call(node, line))
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) and policy:
        out.append(f"line {line}: uses the @ operator (torch matmul: library fallback)")
    elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
        out.append(f"line {line}: uses .{node.attr}, which {FORBIDDEN_ATTRIBUTES[node.attr]}")
    elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and _root_name(target) not in (None, "self"):
                out.append(f"line {line}: assigns {ast.unparse(target)} (patching another object)")
    elif isinstance(node, ast.ClassDef) and node.name == "ModelNew":
        for base in node.bases:
            if _dotted(base) in ("Model", "problem.Model"):
                out.append(f"line {line}: ModelNew subclasses the reference Model (library fallback)")
    elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__import__"):
        out.append(f"line {line}: uses {node.id}")
    return out


def _fallback_call(node: ast.Call, line: object) -> list[str]:
    func = node.func
    dotted = _dotted(func) or ""
    parts = dotted.split(".")
    if len(parts) >= 2 and parts[0] in ("torch", "F", "nn", "functional") and parts[-1] in TORCH_COMPUTE:
        return [f"line {line}: calls {dotted} (library fallback: do the work in the custom kernel)"]
    if dotted.startswith(("torch.nn.functional.", "torch.special.", "torch.linalg.", "torch.fft.")):
        return [f"line {line}: calls {dotted} (library fallback)"]
    if (
        isinstance(func, ast.Attribute)
        and parts[0] not in ("torch", "triton", "tl", "math")
        and func.attr in TENSOR_COMPUTE
    ):
        return [f"line {line}: calls .{func.attr}() on a tensor (library fallback)"]
    return []


def _cache_problems(tree: ast.Module) -> list[str]:
    """Module-level or ``self`` containers written by subscript inside functions: result caches."""
    containers: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and _is_container(stmt.value):
            containers.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
    self_containers: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_container(node.value):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and _root_name(target) == "self":
                    self_containers.add(target.attr)
    out = []
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(func):
            written = None
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
                written = node.value
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("setdefault", "update", "append", "__setitem__")
            ):
                written = node.func.value
            if written is None:
                continue
            line = getattr(node, "lineno", "?")
            if isinstance(written, ast.Name) and written.id in containers:
                out.append(f"line {line}: writes module-level {written.id} in {func.name}() (a result cache)")
            if (
                isinstance(written, ast.Attribute)
                and _root_name(written) == "self"
                and written.attr in self_containers
            ):
                out.append(f"line {line}: writes self.{written.attr} inside {func.name}() (a result cache)")
    for deco in _decorators(tree):
        if (_dotted(deco.func if isinstance(deco, ast.Call) else deco) or "").split(".")[-1] in (
            "cache",
            "lru_cache",
        ):
            out.append(f"line {deco.lineno}: a cache decorator (results must be computed on every call)")
    return out


def _kernel_functions(tree: ast.AST) -> list[ast.FunctionDef]:
    """The ``@triton.jit`` functions: their bodies are device code, where ``tl.sum`` is the kernel."""
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and any(_is_triton_jit(d) for d in n.decorator_list)
    ]


def _kernel_library_calls(tree: ast.AST) -> set[int]:
    """Calls on what ``load_c`` / ``load_inline`` returned (``_lib.relu(out, x, n)`` is a launch)."""
    libraries: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        if _call_name(node.value) in ("load_c", "load_inline"):
            libraries.update(d for t in node.targets if (d := _dotted(t)))
    return {
        id(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and _dotted(node.func.value) in libraries
    }


def _is_container(value: ast.AST) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp):
        return True
    return isinstance(value, ast.Call) and _dotted(value.func) in (
        "dict",
        "list",
        "set",
        "collections.OrderedDict",
        "OrderedDict",
        "defaultdict",
        "collections.defaultdict",
    )


def _decorators(tree: ast.AST) -> list[ast.expr]:
    return [
        d for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef) for d in n.decorator_list
    ]


def _is_triton_jit(deco: ast.expr) -> bool:
    name = _dotted(deco.func if isinstance(deco, ast.Call) else deco) or ""
    return name.endswith(("jit", "autotune", "heuristics"))


def _defines(tree: ast.Module, name: str) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == name:
            return True
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        ):
            return True
    return False


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None
