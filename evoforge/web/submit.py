"""A submission (pasted or uploaded target plus options) checked and turned into a queued job.

Two kinds of target: a Verilog design (``rtl``) or a KernelBench problem (``kernel``: a ``.py``
defining ``Model``, ``get_inputs`` and ``get_init_inputs``); ``auto`` tells them apart by the file
name, then by the text. Only what is cheap is checked here — sizes, the choices, the names the
user typed, escaped identifiers in module and port declarations — and the job is stored unloaded:
parsing, elaborating and (for kernels) probing the target run in the worker, in sandboxed children,
never in the request (a 1 KB macro bomb or a slow ``Model`` must not hold a server thread). A
target that does not load fails its job, and the job page shows the loader's message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from evoforge.config import Settings
from evoforge.domain import DEFAULT_KERNEL_OBJECTIVES, DEFAULT_RTL_OBJECTIVES, Objective, TargetKind
from evoforge.errors import BadInputError
from evoforge.search import jobs, proposing
from evoforge.search.stored import ESCAPED_HINT, check_identifier
from evoforge.store.engine import Store

#: the objectives an RTL job may name (short forms; the metric names are accepted too)
RTL_OBJECTIVE_NAMES = ("area", "delay", "cells", "depth")
PROPOSERS = ("auto", "offline", "llm", "mixed")
KINDS = ("auto", "rtl", "kernel")
RTL_SUFFIXES = (".v", ".sv", ".vh", ".svh")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_KERNEL_MODEL = re.compile(r"^class\s+Model\b", re.M)
_KERNEL_INPUTS = re.compile(r"^def\s+get_inputs\b", re.M)
_COMMENT = re.compile(r"//[^\n]*|/\*.*?(?:\*/|\Z)", re.S)  # an unclosed /* runs to the end
_DECLARATION = re.compile(r"\b(?:macromodule|module|input|output|inout)\b")
_ESCAPED = re.compile(r"\\\S")


def escaped_declaration_line(text: str) -> int | None:
    """The line of the first module or port declaration naming something with an escaped
    identifier (``\\name``), or None. Linear in the text: each statement is scanned once."""
    code = _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    offset = 0
    for statement in code.split(";"):
        keyword = _DECLARATION.search(statement)
        if keyword is not None:
            escaped = _ESCAPED.search(statement, keyword.end())
            if escaped is not None:
                return code.count("\n", 0, offset + escaped.start()) + 1
        offset += len(statement) + 1
    return None


@dataclass(frozen=True)
class Submission:
    kind: str = "auto"
    source: str = ""
    filename: str = "design.v"
    top: str | None = None
    clock: str | None = None
    reset: str | None = None
    objective: str = "area,delay"
    budget: int = 20
    proposer: str = "auto"
    liberty: str = "generic"


def parse_objectives(text: str) -> tuple[Objective, ...]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    out = []
    for name in names:
        objective = Objective.named(name)
        if objective is None or objective is Objective.RUNTIME:
            raise BadInputError(
                f"unknown objective {name!r}", hint=f"choose from {', '.join(RTL_OBJECTIVE_NAMES)}"
            )
        out.append(objective)
    return tuple(out) or DEFAULT_RTL_OBJECTIVES


def parse_kernel_objectives(text: str) -> tuple[Objective, ...]:
    """Kernel jobs minimise ``runtime_ms``; the form's RTL default (area,delay) means "the default"."""
    names = {n.strip() for n in (text or "").split(",") if n.strip()}
    allowed = {"area", "delay", "runtime", *(o.value for o in (*DEFAULT_RTL_OBJECTIVES, Objective.RUNTIME))}
    if names <= allowed:
        return DEFAULT_KERNEL_OBJECTIVES
    raise BadInputError(
        f"kernel targets are optimised for runtime, not {', '.join(sorted(names - allowed))}",
        hint="use objective=runtime",
    )


def detect_kind(form: Submission) -> str:
    """``rtl`` or ``kernel``: as asked, else by the file's suffix, else by what the text defines."""
    if form.kind != "auto":
        return form.kind
    suffix = Path(form.filename or "").suffix.lower()
    if suffix == ".py":
        return "kernel"
    if suffix in RTL_SUFFIXES and form.filename != Submission.filename:
        return "rtl"
    if _KERNEL_MODEL.search(form.source) and _KERNEL_INPUTS.search(form.source):
        return "kernel"
    return "rtl"


def liberty_choices(settings: Settings) -> list[str]:
    return ["generic", *sorted(settings.web.liberties)]


def submit(store: Store, settings: Settings, form: Submission) -> int:
    """Check ``form`` cheaply, store a ``queued`` job (its target loaded by the worker), return its id.

    Nothing is stored on bad input. No tool runs here and nothing here grows with the design's
    content beyond a few regular-expression scans of at most ``max_upload_bytes``.
    """
    kind = detect_kind(form)
    if kind not in ("rtl", "kernel"):
        raise BadInputError(f"unknown target kind {form.kind!r}", hint=f"use one of {', '.join(KINDS)}")
    if not form.source.strip():
        raise BadInputError(
            "no design given",
            hint="paste Verilog source or a KernelBench problem, or upload a .v / .sv / .py file",
        )
    if len(form.source.encode()) > settings.web.max_upload_bytes:
        raise BadInputError(
            f"the design is larger than {settings.web.max_upload_bytes} bytes",
            hint="submit the module to optimise and what it instantiates only",
        )
    if not 1 <= form.budget <= settings.web.max_budget:
        raise BadInputError(f"budget must be between 1 and {settings.web.max_budget}")
    if form.proposer not in PROPOSERS:
        raise BadInputError(f"unknown proposer {form.proposer!r}", hint=f"use one of {', '.join(PROPOSERS)}")
    if form.liberty not in liberty_choices(settings):
        raise BadInputError(
            f"unknown liberty {form.liberty!r}", hint=f"use one of {', '.join(liberty_choices(settings))}"
        )
    if "\x00" in form.source:
        raise BadInputError("the design contains NUL characters", hint="submit a text file")
    if kind == "kernel":
        objectives = parse_kernel_objectives(form.objective)
        target = jobs.UnloadedTarget(TargetKind.KERNEL, _kernel_name(form), form.source, "problem.py")
    else:
        objectives = parse_objectives(form.objective)
        target = _rtl_submission(form)
    rtl = settings.rtl.model_copy(
        update={"liberty": None if form.liberty == "generic" else settings.web.liberties[form.liberty]}
    )
    search = settings.search.model_copy(
        update={"budget": form.budget, "proposer": None if form.proposer == "auto" else form.proposer}
    )
    job_settings = proposing.choose_proposer(settings.model_copy(update={"rtl": rtl, "search": search}))
    return jobs.create_unloaded_job(store, target, job_settings, objectives)


def _rtl_submission(form: Submission) -> jobs.UnloadedTarget:
    """The RTL submission's names checked: plain identifiers only (they become file names, Tcl)."""
    names = {"top module": form.top, "clock": form.clock, "reset": form.reset}
    for what, name in names.items():
        if name and name != "none":
            check_identifier(name.strip(), what)
    line = escaped_declaration_line(form.source)
    if line is not None:
        raise BadInputError(
            f"line {line}: a module or port is named by an escaped identifier", hint=ESCAPED_HINT
        )
    filename = _SAFE_NAME.sub("_", Path(form.filename or "design.v").name) or "design.v"
    stem = Path(filename).stem.strip("._") or "design"
    name = (form.top or "").strip() or (stem if form.filename != Submission.filename else "design")
    return jobs.UnloadedTarget(
        TargetKind.RTL,
        name,
        form.source,
        filename,
        top=(form.top or "").strip() or None,
        clock=(form.clock or "").strip() or None,
        reset=(form.reset or "").strip() or None,
    )


def _kernel_name(form: Submission) -> str:
    stem = Path(_SAFE_NAME.sub("_", Path(form.filename or "").name)).stem.strip("._")
    return stem if stem and form.filename != Submission.filename else "problem"
