"""A stored job turned back into what the loop needs: the target rebuilt from the stored source.

Jobs submitted through the web are stored *unloaded* (``target_meta["loaded"] is False``): the
submit request only checks what is cheap, and the worker loads (and for kernels probes) the target
here, in its own time and sandboxed children; the job row then gets the target's real name,
fingerprint and interface. A target that does not load fails the job with the loader's message,
which the job page shows.

RTL tops and ports must be plain Verilog identifiers: names are used as file names and in the Tcl of
OpenSTA, so an escaped identifier (``\\<script>``, ``\\a/../b``) is refused with a clear message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoforge.config import Settings
from evoforge.domain import JobStatus, Objective, Target, TargetKind
from evoforge.errors import ConfigError, TargetError
from evoforge.store import repository
from evoforge.store.engine import Store

#: what a top, port, clock or reset name may be (a simple Verilog identifier)
SIMPLE_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
ESCAPED_HINT = (
    "rename the module and its ports to plain identifiers (letters, digits, _ and $, not starting "
    "with a digit); escaped identifiers (\\name) are not supported"
)


def check_identifier(name: str, what: str) -> None:
    """Refuse ``name`` unless it is a plain identifier (``TargetError`` naming ``what``)."""
    if not SIMPLE_IDENTIFIER.fullmatch(name):
        raise TargetError(f"the {what} name {name!r} is not a plain Verilog identifier", hint=ESCAPED_HINT)


def check_rtl_names(target: Target) -> None:
    """The loaded RTL target's top and port names are all plain identifiers."""
    if target.rtl is None:
        return
    check_identifier(target.rtl.top, "top module")
    for port in target.rtl.ports:
        check_identifier(port.name, f"port of {target.rtl.top}")


@dataclass(frozen=True)
class StoredJob:
    """A job row turned back into what the loop needs."""

    job_id: int
    target: Target
    settings: Settings
    objectives: tuple[Objective, ...]


def refuse_if_succeeded(store: Store, job_id: int) -> None:
    with store.transaction() as session:
        if repository.get_job(session, job_id).status == JobStatus.SUCCEEDED.value:
            raise ConfigError(
                f"job {job_id} has already succeeded", hint=f"see it with: evoforge show {job_id}"
            )


def load_stored_job(store: Store, job_id: int, settings: Settings, *, budget: int | None = None) -> StoredJob:
    """The target (rebuilt from the stored source) and the settings the job was created with."""
    refuse_if_succeeded(store, job_id)
    with store.transaction() as session:
        job = repository.get_job(session, job_id)
        kind, name = job.kind, job.target_name
        meta, options, source = dict(job.target_meta), dict(job.options), job.target_source
        if budget is not None:
            job.options = {**job.options, "budget": budget}
            options["budget"] = budget
    folder = settings.work_dir() / f"job-{job_id}"
    folder.mkdir(parents=True, exist_ok=True)
    kernel = settings.kernel.model_copy(update=options.get("kernel") or {})
    loaded = meta.get("loaded", True)
    if kind == TargetKind.KERNEL.value:
        from evoforge.verifiers.kernel.target import kernel_target_from_source

        target = kernel_target_from_source(source, name, kernel, work_dir=folder)
    else:
        target = _load_rtl(source, meta, options, folder)
    if not loaded:
        _record_loaded(store, job_id, target)
    rtl = settings.rtl.model_copy(
        update={
            "min_assurance": options["min_assurance"],
            "liberty": Path(options["liberty"]) if options.get("liberty") else None,
            "clock_period_ns": options.get("clock_period_ns", settings.rtl.clock_period_ns),
        }
    )
    search = settings.search.model_copy(
        update={k: options[k] for k in ("budget", "seed", "workers", "proposer") if k in options}
    )
    llm = settings.llm.model_copy(
        update={
            "model": settings.llm.model or options.get("model"),
            "planner_model": settings.llm.planner_model or options.get("planner_model"),
        }
    )
    objectives = tuple(Objective(o) for o in options["objectives"])
    merged = settings.model_copy(update={"rtl": rtl, "kernel": kernel, "search": search, "llm": llm})
    return StoredJob(job_id, target, merged, objectives)


def _load_rtl(source: str, meta: dict[str, Any], options: dict[str, Any], folder: Path) -> Target:
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    for key, what in (("top", "top module"), ("clock", "clock"), ("reset", "reset")):
        if meta.get(key) and meta[key] != "none":
            for name in str(meta[key]).split(","):  # --clock/--reset take comma-separated lists
                check_identifier(name.strip(), what)
    for signal in [*meta.get("clocks", ()), *meta.get("resets", ())]:
        check_identifier(str(signal["port"]), "clock or reset")
    loaded = meta.get("loaded", True)
    # a name from the design becomes a file name only once it is known to be a plain identifier
    top = str(meta.get("top") or "")
    design = folder / (f"{top}.v" if loaded and SIMPLE_IDENTIFIER.fullmatch(top) else "design.v")
    design.write_text(source)
    user_test = Path(options["user_test"]) if options.get("user_test") else None
    if loaded and "clocks" in meta:  # every clock and reset it was loaded with, each reset's polarity
        choices = RtlTargetOptions(
            top=meta.get("top") or None,
            clock=",".join(c["port"] for c in meta["clocks"]) or "none",
            reset=",".join(r["port"] for r in meta["resets"]) or "none",
            reset_polarities={r["port"]: bool(r["active_low"]) for r in meta["resets"]},
            user_test=user_test,
        )
    else:
        choices = RtlTargetOptions(
            top=meta.get("top") or None,
            # a loaded job stored the ports it found ("none" when there was none); an unloaded one
            # has only what the user asked for (None: find it)
            clock=(meta.get("clock") or "none") if loaded else (meta.get("clock") or None),
            reset=(meta.get("reset") or "none") if loaded else (meta.get("reset") or None),
            reset_active_low=meta.get("reset_active_low"),
            user_test=user_test,
        )
    target = load_rtl_target([design], choices, workdir=folder)
    check_rtl_names(target)
    return target


def _record_loaded(store: Store, job_id: int, target: Target) -> None:
    """Put the loaded target's name, fingerprint and interface on the job row."""
    from evoforge.search.jobs import target_meta

    with store.transaction() as session:
        job = repository.get_job(session, job_id)
        job.target_name = target.name
        job.target_fingerprint = target.fingerprint
        job.target_source = target.source
        job.target_meta = target_meta(target)
        if target.kind is TargetKind.KERNEL:  # the sizes the size check chose, pinned and shown
            from evoforge.verifiers.kernel.target import scaling_of

            scaling = scaling_of(target)
            kernel = {**(job.options.get("kernel") or {}), "sizes": dict(scaling.get("values") or {}) or None}
            note = {k: scaling.get(k) for k in ("note", "constants", "mode")} if scaling else None
            job.options = {**job.options, "kernel": kernel, "scaling": note}
