"""Jobs from creation to the end: create a job row, run a stored job, and the worker that claims them.

One path serves every way a job runs: ``evoforge run`` (create ``running``, then ``run_job``),
``evoforge run --resume`` (``run_job`` on the existing row), ``evoforge worker`` and the web server's
embedded worker (``Worker``: claim a ``queued`` job atomically, then ``run_job``). ``run_job`` rebuilds
the target from the stored source and options, never from the caller's files, so a job runs the same
wherever it is picked up. While it runs a heartbeat thread stamps the row; a worker that finds a
``running`` job whose heartbeat is older than ``stale_after_s`` puts it back in the queue (the loop
resumes its pending candidates), or ends it ``cancelled`` when a cancel was asked for.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, update

from evoforge.config import LlmSettings, Settings
from evoforge.domain import JobStatus, Objective, Target, TargetKind
from evoforge.errors import ConfigError, EvoforgeError
from evoforge.search.loop import LoopOptions, Progress, SearchLoop
from evoforge.store import repository
from evoforge.store.engine import Store
from evoforge.store.models import Job, utcnow

log = logging.getLogger(__name__)

LLM_HOWTO = (
    "set OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1 for vLLM, http://127.0.0.1:11434/v1 for Ollama), "
    "OPENAI_API_KEY and EVOFORGE_MODEL (or pass --base-url / --model), or use --proposer offline"
)


def worker_name(role: str = "worker") -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


# -- creating a job --------------------------------------------------------------------------------


def job_options(settings: Settings, objectives: Sequence[Objective], target: Target) -> dict[str, Any]:
    """What a stored job remembers of the settings it was created with (``run_job`` reads them back)."""
    return {
        "budget": settings.search.budget,
        "seed": settings.search.seed,
        "workers": settings.search.workers,
        "proposer": settings.search.proposer,
        "model": settings.llm.model,
        "planner_model": settings.llm.planner_model,
        "objectives": [o.value for o in objectives],
        "min_assurance": settings.rtl.min_assurance,
        "liberty": str(settings.rtl.liberty.resolve()) if settings.rtl.liberty else None,
        "clock_period_ns": settings.rtl.clock_period_ns,
        "user_test": target.user_test,
        "kernel": settings.kernel.model_dump(),
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
    meta: dict[str, Any] = {"files": [s.name for s in target.sources]}
    if target.rtl is not None:
        meta |= {
            "top": target.rtl.top,
            "clock": target.rtl.clock,
            "reset": target.rtl.reset,
            "reset_active_low": target.rtl.reset_active_low,
        }
    with store.transaction() as session:
        job = repository.create_job(
            session,
            kind=target.kind.value,
            target_name=target.name,
            target_fingerprint=target.fingerprint,
            target_source=target.source,
            target_meta=meta,
            options=job_options(settings, objectives, target),
            status=status,
        )
        return job.id


# -- running a stored job --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredJob:
    """A job row turned back into what the loop needs."""

    job_id: int
    target: Target
    settings: Settings
    objectives: tuple[Objective, ...]


def load_stored_job(store: Store, job_id: int, settings: Settings, *, budget: int | None = None) -> StoredJob:
    """The target (rebuilt from the stored source) and the settings the job was created with."""
    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    with store.transaction() as session:
        job = repository.get_job(session, job_id)
        if job.status == JobStatus.SUCCEEDED.value:
            raise ConfigError(
                f"job {job_id} has already succeeded", hint=f"see it with: evoforge show {job_id}"
            )
        kind, name = job.kind, job.target_name
        meta, options, source = dict(job.target_meta), dict(job.options), job.target_source
        if budget is not None:
            job.options = {**job.options, "budget": budget}
            options["budget"] = budget
    folder = settings.work_dir() / f"job-{job_id}"
    folder.mkdir(parents=True, exist_ok=True)
    kernel = settings.kernel.model_copy(update=options.get("kernel") or {})
    if kind == TargetKind.KERNEL.value:
        from evoforge.verifiers.kernel.target import kernel_target_from_source

        target = kernel_target_from_source(source, name, kernel, work_dir=folder)
    else:
        design = folder / f"{meta['top']}.v"
        design.write_text(source)
        user_test = Path(options["user_test"]) if options.get("user_test") else None
        target = load_rtl_target(
            [design],
            RtlTargetOptions(
                top=meta["top"],
                clock=meta["clock"] or "none",
                reset=meta["reset"] or "none",
                reset_active_low=meta["reset_active_low"],
                user_test=user_test,
            ),
            workdir=folder,
        )
    rtl = settings.rtl.model_copy(
        update={
            "min_assurance": options["min_assurance"],
            "liberty": Path(options["liberty"]) if options.get("liberty") else None,
            "clock_period_ns": options.get("clock_period_ns", settings.rtl.clock_period_ns),
        }
    )
    search = settings.search.model_copy(
        update={k: options[k] for k in ("budget", "seed", "workers", "proposer") if k in options}
    )
    llm = settings.llm.model_copy(
        update={
            "model": settings.llm.model or options.get("model"),
            "planner_model": settings.llm.planner_model or options.get("planner_model"),
        }
    )
    objectives = tuple(Objective(o) for o in options["objectives"])
    merged = settings.model_copy(update={"rtl": rtl, "kernel": kernel, "search": search, "llm": llm})
    return StoredJob(job_id, target, merged, objectives)


def run_job(
    store: Store,
    job_id: int,
    settings: Settings,
    progress: Progress | None = None,
    *,
    worker: str | None = None,
    budget: int | None = None,
    clear_cancel: bool = False,
) -> None:
    """Run (or resume) stored job ``job_id`` to its end, stamping a heartbeat as ``worker`` meanwhile.

    ``clear_cancel`` forgets an earlier cancel request (``evoforge run --resume`` of a cancelled job).
    """
    stored = load_stored_job(store, job_id, settings, budget=budget)
    name = worker or worker_name("run")
    with store.transaction() as session:
        job = repository.get_job(session, job_id)
        job.worker, job.heartbeat_at = name, utcnow()
        if clear_cancel:
            job.cancel_requested = False
    job_settings = choose_proposer(stored.settings)
    verifier = make_verifier(stored.target, job_settings)
    log.info("job %s: %s, budget %s", job_id, stored.target.name, job_settings.search.budget)
    proposer, learn = make_proposer(job_settings, store, job_id, stored.target, verifier)
    loop = SearchLoop(
        store=store,
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
        progress=progress,
    )
    beat = _Heartbeat(store, job_id, name, settings.web.heartbeat_s)
    beat.start()
    try:
        loop.run(job_id)
    finally:
        beat.stop()


class _Heartbeat(threading.Thread):
    def __init__(self, store: Store, job_id: int, worker: str, every_s: float) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.store, self.job_id, self.worker, self.every_s = store, job_id, worker, every_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            try:
                with self.store.transaction() as session:
                    if not repository.heartbeat(session, self.job_id, self.worker):
                        return  # the job ended, or another worker owns it now
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
    return RtlVerifier(target=target, settings=settings.rtl, liberty=liberty, work_root=work)


# -- choosing the proposer -------------------------------------------------------------------------


def choose_proposer(settings: Settings) -> Settings:
    """Settings with ``search.proposer`` decided and, for the LLM proposers, ``llm`` resolved.

    No proposer asked for: mixed when an endpoint is configured (and a model known), offline otherwise.
    ``llm``/``mixed`` asked for with no usable endpoint is a ``ConfigError`` saying how to set one up.
    """
    asked = settings.search.proposer
    llm = settings.llm_endpoint()
    configured = bool(llm.base_url or llm.api_key)
    if asked == "offline" or (asked is None and not configured):
        return _with_proposer(settings, "offline")
    if not configured:
        raise ConfigError(f"--proposer {asked} needs an OpenAI-compatible model endpoint", hint=LLM_HOWTO)
    if not llm.model:
        try:
            llm = llm.model_copy(update={"model": _only_model(llm)})
        except EvoforgeError as exc:
            if asked is not None:
                raise ConfigError(f"--proposer {asked}: {exc.message}", hint=exc.hint or LLM_HOWTO) from exc
            log.warning("LLM endpoint configured but unusable (%s); proposing offline", exc.message)
            return _with_proposer(settings, "offline")
    return _with_proposer(settings.model_copy(update={"llm": llm}), asked or "mixed")


def _with_proposer(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"search": settings.search.model_copy(update={"proposer": name})})


def _only_model(llm: LlmSettings) -> str:
    from evoforge.agents.llm.client import served_models

    models = served_models(llm)
    if len(models) != 1:
        listed = ", ".join(models[:8]) + (" …" if len(models) > 8 else "")
        raise ConfigError(
            f"no model chosen and the endpoint serves {len(models)} ({listed or 'none'})",
            hint="choose one with EVOFORGE_MODEL=NAME or --model NAME",
        )
    return models[0]


def make_proposer(settings: Settings, store: Store, job_id: int, target: Target, verifier: Any) -> Any:
    """The job's proposer and the hook that keeps its wins as learned knowledge-base entries."""
    from evoforge.agents.base import get_proposer
    from evoforge.kb import KnowledgeBase, learned_path

    name = settings.search.proposer or "offline"
    kb = KnowledgeBase.load(learned=learned_path(settings.data_dir))
    if name == "offline":
        return get_proposer("offline", knowledge=kb), _learner(kb, target, job_id)
    from evoforge.agents.llm import knowledge
    from evoforge.agents.llm.client import LlmClient
    from evoforge.search.records import llm_usage

    with store.transaction() as session:
        used = llm_usage(session, job_id)  # a resumed job keeps counting its token budget
    client = LlmClient(settings.llm, tokens_spent=used["prompt_tokens"] + used["completion_tokens"])
    proposer = get_proposer(
        name,
        client=client,
        checker=verifier.quick_check,
        retrieve=knowledge.retriever(kb, target.kind),
        max_repairs=settings.llm.max_repairs,
    )

    def learn(win: Any) -> None:
        knowledge.learn(
            kb,
            kind=target.kind,
            target=win.target_name,
            origin=win.origin,
            plan=win.note,
            before=win.parent_source,
            after=win.source,
            parent_metrics=win.parent_metrics,
            metrics=win.metrics,
            gain=win.gain,
            assurance=win.assurance,
            job_id=job_id,
            candidate_id=win.candidate_id,
        )

    return proposer, learn


def _learner(kb: Any, target: Target, job_id: int) -> Callable[[Any], None]:
    """The hook that keeps a job's verified win (original → best) as a learned knowledge-base entry."""
    from evoforge.kb import make_learned

    def learn(win: Any) -> None:
        kb.add_learned(
            make_learned(
                domain="rtl" if target.kind.value == "rtl" else "kernel",
                target=win.target_name,
                before=win.parent_source,
                after=win.source,
                origin=win.origin,
                note=win.note,
                baseline={k: float(v) for k, v in win.parent_metrics.to_dict().items()},
                metrics={k: float(v) for k, v in win.metrics.to_dict().items()},
                improvement=win.gain,
                assurance=win.assurance,
                job_id=job_id,
                candidate_id=win.candidate_id,
            )
        )

    return learn


# -- the worker ------------------------------------------------------------------------------------


def requeue_stale_jobs(store: Store, stale_after_s: float) -> list[int]:
    """Running jobs whose worker stopped beating: back to ``queued`` (or ``cancelled`` if asked)."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    moved: list[int] = []
    with store.transaction() as session:
        stale = [
            j.id
            for j in session.query(Job).filter(
                Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < cutoff
            )
        ]
        for job_id in stale:
            job = repository.get_job(session, job_id)
            target = JobStatus.CANCELLED if job.cancel_requested else JobStatus.QUEUED
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < cutoff)
                .values(status=target.value, worker=None, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if cast(CursorResult[Any], result).rowcount == 1:
                log.warning("job %s: its worker stopped (no heartbeat since %s); %s", job_id, cutoff, target)
                moved.append(job_id)
    return moved


class Worker:
    """Claims queued jobs one at a time and runs them; ``stop()`` ends it after the current job."""

    def __init__(self, store: Store, settings: Settings, *, name: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.name = name or worker_name()
        self._stop_event = threading.Event()

    def run_once(self) -> int | None:
        """Requeue stale jobs, claim one, run it; the job id, or None when the queue is empty."""
        requeue_stale_jobs(self.store, self.settings.web.stale_after_s)
        with self.store.transaction() as session:
            job = repository.claim_next_job(session, self.name)
            job_id = job.id if job is not None else None
        if job_id is None:
            return None
        log.info("%s claimed job %s", self.name, job_id)
        try:
            run_job(self.store, job_id, self.settings, worker=self.name)
        except EvoforgeError as exc:  # the loop has already marked the job failed where it could
            log.warning("job %s failed: %s", job_id, exc)
            self._fail_if_running(job_id, str(exc))
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            self._fail_if_running(job_id, f"internal error: {type(exc).__name__}")
        return job_id

    def _fail_if_running(self, job_id: int, message: str) -> None:
        with self.store.transaction() as session:
            job = repository.get_job(session, job_id)
            if job.status in (JobStatus.RUNNING.value, JobStatus.QUEUED.value):
                repository.set_job_status(session, job, JobStatus.FAILED, error=message)

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
