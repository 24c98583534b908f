"""The evolutionary loop: the one writer of a job's candidates.

Each round it picks parents from the population (Pareto tournaments), asks the proposer for drafts,
drops drafts it has seen (source hash, within the job and across jobs through the cache table, keyed
by the verifier's verdict context and re-checked against the job's requirements when applied),
writes each new candidate, and submits the rest to an executor (``executor.py``: threads of this
process, or a Ray cluster) as evaluation tasks; a task writes its candidate's stage rows and verdict
itself (``evaluate.py``; the work runs in sandboxed child processes). A killed run resumes: finished
candidates are kept, pending ones are evaluated again, and the budget counts what exists.

Drafts enter through the draft registry (``dedupe.py``): a draft that repeats a candidate — same
source hash, or same canonical hash (a renaming of internal signals) — in this job or an earlier one
is recorded as a duplicate of it, with its verdict (linked when that candidate finishes), and costs
no evaluation; a draft whose quick check failed is recorded as rejected at that stage without the
cascade. A repeat that cost LLM requests counts against the budget like any proposal; a free repeat
(an offline rule proposing the same rewrite again) is dropped. The loop stops when the budget of
proposals is used, when a proposer with a budget of its own (``Budgeted``: LLM tokens or requests)
says it is spent, or — for proposers without one — after ``STALE_ROUNDS_LIMIT`` rounds with nothing
new (``LLM_STALE_ROUNDS_LIMIT`` rounds as a safety net for the others).

LLM calls are written here too: a draft's calls linked to its candidate, and the calls that produced
no candidate (collected from a proposer that is a ``CallSource``) linked to the job only. When an
accepted LLM draft improves on its parent, the ``learn`` hook (if given) receives an ``Improvement``
so that it can become a knowledge-base entry; the loop itself never touches the knowledge base.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from evoforge.agents.base import (
    Budgeted,
    CallSource,
    Inspiration,
    LlmCallRecord,
    Proposal,
    ProposalRequest,
    Proposer,
)
from evoforge.domain import (
    CandidateStatus,
    JobStatus,
    Metrics,
    Objective,
    StageResult,
    Target,
    Verdict,
    VerdictContext,
    improvement,
)
from evoforge.errors import LeaseLostError
from evoforge.search import records
from evoforge.search.dedupe import DraftKey, DraftRegistry, Resolution
from evoforge.search.duplicates import (
    finished_verdict,
    link_duplicate,
    record_duplicate,
    record_quick_rejection,
    set_canonical,
)
from evoforge.search.duplicates import (
    in_job as _in_job,
)
from evoforge.search.evaluate import EvaluationOutcome
from evoforge.search.executor import Executor, TaskFactory
from evoforge.search.learning import Improvement, hand_over
from evoforge.search.population import Member, inspirations, select_parents, survivors
from evoforge.store import repository
from evoforge.store.engine import Store
from evoforge.store.models import Candidate

log = logging.getLogger(__name__)

#: members of the population offered to a proposer as inspirations (an LLM prompt shows two, and
#: rotates through the others when drafts repeat)
INSPIRATIONS = 4
#: rounds in a row in which the proposer offers nothing new before the loop stops early
STALE_ROUNDS_LIMIT = 3
#: the same for a proposer with a budget of its own (it normally stops by spending that budget)
LLM_STALE_ROUNDS_LIMIT = 20


class Verifier(Protocol):
    implementation_cache: dict[str, dict[str, StageResult]]
    implementation_stages: tuple[str, ...]

    def verdict_context(self) -> VerdictContext: ...
    def baseline(self) -> Verdict: ...
    def verify(
        self, source: str, *, on_stage: Callable[[StageResult], None] | None = None, label: str = "cand"
    ) -> Verdict: ...


class Progress(Protocol):
    def update(self, done: int, total: int, message: str) -> None: ...


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
        executor: Executor,
        tasks: TaskFactory,
        progress: Progress | None = None,
        learn: Callable[[Improvement], None] | None = None,
        drafts: DraftRegistry | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.tasks = tasks
        self.target = target
        self.verifier = verifier
        self.proposer = proposer
        self.options = options
        self.progress = progress
        self._made = 0
        self.learn = learn
        self._unlinked_calls: list[LlmCallRecord] = []
        self._drafts: dict[int, tuple[Member, Proposal]] = {}
        self.context = verifier.verdict_context()
        self.registry = drafts
        self._keys: dict[int, DraftKey] = {}  # candidate → its hashes (for the canonical cache entry)
        self._waiting: dict[int, list[int]] = {}  # candidate → its duplicates waiting for its verdict
        self.stop_reason: str | None = None

    # -- the run ---------------------------------------------------------------------------------

    def run(self, job_id: int) -> None:
        """Run (or resume) job ``job_id`` to its budget; the job row ends succeeded or failed."""
        with self.store.transaction() as session:
            job = records.start_job(session, job_id)
            target_fp, target_name = job.target_fingerprint, job.target_name
        if self.registry is None:
            self.registry = DraftRegistry(self.store, self.target, job_id=job_id, context=self.context)
        try:
            baseline = self._baseline(job_id)
            self._record_rule_outcomes(job_id)
            self.registry.load()
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
            pending = []
            for c in records.pending_candidates(session, job_id):
                if c.duplicate_of is None:
                    pending.append((c.id, c.source))
                elif not self._link_if_finished(session, job_id, c.id, c.duplicate_of):
                    self._waiting.setdefault(c.duplicate_of, []).append(c.id)
        if pending:
            log.info("resuming job %s: %d unfinished candidate(s)", job_id, len(pending))
            self._evaluate(job_id, target_fp, pending)

    def _search(self, job_id: int, target_fp: str, baseline: Member) -> bool:
        """Rounds until the budget is spent or the proposer is done; False when cancelled."""
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
            remaining = self.options.budget - made
            if remaining <= 0:
                break
            reason = self.proposer.exhausted() if isinstance(self.proposer, Budgeted) else None
            if reason:
                self.stop_reason = reason
                log.info(
                    "job %s: stopping with %d of %d proposals: %s", job_id, made, self.options.budget, reason
                )
                break
            self._report(made, f"round {round_index}")
            members = survivors(members, self.options.objectives, self.options.population_size)
            parents = select_parents(members, self.options.objectives, max(1, self.options.workers), rng)
            drafts = self._propose(parents, members, remaining, rng)
            self._store_unlinked_calls(job_id)
            to_evaluate, recorded = self._record(job_id, target_fp, drafts)
            if not recorded:
                stale_rounds += 1
                if stale_rounds >= self._stale_limit():
                    self.stop_reason = f"nothing new from the proposer in {stale_rounds} rounds"
                    log.info("the proposer has nothing new after %d rounds; stopping early", stale_rounds)
                    break
                round_index += 1
                continue
            stale_rounds = 0
            self._evaluate(job_id, target_fp, to_evaluate)
            round_index += 1
        with self.store.transaction() as session:
            self._report(records.proposal_count(session, job_id), "done")
        return True

    def _stale_limit(self) -> int:
        """Rounds with nothing new before stopping: few for a proposer with no budget of its own (or
        whose LLM half is spent), many as a safety net for one that stops by spending its budget."""
        if not isinstance(self.proposer, Budgeted):
            return STALE_ROUNDS_LIMIT
        llm_exhausted = getattr(self.proposer, "llm_exhausted", None)
        if callable(llm_exhausted) and llm_exhausted():
            return STALE_ROUNDS_LIMIT
        return LLM_STALE_ROUNDS_LIMIT

    def _record(
        self, job_id: int, target_fp: str, drafts: list[tuple[Member, Proposal]]
    ) -> tuple[list[tuple[int, str]], int]:
        """Store a round's drafts (new ones first, so that repeats can link to them): the new ones to
        evaluate, and how many were recorded. Free repeats within the job are dropped."""
        assert self.registry is not None
        to_evaluate: list[tuple[int, str]] = []
        recorded = 0
        ordered = [d for d in drafts if not d[1].repeat] + [d for d in drafts if d[1].repeat]
        with self.store.transaction() as session:
            for parent, proposal in ordered:
                found = self.registry.resolve(session, proposal.source)
                if found.kind == "duplicate" and not proposal.calls and _in_job(session, job_id, found):
                    continue  # an offline rule proposing what the job already has: free, dropped
                cid, evaluate = self._record_one(session, job_id, target_fp, parent, proposal, found)
                recorded += 1
                records.record_calls(session, job_id, cid, proposal.calls)
                if evaluate:
                    if proposal.calls:
                        self._drafts[cid] = (parent, proposal)
                    to_evaluate.append((cid, proposal.source))
        return to_evaluate, recorded

    def _record_one(
        self,
        session: Session,
        job_id: int,
        target_fp: str,
        parent: Member,
        proposal: Proposal,
        found: Resolution,
    ) -> tuple[int, bool]:
        """Store one draft: (candidate id, whether it needs an evaluation)."""
        assert self.registry is not None
        if found.kind == "duplicate":
            cid = record_duplicate(session, job_id, parent, proposal, found)
            if found.verdict is None and found.original_id is not None:
                self._waiting.setdefault(found.original_id, []).append(cid)
            return cid, False
        quick = found.quick if found.kind == "quick" else proposal.check
        if quick is not None and not quick.ok and not quick.error:
            repeat = found.kind == "quick" or proposal.repeat or quick.cached
            cid = record_quick_rejection(session, job_id, parent, proposal, found.key, quick, repeat=repeat)
            self.registry.note_candidate(cid, found.key)
            return cid, False
        cid, cached = records.add_proposal(session, job_id, parent, proposal, target_fp, self.context)
        set_canonical(session, cid, found.key)
        self.registry.note_candidate(cid, found.key)
        if not cached:
            self._keys[cid] = found.key
        return cid, not cached

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
    ) -> list[tuple[Member, Proposal]]:
        drafts: list[tuple[Member, Proposal]] = []
        per_parent = max(1, -(-remaining // max(1, len(parents))))
        for parent in parents:
            request = ProposalRequest(
                target=self.target,
                parent_source=parent.source,
                parent_metrics=parent.metrics,
                feedback={**parent.feedback, "objectives": [o.value for o in self.options.objectives]},
                count=min(per_parent, remaining - len(drafts), self.options.workers * 2),
                seed=rng.randrange(2**31),
                inspirations=tuple(
                    Inspiration(m.source, m.metrics, m.origin)
                    for m in inspirations(members, parent, self.options.objectives, count=INSPIRATIONS)
                ),
            )
            for proposal in self.proposer.propose(request):
                if len(drafts) >= remaining:
                    self._unlinked_calls.extend(proposal.calls)
                    continue
                drafts.append((parent, proposal))
            if len(drafts) >= remaining:
                break
        return drafts

    # -- evaluation ------------------------------------------------------------------------------

    def _evaluate(self, job_id: int, target_fp: str, work: list[tuple[int, str]]) -> None:
        """Submit the candidates as tasks; each writes its own stage rows and verdict."""
        tasks = [self.tasks.task(cid, source) for cid, source in work]
        for task, outcome in self.executor.run(tasks, parallel=self.options.workers):
            self._finish(job_id, target_fp, task.candidate_id, outcome)

    def _finish(
        self, job_id: int, target_fp: str, cid: int, outcome: EvaluationOutcome | BaseException
    ) -> None:
        if isinstance(outcome, LeaseLostError):
            with self.store.transaction():  # fenced: raises LeaseLostError when this run lost the job
                pass
            log.warning("candidate %s: %s", cid, outcome.message)  # a newer attempt has it
            return
        if isinstance(outcome, BaseException):  # the task did not run to its end: the candidate is 'error'
            log.error("evaluation of candidate %s failed: %s", cid, outcome)
            verdict = Verdict(False, "verify", f"evaluation failed: {outcome}", Metrics(), (), error=True)
            with self.store.transaction() as session:
                if records.is_pending(session, cid):
                    records.finish_candidate(session, job_id, cid, verdict, target_fp, self.context)
        elif outcome.verdict is None:  # finished by an earlier attempt: its verdict as stored
            with self.store.transaction() as session:
                candidate = session.get(Candidate, cid)
                stored = finished_verdict(session, candidate) if candidate is not None else None
            if stored is None:
                return
            verdict = stored
        else:
            verdict = outcome.verdict
        with self.store.transaction() as session:  # the task stored the verdict; link what waits for it
            key = self._keys.pop(cid, None)
            if key is not None and self.registry is not None:
                self.registry.remember_verdict(session, cid, key, verdict)
            for duplicate in self._waiting.pop(cid, []):
                link_duplicate(session, job_id, duplicate, verdict)
            made = records.proposal_count(session, job_id)
        for result in verdict.stages:  # what each stage did and how long it took (stored by the task)
            state = "ok" if result.ok else ("error" if result.error else "failed")
            self._report(made, f"#{cid} {result.name}: {state} in {result.seconds:.1f} s")
        self._report(made, f"#{cid} {verdict.status.value} ({verdict.stage})")
        self._maybe_learn(cid, verdict)

    def _link_if_finished(self, session: Session, job_id: int, cid: int, original_id: int) -> bool:
        """Give a waiting duplicate its original's verdict if that is known; False while pending."""
        original = session.get(Candidate, original_id)
        if original is None:  # the original was deleted: evaluate the duplicate after all
            return False
        verdict = finished_verdict(session, original)
        if verdict is None:
            return False
        link_duplicate(session, job_id, cid, verdict)
        return True

    def _maybe_learn(self, cid: int, verdict: Verdict) -> None:
        """Hand an accepted LLM draft that beats its parent on the first objective to ``learn``."""
        parent, proposal = self._drafts.pop(cid, (None, None))
        if self.learn is None or parent is None or proposal is None or not verdict.accepted:
            return
        primary = self.options.objectives[0]
        before, after = primary.value_of(parent.metrics), primary.value_of(verdict.metrics)
        if before is None or after is None or after >= before:
            return
        hand_over(
            self.learn,
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
            ),
            self.target.kind,
            f"candidate {cid}",
        )

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
        hand_over(self.learn, win, self.target.kind, f"job {job_id}")

    def _report(self, done: int, message: str) -> None:
        self._made = done
        if self.progress is not None:
            self.progress.update(min(done, self.options.budget), self.options.budget, message)
