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

from evoforge.config import LlmSettings, Settings
from evoforge.domain import JobStatus, Objective, Target, TargetKind, source_hash
from evoforge.errors import ConfigError, EvoforgeError, LeaseLostError
from evoforge.search.dedupe import DraftRegistry
from evoforge.search.loop import LoopOptions, Progress, SearchLoop
from evoforge.search.stored import load_stored_job
from evoforge.store import leases, repository
from evoforge.store.engine import Store

log = logging.getLogger(__name__)

LLM_HOWTO = (
    "set OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1 for vLLM, http://127.0.0.1:11434/v1 for Ollama), "
    "OPENAI_API_KEY and EVOFORGE_MODEL (or pass --base-url / --model), or use --proposer offline"
)


def worker_name(role: str = "worker") -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


# -- creating a job --------------------------------------------------------------------------------


def job_options(settings: Settings, objectives: Sequence[Objective], target: Target | None) -> dict[str, Any]:
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
        "user_test": target.user_test if target is not None else None,
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
    with store.transaction() as session:
        job = repository.create_job(
            session,
            kind=target.kind.value,
            target_name=target.name,
            target_fingerprint=target.fingerprint,
            target_source=target.source,
            target_meta=target_meta(target),
            options=job_options(settings, objectives, target),
            status=status,
        )
        return job.id


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
    options = job_options(settings, objectives, None)
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
) -> None:
    """Run (or resume) stored job ``job_id`` to its end under a lease, as ``worker``.

    ``lease`` is the token of a claim (``leases.claim_next_job``); without one the job is taken
    over (``evoforge run``, ``--resume``). Every transaction of the run is fenced by the token: a
    run that lost the lease raises ``LeaseLostError`` and has written nothing since. A target that
    cannot be loaded ends the job ``failed`` with the loader's message (and raises it).
    ``clear_cancel`` forgets an earlier cancel request (``evoforge run --resume`` of a cancelled job).
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
    try:
        if clear_cancel:
            with fenced.transaction() as session:
                repository.get_job(session, job_id).cancel_requested = False
        try:
            stored = load_stored_job(fenced, job_id, settings, budget=budget)
            job_settings = choose_proposer(stored.settings)
            verifier = make_verifier(stored.target, job_settings)
            drafts = DraftRegistry(fenced, stored.target, job_id=job_id, context=verifier.verdict_context())
            proposer, learn = make_proposer(job_settings, fenced, job_id, stored.target, verifier, drafts)
        except LeaseLostError:
            raise
        except EvoforgeError as exc:
            with store.transaction() as session:
                leases.fail_if_held(session, job_id, token, f"the job could not start: {exc}")
            raise
        log.info("job %s: %s, budget %s", job_id, stored.target.name, job_settings.search.budget)
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
            progress=progress,
        )
        loop.run(job_id)
    finally:
        beat.stop()
        work_root = getattr(verifier, "work_root", None)
        if work_root is not None:  # a long-lived worker keeps no job's scratch (trial tensors, builds)
            shutil.rmtree(work_root, ignore_errors=True)


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
            # the endpoint serves one model: a local server, one request at a time unless configured
            llm = llm.model_copy(
                update={"model": _only_model(llm), "max_concurrency": concurrency_for(llm, served_models=1)}
            )
        except EvoforgeError as exc:
            if asked is not None:
                raise ConfigError(f"--proposer {asked}: {exc.message}", hint=exc.hint or LLM_HOWTO) from exc
            log.warning("LLM endpoint configured but unusable (%s); proposing offline", exc.message)
            return _with_proposer(settings, "offline")
    return _with_proposer(settings.model_copy(update={"llm": llm}), asked or "mixed")


def _with_proposer(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"search": settings.search.model_copy(update={"proposer": name})})


def concurrency_for(llm: LlmSettings, served_models: int | None = None) -> int:
    from evoforge.agents.llm.client import concurrency_for as resolve

    return resolve(llm, served_models)


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


#: the default LLM request budget of a job, per proposal of its search budget
CALLS_PER_PROPOSAL = 4


def make_proposer(
    settings: Settings,
    store: Store,
    job_id: int,
    target: Target,
    verifier: Any,
    drafts: DraftRegistry | None = None,
) -> Any:
    """The job's proposer and the hook that keeps its wins as learned knowledge-base entries.

    With ``drafts`` the LLM proposer skips the quick check on repeats and reuses stored quick checks.
    """
    from evoforge.agents.base import get_proposer
    from evoforge.search.learned_store import open_knowledge

    name = settings.search.proposer or "offline"
    kb = open_knowledge(store, settings.data_dir)
    if name == "offline":
        return get_proposer("offline", knowledge=kb), _learner(kb, target, job_id)
    from evoforge.agents.llm import knowledge
    from evoforge.agents.llm.client import LlmClient
    from evoforge.search.records import llm_usage

    with store.transaction() as session:
        used = llm_usage(session, job_id)  # a resumed job keeps counting its token budget
    llm = settings.llm
    if llm.call_budget is None:
        llm = llm.model_copy(update={"call_budget": CALLS_PER_PROPOSAL * settings.search.budget})
    client = LlmClient(
        llm,
        tokens_spent=used["prompt_tokens"] + used["completion_tokens"],
        requests_made=used["calls"],
        on_record=lambda call: store_call(store, job_id, call),
    )
    proposer = get_proposer(
        name,
        client=client,
        checker=drafts.quick_checker(verifier.quick_check) if drafts else verifier.quick_check,
        retrieve=knowledge.retriever(kb, target.kind),
        max_repairs=settings.llm.max_repairs,
        memory=drafts,
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


def store_call(store: Store, job_id: int, call: Any) -> int:
    """Write one LLM request as soon as it completes (it cost money); the row id, to link it later."""
    with store.transaction() as session:
        row = repository.record_llm_call(
            session,
            job_id=job_id,
            role=call.role,
            model=call.model,
            prompt=call.prompt,
            reply=call.reply,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            latency_s=call.latency_s,
            error=call.error,
        )
        return row.id


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

    ``on_end`` hears how each claimed job ended (the ``evoforge worker`` command prints it).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        name: str | None = None,
        on_end: Callable[[JobEnd], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.name = name or worker_name()
        self.on_end = on_end
        self._stop_event = threading.Event()

    def run_once(self) -> int | None:
        """Requeue stale jobs, claim one, run it; the job id, or None when the queue is empty."""
        requeue_stale_jobs(self.store, self.settings.web.stale_after_s)
        with self.store.transaction() as session:
            job = repository.claim_next_job(session, self.name)
            job_id, token = (job.id, job.lease_token) if job is not None else (None, None)
        if job_id is None or token is None:
            return None
        log.info("%s claimed job %s", self.name, job_id)
        try:
            run_job(self.store, job_id, self.settings, worker=self.name, lease=token)
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
