"""Jobs from creation to the end: create a job row, run a stored job, and the worker that claims them.

One path serves every way a job runs: ``evoforge run`` (create ``running``, then ``run_job``),
``evoforge run --resume`` (``run_job`` on the existing row), ``evoforge worker`` and the web server's
embedded worker (``Worker``: claim a ``queued`` job atomically, then ``run_job``). ``run_job`` rebuilds
the target from the stored source and options, never from the caller's files, so a job runs the same
wherever it is picked up; a job submitted through the web is loaded here, by the worker
(``stored.py``). A run holds the job's lease (``store/leases.py``): every transaction of the run is
fenced by its token, and a heartbeat thread renews it on the database clock. A worker that finds a
``running`` job whose heartbeat is older than ``stale_after_s`` puts it back in the queue (the next
holder resumes its pending candidates afresh), or ends it ``cancelled`` when a cancel was asked for;
the old holder, if it was only paused, finds its token gone at its next write and stops
(``LeaseLostError``).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoforge.config import Settings
from evoforge.domain import JobStatus, Objective, Target, TargetKind, VerdictContext, source_hash
from evoforge.errors import ConfigError, EvoforgeError, LeaseLostError
from evoforge.search import evaluate
from evoforge.search.dedupe import DraftRegistry
from evoforge.search.executor import Executor, TaskFactory, make_executor
from evoforge.search.loop import LoopOptions, Progress, SearchLoop
from evoforge.search.proposing import choose_proposer, make_proposer
from evoforge.search.specs import file_ref, put_evaluation_spec
from evoforge.search.stored import load_stored_job
from evoforge.store import leases, repository
from evoforge.store.blobs import SqlBlobStore
from evoforge.store.engine import Store

log = logging.getLogger(__name__)


def worker_name(role: str = "worker") -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


# -- creating a job --------------------------------------------------------------------------------


def job_options(
    store: Store, settings: Settings, objectives: Sequence[Objective], target: Target | None
) -> dict[str, Any]:
    """What a stored job remembers of the settings it was created with (``run_job`` reads them back).

    Files (the liberty, the user's test) are stored as blobs and named by reference, never by a
    path of this machine (``specs.file_ref``): the job runs the same on any worker.
    """
    blobs = SqlBlobStore(store)
    liberty = settings.rtl.liberty
    return {
        "budget": settings.search.budget,
        "seed": settings.search.seed,
        "workers": settings.search.workers,
        "proposer": settings.search.proposer,
        "model": settings.llm.model,
        "planner_model": settings.llm.planner_model,
        "objectives": [o.value for o in objectives],
        "min_assurance": settings.rtl.min_assurance,
        "liberty": file_ref(blobs, liberty.expanduser()) if liberty else None,
        "clock_period_ns": settings.rtl.clock_period_ns,
        "user_test": file_ref(blobs, target.user_test) if target is not None and target.user_test else None,
        **kernel_job_options(settings, target),
    }


def kernel_job_options(settings: Settings, target: Target | None) -> dict[str, Any]:
    """The kernel settings (sizes pinned to what the size check chose) and the size check's record."""
    from evoforge.verifiers.kernel.target import pinned_kernel_options, scaling_of

    if target is None:
        return {"kernel": settings.kernel.model_dump(), "scaling": None}
    scaling = scaling_of(target)
    return {
        "kernel": pinned_kernel_options(settings.kernel, target),
        "scaling": {k: scaling.get(k) for k in ("note", "constants", "mode")} if scaling else None,
    }


def create_job(
    store: Store,
    target: Target,
    settings: Settings,
    objectives: Sequence[Objective],
    *,
    status: JobStatus = JobStatus.QUEUED,
) -> int:
    """Store a job for ``target``: ``queued`` for a worker, or ``running`` for the caller to run now."""
    options = job_options(store, settings, objectives, target)
    with store.transaction() as session:
        job = repository.create_job(
            session,
            kind=target.kind.value,
            target_name=target.name,
            target_fingerprint=target.fingerprint,
            target_source=target.source,
            target_meta=target_meta(target),
            options=options,
            status=status,
        )
        job.needs_gpu = needs_gpu(target.kind, settings)
        return job.id


def needs_gpu(kind: TargetKind, settings: Settings) -> bool:
    """The job must be timed on a GPU (kernels with ``kernel.require_gpu``)."""
    return kind is TargetKind.KERNEL and settings.kernel.require_gpu


def target_meta(target: Target) -> dict[str, Any]:
    """What a job row keeps of a loaded target besides its source (the RTL interface choices)."""
    meta: dict[str, Any] = {"files": [s.name for s in target.sources]}
    if target.rtl is not None:
        rtl = target.rtl.to_dict()
        meta |= {
            "top": target.rtl.top,
            "clock": target.rtl.clock,
            "reset": target.rtl.reset,
            "reset_active_low": target.rtl.reset_active_low,
            # every clock and reset with its edges/polarity, and how they were found
            "clocks": rtl["clocks"],
            "resets": rtl["resets"],
            "notes": rtl["notes"],
        }
    return meta


@dataclass(frozen=True)
class UnloadedTarget:
    """A submitted target not loaded yet (the worker loads it): its text and the user's choices."""

    kind: TargetKind
    name: str
    source: str
    filename: str
    top: str | None = None
    clock: str | None = None
    reset: str | None = None


def create_unloaded_job(
    store: Store, target: UnloadedTarget, settings: Settings, objectives: Sequence[Objective]
) -> int:
    """Queue a job whose target the worker loads (a web submission: no slow work in the request)."""
    options = job_options(store, settings, objectives, None)
    meta = {
        "files": [target.filename],
        "top": target.top,
        "clock": target.clock,
        "reset": target.reset,
        "reset_active_low": None,
        "loaded": False,
    }
    with store.transaction() as session:
        job = repository.create_job(
            session,
            kind=target.kind.value,
            target_name=target.name,
            # provisional (the source alone); the worker stores the loaded target's fingerprint
            target_fingerprint="unloaded-" + source_hash(target.source, target.kind)[:48],
            target_source=target.source,
            target_meta=meta,
            options=options,
            status=JobStatus.QUEUED,
        )
        job.needs_gpu = needs_gpu(target.kind, settings)
        return job.id


# -- running a stored job --------------------------------------------------------------------------


def run_job(
    store: Store,
    job_id: int,
    settings: Settings,
    progress: Progress | None = None,
    *,
    worker: str | None = None,
    budget: int | None = None,
    clear_cancel: bool = False,
    lease: str | None = None,
    executor: Executor | None = None,
) -> None:
    """Run (or resume) stored job ``job_id`` to its end under a lease, as ``worker``.

    ``lease`` is the token of a claim (``leases.claim_next_job``); without one the job is taken
    over (``evoforge run``, ``--resume``). Every transaction of the run is fenced by the token: a
    run that lost the lease raises ``LeaseLostError`` and has written nothing since. A target that
    cannot be loaded ends the job ``failed`` with the loader's message (and raises it).
    ``clear_cancel`` forgets an earlier cancel request (``evoforge run --resume`` of a cancelled job).
    Candidates are evaluated by ``executor`` (default: the one ``settings.executor`` names, made
    for this run and closed after it).
    """
    from evoforge.search.stored import refuse_if_succeeded

    name = worker or worker_name("run")
    if lease is None:
        refuse_if_succeeded(store, job_id)
        with store.transaction() as session:
            lease = leases.take_lease(session, job_id, name)
    token = lease
    fenced = store.fenced(lambda session: leases.check_lease(session, job_id, token))
    beat = _Heartbeat(store, job_id, token, settings.web.heartbeat_s)
    beat.start()
    own_executor = executor is None
    target_ref: evaluate.TargetRef | None = None
    context: VerdictContext | None = None
    verifier: Any = None
    try:
        if clear_cancel:
            with fenced.transaction() as session:
                repository.get_job(session, job_id).cancel_requested = False
        try:
            if executor is None:
                executor = make_executor(settings.executor, ray_address=settings.ray_address)
            gpu = _check_gpu(store, job_id, executor)
            stored = load_stored_job(fenced, job_id, settings, budget=budget)
            job_settings = choose_proposer(stored.settings)
            verifier = make_verifier(stored.target, job_settings)
            target_ref, context = _prepare_tasks(store, stored.target, job_settings, verifier, gpu)
            drafts = DraftRegistry(fenced, stored.target, job_id=job_id, context=context)
            proposer, learn = make_proposer(job_settings, fenced, job_id, stored.target, verifier, drafts)
        except LeaseLostError:
            raise
        except EvoforgeError as exc:
            with store.transaction() as session:
                leases.fail_if_held(session, job_id, token, f"the job could not start: {exc}")
            raise
        log.info(
            "job %s: %s, budget %s, evaluated by %s",
            job_id,
            stored.target.name,
            job_settings.search.budget,
            executor.name,
        )
        loop = SearchLoop(
            drafts=drafts,
            store=fenced,
            target=stored.target,
            verifier=verifier,
            proposer=proposer,
            learn=learn,
            options=LoopOptions(
                budget=job_settings.search.budget,
                seed=job_settings.search.seed,
                objectives=stored.objectives,
                workers=job_settings.search.workers,
                population_size=job_settings.search.population_size,
            ),
            executor=executor,
            tasks=TaskFactory(target_ref, context, task_database_url(store), job_id, token),
            progress=progress,
        )
        loop.run(job_id)
    finally:
        beat.stop()
        if target_ref is not None and context is not None:
            evaluate.forget_verifier(target_ref, context)
        if own_executor and executor is not None:
            executor.close()
        work_root = getattr(verifier, "work_root", None)
        if work_root is not None:  # a long-lived worker keeps no job's scratch (trial tensors, builds)
            shutil.rmtree(work_root, ignore_errors=True)


def _check_gpu(store: Store, job_id: int, executor: Executor) -> bool:
    """Whether the job needs a GPU; ``ConfigError`` when it does and ``executor`` offers none."""
    with store.transaction() as session:
        gpu = bool(repository.get_job(session, job_id).needs_gpu)
    offered = executor.capabilities()
    if gpu and offered.gpus < 1:
        raise ConfigError(
            f"job {job_id} must be timed on a GPU and {offered.where} has none",
            hint="run it with --executor ray on a cluster with a GPU node, or leave it queued for "
            "`evoforge worker` on a GPU machine (docs/deploy.md)",
        )
    return gpu


def _prepare_tasks(
    store: Store, target: Target, settings: Settings, verifier: Any, gpu: bool
) -> tuple[evaluate.TargetRef, VerdictContext]:
    """The job's target as tasks name it (its spec stored as a blob) and its verdict context.

    The verifier built here serves the tasks of this process (local executor) and shares the
    implementation cache table with every other worker.
    """
    from evoforge.search.impl_cache import StoredImplementationCache

    context: VerdictContext = verifier.verdict_context()
    verifier.implementation_cache = StoredImplementationCache(
        store, target_fingerprint=target.fingerprint, context_digest=evaluate.context_digest(context)
    )
    spec = put_evaluation_spec(SqlBlobStore(store), target, settings)
    ref = evaluate.TargetRef(spec, target.fingerprint, target.kind, needs_gpu=gpu)
    evaluate.register_store(task_database_url(store), store)
    evaluate.register_verifier(ref, context, verifier)
    return ref, context


def task_database_url(store: Store) -> str:
    """The store's URL as another process must use it (a relative SQLite path made absolute)."""
    url = store.engine.url
    database = url.database or ""
    relative = database not in (":memory:", "") and not database.startswith("file:")
    if url.get_backend_name() == "sqlite" and relative and not Path(database).is_absolute():
        url = url.set(database=str(Path(database).resolve()))
    return url.render_as_string(hide_password=False)


class _Heartbeat(threading.Thread):
    """Renews the job's lease every ``every_s`` on the database clock; stops once it is lost."""

    def __init__(self, store: Store, job_id: int, token: str, every_s: float) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.store, self.job_id, self.token, self.every_s = store, job_id, token, every_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            try:
                with self.store.transaction() as session:
                    if not leases.renew_lease(session, self.job_id, self.token):
                        log.warning("job %s: lease lost (another worker holds it now)", self.job_id)
                        return
            except EvoforgeError as exc:  # a busy database must not kill the job
                log.warning("heartbeat of job %s failed: %s", self.job_id, exc)

    def stop(self) -> None:
        self._stop_event.set()


def make_verifier(target: Target, settings: Settings) -> Any:
    """The verifier of ``target``'s kind (RTL or kernel), working in a fresh directory."""
    work = Path(tempfile.mkdtemp(prefix="evoforge-", dir=settings.work_dir()))
    if target.kind is TargetKind.KERNEL:
        from evoforge.verifiers.kernel.cascade import KernelVerifier

        return KernelVerifier(target=target, settings=settings.kernel, work_root=work)
    from evoforge.tools.liberty import prepare_liberty
    from evoforge.verifiers.rtl.cascade import RtlVerifier

    liberty = prepare_liberty(settings.rtl.liberty, settings.cache_dir)
    return RtlVerifier(
        target=target, settings=settings.rtl, liberty=liberty, work_root=work, shared_dir=settings.cache_dir
    )


# -- the worker ------------------------------------------------------------------------------------


def requeue_stale_jobs(store: Store, stale_after_s: float) -> list[int]:
    """Running jobs whose worker stopped beating: back to ``queued`` (or ``cancelled`` if asked)."""
    with store.transaction() as session:
        moved = leases.requeue_stale_jobs(session, stale_after_s)
    for job_id in moved:
        log.warning("job %s: its worker stopped (no heartbeat for %.0f s); requeued", job_id, stale_after_s)
    return moved


@dataclass(frozen=True)
class JobEnd:
    """How one claimed job ended for this worker: its status, or ``lost`` (another worker has it)."""

    job_id: int
    status: str
    error: str | None = None


class Worker:
    """Claims queued jobs one at a time and runs them; ``stop()`` ends it after the current job.

    ``on_end`` hears how each claimed job ended (the ``evoforge worker`` command prints it). The
    worker evaluates through ``executor`` (default: made from ``settings`` on first use, kept for
    its life) and advertises what that executor offers when it claims: without a GPU (on this
    machine, or in its Ray cluster) it leaves jobs that need one in the queue.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        name: str | None = None,
        on_end: Callable[[JobEnd], None] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.name = name or worker_name()
        self.on_end = on_end
        self._executor = executor
        self._stop_event = threading.Event()

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = make_executor(self.settings.executor, ray_address=self.settings.ray_address)
        return self._executor

    def run_once(self) -> int | None:
        """Requeue stale jobs, claim one, run it; the job id, or None when the queue is empty."""
        requeue_stale_jobs(self.store, self.settings.web.stale_after_s)
        gpus = self.executor.capabilities().gpus
        with self.store.transaction() as session:
            job = repository.claim_next_job(session, self.name, gpus=gpus)
            job_id, token = (job.id, job.lease_token) if job is not None else (None, None)
        if job_id is None or token is None:
            return None
        log.info("%s claimed job %s", self.name, job_id)
        try:
            run_job(self.store, job_id, self.settings, worker=self.name, lease=token, executor=self.executor)
        except LeaseLostError as exc:
            log.warning("job %s: %s", job_id, exc)
            self._ended(JobEnd(job_id, "lost", exc.message))
            return job_id
        except EvoforgeError as exc:  # the loop has already marked the job failed where it could
            log.warning("job %s failed: %s", job_id, exc)
            self._fail_if_held(job_id, token, str(exc))
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            self._fail_if_held(job_id, token, f"internal error: {type(exc).__name__}: {exc}")
        with self.store.transaction() as session:
            ended = repository.get_job(session, job_id)
            self._ended(JobEnd(job_id, ended.status, ended.error))
        return job_id

    def _ended(self, end: JobEnd) -> None:
        if self.on_end is not None:
            self.on_end(end)

    def _fail_if_held(self, job_id: int, token: str, message: str) -> None:
        with self.store.transaction() as session:
            leases.fail_if_held(session, job_id, token, message)

    def run_forever(self, *, max_jobs: int | None = None) -> int:
        """Poll the queue until ``stop()`` (or ``max_jobs`` jobs ran); the number of jobs run."""
        done = 0
        while not self._stop_event.is_set() and (max_jobs is None or done < max_jobs):
            if self.run_once() is None:
                self._stop_event.wait(self.settings.web.poll_s)
            else:
                done += 1
        return done

    def stop(self) -> None:
        self._stop_event.set()

    def close(self) -> None:
        """Release the executor (a local Ray cluster started for this worker stops)."""
        if self._executor is not None:
            self._executor.close()
