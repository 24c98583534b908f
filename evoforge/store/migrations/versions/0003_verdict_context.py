"""Cache entries keyed by the verdict context: ``tool_versions`` becomes ``context_digest`` (+ ``context``).

The old key (tool versions and a few knobs) missed settings that change a verdict (the required
assurance, the formal budgets, induction depth, reset cycles, the user's test, the machine of a
timing), so the entries made under it are not trustworthy: they are deleted, not converted. The cache
is only a cache; the candidates and their verdicts stay.

Revision ID: 0003_verdict_context
Revises: 0004_llm_economy
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_verdict_context"
down_revision: str | None = "0004_llm_economy"  # main has 0002_service and 0004_llm_economy already
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM cache_entries")
    with op.batch_alter_table("cache_entries") as batch:
        batch.drop_constraint("uq_cache_key", type_="unique")
        batch.drop_column("tool_versions")
        batch.add_column(sa.Column("context_digest", sa.String(length=64), nullable=False))
        batch.add_column(sa.Column("context", sa.JSON(none_as_null=True), nullable=True))
        batch.create_unique_constraint(
            "uq_cache_key", ["target_fingerprint", "hash_kind", "hash", "context_digest"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM cache_entries")
    with op.batch_alter_table("cache_entries") as batch:
        batch.drop_constraint("uq_cache_key", type_="unique")
        batch.drop_column("context")
        batch.drop_column("context_digest")
        batch.add_column(sa.Column("tool_versions", sa.Text(), nullable=False))
        batch.create_unique_constraint(
            "uq_cache_key", ["target_fingerprint", "hash_kind", "hash", "tool_versions"]
        )
