"""Test helpers for the RTL tests: ports, an ``RtlContext`` around two sources, a fast real cascade."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evoforge.config import RtlSettings
from evoforge.domain import Port, RtlInterface, SourceFile, Target, TargetKind
from evoforge.verifiers.rtl.context import RtlContext


def inp(name: str, width: int = 1) -> Port:
    return Port(name, "input", width)


def out(name: str, width: int = 1) -> Port:
    return Port(name, "output", width)


def make_ctx(
    tmp_path: Path,
    original: str,
    candidate: str,
    ports: tuple[Port, ...],
    *,
    top: str = "top",
    clock: str | None = None,
    reset: str | None = None,
    active_low: bool = False,
    **settings: float,
) -> RtlContext:
    """The context of checking ``candidate`` against ``original`` (module ``top``, these ports)."""
    interface = RtlInterface(top=top, ports=ports, clock=clock, reset=reset, reset_active_low=active_low)
    target = Target(kind=TargetKind.RTL, name=top, sources=(SourceFile("orig.v", original),), rtl=interface)
    return RtlContext(
        target=target,
        candidate_source=candidate,
        workdir=tmp_path,
        settings=RtlSettings(**settings),  # type: ignore[arg-type]
        liberty_path=tmp_path / "none.lib",
    )


def fast_cascade(target: Target, tmp_path: Path) -> Any:
    """The real RTL verifier on ``target`` with short simulations, its baseline already taken."""
    from evoforge.tools.liberty import prepare_liberty
    from evoforge.verifiers.rtl.cascade import RtlVerifier

    verifier = RtlVerifier(
        target=target,
        settings=RtlSettings(sim_cycles=300, sim_seeds=1, probe_cycles=100, sim_timeout_s=20),
        liberty=prepare_liberty(None, tmp_path / "cache"),
        work_root=tmp_path / "runs",
    )
    verifier.baseline()
    return verifier
