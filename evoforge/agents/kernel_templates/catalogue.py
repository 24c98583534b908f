"""The kernel templates of the knowledge base: loading, their front matter, and the instance header.

Templates are Jinja2 files under ``evoforge/kb/templates/kernel/``. Each starts with a Jinja comment
holding a JSON object — the front matter::

    {# {"id": "row_reduction.c", "pattern": "row_reduction", "backend": "c", "kb": "row_reduction",
        "title": "...", "params": {"BLOCK": {"values": [64, 128, 256], "default": 128}}} #}

``pattern`` is the ``kind`` of an fx-summary pattern, ``kb`` the knowledge-base rule the template
implements, ``params`` the tunable launch parameters with the values the search may try (a default
of ``"auto"`` is chosen from the problem's shape by the proposer). Every generated candidate starts
with a header line naming the template, the pattern's op and the parameters, so that a later round
can recognise its own instances and mutate their parameters::

    # evoforge-template: row_reduction.c softmax {"SCHEDULE": "static", "VEC": 8}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

import evoforge.kb
from evoforge.errors import KnowledgeBaseError

TEMPLATE_DIR = Path(evoforge.kb.__file__).resolve().parent / "templates" / "kernel"
HEADER_PREFIX = "# evoforge-template:"
_FRONT = re.compile(r"\A\s*\{#(.*?)#\}", re.S)
_HEADER = re.compile(r"^# evoforge-template:\s*(\S+)\s+(\S+)\s+(\{.*\})\s*$", re.M)


@dataclass(frozen=True)
class Param:
    name: str
    values: tuple[Any, ...]
    default: Any  # one of ``values`` or "auto"


@dataclass(frozen=True)
class KernelTemplate:
    id: str
    pattern: str  # "elementwise" | "row_reduction" | "gemm_epilogue"
    backend: str  # "triton" | "c"
    kb: str  # the knowledge-base rule id
    title: str
    params: tuple[Param, ...]
    path: Path

    def render(self, context: dict[str, Any]) -> str:
        return _environment().get_template(self.path.name).render(**context)


@dataclass(frozen=True)
class Header:
    template: str
    op: str
    params: dict[str, Any]


def header_line(template: str, op: str, params: dict[str, Any]) -> str:
    return f"{HEADER_PREFIX} {template} {op} {json.dumps(params, sort_keys=True)}"


def parse_header(source: str) -> Header | None:
    """The template header of a generated candidate, or None for any other source."""
    match = _HEADER.search(source)
    if match is None:
        return None
    try:
        params = json.loads(match.group(3))
    except json.JSONDecodeError:
        return None
    return Header(match.group(1), match.group(2), params) if isinstance(params, dict) else None


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _front_matter(path: Path) -> KernelTemplate:
    text = path.read_text(encoding="utf-8")
    match = _FRONT.match(text)
    if match is None:
        raise KnowledgeBaseError(f"{path}: no front matter (a leading {{# {{...json...}} #}} comment)")
    try:
        data = json.loads(match.group(1))
        params = tuple(
            Param(name, tuple(spec["values"]), spec.get("default", spec["values"][0]))
            for name, spec in data.get("params", {}).items()
        )
        template = KernelTemplate(
            id=str(data["id"]),
            pattern=str(data["pattern"]),
            backend=str(data["backend"]),
            kb=str(data["kb"]),
            title=str(data.get("title", data["id"])),
            params=params,
            path=path,
        )
    except (json.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
        raise KnowledgeBaseError(f"{path}: invalid template front matter: {exc}") from exc
    for param in params:
        if param.default != "auto" and param.default not in param.values:
            raise KnowledgeBaseError(f"{path}: {param.name} default {param.default!r} is not in its values")
    return template


@lru_cache(maxsize=4)
def load_templates(directory: Path = TEMPLATE_DIR) -> tuple[KernelTemplate, ...]:
    """Every ``*.j2`` template of ``directory`` with its front matter (sorted by id)."""
    if not directory.is_dir():
        raise KnowledgeBaseError(f"{directory}: no kernel template folder")
    templates = [_front_matter(p) for p in sorted(directory.glob("*.j2"))]
    ids = [t.id for t in templates]
    if len(set(ids)) != len(ids):
        raise KnowledgeBaseError(f"{directory}: duplicate template ids")
    return tuple(sorted(templates, key=lambda t: t.id))
