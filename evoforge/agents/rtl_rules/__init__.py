"""Rule-based RTL rewrites; ``RULES`` maps each rule's name to the rule.

Two kinds. A *text rule* (:class:`~evoforge.agents.rtl_rules.text_sites.TextRule`) finds its sites
on Yosys's word-level netlist, so spelling does not matter, and returns byte-range edits of the
user's text (Verilog-2005 or SystemVerilog). An *AST rule* reads the pyverilog AST of Verilog-2001
designs: ``apply(parsed, rng)`` returns :class:`~evoforge.agents.rtl_rules.ast_utils.Rewrite` sites.
:mod:`evoforge.agents.rtl_rules.proposer` turns both kinds of sites into proposals.
"""

from evoforge.agents.rtl_rules import (
    addsub_sharing,
    fsm_encoding,
    fsm_rules,
    logic_minimise,
    mask_select,
    mux_tree,
    prefix_adder,
    rebalance,
    register_polarity,
    resource_sharing,
    strength_reduction,
    width_reduction,
    word_operator,
)
from evoforge.agents.rtl_rules.ast_utils import Rewrite, Rule
from evoforge.agents.rtl_rules.text_sites import TextRule

RULES: dict[str, Rule | TextRule] = {
    fsm_encoding.NAME: fsm_encoding.RULE,
    prefix_adder.NAME: prefix_adder.RULE,
    mux_tree.NAME: mux_tree.RULE,
    word_operator.NAME: word_operator.RULE,
    resource_sharing.NAME: resource_sharing.RULE,
    fsm_rules.MINIMISE: fsm_rules.MINIMISE_RULE,
    fsm_rules.REENCODE: fsm_rules.REENCODE_RULE,
    width_reduction.NAME: width_reduction.RULE,
    strength_reduction.NAME: strength_reduction.RULE,
    rebalance.NAME: rebalance.RULE,
    mask_select.NAME: mask_select.RULE,
    addsub_sharing.NAME: addsub_sharing.RULE,
    logic_minimise.NAME: logic_minimise.RULE,
    register_polarity.NAME: register_polarity.RULE,
}

__all__ = ["RULES", "Rewrite", "Rule", "TextRule"]
