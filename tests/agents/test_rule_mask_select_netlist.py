"""Masked ORs found on the netlist in four spellings become selects, proven equal by SAT; masks that are
not complementary are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from rtl_checks import reset_equivalent

from evoforge.agents.rtl_rules import netlist_mask
from evoforge.agents.rtl_rules.ast_utils import collecting_declines
from evoforge.agents.rtl_rules.text_sites import Design, apply_edits

SPELLINGS = {
    "assign": "module m (input s, input [7:0] x, y, output [7:0] z);\n"
    "  assign z = ({8{~s}} & x) | ({8{s}} & y);\nendmodule\n",
    "swapped_logical_not": "module m (input s, input [7:0] x, y, output [7:0] z);\n"
    "  assign z = (y & {8{s}}) | (x & {8{!s}});\nendmodule\n",
    "always_event_list": "module m (input s, input [7:0] x, y, output reg [7:0] z);\n"
    "  always @(s or x or y) z = ({8{~s}} & x) | ({8{s}} & y);\nendmodule\n",
    "always_comb_wider_target": "module m (input logic s, input logic [7:0] x, input logic [5:0] y, "
    "output logic [9:0] z);\n  always_comb z = ({8{s}} & y) | ({8{~s}} & x);\nendmodule\n",
}


def _sites(text: str):
    with collecting_declines() as declines:
        sites = netlist_mask.text_sites(Design(text), "mask_select")
    return sites, declines


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_becomes_a_proven_select(spelling: str, tmp_path: Path) -> None:
    text = SPELLINGS[spelling]
    sites, declines = _sites(text)
    assert len(sites) == 1, declines
    patched = apply_edits(text, sites[0].edits)
    assert "s ?" in patched and "{8{" not in patched
    ok, log = reset_equivalent(text, patched, "m", tmp_path / "eq", steps=0)
    assert ok, f"{patched}\n{log[-1500:]}"


def test_masks_that_are_not_complementary_are_left_alone() -> None:
    text = SPELLINGS["assign"].replace("input s,", "input s, input t,").replace("{8{s}}", "{8{t}}")
    assert _sites(text)[0] == []
