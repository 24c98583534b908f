"""A submission (pasted or uploaded design plus options) checked and turned into a queued job.

The design is loaded as a target before anything is stored, so a file that does not parse, has no
clear top module or names a missing port is refused with the loader's message and no job exists.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evoforge.config import Settings
from evoforge.domain import DEFAULT_RTL_OBJECTIVES, JobStatus, Objective
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
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Submission:
    kind: str = "rtl"
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


def liberty_choices(settings: Settings) -> list[str]:
    return ["generic", *sorted(settings.web.liberties)]


def submit(store: Store, settings: Settings, form: Submission) -> int:
    """Validate ``form``, store a ``queued`` job, return its id (nothing is stored on bad input)."""
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    if form.kind == "kernel":
        raise BadInputError("kernel targets are not supported yet", hint="submit a Verilog design (kind=rtl)")
    if form.kind != "rtl":
        raise BadInputError(f"unknown target kind {form.kind!r}", hint="use kind=rtl")
    if not form.source.strip():
        raise BadInputError("no design given", hint="paste Verilog source or upload a .v / .sv file")
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
    objectives = parse_objectives(form.objective)
    name = _SAFE_NAME.sub("_", Path(form.filename or "design.v").name) or "design.v"
    if Path(name).suffix.lower() not in (".v", ".sv", ".vh", ".svh"):
        name = Path(name).stem + ".v"
    with tempfile.TemporaryDirectory(prefix="evoforge-submit-", dir=settings.work_dir()) as folder:
        design = Path(folder) / name
        design.write_text(form.source)
        target = load_rtl_target(
            [design],
            RtlTargetOptions(top=form.top or None, clock=form.clock or None, reset=form.reset or None),
            workdir=Path(folder),
        )
    rtl = settings.rtl.model_copy(
        update={"liberty": None if form.liberty == "generic" else settings.web.liberties[form.liberty]}
    )
    search = settings.search.model_copy(
        update={"budget": form.budget, "proposer": None if form.proposer == "auto" else form.proposer}
    )
    job_settings = jobs.choose_proposer(settings.model_copy(update={"rtl": rtl, "search": search}))
    return jobs.create_job(store, target, job_settings, objectives, status=JobStatus.QUEUED)
