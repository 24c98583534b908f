"""Fixtures for the RTL rule tests: run one rule's proposals, prove them equal with yosys, measure them.

``rule_proposals(text, top, rule)`` runs the offline proposer with only that rule; ``yosys_equivalent``
builds a miter of the original and a proposal and runs ``sat -prove`` (combinational: a proof;
sequential: induction, or a bounded check of ``steps`` cycles from the all-zero state when induction
alone cannot see the invariant a rewrite relies on); ``yosys_metrics`` synthesises and reports cells,
``ltp`` depth and coarse-grain arithmetic cells.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from evoforge import domain
from evoforge.agents import Proposal, ProposalRequest
from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer
from evoforge.tools.yosys import Yosys


@dataclass(frozen=True)
class YosysMetrics:
    cells: int  # after full synthesis (generic gates)
    depth: int  # ltp -noff after synthesis
    arith: int  # $alu/$macc/$mul/… cells after coarse synthesis


def _propose(text: str, top: str, rule: str, count: int = 8, seed: int = 0) -> list[Proposal]:
    target = domain.Target(
        kind=domain.TargetKind.RTL, name=top, sources=(domain.SourceFile(f"{top}.v", text),)
    )
    request = ProposalRequest(
        target=target,
        parent_source=text,
        parent_metrics=domain.Metrics(),
        feedback={},
        count=count,
        seed=seed,
    )
    return OfflineRtlProposer([rule]).propose(request)


def _equivalent(gold: str, gate: str, top: str, cwd: Path, steps: int = 0) -> tuple[bool, str]:
    """Combinational (``steps == 0``): a SAT proof. Sequential: a bounded check of ``steps`` cycles."""
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "gold.v").write_text(gold)
    (cwd / "gate.v").write_text(gate)
    if steps:
        check = f"sat -verify -prove trigger 0 -set-init-zero -seq {steps} miter"
    else:
        check = "sat -verify -prove trigger 0 miter"
    script = f"""
read_verilog gold.v
rename {top} gold
read_verilog gate.v
rename {top} gate
proc
async2sync
opt_clean
miter -equiv -flatten -make_outputs gold gate miter
hierarchy -top miter
flatten
{check}
"""
    run = Yosys(timeout=180).run_script(script, cwd=cwd, name="equiv")
    return run.ok, run.log


def _metrics(text: str, top: str, cwd: Path) -> YosysMetrics:
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "design.v").write_text(text)
    script = f"""
read_verilog design.v
synth -top {top} -run :fine
tee -o coarse.txt stat
synth -top {top} -run fine:
ltp -noff
tee -o fine.txt stat
"""
    run = Yosys(timeout=180).run_script(script, cwd=cwd, name="stat")
    assert run.ok, run.error
    coarse = (cwd / "coarse.txt").read_text()
    arith = sum(
        int(n) for n in re.findall(r"^\s+\$(?:mul|alu|macc|add|sub|shl|shr|sshl|sshr)\s+(\d+)", coarse, re.M)
    )
    cells = int(re.findall(r"Number of cells:\s+(\d+)", (cwd / "fine.txt").read_text())[-1])
    depth = int(re.findall(r"Longest topological path in \S+ \(length=(\d+)\)", run.log)[-1])
    return YosysMetrics(cells=cells, depth=depth, arith=arith)


@pytest.fixture
def rule_proposals() -> Callable[..., list[Proposal]]:
    return _propose


@pytest.fixture
def yosys_equivalent() -> Callable[..., tuple[bool, str]]:
    return _equivalent


@pytest.fixture
def yosys_metrics() -> Callable[[str, str, Path], YosysMetrics]:
    return _metrics
