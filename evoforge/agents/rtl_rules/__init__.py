"""Rule-based RTL rewrites on the pyverilog AST; ``RULES`` maps each rule's name to the rule.

A rule's ``apply(parsed, rng)`` returns :class:`~evoforge.agents.rtl_rules.ast_utils.Rewrite` sites
(never text edits); :mod:`evoforge.agents.rtl_rules.proposer` turns sites into proposals.
"""

from evoforge.agents.rtl_rules import resource_sharing
from evoforge.agents.rtl_rules.ast_utils import Rewrite, Rule

RULES: dict[str, Rule] = {
    resource_sharing.NAME: resource_sharing.RULE,
}

__all__ = ["RULES", "Rewrite", "Rule"]
