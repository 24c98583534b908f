"""What a search teaches: a verified win as an ``Improvement``, handed to the job's ``learn`` hook.

A kernel win is learned only by its same-run speed-up over torch eager (the benchmark stage's, which
the verifier re-checks), never by runtimes measured in different runs. Learning is a bonus: a hook
that fails is logged and never fails the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from evoforge.domain import Metrics, TargetKind

log = logging.getLogger(__name__)


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


def learnable(win: Improvement, kind: TargetKind) -> Improvement | None:
    """``win`` as it may be learned (a kernel win by its same-run speed-up), or None."""
    if kind is not TargetKind.KERNEL:
        return win
    speedup = win.metrics.speedup
    if speedup is None or speedup <= 1.0:
        log.info("not learned: %s has no verified same-run speed-up over torch eager", win.origin)
        return None
    return replace(win, gain={"speedup": float(speedup)})


def hand_over(learn: Callable[[Improvement], None], win: Improvement, kind: TargetKind, source: str) -> None:
    """Give ``learn`` what ``source`` (a candidate, a job) taught, if it may be learned."""
    kept = learnable(win, kind)
    if kept is None:
        return
    try:
        learn(kept)
    except Exception:  # learning is a bonus; it must not fail the job
        log.exception("could not record what %s taught", source)
