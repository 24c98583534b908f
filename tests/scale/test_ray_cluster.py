"""Jobs on a real Ray cluster on 127.0.0.1 (issue 14): ``ray start --head`` plus a worker node, one
cluster for the module. A Ray worker killed mid-candidate is retried and leaves one set of stage
rows; a driver killed mid-job is resumed without re-evaluating what it finished; GPU tasks go only to
the node that declares a GPU.

A candidate is held mid-cascade by construction, not by luck: the job's own cocotb test sleeps in
the ``simulate`` stage, so once a candidate's ``interface`` row is written, its task is busy for
seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'evoforge[ray]')")

from ray_cluster import LocalRayCluster

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "examples" / "rtl" / "seq_detect.v"
EVOFORGE = Path(sys.executable).with_name("evoforge")
RTL_STAGES = ["parse", "lint", "interface", "simulate", "equivalence", "synthesis", "timing"]
HOLD_S = 8
SLOW_USER_TEST = f"""\
import time

import cocotb


@cocotb.test()
async def takes_a_while(dut):
    time.sleep({HOLD_S})
"""
FAST_RTL_ENV = {
    "EVOFORGE_RTL__SIM_CYCLES": "300",
    "EVOFORGE_RTL__SIM_SEEDS": "1",
    "EVOFORGE_RTL__PROBE_CYCLES": "100",
    "COCOTB_REWRITE_ASSERTION_FILES": "",
}

RELU_PROBLEM = """\
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0 + 1.0


def get_inputs():
    return [torch.randn(16, 256)]


def get_init_inputs():
    return []
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    data = tmp_path_factory.mktemp("ray-workers-data")
    ray = LocalRayCluster({"EVOFORGE_DATA_DIR": str(data), **FAST_RTL_ENV})
    try:
        ray.start_head(cpus=1, gpus=0)
        ray.add_worker(cpus=2, gpus=1)  # a declared GPU: Ray places by what a node declares
        yield ray
    finally:
        ray.stop()


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "EVOFORGE_DATA_DIR": str(tmp_path / "driver-data"), **FAST_RTL_ENV}
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """The real set-up's PostgreSQL when EVOFORGE_TEST_POSTGRES_URL is set (a fresh schema), else SQLite."""
    base = os.environ.get("EVOFORGE_TEST_POSTGRES_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        return
    from sqlalchemy import make_url

    schema = f"evoforge_ray_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        _ENGINES.pop(schema, None)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def _run_args(cluster: LocalRayCluster, db: str, tmp_path: Path) -> list[str]:
    test = tmp_path / "test_slow.py"
    test.write_text(SLOW_USER_TEST)
    return [
        str(EVOFORGE),
        "run",
        str(DESIGN),
        "--proposer",
        "offline",
        "--budget",
        "2",
        "--workers",
        "1",
        "--test",
        str(test),
        "--db",
        db,
        "--executor",
        "ray",
        "--ray-address",
        cluster.address,
    ]


_ENGINES: dict[str, Engine] = {}


def _query(db: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Rows of ``sql`` (``?`` placeholders) on the database at URL ``db``, SQLite or PostgreSQL."""
    engine = _ENGINES.get(db) or _ENGINES.setdefault(db, create_engine(db))
    names = iter(range(len(args)))
    bound = re.sub(r"\?", lambda _: f":p{next(names)}", sql)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(bound), {f"p{i}": a for i, a in enumerate(args)})]


def _wait_for(predicate: object, what: str, process: subprocess.Popen[str], timeout_s: float = 300) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = predicate()  # type: ignore[operator]
        except SQLAlchemyError:  # the run has not created its tables yet
            found = None
        if found:
            return found
        if process.poll() is not None:
            raise AssertionError(
                f"the run ended before {what}:\n{process.stderr.read() if process.stderr else ''}"
            )
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _held_candidate(db: str) -> tuple[int, str] | None:
    """A pending candidate whose task is in its (slow) simulate stage: (id, evaluated_by)."""
    rows = _query(
        db,
        "SELECT c.id, c.evaluated_by FROM candidates c JOIN stage_runs s ON s.candidate_id = c.id "
        "WHERE c.status = 'pending' AND s.name = 'interface' AND c.evaluated_by IS NOT NULL",
    )
    return (int(rows[0][0]), str(rows[0][1])) if rows else None  # type: ignore[call-overload]


def _check_one_set_of_rows(db: str) -> None:
    for cid, status in _query(db, "SELECT id, status FROM candidates WHERE origin != 'original'"):
        names = [
            n for (n,) in _query(db, "SELECT name FROM stage_runs WHERE candidate_id = ? ORDER BY id", cid)
        ]
        assert status != "pending", f"candidate {cid} was left pending"
        assert names and names == RTL_STAGES[: len(names)], f"candidate {cid} has rows {names}"


def test_a_ray_worker_killed_mid_candidate_is_retried_with_one_set_of_rows(
    cluster: LocalRayCluster, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    run = subprocess.Popen(
        [*_run_args(cluster, db, tmp_path), "--json"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cid, where = _wait_for(lambda: _held_candidate(db), "a candidate in its simulate stage", run)  # type: ignore[misc]
        pid = int(where.split()[0].rsplit(":", 1)[1])
        assert "ray-node" in where and pid in cluster.worker_pids(), f"{where} is not a worker of the cluster"
        os.kill(pid, signal.SIGKILL)
        out, err = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err[-3000:]
    report = json.loads(out)
    assert report["status"] == "succeeded" and report["counts"]["proposed"] == 2
    _check_one_set_of_rows(db)
    [(attempts, status, evaluated_by)] = _query(
        db, "SELECT attempts, status, evaluated_by FROM candidates WHERE id = ?", cid
    )
    assert attempts == 2 and status in ("accepted", "rejected"), (attempts, status)
    assert int(str(evaluated_by).split()[0].rsplit(":", 1)[1]) != pid  # the retry ran in another process
    for (by,) in _query(db, "SELECT evaluated_by FROM candidates WHERE origin != 'original'"):
        assert "ray-node" in str(by)  # every candidate was evaluated on the cluster


def test_a_killed_driver_resumes_without_re_evaluating_finished_candidates(
    cluster: LocalRayCluster, tmp_path: Path, db_url: str
) -> None:
    db = db_url  # PostgreSQL in CI: the real set-up
    args = _run_args(cluster, db, tmp_path)
    run = subprocess.Popen(
        args, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:

        def second_held() -> tuple[int, str] | None:
            finished = _query(
                db, "SELECT count(*) FROM candidates WHERE origin != 'original' AND status != 'pending'"
            )
            return _held_candidate(db) if finished[0][0] else None

        _wait_for(second_held, "one finished candidate and a second one mid-cascade", run)
        run.send_signal(signal.SIGKILL)  # the driver dies; its Ray tasks go with it
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    [(job_id,)] = _query(db, "SELECT id FROM jobs")
    before = {
        cid: (attempts, [r for (r,) in _query(db, "SELECT id FROM stage_runs WHERE candidate_id = ?", cid)])
        for cid, attempts in _query(
            db, "SELECT id, attempts FROM candidates WHERE origin != 'original' AND status != 'pending'"
        )
    }
    assert before
    resume = [*args[:2], "--resume", str(job_id), *args[args.index("--db") :], "--json"]
    resume = [a for a in resume if a != str(DESIGN)]
    done = subprocess.run(resume, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["status"] == "succeeded"
    _check_one_set_of_rows(db)
    for cid, (attempts, rows) in before.items():  # finished before the kill: untouched
        [(now_attempts,)] = _query(db, "SELECT attempts FROM candidates WHERE id = ?", cid)
        now_rows = [r for (r,) in _query(db, "SELECT id FROM stage_runs WHERE candidate_id = ?", cid)]
        assert (now_attempts, now_rows) == (attempts, rows), f"candidate {cid} was evaluated again"


def test_gpu_tasks_run_only_on_the_node_with_a_gpu(cluster: LocalRayCluster, tmp_path: Path) -> None:
    from evoforge.config import KernelSettings, Settings
    from evoforge.domain import DEFAULT_KERNEL_OBJECTIVES, JobStatus
    from evoforge.search import jobs
    from evoforge.search.ray_executor import RayExecutor
    from evoforge.store import leases, repository
    from evoforge.store.engine import open_store
    from evoforge.verifiers.kernel.target import load_kernel_target

    problem = tmp_path / "relu.py"
    problem.write_text(RELU_PROBLEM)
    settings = Settings(data_dir=tmp_path / "data", kernel=KernelSettings(require_gpu=True))
    target = load_kernel_target(problem, settings.kernel, work_dir=tmp_path / "load")
    store = open_store(f"sqlite:///{tmp_path / 'gpu.db'}")
    job_id = jobs.create_job(store, target, settings, DEFAULT_KERNEL_OBJECTIVES, status=JobStatus.RUNNING)
    executor = RayExecutor(address=cluster.address)
    try:
        assert executor.capabilities().gpus == 1
        assert jobs._check_gpu(store, job_id, executor) is True
        with store.transaction() as session:
            token = leases.take_lease(session, job_id, "test")
            sources = ["x = 1\n", "import os\n", "y = 2\n"]  # no ModelNew: rejected at 'static', quickly
            cids = [
                repository.add_candidate(session, job_id, source=s, origin="test", source_hash=str(i)).id
                for i, s in enumerate(sources)
            ]
        verifier = jobs.make_verifier(target, settings)
        ref, context = jobs._prepare_tasks(store, target, settings, verifier, gpu=True)
        factory = jobs.TaskFactory(ref, context, jobs.task_database_url(store), job_id, token)
        outcomes = list(
            executor.run([factory.task(c, s) for c, s in zip(cids, sources, strict=True)], parallel=3)
        )
        gpu_nodes = {n["id"] for n in cluster.alive_nodes() if n["resources"].get("GPU")}  # type: ignore[union-attr]
    finally:
        executor.close()
    assert len(gpu_nodes) == 1
    for task, outcome in outcomes:
        assert not isinstance(outcome, BaseException), outcome
        assert outcome.verdict is not None and outcome.verdict.stage == "static"
        node = outcome.worker.split("ray-node ")[1]
        assert any(n.startswith(node) for n in gpu_nodes), f"candidate {task.candidate_id} ran on {node}"
