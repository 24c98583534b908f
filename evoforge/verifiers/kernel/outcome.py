"""How a supervised kernel stage fails: the candidate's fault, or the problem's.

Raised in the supervisor (and the harness) and turned by ``harness.main`` into the answer's
``kind``: ``candidate`` (a rejection, with its reason) or ``problem`` (bad input). Kept free of
heavy imports: the harness maps them before torch is loaded.
"""

from __future__ import annotations

from typing import Any


class CandidateFailure(Exception):
    """The candidate misbehaved: reject it with this message (and, optionally, data to store)."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = dict(data or {})


class ProblemFailure(Exception):
    """The problem file itself is unusable (bad input)."""
