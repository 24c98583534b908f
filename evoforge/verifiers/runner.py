"""What every cascade shares: running a stage safely, reusing a stage by implementation hash, merging metrics.

A stage function that raises never loses the job: an ``EvoforgeError`` or any other exception becomes
a ``StageResult`` with ``error`` set (the candidate is then ``error``, not ``rejected``). Stage results
that depend only on the implementation are kept per implementation hash and handed back, marked
cached, for a later candidate with the same implementation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

from evoforge.domain import Metrics, StageResult
from evoforge.errors import EvoforgeError

log = logging.getLogger(__name__)

Context = TypeVar("Context")


#: the longest stage detail kept: a reason quotes a bounded part of what the candidate produced
DETAIL_LIMIT_CHARS = 4000


def _capped(result: StageResult) -> StageResult:
    if len(result.detail) <= DETAIL_LIMIT_CHARS:
        return result
    half = DETAIL_LIMIT_CHARS // 2
    cut = len(result.detail) - 2 * half
    detail = f"{result.detail[:half]}\n… [{cut} characters cut] …\n{result.detail[-half:]}"
    return replace(result, detail=detail)


def run_stage(name: str, fn: Callable[[Context], StageResult], ctx: Context) -> StageResult:
    start = time.monotonic()
    try:
        return _capped(fn(ctx))
    except EvoforgeError as exc:
        log.warning("stage %s failed in the verifier: %s", name, exc)
        return StageResult(name, False, time.monotonic() - start, detail=str(exc), error=True)
    except Exception as exc:  # a verifier bug must not lose the job: mark the candidate 'error'
        log.exception("stage %s crashed", name)
        return StageResult(
            name, False, time.monotonic() - start, detail=f"{type(exc).__name__}: {exc}", error=True
        )


def reused_stage(
    cache: dict[str, dict[str, StageResult]], lock: threading.Lock, implementation: str | None, name: str
) -> StageResult | None:
    """The stage ``name`` stored for ``implementation``, marked as reused; None when there is none."""
    with lock:
        hit = cache.get(implementation or "", {}).get(name)
    if hit is None:
        return None
    return replace(hit, seconds=0.0, cached=True, detail=f"{hit.detail} (same implementation, reused)")


def remember_stages(
    cache: dict[str, dict[str, StageResult]],
    lock: threading.Lock,
    implementation: str | None,
    results: Iterable[StageResult],
    names: tuple[str, ...],
) -> None:
    """Keep an accepted candidate's implementation-only stages for later candidates."""
    if not implementation:
        return
    with lock:
        cache.setdefault(implementation, {r.name: r for r in results if r.name in names})


def merged_metrics(results: Iterable[StageResult]) -> Metrics:
    metrics = Metrics()
    for result in results:
        metrics = metrics.merged(result.metrics)
    return metrics
