"""The knowledge base: built-in entries and learned entries, lookup by id, retrieval by tags and text.

    kb = KnowledgeBase.load(learned=learned_path(settings.data_dir))
    hits = kb.search(design_query(source, critical_path), domain="rtl", tags=("timing",), k=3)
    kb.add_learned(make_learned(...))      # a winning rewrite, kept apart from the built-in entries

Loading validates every built-in entry file (a bad one raises ``KnowledgeBaseError`` naming the
file); a learned entry that does not validate is skipped with a warning. Learned entries come from a
file (``learned``) or are handed over already loaded (``entries``, e.g. from the store), and
``save`` keeps a new one wherever the caller keeps them; with neither file nor ``save``,
``add_learned`` keeps the entry in memory only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from evoforge.errors import KnowledgeBaseError, NotFoundError
from evoforge.kb.entries import BUILTIN_DIR, Entry, load_builtin
from evoforge.kb.learned import LearnedEntry, append_learned, read_learned
from evoforge.kb.retrieval import Bm25

log = logging.getLogger(__name__)

AnyEntry = Entry | LearnedEntry


@dataclass(frozen=True)
class Hit:
    entry: AnyEntry
    score: float


@dataclass
class KnowledgeBase:
    builtin: tuple[Entry, ...]
    learned: list[LearnedEntry] = field(default_factory=list)
    learned_file: Path | None = None
    save: Callable[[LearnedEntry], None] | None = None
    _index: Bm25 | None = field(default=None, init=False, repr=False)
    _indexed: tuple[AnyEntry, ...] = field(default=(), init=False, repr=False)

    @classmethod
    def load(
        cls,
        learned: Path | None = None,
        builtin_dir: Path = BUILTIN_DIR,
        *,
        entries: Iterable[LearnedEntry] | None = None,
        save: Callable[[LearnedEntry], None] | None = None,
    ) -> KnowledgeBase:
        """The built-in entries (validated) and the learned ones: ``entries``, else that file's."""
        builtin = tuple(load_builtin(builtin_dir))
        known = list(entries) if entries is not None else (read_learned(learned) if learned else [])
        clash = {e.id for e in builtin} & {e.id for e in known}
        if clash:  # a learned entry may not shadow a rule: skipped, like any unusable entry
            log.warning("learned entries reusing built-in ids skipped: %s", ", ".join(sorted(clash)))
            known = [e for e in known if e.id not in clash]
        kb = cls(builtin=builtin, learned=known, learned_file=learned if entries is None else None, save=save)
        log.debug("knowledge base: %d built-in, %d learned entries", len(builtin), len(kb.learned))
        return kb

    # -- lookup ----------------------------------------------------------------------------------

    def entries(self, *, include_learned: bool = True) -> list[AnyEntry]:
        return [*self.builtin, *(self.learned if include_learned else [])]

    def get(self, entry_id: str) -> AnyEntry:
        for entry in self.entries():
            if entry.id == entry_id:
                return entry
        raise NotFoundError(
            f"no knowledge-base entry {entry_id!r}", hint="list the entries with: evoforge kb list"
        )

    def for_rule(self, rule: str) -> Entry | None:
        """The built-in entry a proposer rule implements (None if the rule has none)."""
        return next((e for e in self.builtin if e.rule == rule), None)

    def filter(
        self,
        *,
        domain: str | None = None,
        tags: Iterable[str] = (),
        include_builtin: bool = True,
        include_learned: bool = True,
    ) -> list[AnyEntry]:
        """Entries of ``domain`` carrying every tag in ``tags`` (goals, tags and rule ids all count)."""
        wanted = {t.lower() for t in tags}
        pool = [*(self.builtin if include_builtin else ()), *(self.learned if include_learned else ())]
        return [e for e in pool if (domain is None or e.domain == domain) and wanted.issubset(e.labels)]

    # -- retrieval -------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        domain: str | None = None,
        tags: Iterable[str] = (),
        k: int = 5,
        include_learned: bool = True,
    ) -> list[AnyEntry]:
        """The ``k`` entries that best match ``query`` (BM25) among those passing the tag filter."""
        return [
            h.entry
            for h in self.ranked(query, domain=domain, tags=tags, k=k, include_learned=include_learned)
        ]

    def ranked(
        self,
        query: str,
        *,
        domain: str | None = None,
        tags: Iterable[str] = (),
        k: int = 5,
        include_learned: bool = True,
    ) -> list[Hit]:
        """Like :meth:`search`, with scores; entries with no matching word are left out."""
        allowed = {e.id for e in self.filter(domain=domain, tags=tags, include_learned=include_learned)}
        index, indexed = self._bm25()
        scored = [
            Hit(entry, score)
            for entry, score in zip(indexed, index.scores(query), strict=True)
            if entry.id in allowed and score > 0
        ]
        # built-in before learned on ties: a rule generalises, a learned excerpt is one design
        scored.sort(key=lambda h: (-h.score, h.entry.learned, h.entry.id))
        return scored[: max(0, k)]

    def _bm25(self) -> tuple[Bm25, tuple[AnyEntry, ...]]:
        current = tuple(self.entries())
        if self._index is None or self._indexed != current:
            self._index = Bm25([e.text() for e in current])
            self._indexed = current
        return self._index, self._indexed

    # -- learning --------------------------------------------------------------------------------

    def add_learned(self, entry: LearnedEntry) -> bool:
        """Keep a learned entry (appended to the learned file, if any); False if already known."""
        if any(e.id == entry.id for e in self.learned):
            return False
        if any(e.id == entry.id for e in self.builtin):
            raise KnowledgeBaseError(f"learned entry id {entry.id!r} clashes with a built-in entry")
        if self.save is not None:
            self.save(entry)
        elif self.learned_file is not None:
            append_learned(self.learned_file, entry)
        self.learned.append(entry)
        log.info("knowledge base: learned %s (%s)", entry.id, entry.title)
        return True
