"""The knowledge base with its learned entries kept in the store (shared by every worker).

``open_knowledge(store, data_dir)`` loads the built-in entries and the store's learned ones (an
entry that does not validate is skipped with a warning, never a failed job) and saves what a job
learns back to the store. A learned-entries file left by an earlier evoforge in the data directory
is imported once and renamed ``learned.jsonl.imported``.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from evoforge.kb import KnowledgeBase, LearnedEntry, learned_path
from evoforge.kb.learned import parse_learned, read_learned
from evoforge.store import learned as stored
from evoforge.store.engine import Store

log = logging.getLogger(__name__)


def save_learned(store: Store, entry: LearnedEntry) -> bool:
    """Put one entry in the store; False when it was there already."""
    with store.transaction() as session:
        return stored.put_learned(
            session,
            entry.id,
            domain=entry.domain,
            data=entry.model_dump(mode="json"),
            job_id=entry.job_id,
            candidate_id=entry.candidate_id,
        )


def import_learned_file(store: Store, path: Path) -> int:
    """Move the entries of a legacy JSON-lines file into the store; the number imported."""
    if not path.is_file():
        return 0
    entries = read_learned(path)
    added = sum(save_learned(store, entry) for entry in entries)
    with contextlib.suppress(FileNotFoundError):  # another process imported it at the same time
        path.rename(path.with_name(path.name + ".imported"))
    log.info("imported %d learned entries from %s into the store", added, path)
    return added


def learned_entries(store: Store) -> list[LearnedEntry]:
    with store.transaction() as session:
        documents = stored.list_learned(session)
    return parse_learned((f"{entry_id} (store)", data) for entry_id, data in documents)


def open_knowledge(store: Store, data_dir: Path | None = None) -> KnowledgeBase:
    """Built-in + the store's learned entries; ``add_learned`` writes to ``store``."""
    if data_dir is not None:
        import_learned_file(store, learned_path(data_dir))

    def save(entry: LearnedEntry) -> None:
        save_learned(store, entry)

    return KnowledgeBase.load(entries=learned_entries(store), save=save)
