"""Resource sharing on designs in different styles: each proposal re-parses, keeps the ports, is proven
equal to the original by yosys (miter + SAT) and synthesises to fewer arithmetic cells."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evoforge import domain
from evoforge.agents import Proposal, ProposalRequest
from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer
from evoforge.tools.verilog_ast import parse_verilog
from evoforge.tools.yosys import Yosys

# 1. continuous assign with a nested ternary of three multipliers (small widths keep SAT fast)
TERNARY_MUL = """
module tmul(input s, input t, input [3:0] a, b, c, d, e, f, output [7:0] y);
  assign y = s ? a * b : t ? c * d : e * f;
endmodule
"""

# 2. always @* with an if/else-if chain of adders, mixed operand widths, begin/end branches
IF_ADD = """
module ifadd(input [1:0] mode, input [5:0] x, input [3:0] k, input [6:0] m, output reg [6:0] sum);
  always @* begin
    if (mode == 2'd0) begin
      sum = x + k;
    end else if (mode[0]) sum = m + x;
    else begin
      sum = k + m;
    end
  end
endmodule
"""

# 3. two independent sites in one module: a subtract ternary inside an expression, commuted adders
TWO_SITES = """
module twosites(input sel, input [7:0] p, q, r, u, output [8:0] diff, output [7:0] sh);
  wire [8:0] d1;
  assign d1 = (sel ? p - q : r - u);
  assign diff = d1 ^ 9'h1;
  assign sh = sel ? p + r : u + p;
endmodule
"""

# 3b. variable shifts (yosys already shares these itself: checked for equivalence only)
SHIFTS = """
module shifts(input sel, input [7:0] p, q, input [2:0] n1, n2, output [7:0] sh, output reg [7:0] sr);
  assign sh = sel ? p << n1 : q << n2;
  always @* if (sel) sr = p >> n2; else sr = q >> n1;
endmodule
"""

# 4. sequential: the shared multiplier feeds a register, behind a synchronous reset
SEQ_MUL = """
module accmul(clk, rst, pick, x, y, u, v, acc);
  input clk, rst, pick;
  input [3:0] x, y, u, v;
  output [7:0] acc;
  reg [7:0] acc;
  always @(posedge clk) begin
    if (rst) acc <= 8'd0;
    else if (pick) acc <= x * y;
    else acc <= u * v;
  end
endmodule
"""

# 4b. a case statement (with a multi-value item and a default), each item multiplying
CASE_MUL = """
module casemul(input [1:0] op, input [3:0] a, b, c, d, output reg [7:0] y);
  always @(*) begin
    case (op)
      2'd0: y = a * b;
      2'd1, 2'd2: y = c * d;
      default: y = a * d;
    endcase
  end
endmodule
"""

# 5. all operands signed: sharing is allowed and must keep the sign extension
SIGNED_MUL = """
module smul(input s, input signed [3:0] a, b, c, d, output signed [7:0] y);
  reg signed [7:0] r;
  always @* if (s) r = a * b; else r = c * d;
  assign y = r;
endmodule
"""

# mixed: a signed product in one branch, an unsigned one in the other → must not be rewritten
MIXED = """
module mixed(input s, input signed [3:0] a, b, input [3:0] c, d, output reg [7:0] y);
  always @* if (s) y = a * b; else y = c * d;
endmodule
"""

# signed shift amounts (sign-extended inside a shared amount mux) → must not be rewritten
SIGNED_AMOUNT = """
module samt(input s, input [7:0] a, c, input signed [1:0] n, input signed [2:0] m, output [7:0] y);
  assign y = s ? a << n : c << m;
endmodule
"""

DESIGNS = [
    (TERNARY_MUL, "tmul", 1, True),
    (IF_ADD, "ifadd", 1, True),
    (TWO_SITES, "twosites", 2, True),
    (SHIFTS, "shifts", 2, False),
    (SEQ_MUL, "accmul", 1, True),
    (CASE_MUL, "casemul", 1, True),
    (SIGNED_MUL, "smul", 1, True),
]


def _target(text: str, top: str) -> domain.Target:
    return domain.Target(kind=domain.TargetKind.RTL, name=top, sources=(domain.SourceFile(f"{top}.v", text),))


def _propose(text: str, top: str, count: int = 8, seed: int = 0, **feedback: object) -> list[Proposal]:
    request = ProposalRequest(
        target=_target(text, top),
        parent_source=text,
        parent_metrics=domain.Metrics(),
        feedback=dict(feedback),
        count=count,
        seed=seed,
    )
    # the sharing rule alone: other rules (prefix adders …) also find sites in these designs
    return OfflineRtlProposer(["resource_sharing"]).propose(request)


def _equivalent(gold: str, gate: str, top: str, cwd: Path) -> tuple[bool, str]:
    (cwd / "gold.v").write_text(gold)
    (cwd / "gate.v").write_text(gate)
    script = f"""
read_verilog gold.v
rename {top} gold
read_verilog gate.v
rename {top} gate
proc
opt_clean
miter -equiv -flatten -make_outputs gold gate miter
hierarchy -top miter
flatten
sat -verify -prove trigger 0 -tempinduct -set-init-zero -seq 1 -maxsteps 8 miter
"""
    run = Yosys(timeout=120).run_script(script, cwd=cwd, name="equiv")
    return run.ok, run.log


def _stat(text: str, top: str, cwd: Path) -> tuple[int, int]:
    """(arithmetic cells after coarse synthesis, total cells after full synthesis)."""
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "design.v").write_text(text)
    script = f"""
read_verilog design.v
synth -top {top} -run :fine
tee -o coarse.txt stat
synth -top {top} -run fine:
tee -o fine.txt stat
"""
    run = Yosys(timeout=120).run_script(script, cwd=cwd, name="stat")
    assert run.ok, run.error
    coarse = (cwd / "coarse.txt").read_text()
    arith = sum(
        int(n) for n in re.findall(r"^\s+\$(?:mul|alu|macc|add|sub|shl|shr|sshl|sshr)\s+(\d+)", coarse, re.M)
    )
    total = int(re.findall(r"Number of cells:\s+(\d+)", (cwd / "fine.txt").read_text())[-1])
    return arith, total


@pytest.mark.parametrize(("text", "top", "sites", "shrinks"), DESIGNS, ids=[d[1] for d in DESIGNS])
def test_every_proposal_is_equivalent_and_smaller(
    text: str, top: str, sites: int, shrinks: bool, tmp_path: Path
) -> None:
    proposals = _propose(text, top)
    assert len(proposals) == sites + (1 if sites > 1 else 0)  # one per site, plus all sites together
    original = parse_verilog(text).modules[top]
    base_arith, base_cells = _stat(text, top, tmp_path / "base")
    for index, proposal in enumerate(proposals):
        assert proposal.origin == "offline:resource_sharing" and proposal.rule == "resource_sharing"
        assert proposal.note and proposal.touched
        assert proposal.source != text
        assert parse_verilog(proposal.source).modules[top].ports == original.ports
        work = tmp_path / f"p{index}"
        work.mkdir()
        ok, log = _equivalent(text, proposal.source, top, work)
        assert ok, f"not equivalent:\n{proposal.source}\n{log[-2000:]}"
        arith, cells = _stat(proposal.source, top, work)
        if shrinks:
            assert arith < base_arith or cells < base_cells, (arith, base_arith, cells, base_cells)


def test_nested_ternary_shares_into_one_multiplier(tmp_path: Path) -> None:
    (proposal,) = _propose(TERNARY_MUL, "tmul")
    assert proposal.source.count("*") == 1
    arith, _ = _stat(proposal.source, "tmul", tmp_path)
    assert arith == 1


def test_commuted_operands_line_up_so_one_operand_needs_no_mux() -> None:
    (adder,) = [p for p in _propose(TWO_SITES, "twosites") if p.touched[0] == "sh"]
    line = next(ln for ln in adder.source.splitlines() if "assign sh" in ln)
    assert line.count("?") == 1 and "p +" in line


def test_equivalence_check_can_fail(tmp_path: Path) -> None:
    wrong = TERNARY_MUL.replace("e * f", "e * e")
    ok, _ = _equivalent(TERNARY_MUL, wrong, "tmul", tmp_path)
    assert not ok


@pytest.mark.parametrize(("text", "top"), [(MIXED, "mixed"), (SIGNED_AMOUNT, "samt")], ids=["mixed", "samt"])
def test_unsafe_sites_are_not_rewritten(text: str, top: str) -> None:
    assert _propose(text, top) == []


def test_count_seed_and_critical_path_order() -> None:
    assert len(_propose(TWO_SITES, "twosites", count=1)) == 1
    first = _propose(TWO_SITES, "twosites", count=3, seed=7)
    assert first == _propose(TWO_SITES, "twosites", count=3, seed=7)  # deterministic for a seed
    assert "Applied all 2" in first[0].note  # the all-sites proposal leads
    for hot in ("sh", "d1"):
        ordered = _propose(TWO_SITES, "twosites", count=3, seed=7, critical_path=[f"twosites.{hot}[3]"])
        assert hot in ordered[1].touched and hot not in ordered[2].touched


def test_no_sites_no_proposals_and_non_rtl_targets_are_ignored() -> None:
    plain = "module p(input [3:0] a, b, output [3:0] y);\n  assign y = a + b;\nendmodule\n"
    assert _propose(plain, "p") == []
    kernel = domain.Target(kind=domain.TargetKind.KERNEL, name="k", sources=(domain.SourceFile("k.py", "x"),))
    request = ProposalRequest(
        target=kernel, parent_source="x", parent_metrics=domain.Metrics(), count=2, seed=0
    )
    assert OfflineRtlProposer().propose(request) == []
