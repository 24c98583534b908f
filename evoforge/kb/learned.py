"""Learned entries: rewrites that won a job, kept apart from the built-in rules.

An entry keeps a unified-diff excerpt of the rewrite, the metrics before and after, the assurance
level, the rule (or model) it came from and where it was found (job and candidate ids). Entries live
in the store (shared by every worker; ``search.learned_store`` connects the two); here they are
made and validated from plain documents: :func:`parse_learned` turns stored documents into entries,
skipping — with a warning naming it — one that does not validate, so one bad entry never stops a job.

The JSON-lines file ``<data_dir>/kb/learned.jsonl`` (:func:`learned_path`) is where earlier versions
kept them; :func:`read_learned` reads such a file (bad lines skipped with a warning) so that it can
be imported into the store, and a knowledge base built without a store can still use one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evoforge.errors import KnowledgeBaseError
from evoforge.kb.entries import Domain, Goal, validation_message

log = logging.getLogger(__name__)

MAX_EXCERPT_LINES = 60


def learned_path(data_dir: Path) -> Path:
    """Where learned entries live for a given data directory (``Settings.data_dir``)."""
    return data_dir / "kb" / "learned.jsonl"


class LearnedEntry(BaseModel):
    """A rewrite that won a job; retrieval treats it like a built-in entry, listing keeps it apart."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(pattern=r"^learned-[0-9a-f]{12}$")
    domain: Domain
    title: str
    goals: tuple[Goal, ...] = ()
    rule: str | None = None  # the rule id (offline) or None (LLM)
    origin: str  # the candidate's origin: "offline:resource_sharing", "llm:<model>", …
    note: str = ""
    touched: tuple[str, ...] = ()
    target: str  # the design or problem's name
    excerpt: str  # unified diff, before → after (truncated)
    baseline: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    improvement: dict[str, float] = Field(default_factory=dict)
    assurance: str | None = None
    job_id: int | None = None
    candidate_id: int | None = None
    created_at: str = ""

    @property
    def learned(self) -> bool:
        return True

    @property
    def tags(self) -> tuple[str, ...]:
        return ("learned", *((self.rule,) if self.rule else ()))

    @property
    def labels(self) -> frozenset[str]:
        return frozenset((*self.goals, *self.tags, self.domain))

    def text(self) -> str:
        return "\n".join(
            [self.title, self.note, " ".join(self.goals), (self.rule or "") * 2, self.target, self.excerpt]
        )

    def as_prompt(self) -> str:
        gains = ", ".join(f"{k} {v:.2f}x" for k, v in self.improvement.items())
        where = f"found by {self.origin} on {self.target}" + (f", job {self.job_id}" if self.job_id else "")
        return (
            f"### Learned: {self.title} ({self.id}; {self.assurance or 'unverified'}; {gains})\n"
            f"{where}. {self.note}\n```diff\n{self.excerpt.strip()}\n```"
        )

    def row(self) -> dict[str, Any]:
        """The short form of a listing."""
        return {
            "id": self.id,
            "kind": "learned",
            "domain": self.domain,
            "title": self.title,
            "goals": list(self.goals),
            "rule": self.rule,
            "origin": self.origin,
            "target": self.target,
            "improvement": self.improvement,
            "assurance": self.assurance,
            "job_id": self.job_id,
            "candidate_id": self.candidate_id,
        }

    def to_json(self) -> dict[str, Any]:
        return {"kind": "learned", **self.model_dump(mode="json")}


def diff_excerpt(before: str, after: str, max_lines: int = MAX_EXCERPT_LINES) -> str:
    """A unified diff of the rewrite with two lines of context, cut at ``max_lines``."""
    lines = list(
        difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", n=2, lineterm="")
    )
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"… ({len(lines) - max_lines} more diff lines)"]
    return "\n".join(lines)


def make_learned(
    *,
    domain: Domain,
    target: str,
    before: str,
    after: str,
    origin: str,
    rule: str | None = None,
    note: str = "",
    touched: tuple[str, ...] = (),
    baseline: dict[str, float] | None = None,
    metrics: dict[str, float] | None = None,
    improvement: dict[str, float] | None = None,
    assurance: str | None = None,
    job_id: int | None = None,
    candidate_id: int | None = None,
) -> LearnedEntry:
    """A learned entry for a winning rewrite; its id is a digest of the diff (same rewrite, same id)."""
    excerpt = diff_excerpt(before, after)
    if rule is None:  # "offline:resource_sharing → offline:rebalance" → the rule ids, in order
        steps = [p.strip() for p in origin.split("→")]
        rules = [p.split(":", 1)[1] for p in steps if p.startswith("offline:")]
        rule = "+".join(dict.fromkeys(r for rs in rules for r in rs.split("+"))) or None
    gains = improvement or {}
    goals: list[Goal] = []
    if gains.get("area_um2", 1.0) > 1.0 or gains.get("cells", 1.0) > 1.0:
        goals.append("area")
    if gains.get("delay_ns", 1.0) > 1.0 or gains.get("depth", 1.0) > 1.0:
        goals.append("timing")
    digest = hashlib.sha256(f"{domain}\n{target}\n{excerpt}".encode()).hexdigest()[:12]
    headline = {k: v for k, v in gains.items() if k in ("area_um2", "delay_ns", "runtime_ms")} or gains
    best = max(headline.items(), key=lambda kv: kv[1], default=None)
    how = f"{best[0]} {best[1]:.2f}x" if best else "no measured gain"
    return LearnedEntry(
        id=f"learned-{digest}",
        domain=domain,
        title=f"{rule or origin} on {target} ({how})",
        goals=tuple(goals),
        rule=rule,
        origin=origin,
        note=note,
        touched=touched,
        target=target,
        excerpt=excerpt,
        baseline=dict(baseline or {}),
        metrics=dict(metrics or {}),
        improvement=dict(gains),
        assurance=assurance,
        job_id=job_id,
        candidate_id=candidate_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def parse_learned(documents: Iterable[tuple[str, Any]]) -> list[LearnedEntry]:
    """Entries from (where, document) pairs; a document that does not validate is skipped, and a
    warning names ``where`` (``file:line``, or the id in the store) and what is wrong."""
    entries: list[LearnedEntry] = []
    seen: set[str] = set()
    for label, document in documents:
        try:
            entry = LearnedEntry.model_validate(document)
        except ValidationError as exc:
            log.warning("learned knowledge-base entry %s skipped: %s", label, validation_message(exc))
            continue
        if entry.id not in seen:  # two jobs may learn the same rewrite at the same time
            seen.add(entry.id)
            entries.append(entry)
    return entries


def read_learned(path: Path) -> list[LearnedEntry]:
    """Every valid entry of a JSON-lines file (none if it does not exist); bad lines are skipped
    with a warning naming the file and line."""
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise KnowledgeBaseError(f"{path}: cannot read learned entries: {exc}") from exc
    documents: list[tuple[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            documents.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            log.warning("learned knowledge-base entry %s:%d skipped: not JSON (%s)", path, number, exc)
    return parse_learned(documents)


def append_learned(path: Path, entry: LearnedEntry) -> None:
    """Append one line (one ``write`` on an ``O_APPEND`` descriptor: concurrent writers do not mix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry.model_dump(mode="json"), sort_keys=True) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise KnowledgeBaseError(f"{path}: cannot write a learned entry: {exc}") from exc
