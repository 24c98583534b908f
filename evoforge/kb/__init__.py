"""The knowledge base: optimisation rules as data files, retrieval, and entries learned from wins.

Built-in entries are TOML files under ``evoforge/kb/rules/<domain>/`` (one per rule, validated at
load); learned entries are JSON lines under the data directory, written when a job ends with a
verified improvement. The knowledge base imports only ``domain`` and ``errors``.
"""

from evoforge.kb.entries import Entry, Example, load_builtin, load_entry
from evoforge.kb.knowledge import Hit, KnowledgeBase
from evoforge.kb.learned import LearnedEntry, diff_excerpt, learned_path, make_learned
from evoforge.kb.retrieval import cell_class, cell_shares, design_query, tokens

__all__ = [
    "Entry",
    "Example",
    "Hit",
    "KnowledgeBase",
    "LearnedEntry",
    "cell_class",
    "cell_shares",
    "design_query",
    "diff_excerpt",
    "learned_path",
    "load_builtin",
    "load_entry",
    "make_learned",
    "tokens",
]
