"""What crosses a process boundary, as blobs: files of a job, and the evaluation spec of a target.

Nothing crosses as a local path. A file a job depends on (the liberty, the user's cocotb test) is
stored as a *file reference* ``{"blob": sha256, "name": "file name"}`` in the job's options and
turned back into a local file (``local_file``) wherever the job runs; the name is kept because it
matters (cocotb imports a test module by its file name, a ``.gz`` liberty is read compressed).

The *evaluation spec* is everything an evaluation task needs to rebuild the verifier of a job on
another machine: the loaded target (sources, interface, the kernel reference's summary) and the
job's verifier settings, as one canonical JSON blob. Its digest names the target in a task.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoforge.config import Settings
from evoforge.domain import ClockSignal, Port, ResetSignal, RtlInterface, SourceFile, Target, TargetKind
from evoforge.errors import BadInputError, ConfigError
from evoforge.store.blobs import BlobStore, materialise

SPEC_VERSION = 1
#: where fetched blobs are kept on a machine, under its cache directory
BLOB_FOLDER = "blobs"


def file_ref(blobs: BlobStore, path: Path | str) -> dict[str, str]:
    """Store the file's bytes; the reference that names them in a job's options."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the file") from exc
    return {"blob": blobs.put(data), "name": path.name}


def local_file(blobs: BlobStore, ref: Any, cache_dir: Path) -> Path | None:
    """A file reference (or, from a job stored before blobs, a path) as a local file; None for none."""
    if ref is None or ref == "":
        return None
    if isinstance(ref, str):  # a job created by an older evoforge: the path on its machine
        path = Path(ref)
        if not path.is_file():
            raise ConfigError(
                f"the job refers to {ref}, which is not on this machine",
                hint="jobs created by this evoforge carry their files in the store; create the job again",
            )
        return path
    if (
        not isinstance(ref, dict)
        or not isinstance(ref.get("blob"), str)
        or not isinstance(ref.get("name"), str)
    ):
        raise BadInputError(f"malformed file reference {ref!r} in the job's options")
    return materialise(blobs, ref["blob"], cache_dir / BLOB_FOLDER, ref["name"])


# -- the evaluation spec ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationSpec:
    """A target and the verifier settings of its job, rebuilt from the store on any machine."""

    target: Target
    settings: Settings  # the receiving machine's settings with the job's rtl / kernel knobs


def put_evaluation_spec(blobs: BlobStore, target: Target, settings: Settings) -> str:
    """Store the spec of ``target`` under the job's ``settings``; its digest."""
    rtl = settings.rtl.model_dump(mode="json")
    if settings.rtl.liberty is not None:
        rtl["liberty"] = file_ref(blobs, settings.rtl.liberty)
    document = {
        "version": SPEC_VERSION,
        "target": _target_doc(blobs, target),
        "rtl": rtl,
        "kernel": settings.kernel.model_dump(mode="json"),
    }
    return blobs.put(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())


def load_evaluation_spec(blobs: BlobStore, digest: str, settings: Settings) -> EvaluationSpec:
    """The spec named ``digest``, its files fetched into this machine's cache directory."""
    try:
        document = json.loads(blobs.get(digest))
    except ValueError as exc:
        raise BadInputError(f"evaluation spec {digest[:16]}… is not JSON: {exc}") from exc
    if document.get("version") != SPEC_VERSION:
        raise ConfigError(
            f"evaluation spec {digest[:16]}… has version {document.get('version')!r}, this evoforge "
            f"reads {SPEC_VERSION}",
            hint="run the same evoforge version on the driver and every worker",
        )
    cache_dir = settings.cache_dir
    rtl = dict(document["rtl"])
    rtl["liberty"] = local_file(blobs, rtl.get("liberty"), cache_dir)
    merged = settings.model_copy(
        update={
            "rtl": settings.rtl.model_validate(rtl),
            "kernel": settings.kernel.model_validate(document["kernel"]),
        }
    )
    return EvaluationSpec(_target_from_doc(blobs, document["target"], cache_dir), merged)


def _target_doc(blobs: BlobStore, target: Target) -> dict[str, Any]:
    rtl = target.rtl
    return {
        "kind": target.kind.value,
        "name": target.name,
        "sources": [[s.name, s.text] for s in target.sources],
        "rtl": None if rtl is None else dataclasses.asdict(rtl),
        "user_test": file_ref(blobs, target.user_test) if target.user_test else None,
        "kernel_summary": target.kernel_summary,
    }


def _target_from_doc(blobs: BlobStore, doc: dict[str, Any], cache_dir: Path) -> Target:
    rtl = doc.get("rtl")
    interface = None
    if rtl is not None:
        interface = RtlInterface(
            top=rtl["top"],
            ports=tuple(Port(**p) for p in rtl["ports"]),
            clock=rtl["clock"],
            reset=rtl["reset"],
            reset_active_low=bool(rtl["reset_active_low"]),
            clocks=tuple(ClockSignal(**{**c, "edges": tuple(c["edges"])}) for c in rtl.get("clocks", ())),
            resets=tuple(ResetSignal(**r) for r in rtl.get("resets", ())),
            notes=tuple(rtl.get("notes", ())),
        )
    user_test = local_file(blobs, doc.get("user_test"), cache_dir)
    return Target(
        kind=TargetKind(doc["kind"]),
        name=doc["name"],
        sources=tuple(SourceFile(name, text) for name, text in doc["sources"]),
        rtl=interface,
        user_test=str(user_test) if user_test else None,
        kernel_summary=doc.get("kernel_summary"),
    )
