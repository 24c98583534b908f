"""Yosys checks for the text-rule tests: equivalence from reset (Verilog or SystemVerilog, optionally
after Yosys's own FSM re-encoding) and synthesis metrics with the sky130 liberty when it is present."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from evoforge.agents.rtl_rules.ast_utils import collecting_declines
from evoforge.agents.rtl_rules.text_sites import Design
from evoforge.tools.liberty import prepare_liberty
from evoforge.tools.yosys import Yosys

LIBERTY = Path(__file__).resolve().parents[3] / "shared" / "pdk" / "sky130hd_tt.lib.gz"


def reset_equivalent(
    gold: str,
    gate: str,
    top: str,
    cwd: Path,
    reset: str | None = None,
    active_low: bool = False,
    steps: int = 24,
    fsm: bool = False,
) -> tuple[bool, str]:
    """Outputs equal in every cycle after a reset in cycle 1 (bounded at ``steps`` cycles), for every
    input sequence; combinational designs (``reset`` None, ``steps`` 0) are proven for every input.
    ``fsm``: the gate goes through Yosys's FSM extraction and re-encoding first (what ``synth`` does)."""
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "gold.sv").write_text(gold)
    (cwd / "gate.sv").write_text(gate)
    prepare = "proc\nopt -nodffe -nosdff\nfsm\nopt_clean\n" if fsm else "proc\n"
    if steps == 0:
        check = "sat -verify -prove trigger 0 miter"
    else:
        level = int(not active_low)
        when = f"-set-at 1 in_{reset} {level} " if reset else ""
        check = (
            f"sat -verify -prove trigger 0 -seq {steps} -prove-skip 1 {when}-set-init-undef "
            "-set-def-inputs miter"
        )
    script = f"""
read_verilog -sv gold.sv
hierarchy -top {top}
proc
flatten
rename {top} gold
design -stash gold
read_verilog -sv gate.sv
hierarchy -top {top}
{prepare}flatten
rename {top} gate
design -stash gate
design -copy-from gold -as gold gold
design -copy-from gate -as gate gate
async2sync
opt_clean
miter -equiv -flatten -make_outputs -ignore_gold_x gold gate miter
hierarchy -top miter
flatten
{check}
"""
    run = Yosys(timeout=300).run_script(script, cwd=cwd, name="equiv")
    return run.ok, run.log


def sky130(text: str, top: str, cwd: Path) -> tuple[float, int]:
    """(area µm², logic depth) after synthesis with the sky130 liberty (depth only: area 0 without it)."""
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "design.sv").write_text(text)
    mapping = ""
    if LIBERTY.exists():
        lib = prepare_liberty(LIBERTY, cwd / "cache").path
        mapping = (
            f"dfflibmap -liberty {lib}\nabc -liberty {lib}\nopt_clean\ntee -o area.txt stat -liberty {lib}\n"
        )
    script = f"read_verilog -sv design.sv\nsynth -flatten -top {top}\nltp -noff\n{mapping}"
    run = Yosys(timeout=300).run_script(script, cwd=cwd, name="synth")
    assert run.ok, run.error
    depth = int(re.findall(r"Longest topological path in \S+ \(length=(\d+)\)", run.log)[-1])
    area = 0.0
    if mapping:
        found = re.findall(r"Chip area for module .*?: ([\d.]+)", (cwd / "area.txt").read_text())
        area = float(found[-1]) if found else 0.0
    return area, depth


def rule_sites(rule: Any, text: str) -> tuple[list[Any], list[str]]:
    """A rule's text sites on ``text`` (seeded) and the reasons it declined, as the proposer sees them."""
    with collecting_declines() as declines:
        sites = rule.text_sites(Design(text), random.Random(0))
    return sites, declines
