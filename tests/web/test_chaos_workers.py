"""Chaos: three workers on one database, one killed, one paused past its lease and resumed
(issue 11, "done means"). Every job ends once, every candidate has one set of stage rows.

On SQLite and — with EVOFORGE_TEST_POSTGRES_URL — PostgreSQL. Kept fast with a 3 s stale timeout
and tiny jobs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, select
from web_helpers import ADDSEL, FAST_RTL

from evoforge.config import Settings
from evoforge.domain import DEFAULT_RTL_OBJECTIVES
from evoforge.search import jobs
from evoforge.store import make_engine, open_store
from evoforge.store.models import Candidate, Job, StageRun
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

POSTGRES_URL = os.environ.get("EVOFORGE_TEST_POSTGRES_URL")
STALE_S = 3.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chaos.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("set EVOFORGE_TEST_POSTGRES_URL=postgresql+psycopg://user@host/db to run this")
    schema = f"evoforge_chaos_{uuid.uuid4().hex[:10]}"
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


def _running(store: object, job_ids: list[int]) -> dict[int, str]:
    with store.transaction() as session:  # type: ignore[attr-defined]
        rows = session.execute(select(Job.id, Job.status, Job.worker).where(Job.id.in_(job_ids))).all()
    return {job_id: worker for job_id, status, worker in rows if status == "running" and worker}


@pytest.mark.slow
def test_three_workers_one_killed_one_paused_past_its_lease(db_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", rtl=FAST_RTL, db=db_url)
    settings = settings.model_copy(
        update={
            "search": settings.search.model_copy(update={"budget": 3, "workers": 1, "proposer": "offline"})
        }
    )
    design = tmp_path / "addsel.v"
    design.write_text(ADDSEL)
    target = load_rtl_target([design], RtlTargetOptions(), workdir=tmp_path)
    store = open_store(db_url)
    job_ids = [jobs.create_job(store, target, settings, DEFAULT_RTL_OBJECTIVES) for _ in range(4)]
    env = {
        **os.environ,
        "EVOFORGE_DB": db_url,
        "EVOFORGE_DATA_DIR": str(settings.data_dir),
        "EVOFORGE_RTL__SIM_CYCLES": "1000",
        "EVOFORGE_RTL__SIM_SEEDS": "1",
        "EVOFORGE_RTL__PROBE_CYCLES": "300",
        "EVOFORGE_WEB__HEARTBEAT_S": "0.3",
        "EVOFORGE_WEB__STALE_AFTER_S": str(STALE_S),
        "EVOFORGE_WEB__POLL_S": "0.2",
    }
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "evoforge.cli", "worker"],
            env=env,
            stderr=log.open("w"),
            start_new_session=True,
        )
        for log in logs
    ]
    try:
        # all three busy at once, each with its own job
        deadline = time.monotonic() + 120
        while len(set(_running(store, job_ids).values())) < 3:
            assert time.monotonic() < deadline, "three workers never ran at once"
            time.sleep(0.1)
        owner = {
            int(re.search(r":(\d+):", w).group(1)): job_id  # type: ignore[union-attr]
            for job_id, w in _running(store, job_ids).items()
        }
        killed, paused, _steady = workers
        os.kill(killed.pid, signal.SIGKILL)  # kill -9 mid-candidate (its tools die with it)
        os.kill(paused.pid, signal.SIGSTOP)  # paused past its lease …
        paused_job = owner[paused.pid]
        deadline = time.monotonic() + 180
        while True:  # … until another worker has taken its job over
            holder = _running(store, job_ids).get(paused_job)
            if holder is not None and f":{paused.pid}:" not in holder:
                break
            with store.transaction() as session:
                if session.get(Job, paused_job).status != "running":  # type: ignore[union-attr]
                    break
            assert time.monotonic() < deadline, "the paused worker's job was never taken over"
            time.sleep(0.2)
        os.kill(paused.pid, signal.SIGCONT)  # … and resumed: it must not write any more
        deadline = time.monotonic() + 400
        while True:
            with store.transaction() as session:
                statuses = dict(session.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids))).all())
            if all(s in ("succeeded", "failed", "cancelled") for s in statuses.values()):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.3)
        time.sleep(2 * STALE_S)  # room for a late write of the resumed worker to show up
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=30)
    assert set(statuses.values()) == {"succeeded"}, statuses
    text = "\n".join(log.read_text() for log in logs)
    ends = Counter(int(n) for n in re.findall(r"job (\d+) ended \w+", text))
    assert ends == Counter(job_ids), text  # every job ended once
    assert f"job {paused_job} lost its lease" in logs[1].read_text(), logs[1].read_text()
    with store.transaction() as session:
        for candidate in session.scalars(select(Candidate).where(Candidate.job_id.in_(job_ids))):
            names = [
                r.name for r in session.scalars(select(StageRun).where(StageRun.candidate_id == candidate.id))
            ]
            assert len(names) == len(set(names)), (candidate.id, candidate.origin, names)
            assert candidate.status != "pending"
