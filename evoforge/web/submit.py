"""A submission (pasted or uploaded target plus options) checked and turned into a queued job.

Two kinds of target: a Verilog design (``rtl``) or a KernelBench problem (``kernel``: a ``.py``
defining ``Model``, ``get_inputs`` and ``get_init_inputs``); ``auto`` tells them apart by the file
name, then by the text. The target is loaded before anything is stored, so a design that does not
parse, has no clear top module or names a missing port — or a problem that does not import, lacks
``get_inputs`` or whose ``Model`` fails on its own inputs — is refused with the loader's message
and no job exists.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evoforge.config import Settings
from evoforge.domain import DEFAULT_KERNEL_OBJECTIVES, DEFAULT_RTL_OBJECTIVES, JobStatus, Objective, Target
from evoforge.errors import BadInputError
from evoforge.search import jobs
from evoforge.store.engine import Store

OBJECTIVE_ALIASES = {
    "area": Objective.AREA,
    "delay": Objective.DELAY,
    "cells": Objective.CELLS,
    "depth": Objective.DEPTH,
}
PROPOSERS = ("auto", "offline", "llm", "mixed")
KINDS = ("auto", "rtl", "kernel")
RTL_SUFFIXES = (".v", ".sv", ".vh", ".svh")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_KERNEL_MODEL = re.compile(r"^class\s+Model\b", re.M)
_KERNEL_INPUTS = re.compile(r"^def\s+get_inputs\b", re.M)


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
        objective = OBJECTIVE_ALIASES.get(name) or next((o for o in Objective if o.value == name), None)
        if objective is None or objective is Objective.RUNTIME:
            raise BadInputError(
                f"unknown objective {name!r}", hint=f"choose from {', '.join(OBJECTIVE_ALIASES)}"
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
    """Validate ``form``, store a ``queued`` job, return its id (nothing is stored on bad input)."""
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
    if kind == "kernel":
        objectives = parse_kernel_objectives(form.objective)
        target = _kernel_target(settings, form)
    else:
        objectives = parse_objectives(form.objective)
        target = _rtl_target(settings, form)
    rtl = settings.rtl.model_copy(
        update={"liberty": None if form.liberty == "generic" else settings.web.liberties[form.liberty]}
    )
    search = settings.search.model_copy(
        update={"budget": form.budget, "proposer": None if form.proposer == "auto" else form.proposer}
    )
    job_settings = jobs.choose_proposer(settings.model_copy(update={"rtl": rtl, "search": search}))
    return jobs.create_job(store, target, job_settings, objectives, status=JobStatus.QUEUED)


def _rtl_target(settings: Settings, form: Submission) -> Target:
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    name = _SAFE_NAME.sub("_", Path(form.filename or "design.v").name) or "design.v"
    if Path(name).suffix.lower() not in RTL_SUFFIXES:
        name = Path(name).stem + ".v"
    with tempfile.TemporaryDirectory(prefix="evoforge-submit-", dir=settings.work_dir()) as folder:
        design = Path(folder) / name
        design.write_text(form.source)
        return load_rtl_target(
            [design],
            RtlTargetOptions(top=form.top or None, clock=form.clock or None, reset=form.reset or None),
            workdir=Path(folder),
        )


def _kernel_target(settings: Settings, form: Submission) -> Target:
    """The problem, checked in a sandboxed child (a ``TargetError`` — a 422 — says what is wrong)."""
    from evoforge.verifiers.kernel.target import kernel_target_from_source

    stem = Path(_SAFE_NAME.sub("_", Path(form.filename or "").name)).stem.strip("._")
    name = stem if stem and form.filename != Submission.filename else "problem"
    with tempfile.TemporaryDirectory(prefix="evoforge-submit-", dir=settings.work_dir()) as folder:
        return kernel_target_from_source(form.source, name, settings.kernel, work_dir=Path(folder))
