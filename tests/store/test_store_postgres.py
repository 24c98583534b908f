"""The store on PostgreSQL (psycopg 3): runs when EVOFORGE_TEST_POSTGRES_URL is set.

Each test works in a fresh schema of that database (dropped afterwards), so the URL may point at
a database that holds other data, e.g. ``postgresql+psycopg://user:password@localhost/evoforge_test``.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import make_url

from evoforge.domain import Metrics, StageResult, TargetKind, Verdict, VerdictContext
from evoforge.store import Base, Store, make_engine, migrate, open_store
from evoforge.store import repository as repo
from evoforge.store.engine import current_revision, head_revision

CONTEXT_V = VerdictContext(TargetKind.RTL, (("yosys", "v"),), ())

POSTGRES_URL = os.environ.get("EVOFORGE_TEST_POSTGRES_URL")

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="set EVOFORGE_TEST_POSTGRES_URL=postgresql+psycopg://user:password@host/db to run these",
)


@pytest.fixture
def schema_url() -> Iterator[str]:
    assert POSTGRES_URL
    schema = f"evoforge_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def store(schema_url: str) -> Iterator[Store]:
    with open_store(schema_url) as opened:
        yield opened


def test_migrate_twice_and_schema_matches_models(schema_url: str) -> None:
    engine = make_engine(schema_url)
    assert migrate(engine) == head_revision()
    assert migrate(engine) == head_revision()
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert (
            compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
            == []
        )
    engine.dispose()


def test_three_threads_migrate_one_fresh_schema(schema_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            open_store(schema_url).close()
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    engine = make_engine(schema_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_round_trip_and_cache(store: Store) -> None:
    with store.transaction() as session:
        job = repo.create_job(
            session,
            kind="rtl",
            target_name="t",
            target_fingerprint="fp",
            target_source="s",
            options={"seed": 1},
        )
        cand = repo.add_candidate(session, job.id, source="c", origin="user", source_hash="h")
        stage = StageResult("parse", True, 0.1, log="nul\x00here", data={"x": (1, 2)})
        repo.record_stage(session, cand.id, stage)
        repo.finish_candidate(session, cand, Verdict(True, "parse", "", Metrics(area_um2=3.0), (stage,)))
        repo.bump_job_counts(session, job, proposed=1)
        job_id = job.id
    for verdict in ({"first": True}, {"first": False}):
        with store.transaction() as session:
            entry = repo.put_cache(
                session,
                target_fingerprint="fp",
                hash_kind="source",
                hash="h",
                context=CONTEXT_V,
                verdict=verdict,
            )
            assert entry.verdict == {"first": True}
    with store.transaction() as session:
        job = repo.get_job(session, job_id)
        assert job.created_at.tzinfo is UTC and job.proposed == 1 and job.cancel_requested is False
        (cand,) = repo.list_candidates(session, job_id, order_by="area_um2")
        assert cand.status == "accepted" and cand.metrics == {"area_um2": 3.0}
        assert cand.stage_runs[0].log_excerpt == "nul\\x00here" and cand.stage_runs[0].data == {"x": [1, 2]}


def test_claim_next_job_from_two_threads(store: Store) -> None:
    with store.transaction() as session:
        ids = [
            repo.create_job(
                session, kind="rtl", target_name=f"t{i}", target_fingerprint="fp", target_source="s"
            ).id
            for i in range(12)
        ]
    claims: Counter[int] = Counter()
    lock = threading.Lock()

    def work(worker: str) -> None:
        while True:
            with store.transaction() as session:
                job = repo.claim_next_job(session, worker)
                if job is None:
                    return
                with lock:
                    claims[job.id] += 1

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claims) == sorted(ids) and set(claims.values()) == {1}
