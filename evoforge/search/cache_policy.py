"""When a cached verdict may answer a draft: a pure check of the entry against the job's context.

The cache key already holds the digest of the :class:`~evoforge.domain.VerdictContext`, so an entry
is only found under an equal context. The verdict is still re-checked when it is applied, against
what the job requires and what the verdict itself says it showed, so that a key that misses
something (an entry written by another version, a context field added later) cannot lend a verdict
more than it was shown:

- an accepted RTL verdict must carry an assurance that meets the job's requirement (an
  ``--assurance proven`` job never takes a cached ``simulated``);
- when the job has a user test, a verdict that got past the ``simulate`` stage must say that this
  very test (by content) ran and passed;
- the entry's own context must name the same kind, requirement, user test and machine (a verdict
  with timings is reused only on the machine it was timed on).

Only the loop's records module calls this; it returns the reason for refusing, or ``None``.
"""

from __future__ import annotations

from typing import Any

from evoforge.domain import Assurance, TargetKind, Verdict, VerdictContext

#: stage data key under which the RTL simulate stage records the user test it ran (by content)
USER_TEST_KEY = "user_test_sha256"


def reuse_refusal(
    verdict: Verdict, entry_context: dict[str, Any] | None, context: VerdictContext
) -> str | None:
    """Why ``verdict`` (cached under ``entry_context``) may not answer a job under ``context``."""
    if verdict.error:
        return "a verifier error is never reused"
    if entry_context is None:
        return "the entry does not record the context it was made under"
    for field in ("kind", "requirement", "user_test_sha256", "machine"):
        ours = context.to_dict()[field]
        if entry_context.get(field) != ours:
            return (
                f"made under another {field.replace('_', ' ')} ({entry_context.get(field)!r}, not {ours!r})"
            )
    if context.kind is TargetKind.RTL and verdict.accepted:
        if verdict.assurance is None:
            return "an accepted RTL verdict without an assurance level"
        minimum = Assurance.parse(context.requirement) if context.requirement else Assurance.sampled()
        if not verdict.assurance.satisfies(minimum):
            return f"its assurance {verdict.assurance} is below the required {minimum}"
    if context.user_test_sha256 is not None and _passed_simulate(verdict):
        simulate = next(r for r in verdict.stages if r.name == "simulate")
        if simulate.data.get(USER_TEST_KEY) != context.user_test_sha256:
            return "the job's own test did not run on it"
    return None


def _passed_simulate(verdict: Verdict) -> bool:
    return any(r.name == "simulate" and r.ok for r in verdict.stages)
