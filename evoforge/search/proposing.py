"""Choosing and building a job's proposer: offline or LLM, its endpoint and model, its request budget.

``choose_proposer`` decides ``search.proposer`` from what is configured (mixed when an endpoint is
usable, offline otherwise; asking for an LLM without one is a ``ConfigError`` saying how to set one
up). ``make_proposer`` builds it for a job, with the hook that keeps the job's verified win as a
learned knowledge-base entry; every LLM request is written as soon as it completes (``store_call``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from evoforge.config import LlmSettings, Settings
from evoforge.domain import Target
from evoforge.errors import ConfigError, EvoforgeError
from evoforge.search.dedupe import DraftRegistry
from evoforge.store.engine import Store

log = logging.getLogger(__name__)

LLM_HOWTO = (
    "set OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1 for vLLM, http://127.0.0.1:11434/v1 for Ollama), "
    "OPENAI_API_KEY and EVOFORGE_MODEL (or pass --base-url / --model), or use --proposer offline"
)


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
    from evoforge.search.records import record_call

    with store.transaction() as session:
        return record_call(session, job_id, None, call)


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
