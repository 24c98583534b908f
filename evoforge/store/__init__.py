"""The SQL store: SQLAlchemy models, engine/session setup, queries and Alembic migrations.

Imports only ``evoforge.domain`` and ``evoforge.errors``. Typical use::

    store = open_store(settings.database_url)
    with store.transaction() as session:
        job = repository.create_job(session, kind="rtl", ...)
"""

from evoforge.store import repository
from evoforge.store.engine import Store, make_engine, migrate, open_store, session_factory
from evoforge.store.models import Base, CacheEntry, Candidate, Job, LlmCall, StageRun

__all__ = [
    "Base",
    "CacheEntry",
    "Candidate",
    "Job",
    "LlmCall",
    "StageRun",
    "Store",
    "make_engine",
    "migrate",
    "open_store",
    "repository",
    "session_factory",
]
