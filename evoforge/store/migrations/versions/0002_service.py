"""The service under faults: a fencing lease token on jobs, and learned knowledge-base entries.

``jobs.lease_token`` is the token of the worker holding a running job; every write of a run checks
it, so a worker that lost its lease (paused past it, then resumed) cannot write. ``learned_entries``
holds the knowledge base's learned entries (before: a JSON-lines file in each machine's data
directory; such a file is imported into this table the first time a process opens it).

Revision ID: 0002_service
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_service"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(length=64), nullable=True))
    op.create_table(
        "learned_entries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("domain", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learned_entries")),
    )
    with op.batch_alter_table("learned_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_learned_entries_domain"), ["domain"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("learned_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_learned_entries_domain"))
    op.drop_table("learned_entries")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("lease_token")
