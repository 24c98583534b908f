"""SQLAlchemy 2.0 models of the store: jobs, candidates, stage runs, the cross-job cache, LLM calls,
learned knowledge-base entries.

The schema itself is owned by the Alembic migrations in ``migrations/versions``; a test compares the
migrated database with these models so that the two cannot drift apart. Status columns are plain
strings holding the values of ``domain.JobStatus`` / ``domain.CandidateStatus`` (checked by the
database too). Every timestamp is a timezone-aware UTC ``datetime`` (SQLite keeps naive UTC text;
``UtcDateTime`` puts the zone back on the way out).

Text is cleaned once, here at the boundary: every text, string and JSON column goes through a type
that replaces NUL characters (PostgreSQL text cannot hold them; SQLite would keep them) and turns
non-finite floats and other non-JSON values in JSON documents into storable ones. Callers above the
store hand over what they have — candidate sources, tool logs, LLM replies, attacker-chosen names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from evoforge.domain import CandidateStatus, JobStatus
from evoforge.store._convert import clean_text, jsonable

#: constraint names are part of the schema (Alembic batch mode on SQLite needs them named).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: "canonical": internal names normalised (search/canonical.py); "quick": a draft's quick check only
CACHE_HASH_KINDS: tuple[str, ...] = ("source", "functional", "implementation", "canonical", "quick")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


JOB_STATUS_CHECK = _in_list("status", tuple(s.value for s in JobStatus))
CANDIDATE_STATUS_CHECK = _in_list("status", tuple(s.value for s in CandidateStatus))
CACHE_HIT_CHECK = f"cache_hit IS NULL OR {_in_list('cache_hit', CACHE_HASH_KINDS)}"
HASH_KIND_CHECK = _in_list("hash_kind", CACHE_HASH_KINDS)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (naive input is taken to be UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite's DATETIME text drops the zone silently; store naive UTC explicitly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CleanText(TypeDecorator[str]):
    """Text without NUL characters (replaced by the visible ``\\x00``), on every backend."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else clean_text(value)


class CleanString(TypeDecorator[str]):
    """A bounded string without NUL characters."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else clean_text(value)


class CleanJSON(TypeDecorator[Any]):
    """A JSON document made storable: NUL-free strings (keys too), finite floats, plain containers."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return _clean_json(jsonable(value))


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: CleanJSON(),
        str: CleanText(),
    }


class Job(Base):
    """One optimisation run of one target."""

    __tablename__ = "jobs"
    __table_args__ = (CheckConstraint(JOB_STATUS_CHECK, name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    status: Mapped[str] = mapped_column(CleanString(16), default=JobStatus.QUEUED.value, index=True)
    kind: Mapped[str] = mapped_column(CleanString(16))
    target_name: Mapped[str] = mapped_column(CleanString(255))
    target_fingerprint: Mapped[str] = mapped_column(CleanString(128), index=True)
    target_source: Mapped[str] = mapped_column(CleanText)
    target_meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    baseline_metrics: Mapped[dict[str, Any] | None] = mapped_column(
        CleanJSON(none_as_null=True), nullable=True
    )
    # A plain id, not a foreign key: jobs → candidates → jobs would be a creation/deletion cycle.
    best_candidate_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(CleanText, nullable=True)
    proposed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    evaluated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cache_hits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rejected: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(CleanString(255), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: the fencing token of the worker holding the job: every write of a run checks it (leases.py)
    lease_token: Mapped[str | None] = mapped_column(CleanString(64), nullable=True)

    candidates: Mapped[list[Candidate]] = relationship(
        back_populates="job",
        order_by="Candidate.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self) -> str:
        return f"Job(id={self.id}, kind={self.kind!r}, target={self.target_name!r}, status={self.status!r})"


class Candidate(Base):
    """One proposed rewrite and its verdict (``pending`` until the cascade finishes)."""

    __tablename__ = "candidates"
    __table_args__ = (
        CheckConstraint(CANDIDATE_STATUS_CHECK, name="status"),
        CheckConstraint(CACHE_HIT_CHECK, name="cache_hit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="SET NULL"), nullable=True, index=True
    )
    origin: Mapped[str] = mapped_column(CleanString(255))
    note: Mapped[str] = mapped_column(CleanText, default="")
    source: Mapped[str] = mapped_column(CleanText)
    source_hash: Mapped[str] = mapped_column(CleanString(128), index=True)
    functional_hash: Mapped[str | None] = mapped_column(CleanString(128), nullable=True, index=True)
    implementation_hash: Mapped[str | None] = mapped_column(CleanString(128), nullable=True, index=True)
    status: Mapped[str] = mapped_column(CleanString(16), default=CandidateStatus.PENDING.value)
    rejected_stage: Mapped[str | None] = mapped_column(CleanString(64), nullable=True)
    reason: Mapped[str] = mapped_column(CleanText, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    assurance: Mapped[str | None] = mapped_column(CleanString(64), nullable=True)
    cache_hit: Mapped[str | None] = mapped_column(CleanString(16), nullable=True)
    canonical_hash: Mapped[str | None] = mapped_column(CleanString(128), nullable=True, index=True)
    #: the earlier candidate (this job or another) this draft repeats; its verdict is that one's
    duplicate_of: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="SET NULL"), nullable=True, index=True
    )
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    job: Mapped[Job] = relationship(back_populates="candidates")
    stage_runs: Mapped[list[StageRun]] = relationship(
        back_populates="candidate",
        order_by="StageRun.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self) -> str:
        return (
            f"Candidate(id={self.id}, job_id={self.job_id}, origin={self.origin!r}, status={self.status!r})"
        )


class StageRun(Base):
    """One verifier stage on one candidate (``log_excerpt`` is cut to head and tail)."""

    __tablename__ = "stage_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(CleanString(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    cached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    detail: Mapped[str] = mapped_column(CleanText, default="")
    log_excerpt: Mapped[str] = mapped_column(CleanText, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    candidate: Mapped[Candidate] = relationship(back_populates="stage_runs")

    def __repr__(self) -> str:
        return f"StageRun(id={self.id}, candidate_id={self.candidate_id}, name={self.name!r}, ok={self.ok})"


class CacheEntry(Base):
    """A verdict shared across jobs, keyed by (target fingerprint, hash kind, hash, verdict context).

    ``context_digest`` is the digest of the :class:`~evoforge.domain.VerdictContext` the verdict was
    reached under (every setting it depends on); ``context`` keeps that context for people to read.
    """

    __tablename__ = "cache_entries"
    __table_args__ = (
        UniqueConstraint("target_fingerprint", "hash_kind", "hash", "context_digest", name="uq_cache_key"),
        CheckConstraint(HASH_KIND_CHECK, name="hash_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_fingerprint: Mapped[str] = mapped_column(CleanString(128))
    hash_kind: Mapped[str] = mapped_column(CleanString(16))
    hash: Mapped[str] = mapped_column(CleanString(128))
    context_digest: Mapped[str] = mapped_column(CleanString(64))
    context: Mapped[dict[str, Any] | None] = mapped_column(CleanJSON(none_as_null=True), nullable=True)
    verdict: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"CacheEntry(id={self.id}, hash_kind={self.hash_kind!r}, hash={self.hash[:12]!r})"


class LlmCall(Base):
    """One prompt and reply of an agent (every one is stored)."""

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="SET NULL"), nullable=True, index=True
    )
    role: Mapped[str] = mapped_column(CleanString(32))
    model: Mapped[str] = mapped_column(CleanString(255))
    prompt: Mapped[str] = mapped_column(CleanText)
    reply: Mapped[str | None] = mapped_column(CleanText, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(CleanText, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"LlmCall(id={self.id}, job_id={self.job_id}, role={self.role!r}, model={self.model!r})"


class LearnedEntryRow(Base):
    """A learned knowledge-base entry (a verified winning rewrite), shared by every worker.

    ``data`` holds the entry as the knowledge base validates it (``kb.learned.LearnedEntry``); the
    store keeps it as a document so that an entry the current code cannot read is skipped, not fatal.
    """

    __tablename__ = "learned_entries"

    id: Mapped[str] = mapped_column(CleanString(64), primary_key=True)
    domain: Mapped[str] = mapped_column(CleanString(16), index=True)
    data: Mapped[dict[str, Any]] = mapped_column()
    # plain ids, not foreign keys: an entry outlives the job that taught it
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    candidate_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"LearnedEntryRow(id={self.id!r}, domain={self.domain!r})"
