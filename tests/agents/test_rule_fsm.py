"""FSM rules on machines written in different styles: every proposal re-parses, keeps the ports and is
proven equal to the original from reset by yosys; minimisation merges equivalent states and leaves a
minimal machine alone; re-encoding sets the register width; seq_detect gets smaller."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pyverilog.vparser import ast as vast

from evoforge.agents import Proposal
from evoforge.agents.rtl_rules import RULES
from evoforge.agents.rtl_rules.ast_utils import apply_rewrites
from evoforge.agents.rtl_rules.fsm_extract import extract_fsm
from evoforge.agents.rtl_rules.fsm_minimise import minimise
from evoforge.tools.verilog_ast import generate_verilog, parse_verilog
from evoforge.tools.yosys import Yosys

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rtl"

# one-process Moore, literal codes, if/else-if over the state, sync active-high reset, assign output;
# states 2'd1 and 2'd2 are equivalent
ONE_PROCESS = """
module blink(input clock, input reset, input go, output busy);
  reg [1:0] st;
  always @(posedge clock) begin
    if (reset) st <= 2'd0;
    else if (st == 2'd0) st <= go ? 2'd1 : 2'd0;
    else if (st == 2'd1) st <= go ? 2'd2 : 2'd3;
    else if (st == 2'd2) st <= go ? 2'd2 : 2'd3;
    else st <= 2'd0;
  end
  assign busy = (st == 2'd1) | (st == 2'd2);
endmodule
"""

# two-process Mealy with `parameter` names, outputs in the comb block, 2-bit command input,
# sync active-low reset; B and C are equivalent, D is unreachable
MEALY = """
module cmdfsm(clk, resetn, cmd, ack, err);
  input clk, resetn;
  input [1:0] cmd;
  output ack, err;
  reg ack, err;
  parameter A = 3'b000, B = 3'b011, C = 3'b101, D = 3'b110;
  reg [2:0] cur, nxt;
  always @(posedge clk)
    if (!resetn) cur <= A;
    else cur <= nxt;
  always @(*) begin
    nxt = cur; ack = 1'b0; err = 1'b0;
    case (cur)
      A: if (cmd == 2'b01) nxt = B; else if (cmd == 2'b10) nxt = C;
      B: begin ack = cmd[0]; if (cmd == 2'b11) begin nxt = A; err = 1'b1; end else if (cmd[1]) nxt = C; end
      C: begin ack = cmd[0]; if (cmd == 2'b11) begin nxt = A; err = 1'b1; end else if (cmd[1]) nxt = B; end
      D: nxt = A;
      default: nxt = A;
    endcase
  end
endmodule
"""

# minimal three-state Moore machine, async active-high reset, case in the clocked block, outputs
# registered from the next state
MINIMAL = """
module light(input clk, input rst, input tick, output reg red, output reg green);
  localparam R = 2'd0, G = 2'd1, Y = 2'd2;
  reg [1:0] s;
  always @(posedge clk or posedge rst) begin
    if (rst) begin s <= R; red <= 1'b1; green <= 1'b0; end
    else if (tick) begin
      case (s)
        R: begin s <= G; red <= 1'b0; green <= 1'b1; end
        G: begin s <= Y; red <= 1'b0; green <= 1'b0; end
        default: begin s <= R; red <= 1'b1; green <= 1'b0; end
      endcase
    end
  end
endmodule
"""

# the state is also read by a counter: not extractable exactly, so no proposal
READ_ELSEWHERE = """
module busyctr(input clk, input rst, input go, output reg [3:0] n);
  reg [1:0] st;
  always @(posedge clk) if (rst) st <= 0; else st <= go ? st + 2'd1 : 2'd0;
  always @(posedge clk) if (rst) n <= 0; else if (st == 2'd3) n <= n + 4'd1;
endmodule
"""

SEQ = (EXAMPLES / "seq_detect.v").read_text()

DESIGNS = [
    (SEQ, "seq_detect", "rst_n", True, 7, 5),
    (ONE_PROCESS, "blink", "reset", False, 4, 3),
    (MEALY, "cmdfsm", "resetn", True, 3, 2),
    (MINIMAL, "light", "rst", False, 3, 3),
]


def _reset_equivalent(
    gold: str, gate: str, top: str, reset: str, active_low: bool, cwd: Path
) -> tuple[bool, str]:
    """Outputs equal in every cycle after a reset in cycle 1, for every input sequence.

    The check is bounded at 24 cycles, which is complete for these machines: the pair of machines is
    a product of at most 8 reachable states each side's outputs registers included, and every
    reachable product state is reached within fewer steps than there are of them.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "gold.v").write_text(gold)
    (cwd / "gate.v").write_text(gate)
    check = (
        f"sat -verify -prove trigger 0 -seq 24 -prove-skip 1 -set-at 1 in_{reset} {int(not active_low)} "
        "-set-init-undef -set-def-inputs miter"
    )
    script = f"""
read_verilog gold.v
rename {top} gold
read_verilog gate.v
rename {top} gate
proc
async2sync
opt_clean
miter -equiv -flatten -make_outputs -ignore_gold_x gold gate miter
hierarchy -top miter
flatten
{check}
"""
    run = Yosys(timeout=180).run_script(script, cwd=cwd, name="equiv")
    return run.ok, run.log


def _by_encoding(text: str) -> dict[str, str]:
    """Each re-encoding site applied alone (the proposer folds one of them into its all-sites proposal)."""
    parsed = parse_verilog(text)
    sites = RULES["fsm_reencode"].apply(parsed, random.Random(0))
    return {
        r.note.split(" as ")[1].split(":")[0]: generate_verilog(apply_rewrites(parsed.ast, [r]))
        for r in sites
    }


def _state_width(text: str, name: str) -> int:
    match = re.search(rf"reg\s*(?:\[(\d+):0\])?\s*{name}\s*;", text)
    assert match, text
    return int(match.group(1) or 0) + 1


@pytest.mark.parametrize(
    ("text", "top", "reset", "low", "reachable", "minimal"), DESIGNS, ids=[d[1] for d in DESIGNS]
)
def test_extraction_and_minimisation(
    text: str, top: str, reset: str, low: bool, reachable: int, minimal: int
) -> None:
    module = parse_verilog(text).ast.description.definitions[0]
    assert isinstance(module, vast.ModuleDef)
    fsm = extract_fsm(module)
    assert fsm is not None
    assert (fsm.reset.signal, fsm.reset.active_low) == (reset, low)
    assert len(fsm.codes) == reachable
    assert minimise(fsm).size == minimal


@pytest.mark.parametrize(
    ("text", "top", "reset", "low", "reachable", "minimal"), DESIGNS, ids=[d[1] for d in DESIGNS]
)
def test_every_proposal_is_equivalent_from_reset(
    text: str,
    top: str,
    reset: str,
    low: bool,
    reachable: int,
    minimal: int,
    tmp_path: Path,
    rule_proposals: Callable[..., list[Proposal]],
) -> None:
    proposals = rule_proposals(text, top, "fsm_minimise", count=4) + rule_proposals(
        text, top, "fsm_reencode", count=8
    )
    assert proposals
    original_ports = parse_verilog(text).modules[top].ports
    for i, proposal in enumerate(proposals):
        assert parse_verilog(proposal.source).modules[top].ports == original_ports
        ok, log = _reset_equivalent(text, proposal.source, top, reset, low, tmp_path / str(i))
        assert ok, f"{proposal.note}\n{proposal.source}\n{log[-3000:]}"


def test_minimise_leaves_a_minimal_fsm_alone(rule_proposals: Callable[..., list[Proposal]]) -> None:
    plain = MINIMAL.replace("red <= 1'b1; green <= 1'b0; end\n    else", "end\n    else")
    plain = re.sub(r"\s*(red|green) <= 1'b[01];", "", plain).replace(
        "output reg red, output reg green", "output y"
    )
    plain = plain.replace("endmodule", "  assign y = (s == G);\nendmodule")
    assert rule_proposals(plain, "light", "fsm_minimise") == []
    widths = {kind: _state_width(source, "s") for kind, source in _by_encoding(plain).items()}
    assert widths["onehot"] == 3 and widths["gray"] == 2


def test_reencoding_widths_and_reset_code(rule_proposals: Callable[..., list[Proposal]]) -> None:
    notes = _by_encoding(SEQ)
    assert _state_width(notes["onehot"], "state") == 5
    assert _state_width(notes["binary"], "state") == 3
    assert "state <= 5'b00001" in notes["onehot"].replace("\n", " ")
    assert re.search(r"hit\s*=\s*state\[\d\]", notes["output"])


def test_unextractable_fsm_gets_no_proposal(rule_proposals: Callable[..., list[Proposal]]) -> None:
    assert rule_proposals(READ_ELSEWHERE, "busyctr", "fsm_minimise") == []
    assert rule_proposals(READ_ELSEWHERE, "busyctr", "fsm_reencode") == []


def test_equivalence_check_can_fail(tmp_path: Path) -> None:
    wrong = (EXAMPLES / "seq_detect_wrong.v").read_text()
    ok, _ = _reset_equivalent(SEQ, wrong, "seq_detect", "rst_n", True, tmp_path)
    assert not ok


def test_seq_detect_gets_smaller(
    tmp_path: Path,
    rule_proposals: Callable[..., list[Proposal]],
    yosys_metrics: Callable[..., object],
) -> None:
    before = yosys_metrics(SEQ, "seq_detect", tmp_path / "orig").cells  # type: ignore[attr-defined]
    proposals = rule_proposals(SEQ, "seq_detect", "fsm_minimise") + rule_proposals(
        SEQ, "seq_detect", "fsm_reencode"
    )
    best = min(
        yosys_metrics(p.source, "seq_detect", tmp_path / str(i)).cells for i, p in enumerate(proposals)
    )  # type: ignore[attr-defined]
    assert best <= 0.8 * before
