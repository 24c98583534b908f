"""The offline kernel proposer: knowledge-base templates instantiated for the traced reference's pattern.

It reads the pattern the verifier found when it loaded the target (``target.kernel_summary``, see
``evoforge.verifiers.kernel.fx_summary``) and fills the templates of that pattern, one per backend
(Triton, C). When the parent is itself a template instance (its header line names the template and
parameters) it proposes that template again with neighbouring launch parameters — one step up or
down the parameter's list of values, one or two parameters at a time, in an order seeded by the
request — and fills the rest of the round with fresh instances of the other templates. Otherwise it
proposes each backend's default instance, then instances with varied parameters. A proposer
instance never offers the same source twice; a target without a recognised pattern gets ``[]``.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

from evoforge.agents.base import Proposal, ProposalRequest
from evoforge.agents.kernel_templates import tiling
from evoforge.agents.kernel_templates.catalogue import (
    KernelTemplate,
    header_line,
    load_templates,
    parse_header,
)
from evoforge.agents.kernel_templates.render import (
    TensorArgs,
    Unsupported,
    c_float,
    model_shell,
    op_lines,
    py_float,
)
from evoforge.domain import TargetKind, normalise_source
from evoforge.errors import ConfigError
from evoforge.kb import KnowledgeBase

log = logging.getLogger(__name__)

BACKENDS = ("triton", "c")
#: operand index expressions per template kind and backend (``{t}`` is the tensor's name)
_INDEX: dict[tuple[str, str], dict[str, str]] = {
    ("elementwise", "triton"): {
        "full": "tl.load({t}_ptr + offs, mask=m, other=1.0)",
        "row": "tl.load({t}_ptr + cols, mask=m, other=1.0)",
        "tensor_scalar": "tl.load({t}_ptr)",
    },
    ("elementwise", "c"): {"full": "{t}[i]", "row": "{t}[c]", "tensor_scalar": "{t}[0]"},
    ("row_reduction", "triton"): {
        "full": "tl.load({t}_ptr + row_off + cols, mask=m, other=1.0)",
        "row": "tl.load({t}_ptr + cols, mask=m, other=1.0)",
        "tensor_scalar": "tl.load({t}_ptr)",
    },
    ("row_reduction", "c"): {"full": "{t}[r * n + c]", "row": "{t}[c]", "tensor_scalar": "{t}[0]"},
    ("gemm_epilogue", "triton"): {
        "full": "tl.load({t}_ptr + rm[:, None].to(tl.int64) * N + rn[None, :], mask=mask, other=1.0)",
        "row": "tl.load({t}_ptr + rn[None, :], mask=rn[None, :] < N, other=1.0)",
        "tensor_scalar": "tl.load({t}_ptr)",
    },
    ("gemm_epilogue", "c"): {"full": "{t}[i * N + j]", "row": "{t}[j]", "tensor_scalar": "{t}[0]"},
    ("conv2d_epilogue", "c"): {
        "full": "{t}[(n * M + i) * P + j]",
        "row": "{t}[j % OW]",
        "channel": "{t}[i]",
        "tensor_scalar": "{t}[0]",
    },
    ("pool2d", "c"): {"channel": "{t}[c]", "tensor_scalar": "{t}[0]"},
    ("strided_reduction", "c"): {"tensor_scalar": "{t}[0]"},
}
#: the templates whose tile sizes follow the problem's shape (``shaped``)
SHAPED = ("gemm_epilogue", "conv2d_epilogue", "strided_reduction")
#: per-row scalars: a reduction's epilogue sees only scalar operands
_SCALAR_ONLY = {"tensor_scalar": "tl.load({t}_ptr)"}


class OfflineKernelProposer:
    name = "offline"

    def __init__(
        self,
        knowledge: KnowledgeBase | None = None,
        backends: Sequence[str] = BACKENDS,
        templates: Sequence[KernelTemplate] | None = None,
    ) -> None:
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            raise ConfigError(
                f"unknown kernel backend(s) {', '.join(unknown)}; valid: {', '.join(BACKENDS)}",
                hint="offline kernel templates exist for: " + ", ".join(BACKENDS),
            )
        self.knowledge = knowledge
        self.backends = tuple(backends)
        pool = tuple(templates) if templates is not None else load_templates()
        self.templates = tuple(t for t in pool if t.backend in self.backends)
        self._offered: set[str] = set()
        self._said: set[str] = set()

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        if request.target.kind is not TargetKind.KERNEL or request.count <= 0:
            return []
        summary = request.target.kernel_summary or {}
        patterns = [p for p in summary.get("patterns") or () if isinstance(p, dict)]
        if not patterns:
            self._explain(f"no template applies: {summary.get('no_pattern') or 'no recognised pattern'}")
            return []
        pattern = patterns[0]
        allowed = summary.get("backends")
        of_kind = [t for t in self.templates if t.pattern == pattern.get("kind")]
        matching = [t for t in of_kind if allowed is None or t.backend in allowed]
        if not matching:
            have = sorted({t.backend for t in of_kind})
            self._explain(
                f"no template for the {pattern.get('kind')} pattern in backend(s) {', '.join(allowed or [])}"
                + (f" (templates exist for {', '.join(have)}: ask for them with --backend)" if have else "")
            )
            return []
        rng = random.Random(request.seed)
        seen = {
            normalise_source(request.parent_source, TargetKind.KERNEL),
            *self._offered,
        }
        proposals: list[Proposal] = []
        for template, params, note in self._drafts(request, pattern, matching, rng):
            if len(proposals) >= request.count:
                break
            try:
                source = instantiate(template, pattern, params, request.target.source, summary)
            except Unsupported as exc:
                log.info("offline kernel proposer: %s cannot express the pattern: %s", template.id, exc)
                continue
            key = normalise_source(source, TargetKind.KERNEL)
            if key in seen:
                continue
            seen.add(key)
            self._offered.add(key)
            proposals.append(
                Proposal(source=source, origin=f"offline:{template.id}", note=note, rule=template.id)
            )
        log.debug("offline kernel proposer: %d proposals for %s", len(proposals), pattern.get("kind"))
        return proposals

    def _explain(self, why: str) -> None:
        """Say once per proposer why it has nothing to offer (a run shows it on stderr)."""
        if why not in self._said:
            self._said.add(why)
            log.warning("offline kernel proposer: %s", why)

    # -- what to try -------------------------------------------------------------------------------

    def _drafts(
        self,
        request: ProposalRequest,
        pattern: dict[str, Any],
        matching: list[KernelTemplate],
        rng: random.Random,
    ) -> Iterator[tuple[KernelTemplate, dict[str, Any], str]]:
        header = parse_header(request.parent_source)
        parent = next((t for t in matching if header is not None and t.id == header.template), None)
        if parent is not None and header is not None:
            base = {**defaults(parent, pattern), **header.params}
            yield from ((t, p, n) for t, p, n in _mutations(parent, base, rng) if not _spills(t, p))
        what = describe(pattern)
        for template in matching:  # each backend's default instance
            params = defaults(template, pattern)
            yield template, params, f"{what} as {template.title.lower()} ({_show(params)})."
        for template in matching:  # the next-best tile sizes for the shape
            for params in shaped(template, pattern)[1:]:
                yield template, params, f"{what} as {template.title.lower()} ({_show(params)})."
        for _ in range(8):  # then varied parameters, backends in turn
            for template in matching:
                params = {p.name: rng.choice(p.values) for p in template.params}
                if _spills(template, params):
                    continue
                yield template, params, f"{what} as {template.title.lower()} ({_show(params)})."


def _mutations(
    template: KernelTemplate, base: dict[str, Any], rng: random.Random
) -> Iterator[tuple[KernelTemplate, dict[str, Any], str]]:
    """Neighbouring parameter values: single steps (shuffled), then random pairs of steps."""
    steps: list[tuple[str, Any]] = []
    for param in template.params:
        values = list(param.values)
        current = base.get(param.name)
        if current in values:
            i = values.index(current)
            steps.extend((param.name, values[j]) for j in (i - 1, i + 1) if 0 <= j < len(values))
        else:
            steps.append((param.name, values[len(values) // 2]))
    rng.shuffle(steps)
    pairs = [(a, b) for a, b in itertools.combinations(steps, 2) if a[0] != b[0]]
    rng.shuffle(pairs)
    for group in [*[(s,) for s in steps], *pairs[:8]]:
        params = dict(base)
        params.update(dict(group))
        change = ", ".join(f"{name} {base.get(name)}→{value}" for name, value in group)
        yield template, params, f"Re-tuned the launch parameters of {template.id}: {change}."


def _spills(template: KernelTemplate, params: dict[str, Any]) -> bool:
    """A C micro-kernel whose MR × NV accumulator tile does not fit the vector registers here."""
    mr, nv = params.get("MR"), params.get("NV")
    return template.backend == "c" and isinstance(mr, int) and isinstance(nv, int) and not tiling.fits(mr, nv)


def _show(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def describe(pattern: dict[str, Any]) -> str:
    kind = pattern.get("kind")
    if kind == "elementwise":
        ops = [str(o.get("op")) for o in pattern.get("ops", [])]
        return f"Fused the elementwise chain {'→'.join(ops)}"
    if kind == "row_reduction":
        return f"Computed the row-wise {pattern.get('op')} in one kernel"
    epilogue = [str(o.get("op")) for o in pattern.get("epilogue", [])]
    tail = f" with the {'→'.join(epilogue)} epilogue fused" if epilogue else ""
    if kind == "conv2d_epilogue":
        size = "×".join(str(k) for k in pattern.get("kernel", []))
        return f"Wrote the {size} convolution as an implicit GEMM{tail}"
    if kind == "pool2d":
        return f"Wrote the {pattern.get('op')}-pooling in one pass{tail}"
    if kind == "strided_reduction":
        op, dim = pattern.get("op"), pattern.get("dim")
        return f"Computed the {op} over dim {dim} with the inner dimension vectorised"
    return f"Wrote the {pattern.get('in_features')}→{pattern.get('out_features')} GEMM{tail}"


def shaped(template: KernelTemplate, pattern: dict[str, Any]) -> list[dict[str, Any]]:
    """Tile sizes for the pattern's shape, best first (``tiling``), for the C GEMM, conv and strided
    reduction templates; ``[]`` for the other templates or when the pattern does not give the shape."""
    if template.backend != "c" or template.pattern not in SHAPED:
        return []
    space = {p.name: p.values for p in template.params}
    try:
        shape = [int(d) for d in pattern.get("shape") or ()]
        if template.pattern == "strided_reduction":
            dim = int(pattern["dim"]) % len(shape)
            rereads = pattern.get("op") in ("rmsnorm", "softmax")
            chunks = tiling.strided_chunks(math.prod(shape[dim + 1 :]), shape[dim], rereads, space["CHUNK"])
            rest = {p.name: p.default for p in template.params if p.name != "CHUNK"}
            return [{**rest, "CHUNK": chunk} for chunk in chunks]
        if template.pattern == "gemm_epilogue":
            k, n = int(pattern["in_features"]), int(pattern["out_features"])
            return tiling.gemm_params(math.prod(shape[:-1]) if shape else 1, n, k, space)
        kh, kw = (int(v) for v in pattern["kernel"])
        (sh, sw), (ph, pw), (dh, dw) = (
            tuple(int(v) for v in pattern[f]) for f in ("stride", "padding", "dilation")
        )
        oh = (shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        k = int(pattern["in_channels"]) * kh * kw
        return tiling.conv_params(int(pattern["out_channels"]), max(oh * ow, 1), k, space)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return []


def defaults(template: KernelTemplate, pattern: dict[str, Any]) -> dict[str, Any]:
    """The template's default parameters; ``"auto"`` block sizes follow the row length, or for the C
    GEMM and conv templates the shape and this machine's caches (``tiling``)."""
    out: dict[str, Any] = {}
    shape = pattern.get("shape") or [1]
    tiles = shaped(template, pattern)
    for param in template.params:
        value = param.default
        if value == "auto" and tiles and param.name in tiles[0]:
            value = tiles[0][param.name]
        elif value == "auto":
            width = 1
            for dim in shape[-int(pattern.get("row_dims", 1)) :]:
                width *= int(dim)
            fitting = [v for v in param.values if isinstance(v, int) and v >= width]
            value = fitting[0] if fitting else param.values[-1]
        out[param.name] = value
    return out


def instantiate(
    template: KernelTemplate,
    pattern: dict[str, Any],
    params: dict[str, Any],
    problem_source: str,
    summary: dict[str, Any],
) -> str:
    """The complete candidate file of ``template`` for ``pattern`` with ``params``."""
    known = {p.name: p for p in template.params}
    if set(params) != set(known) or any(params[n] not in known[n].values for n in known):
        raise Unsupported(f"parameters {params} do not fit {template.id}")
    placeholders = [n["name"] for n in summary.get("nodes") or () if n.get("op") == "placeholder"]
    shell = model_shell(problem_source, placeholders)
    tensors = TensorArgs(inputs=shell.inputs)
    backend, kind = template.backend, template.pattern
    index = _INDEX[(kind, backend)]
    primary = int(pattern.get("input", 0))
    if primary >= len(shell.inputs):
        raise Unsupported("the primary input is not a forward parameter")
    op = str(pattern.get("op", kind))
    context: dict[str, Any] = {
        "header": header_line(template.id, op if kind != "elementwise" else "elementwise", params),
        "title": template.title,
        "template_id": template.id,
        "backend": backend,
        "preamble": shell.preamble,
        "init": shell.init,
        "forward_params": shell.forward_params,
        "x": shell.inputs[primary],
        "p": params,
        "op": op,
    }
    if kind == "elementwise":
        context["ops"] = op_lines(pattern["ops"], backend, index, tensors)
        context["needs_cols"] = any(o.get("operand", {}).get("kind") == "row" for o in pattern["ops"])
    elif kind == "row_reduction":
        if op not in ("softmax", "log_softmax", "layernorm", "rmsnorm", "sum", "mean", "max"):
            raise Unsupported(f"row reduction {op}")
        weight, bias = pattern.get("weight"), pattern.get("bias")
        context["weight"] = tensors.add(weight) if weight else None
        context["bias"] = tensors.add(bias) if bias else None
        context["eps"] = (c_float if backend == "c" else py_float)(float(pattern.get("eps", 0.0)))
        context["row_dims"] = int(pattern.get("row_dims", 1))
        context["keepdim"] = bool(pattern.get("keepdim", False))
        context["prologue"] = op_lines(pattern.get("prologue", []), backend, index, tensors)
        scalar_only = op in ("sum", "mean", "max")
        epilogue_index = {"tensor_scalar": index["tensor_scalar"]} if scalar_only else index
        context["epilogue"] = op_lines(pattern.get("epilogue", []), backend, epilogue_index, tensors)
        if backend == "c":
            context["eps"] = repr(float(pattern.get("eps", 0.0)))  # added to a double
    elif kind == "gemm_epilogue":
        weight = pattern.get("weight")
        if not isinstance(weight, dict):
            raise Unsupported("the GEMM weight is unknown")
        context["weight"] = tensors.python(weight)
        context["layout"] = pattern.get("layout", "nk")
        bias = pattern.get("bias_source")
        context["bias"] = tensors.add(bias) if bias else None
        context["epilogue"] = op_lines(pattern.get("epilogue", []), backend, index, tensors)
    elif kind == "conv2d_epilogue":
        context["weight"] = tensors.python(pattern["weight"])
        bias = pattern.get("bias_source")
        context["bias"] = tensors.add(bias) if bias else None
        context.update({k: pattern[k] for k in ("stride", "padding", "dilation")})
        context["epilogue"] = op_lines(pattern.get("epilogue", []), backend, index, tensors)
    elif kind == "pool2d":
        context.update({k: pattern[k] for k in ("kernel", "stride", "padding", "dilation")})
        context["count_include_pad"] = bool(pattern.get("count_include_pad", True))
        context["epilogue"] = op_lines(pattern.get("epilogue", []), backend, index, tensors)
    elif kind == "strided_reduction":
        context.update(
            dim=int(pattern["dim"]),
            keepdim=bool(pattern.get("keepdim", False)),
            eps=repr(float(pattern.get("eps", 0.0))),
        )
        context["prologue"] = op_lines(pattern.get("prologue", []), backend, index, tensors)
        context["epilogue"] = op_lines(pattern.get("epilogue", []), backend, index, tensors)
    else:
        raise Unsupported(f"pattern {kind}")
    context["tensors"] = tensors.names
    context["tensor_exprs"] = tensors.exprs
    return template.render(context)
