"""Say why nothing applies (issue 12.5): per rule, applied or the reason; never a traceback."""

from __future__ import annotations

import logging

import pytest
from test_rule_fsm import _reset_equivalent

from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer

LFSR = """\
module lfsr5 (input clk, input reset, output reg [4:0] q);
  reg [4:0] q_next;
  always @(q) begin
    q_next = q[4:1];
    q_next[4] = q[0];
    q_next[2] = q_next[2] ^ q[0];
  end
  always @(posedge clk) begin
    if (reset) q <= 5'h1;
    else begin q = q_next; end
  end
endmodule
"""

# a Moore FSM whose combinational block loads a default with a nonblocking assignment
FSM_NONBLOCKING_DEFAULT = """\
module fsm (input clk, input reset, input in, output out);
  parameter A = 2'd0, B = 2'd1, C = 2'd2, D = 2'd3;
  reg [1:0] state, next_state;
  always @(*) begin
    next_state <= A;
    case (state)
      A: next_state = in ? B : A;
      B: next_state = in ? B : C;
      C: next_state = in ? D : A;
      D: next_state = in ? B : C;
    endcase
  end
  always @(posedge clk) begin
    if (reset) state <= A;
    else state <= next_state;
  end
  assign out = (state == D);
endmodule
"""


def test_a_design_no_rule_fits_gets_one_reason_per_rule_and_no_error_log(caplog) -> None:
    proposer = OfflineRtlProposer()
    with caplog.at_level(logging.DEBUG):
        outcomes = proposer.explain(LFSR)
    assert [o.rule for o in outcomes] == [r.name for r in proposer.rules]
    assert all(not o.applied and o.reason for o in outcomes)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    fsm = next(o for o in outcomes if o.rule == "fsm_reencode")
    assert fsm.reason.startswith("site found but the exactness argument fails")
    assert "mixed assignment kinds" in fsm.reason
    sharing = next(o for o in outcomes if o.rule == "resource_sharing")
    assert sharing.reason.startswith("no site (looks for ")


def test_an_applied_rule_reports_its_sites() -> None:
    outcomes = {o.rule: o for o in OfflineRtlProposer().explain(FSM_NONBLOCKING_DEFAULT)}
    assert outcomes["fsm_reencode"].applied and outcomes["fsm_reencode"].sites >= 1
    assert outcomes["fsm_reencode"].reason == ""
    assert outcomes["fsm_reencode"].to_dict()["applied"] is True


@pytest.mark.parametrize("default", ["next_state <= A;", "next_state = A;"])
def test_a_nonblocking_default_in_a_combinational_block_does_not_stop_fsm_extraction(
    default, rule_proposals, tmp_path
) -> None:
    text = FSM_NONBLOCKING_DEFAULT.replace("next_state <= A;", default)
    proposals = rule_proposals(text, "fsm", "fsm_reencode")
    assert proposals, "the FSM is extracted"
    for k, proposal in enumerate(proposals):
        ok, log = _reset_equivalent(text, proposal.source, "fsm", "reset", False, tmp_path / str(k))
        assert ok, log[-2000:]


def test_a_nonblocking_default_read_back_in_the_block_is_declined(rule_proposals) -> None:
    """The nonblocking write is not visible to a later read in the block: not the blocking meaning."""
    text = FSM_NONBLOCKING_DEFAULT.replace(
        "      D: next_state = in ? B : C;\n", "      D: next_state = in ? next_state : C;\n"
    )
    assert "in ? next_state" in text
    outcomes = {o.rule: o for o in OfflineRtlProposer().explain(text)}
    assert not outcomes["fsm_reencode"].applied
