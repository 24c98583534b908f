"""Offline kernel proposals: knowledge-base templates (Triton, C) filled for the traced reference.

``OfflineKernelProposer(knowledge=kb)`` is the proposer; ``catalogue`` loads the templates of
``evoforge/kb/templates/kernel/`` and reads the header of generated candidates; ``render`` turns
pointwise ops into backend code and builds the ModelNew shell from the problem's Model.
"""

from evoforge.agents.kernel_templates.proposer import OfflineKernelProposer, instantiate

__all__ = ["OfflineKernelProposer", "instantiate"]
