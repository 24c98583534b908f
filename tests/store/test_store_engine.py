"""Engine setup and migrations of the store on real SQLite files."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from evoforge.errors import ConfigError, StoreError
from evoforge.store import Base, make_engine, migrate, open_store
from evoforge.store.engine import current_revision, head_revision

TABLES = {
    "jobs",
    "candidates",
    "stage_runs",
    "cache_entries",
    "llm_calls",
    "learned_entries",
    "alembic_version",
}


def test_migrate_fresh_file_creates_tables_and_records_revision(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "evoforge.db"  # parent directories do not exist yet
    engine = make_engine(f"sqlite:///{db}", create_dir=True)  # as for the default database
    assert current_revision(engine) is None
    assert migrate(engine) == head_revision()
    assert db.exists()
    assert set(inspect(engine).get_table_names()) >= TABLES
    with sqlite3.connect(db) as raw:  # independent of SQLAlchemy: the revision row is really there
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    engine.dispose()


def test_second_migrate_is_a_noop(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'e.db'}")
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (created_at, updated_at, status, kind, target_name, target_fingerprint,"
                " target_source, target_meta, options) VALUES ('2024-01-01 00:00:00', '2024-01-01 00:00:00',"
                " 'queued', 'rtl', 't', 'fp', 'module t; endmodule', '{}', '{}')"
            )
        )
    schema_before = _schema(tmp_path / "e.db")
    assert migrate(engine) == head_revision()
    assert _schema(tmp_path / "e.db") == schema_before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 1
    engine.dispose()


def _schema(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as raw:
        return raw.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


def test_migrated_schema_matches_models(tmp_path: Path) -> None:
    """The hand-kept migration and the models must not drift apart."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    engine.dispose()


def test_pragmas_wal_foreign_keys_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 10_000
    engine.dispose()


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fk.db'}")
    migrate(engine)
    with pytest.raises(IntegrityError, match="FOREIGN KEY"), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO candidates (job_id, origin, note, source, source_hash, status, reason, metrics,"
                " generation, created_at, updated_at) VALUES (424242, 'user', '', 'x', 'h', 'pending', '',"
                " '{}', 0, '2024-01-01 00:00:00', '2024-01-01 00:00:00')"
            )
        )
    engine.dispose()


def test_check_constraint_rejects_unknown_job_status(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ck.db'}")
    migrate(engine)
    with pytest.raises(IntegrityError, match="CHECK"), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (created_at, updated_at, status, kind, target_name, target_fingerprint,"
                " target_source, target_meta, options) VALUES ('2024-01-01', '2024-01-01', 'done', 'rtl',"
                " 't', 'fp', 's', '{}', '{}')"
            )
        )
    engine.dispose()


def test_open_store_in_memory() -> None:
    with open_store("sqlite://") as store, store.transaction() as session:
        assert session.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url", "invalid database URL"),
        ("nosuchdb+nodriver://h/db", "cannot use the database URL"),
        ("postgresql+psycopg://user:secret@127.0.0.1:1/none", None),  # driver missing or server down
    ],
)
def test_bad_urls_raise_store_error_with_hint(url: str, fragment: str | None) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert "EVOFORGE_DB" in (info.value.hint or "") or "postgres" in (info.value.hint or "")
    assert "secret" not in str(info.value)  # passwords are not echoed
    if fragment:
        assert fragment in info.value.message


def test_unwritable_sqlite_directory_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the directory"):
        make_engine(f"sqlite:///{blocker / 'sub' / 'x.db'}", create_dir=True)


def test_a_database_in_a_missing_directory_is_an_error_not_a_new_directory(tmp_path: Path) -> None:
    """Issue 11 item 10: ``--db sqlite:////no/such/x.db`` created the directory; a typo is an error."""
    missing = tmp_path / "no" / "such"
    with pytest.raises(ConfigError, match="does not exist") as info:
        open_store(f"sqlite:///{missing / 'x.db'}")
    assert "--db" in (info.value.hint or "")
    assert not missing.exists() and not missing.parent.exists()


def test_database_from_a_newer_evoforge_raises_store_error(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        raw.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
    with pytest.raises(StoreError, match="cannot migrate") as info:
        open_store(f"sqlite:///{db}")
    assert "newer evoforge" in (info.value.hint or "")


def _migrate_in_child(url: str, results: multiprocessing.Queue) -> None:
    try:
        open_store(url).close()
        results.put("ok")
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(repr(exc))


def test_two_processes_migrate_one_fresh_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_migrate_in_child, args=(url, results)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    outcomes = [results.get(timeout=5) for _ in procs]
    assert outcomes == ["ok"] * len(procs)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
