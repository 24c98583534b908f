"""Rule-based RTL rewrites on the pyverilog AST; ``RULES`` maps each rule's name to the rule.

A rule's ``apply(parsed, rng)`` returns :class:`~evoforge.agents.rtl_rules.ast_utils.Rewrite` sites
(never text edits); :mod:`evoforge.agents.rtl_rules.proposer` turns sites into proposals.
"""

from evoforge.agents.rtl_rules import (
    addsub_sharing,
    fsm_rules,
    mask_select,
    rebalance,
    resource_sharing,
    strength_reduction,
    width_reduction,
)
from evoforge.agents.rtl_rules.ast_utils import Rewrite, Rule

RULES: dict[str, Rule] = {
    resource_sharing.NAME: resource_sharing.RULE,
    fsm_rules.MINIMISE: fsm_rules.MINIMISE_RULE,
    fsm_rules.REENCODE: fsm_rules.REENCODE_RULE,
    width_reduction.NAME: width_reduction.RULE,
    strength_reduction.NAME: strength_reduction.RULE,
    rebalance.NAME: rebalance.RULE,
    mask_select.NAME: mask_select.RULE,
    addsub_sharing.NAME: addsub_sharing.RULE,
}

__all__ = ["RULES", "Rewrite", "Rule"]
