"""The evolutionary loop: the one writer of a job's candidates.

Each round it picks parents from the population (Pareto tournaments), asks the proposer for drafts,
drops drafts it has seen (source hash, within the job and across jobs through the cache table),
evaluates the rest on a small thread pool (the work itself runs in sandboxed child processes), and
writes every candidate when it is created and after each stage. A killed run resumes: finished
candidates are kept, pending ones are evaluated again, and the budget counts what exists.

LLM calls are written here too: a draft's calls linked to its candidate, and the calls that produced
no candidate (collected from a proposer that is a ``CallSource``) linked to the job only. When an
accepted LLM draft improves on its parent, the ``learn`` hook (if given) receives an ``Improvement``
so that it can become a knowledge-base entry; the loop itself never touches the knowledge base.
"""

from __future__ import annotations

import logging
import queue
import random
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from evoforge.agents.base import CallSource, Inspiration, LlmCallRecord, Proposal, ProposalRequest, Proposer
from evoforge.domain import (
    CandidateStatus,
    JobStatus,
    Metrics,
    Objective,
    StageResult,
    Target,
    Verdict,
    improvement,
    source_hash,
)
from evoforge.errors import LeaseLostError
from evoforge.search import records
from evoforge.search.population import Member, inspirations, select_parents, survivors
from evoforge.store import repository
from evoforge.store.engine import Store

log = logging.getLogger(__name__)

#: rounds in a row in which the proposer offers nothing new before the loop stops early
STALE_ROUNDS_LIMIT = 3


class Verifier(Protocol):
    implementation_cache: dict[str, dict[str, StageResult]]
    implementation_stages: tuple[str, ...]

    def tool_versions(self) -> str: ...
    def baseline(self) -> Verdict: ...
    def verify(
        self, source: str, *, on_stage: Callable[[StageResult], None] | None = None, label: str = "cand"
    ) -> Verdict: ...


class Progress(Protocol):
    def update(self, done: int, total: int, message: str) -> None: ...


@dataclass(frozen=True)
class Improvement:
    """An accepted LLM draft that beats its parent: what a learned knowledge-base entry is made of."""

    target_name: str
    origin: str
    note: str  # the plan, in a sentence
    parent_source: str
    source: str
    parent_metrics: Metrics
    metrics: Metrics
    gain: dict[str, float]  # parent/candidate per cost metric (bigger is better)
    candidate_id: int
    assurance: str | None


@dataclass(frozen=True)
class LoopOptions:
    budget: int
    seed: int
    objectives: tuple[Objective, ...]
    workers: int = 2
    population_size: int = 16


class SearchLoop:
    def __init__(
        self,
        *,
        store: Store,
        target: Target,
        verifier: Verifier,
        proposer: Proposer,
        options: LoopOptions,
        progress: Progress | None = None,
        learn: Callable[[Improvement], None] | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self.verifier = verifier
        self.proposer = proposer
        self.options = options
        self.progress = progress
        self.learn = learn
        self._unlinked_calls: list[LlmCallRecord] = []
        self._drafts: dict[int, tuple[Member, Proposal]] = {}
        self.tool_versions = verifier.tool_versions()

    # -- the run ---------------------------------------------------------------------------------

    def run(self, job_id: int) -> None:
        """Run (or resume) job ``job_id`` to its budget; the job row ends succeeded or failed."""
        with self.store.transaction() as session:
            job = records.start_job(session, job_id)
            target_fp, target_name = job.target_fingerprint, job.target_name
        with self.store.transaction() as session:
            self.verifier.implementation_cache.update(
                records.implementation_results(
                    session, target_fp, self.tool_versions, self.verifier.implementation_stages
                )
            )
        try:
            baseline = self._baseline(job_id)
            self._record_rule_outcomes(job_id)
            self._finish_pending(job_id, target_fp)
            cancelled = not self._search(job_id, target_fp, baseline)
            with self.store.transaction() as session:
                records.finish_job(
                    session,
                    job_id,
                    JobStatus.CANCELLED if cancelled else JobStatus.SUCCEEDED,
                    self.options.objectives,
                    error="cancelled on request" if cancelled else None,
                )
            if not cancelled:
                self._learn_from_job(job_id)
        except KeyboardInterrupt:
            with self.store.transaction() as session:
                records.finish_job(
                    session,
                    job_id,
                    JobStatus.CANCELLED,
                    self.options.objectives,
                    error="interrupted; continue with --resume",
                )
            raise
        except LeaseLostError:  # another worker holds the job now: write nothing, not even "failed"
            raise
        except Exception as exc:
            log.exception("job %s (%s) failed", job_id, target_name)
            with self.store.transaction() as session:
                records.finish_job(session, job_id, JobStatus.FAILED, self.options.objectives, error=str(exc))
            raise

    def _baseline(self, job_id: int) -> Member:
        with self.store.transaction() as session:
            original = records.original_candidate(session, job_id)
            if original is not None and original.status == CandidateStatus.ACCEPTED:
                return records.member_of(original)
        verdict = self.verifier.baseline()
        with self.store.transaction() as session:
            original = records.record_original(session, job_id, verdict)
            return records.member_of(original)

    def _record_rule_outcomes(self, job_id: int) -> None:
        """Per offline rule, on the original: applied, or why not (shown by ``show``, JSON and web)."""
        explain = getattr(self.proposer, "explain", None)
        if not callable(explain):
            return
        outcomes = explain(self.target, self.target.source)
        with self.store.transaction() as session:
            job = repository.get_job(session, job_id)
            job.target_meta = {**(job.target_meta or {}), "rule_outcomes": outcomes}

    def _finish_pending(self, job_id: int, target_fp: str) -> None:
        """Evaluate candidates a killed run created but did not finish."""
        with self.store.transaction() as session:
            pending = [(c.id, c.source) for c in records.pending_candidates(session, job_id)]
        if pending:
            log.info("resuming job %s: %d unfinished candidate(s)", job_id, len(pending))
            self._evaluate(job_id, target_fp, pending)

    def _search(self, job_id: int, target_fp: str, baseline: Member) -> bool:
        """Rounds until the budget is spent or the proposer runs dry; False when cancelled."""
        rng = random.Random(self.options.seed)
        stale_rounds = 0
        round_index = 0
        while True:
            with self.store.transaction() as session:
                if repository.get_job(session, job_id).cancel_requested:
                    log.info("job %s: cancelled on request after %d round(s)", job_id, round_index)
                    return False
                made = records.proposal_count(session, job_id)
                members = records.population(session, job_id)
                seen = records.source_hashes(session, job_id)
            remaining = self.options.budget - made
            if remaining <= 0:
                break
            self._report(made, f"round {round_index}")
            members = survivors(members, self.options.objectives, self.options.population_size)
            parents = select_parents(members, self.options.objectives, max(1, self.options.workers), rng)
            drafts = self._propose(parents, members, remaining, rng, seen)
            self._store_unlinked_calls(job_id)
            if not drafts:
                stale_rounds += 1
                if stale_rounds >= STALE_ROUNDS_LIMIT:
                    log.info("the proposer has nothing new after %d rounds; stopping early", stale_rounds)
                    break
                round_index += 1
                continue
            stale_rounds = 0
            to_evaluate: list[tuple[int, str]] = []
            with self.store.transaction() as session:
                for parent, proposal in drafts:
                    cid, cached = records.add_proposal(
                        session, job_id, parent, proposal, target_fp, self.tool_versions
                    )
                    records.record_calls(session, job_id, cid, proposal.calls)
                    if not cached:
                        if proposal.calls:
                            self._drafts[cid] = (parent, proposal)
                        to_evaluate.append((cid, proposal.source))
            self._evaluate(job_id, target_fp, to_evaluate)
            round_index += 1
        with self.store.transaction() as session:
            self._report(records.proposal_count(session, job_id), "done")
        return True

    def _store_unlinked_calls(self, job_id: int) -> None:
        """LLM calls that produced no new candidate: stored against the job."""
        calls = self._unlinked_calls
        if isinstance(self.proposer, CallSource):
            calls = calls + self.proposer.drain_calls()
        self._unlinked_calls = []
        if calls:
            with self.store.transaction() as session:
                records.record_calls(session, job_id, None, calls)

    def _propose(
        self,
        parents: Sequence[Member],
        members: Sequence[Member],
        remaining: int,
        rng: random.Random,
        seen: set[str],
    ) -> list[tuple[Member, Proposal]]:
        drafts: list[tuple[Member, Proposal]] = []
        per_parent = max(1, -(-remaining // max(1, len(parents))))
        for parent in parents:
            request = ProposalRequest(
                target=self.target,
                parent_source=parent.source,
                parent_metrics=parent.metrics,
                feedback={**parent.feedback, "objectives": [o.value for o in self.options.objectives]},
                count=min(per_parent, self.options.workers * 2),
                seed=rng.randrange(2**31),
                inspirations=tuple(
                    Inspiration(m.source, m.metrics, m.origin)
                    for m in inspirations(members, parent, self.options.objectives)
                ),
            )
            for proposal in self.proposer.propose(request):
                digest = source_hash(proposal.source, self.target.kind)
                if digest in seen or len(drafts) >= remaining:
                    self._unlinked_calls.extend(proposal.calls)
                    continue
                seen.add(digest)
                drafts.append((parent, proposal))
            if len(drafts) >= remaining:
                break
        return drafts

    # -- evaluation ------------------------------------------------------------------------------

    def _evaluate(self, job_id: int, target_fp: str, work: list[tuple[int, str]]) -> None:
        if not work:
            return
        events: queue.Queue[tuple[int, StageResult]] = queue.Queue()
        with ThreadPoolExecutor(max_workers=self.options.workers, thread_name_prefix="evaluate") as pool:
            futures: dict[Future[Verdict], int] = {}
            for cid, source in work:
                future = pool.submit(self._verify_one, cid, source, events)
                futures[future] = cid
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                self._drain(events)
                for future in done:
                    self._drain(events)
                    self._finish(job_id, target_fp, futures[future], future)

    def _verify_one(self, cid: int, source: str, events: queue.Queue[tuple[int, StageResult]]) -> Verdict:
        return self.verifier.verify(source, on_stage=lambda r: events.put((cid, r)), label=f"c{cid}")

    def _drain(self, events: queue.Queue[tuple[int, StageResult]]) -> None:
        batch: list[tuple[int, StageResult]] = []
        while True:
            try:
                batch.append(events.get_nowait())
            except queue.Empty:
                break
        if batch:
            with self.store.transaction() as session:
                for cid, result in batch:
                    records.record_stage(session, cid, result)

    def _finish(self, job_id: int, target_fp: str, cid: int, future: Future[Verdict]) -> None:
        try:
            verdict = future.result()
        except Exception as exc:  # the verifier crashed outside a stage: the candidate is 'error'
            log.exception("evaluation of candidate %s crashed", cid)
            verdict = Verdict(False, "verify", f"verifier crashed: {exc}", Metrics(), (), error=True)
        with self.store.transaction() as session:
            records.finish_candidate(session, job_id, cid, verdict, target_fp, self.tool_versions)
            made = records.proposal_count(session, job_id)
        self._report(made, f"#{cid} {verdict.status.value} ({verdict.stage})")
        self._maybe_learn(cid, verdict)

    def _maybe_learn(self, cid: int, verdict: Verdict) -> None:
        """Hand an accepted LLM draft that beats its parent on the first objective to ``learn``."""
        parent, proposal = self._drafts.pop(cid, (None, None))
        if self.learn is None or parent is None or proposal is None or not verdict.accepted:
            return
        primary = self.options.objectives[0]
        before, after = primary.value_of(parent.metrics), primary.value_of(verdict.metrics)
        if before is None or after is None or after >= before:
            return
        try:
            self.learn(
                Improvement(
                    target_name=self.target.name,
                    origin=proposal.origin,
                    note=proposal.note,
                    parent_source=parent.source,
                    source=proposal.source,
                    parent_metrics=parent.metrics,
                    metrics=verdict.metrics,
                    gain=improvement(parent.metrics, verdict.metrics),
                    candidate_id=cid,
                    assurance=str(verdict.assurance) if verdict.assurance else None,
                )
            )
        except Exception:  # learning is a bonus; it must not fail the job
            log.exception("could not record what candidate %s taught", cid)

    def _learn_from_job(self, job_id: int) -> None:
        """Hand the job's winning lineage (original → best, any proposer) to ``learn``."""
        if self.learn is None:
            return
        with self.store.transaction() as session:
            steps = records.winning_lineage(session, job_id)
            if not steps:
                return
            original, best = steps[0], steps[-1]
            win = Improvement(
                target_name=self.target.name,
                origin=" → ".join(c.origin for c in steps[1:]),
                note=" | ".join(c.note for c in steps[1:] if c.note),
                parent_source=original.source,
                source=best.source,
                parent_metrics=Metrics.from_dict(original.metrics),
                metrics=Metrics.from_dict(best.metrics),
                gain=improvement(Metrics.from_dict(original.metrics), Metrics.from_dict(best.metrics)),
                candidate_id=best.id,
                assurance=best.assurance,
            )
        try:
            self.learn(win)
        except Exception:  # learning is a bonus; it must not fail the job
            log.exception("could not record what job %s taught", job_id)

    def _report(self, done: int, message: str) -> None:
        if self.progress is not None:
            self.progress.update(min(done, self.options.budget), self.options.budget, message)
