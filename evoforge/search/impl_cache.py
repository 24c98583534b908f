"""The verifiers' implementation cache, backed by the ``implementation_results`` table.

A verifier looks up reusable stage results by implementation hash (``cache.get(hash)``) and keeps an
accepted candidate's (``cache.setdefault(hash, results)``); see ``verifiers/runner.py``. This dict
answers both from the store, so every worker of every machine shares one cache; it also keeps what
it has seen in memory. The cache is only a cache: a database error is logged and counts as a miss.
"""

from __future__ import annotations

import logging
from typing import Any

from evoforge.domain import StageResult
from evoforge.errors import StoreError
from evoforge.store.engine import Store
from evoforge.store.implementations import find_implementation_results, put_implementation_results

log = logging.getLogger(__name__)

Results = dict[str, StageResult]


class StoredImplementationCache(dict[str, Results]):
    """``{implementation hash: {stage: result}}`` read through to and written to the store."""

    def __init__(self, store: Store, *, target_fingerprint: str, context_digest: str) -> None:
        super().__init__()
        self.store = store
        self.key = {"target_fingerprint": target_fingerprint, "context_digest": context_digest}

    def get(self, implementation: str, default: Any = None) -> Any:
        known = dict.get(self, implementation)
        if known is not None or not implementation:
            return known if known is not None else default
        try:
            with self.store.transaction() as session:
                found = find_implementation_results(session, implementation_hash=implementation, **self.key)
        except StoreError as exc:
            log.warning("implementation cache: lookup failed (%s); evaluating afresh", exc)
            return default
        if not found:
            return default
        dict.__setitem__(self, implementation, found)
        return found

    def __contains__(self, implementation: object) -> bool:
        return isinstance(implementation, str) and self.get(implementation) is not None

    def __getitem__(self, implementation: str) -> Results:
        found = self.get(implementation)
        if found is None:
            raise KeyError(implementation)
        return found

    def setdefault(self, implementation: str, results: Results | None = None) -> Results:
        known = self.get(implementation)
        if known is not None:
            return known
        results = results or {}
        dict.__setitem__(self, implementation, results)
        if results:
            try:
                with self.store.transaction() as session:
                    put_implementation_results(
                        session, implementation_hash=implementation, results=results, **self.key
                    )
            except StoreError as exc:
                log.warning("implementation cache: could not store %s (%s)", implementation[:12], exc)
        return results
