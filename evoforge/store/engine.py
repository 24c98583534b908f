"""Engine, sessions and schema migrations of the store.

``open_store(url)`` is what callers use: it builds the engine, brings the schema to the newest
Alembic revision and returns a ``Store`` (engine + session factory). The pieces are public for tests
and tools: ``make_engine``, ``migrate``, ``session_factory``, ``current_revision``, ``head_revision``
and ``alembic_config`` (a code-built Alembic config, no ``alembic.ini``; e.g. a new revision is made
with ``alembic.command.revision(alembic_config(url), "message", autogenerate=True)``).

``Store.fenced(check)`` is the same store with a check run at the start of every transaction: a
job's run passes its lease (``leases.check_lease``), so that each of its writes is fenced.

A SQLite URL must name a file in an existing directory (a typo in ``--db`` is an error, not a new
directory); ``open_store(url, create_dir=True)`` creates the directory, for the default database in
the data directory. SQLite (the embedded default) is set up for several processes on one file: WAL
journal, foreign keys on, and a 30 s busy timeout on every connection; migrations run under ``BEGIN
IMMEDIATE`` so two processes starting on a fresh file do not both create the tables. PostgreSQL URLs
(``postgresql+psycopg://…``) are used unchanged; migrations there take an advisory lock.
SQLAlchemy and Alembic errors leave this module as ``StoreError`` with a hint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from evoforge.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
URL_HINT = (
    "check the --db URL / EVOFORGE_DB (e.g. sqlite:////abs/path/evoforge.db or "
    "postgresql+psycopg://user:password@host/dbname)"
)
_PG_MIGRATION_LOCK = 0x65766F66  # "evof": advisory lock id serialising concurrent migrations


def _redacted(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory / URI-style databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first, so that switching the journal mode waits for other processes too.
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL, much faster commits
    finally:
        cursor.close()


def make_engine(url: str, *, create_dir: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get the pragmas above (and their directory if asked)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL: {exc}", hint=URL_HINT) from exc
    kwargs: dict[str, Any] = {}
    if _is_sqlite(parsed):
        path = _sqlite_file(parsed)
        if path is not None and create_dir:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory of the SQLite database {path}: {exc}", hint=URL_HINT
                ) from exc
        elif path is not None and not path.parent.is_dir():
            raise ConfigError(
                f"the directory of the SQLite database {path} does not exist",
                hint=f"create {path.parent} first, or correct the --db URL / EVOFORGE_DB",
            )
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except ImportError as exc:
        raise StoreError(
            f"the database driver for {parsed.drivername!r} is not installed ({exc})",
            hint="for PostgreSQL install evoforge[postgres] (psycopg 3) and use a postgresql+psycopg:// URL",
        ) from exc
    except (ArgumentError, SQLAlchemyError) as exc:
        raise StoreError(f"cannot use the database URL {_redacted(parsed)}: {exc}", hint=URL_HINT) from exc
    if _is_sqlite(parsed):
        event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the packaged migrations (``url`` only for Alembic's own commands)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StoreError("no migrations found", hint=f"reinstall evoforge; expected {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot read the schema revision of {_redacted(engine.url)}: {exc}", hint=URL_HINT
        ) from exc


def _lock_for_migration(connection: Connection) -> None:
    """Serialise concurrent migrations (a second process waits, then finds the schema at head)."""
    if connection.dialect.name == "sqlite":
        # pysqlite has not begun a transaction yet (it only does so before DML); take the write lock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")


def migrate(engine: Engine) -> str:
    """Upgrade the schema to the newest revision (a no-op when it is there); returns that revision."""
    head = head_revision()
    if current_revision(engine) == head:
        return head
    config = alembic_config()
    try:
        with engine.begin() as connection:
            _lock_for_migration(connection)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except CommandError as exc:
        raise StoreError(
            f"cannot migrate {_redacted(engine.url)}: {exc}",
            hint="the database may have been created by a newer evoforge: upgrade evoforge or use "
            "another --db / EVOFORGE_DB",
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate {_redacted(engine.url)}: {exc}", hint=URL_HINT) from exc
    log.info("database %s migrated to revision %s", _redacted(engine.url), head)
    return head


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (``expire_on_commit=False``)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@dataclass(frozen=True)
class Store:
    """An open, migrated database: the engine and its session factory."""

    engine: Engine
    sessions: sessionmaker[Session]
    #: run first in every transaction (a lease check); None for an unfenced store
    fence: Callable[[Session], None] | None = None

    def fenced(self, check: Callable[[Session], None]) -> Store:
        """This store (same engine) with ``check`` opening each transaction; it raises to refuse."""
        return replace(self, fence=check)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on an exception.

        Keep it short (SQLite allows one writer at a time). Database errors become ``StoreError``.
        """
        try:
            with self.sessions.begin() as session:
                if self.fence is not None:
                    self.fence(session)
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(
                f"database operation failed on {_redacted(self.engine.url)}: {exc}", hint=URL_HINT
            ) from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_store(url: str, *, create_dir: bool = False) -> Store:
    """Engine + migration + session factory for ``url`` (``create_dir``: see ``make_engine``)."""
    engine = make_engine(url, create_dir=create_dir)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine=engine, sessions=session_factory(engine))
