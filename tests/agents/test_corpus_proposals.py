"""On public designs evoforge was not written around (../shared/corpus/rtl), the rules propose.

Skipped when the corpus is absent (it is not part of the project). Proposals only: the search loop
verifies them (bench/corpus.py measures the verified wins).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "rtl"

# (file, top, a rule that must apply): FSMs, a counter, a max chain, an adder/subtractor
HANDFUL = [
    ("rtllm/pulse_detect.v", "pulse_detect", "fsm_reencode"),
    ("rtllm/freq_div.v", "freq_div", "width_reduction"),
    ("verilog-eval/Prob055_conditional_ref.sv", "TopModule", "rebalance"),
    ("verilog-eval/Prob107_fsm1s_ref.sv", "TopModule", "fsm_reencode"),
    ("verilog-eval/Prob123_bugs_addsubz_ref.sv", "TopModule", "addsub_sharing"),
]


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the public corpus is absent ({CORPUS})")
@pytest.mark.parametrize(("name", "top", "rule"), HANDFUL)
def test_corpus_designs_get_proposals(name: str, top: str, rule: str, rule_proposals) -> None:
    text = (CORPUS / name).read_text()
    outcomes = {o.rule: o for o in OfflineRtlProposer().explain(text)}
    assert outcomes[rule].applied, outcomes[rule].reason
    proposals = rule_proposals(text, top, rule)
    assert proposals, f"{rule} applies to {name} but made no proposal"
    assert all(p.source != text for p in proposals)
