"""LLM economy: candidates remember their canonical hash and the candidate they duplicate; the cache
takes canonical hashes and quick-check results.

Revision ID: 0004_llm_economy
Revises: 0002_service
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_llm_economy"
down_revision: str | None = "0002_service"  # the brief said "0001"; 0002_service is on main already
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "('source', 'functional', 'implementation')"
_NEW = "('source', 'functional', 'implementation', 'canonical', 'quick')"


def _checks(kinds: str) -> None:
    with op.batch_alter_table("cache_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_cache_entries_hash_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_cache_entries_hash_kind"), f"hash_kind IN {kinds}")
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_candidates_cache_hit"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_candidates_cache_hit"), f"cache_hit IS NULL OR cache_hit IN {kinds}"
        )


def upgrade() -> None:
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("canonical_hash", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_candidates_canonical_hash"), ["canonical_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_candidates_duplicate_of"), ["duplicate_of"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_candidates_duplicate_of_candidates"),
            "candidates",
            ["duplicate_of"],
            ["id"],
            ondelete="SET NULL",
        )
    _checks(_NEW)


def downgrade() -> None:
    op.execute("DELETE FROM cache_entries WHERE hash_kind IN ('canonical', 'quick')")
    op.execute("UPDATE candidates SET cache_hit = NULL WHERE cache_hit IN ('canonical', 'quick')")
    _checks(_OLD)
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_candidates_duplicate_of_candidates"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_candidates_duplicate_of"))
        batch_op.drop_index(batch_op.f("ix_candidates_canonical_hash"))
        batch_op.drop_column("duplicate_of")
        batch_op.drop_column("canonical_hash")
