"""What every RTL stage receives: the target, the candidate, a scratch directory and the settings.

Stages are functions ``(RtlContext) -> StageResult``. A stage may leave artifacts for later stages
in ``ctx.artifacts`` (e.g. ``"netlist"`` from synthesis for timing) and read values computed once
per target from ``ctx.reference`` (e.g. the original's probe trace), which the cascade shares
across candidates of one target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoforge.config import RtlSettings
from evoforge.domain import RtlInterface, Target
from evoforge.verifiers.rtl.source_policy import elaborate_original


@dataclass
class RtlContext:
    target: Target
    candidate_source: str  # after the parse stage: the elaborated text every tool reads
    workdir: Path
    settings: RtlSettings
    liberty_path: Path  # a filtered liberty file, ready for yosys and OpenSTA
    reference: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None  # where tool artefacts shared by candidates live (Verilator's runtime)

    @property
    def interface(self) -> RtlInterface:
        assert self.target.rtl is not None, "RTL stages need an RTL target"
        return self.target.rtl

    @property
    def top(self) -> str:
        return self.interface.top

    @property
    def original_source(self) -> str:
        """The original as every tool reads it: its elaborated text (see ``source_policy``)."""
        text = self.reference.get("original_text")
        if not isinstance(text, str):
            text = self.reference["original_text"] = elaborate_original(self.target.source, self.workdir)
        return text

    def write_candidate(self) -> Path:
        path = self.workdir / "candidate.v"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            path.write_text(self.candidate_source)
        return path

    def write_original(self) -> Path:
        path = self.workdir / "original.v"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            path.write_text(self.original_source)
        return path
