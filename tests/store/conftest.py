"""Fixtures of the store tests: a migrated store on SQLite, and on PostgreSQL when
EVOFORGE_TEST_POSTGRES_URL is set (a fresh schema per test, dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from evoforge.store import Store, make_engine, open_store

POSTGRES_URL = os.environ.get("EVOFORGE_TEST_POSTGRES_URL")


def postgres_schema_url() -> tuple[str, str]:
    """(URL with a fresh schema on its search path, schema name); the caller drops the schema."""
    assert POSTGRES_URL
    schema = f"evoforge_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    admin.dispose()
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_schema(schema: str) -> None:
    assert POSTGRES_URL
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on each backend (PostgreSQL skipped without EVOFORGE_TEST_POSTGRES_URL)."""
    if request.param == "sqlite":
        with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
            yield store
        return
    if not POSTGRES_URL:
        pytest.skip("set EVOFORGE_TEST_POSTGRES_URL=postgresql+psycopg://user@host/db to run this")
    url, schema = postgres_schema_url()
    try:
        with open_store(url) as store:
            yield store
    finally:
        drop_schema(schema)
