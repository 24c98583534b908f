"""Proposers: agents that draft rewrites of a target (offline rules now; LLM graphs later)."""

from evoforge.agents.base import PROPOSERS, Proposal, ProposalRequest, Proposer, get_proposer

__all__ = ["PROPOSERS", "Proposal", "ProposalRequest", "Proposer", "get_proposer"]
