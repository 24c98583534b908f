"""Beyond one machine: blobs, the implementation cache as a table, evaluation attempts, GPU jobs.

- ``blobs``: content-addressed bytes (sha256 hex digest → data): targets, liberty files and user
  tests that cross a process boundary travel as digests, never as local paths.
- ``implementation_results``: reusable stage results per implementation hash (before: a dict in each
  verifier's memory, lost between processes), keyed by (target fingerprint, implementation hash,
  context digest, stage).
- ``candidates.attempt_token`` / ``attempts`` / ``evaluated_by``: each evaluation attempt of a
  candidate takes a fresh token; its stage rows are written only while it holds it, so a retried
  evaluation (a Ray worker killed mid-candidate) leaves one set of rows.
- ``jobs.needs_gpu``: the job must be timed on a GPU; a worker without one does not claim it.

Revision ID: 0005_scale
Revises: 0003_verdict_context
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_scale"
# chained after the newest revision on main when written; the integrator re-chains at merge
down_revision: str | None = "0003_verdict_context"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_blobs")),
    )
    op.create_table(
        "implementation_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_fingerprint", sa.String(length=128), nullable=False),
        sa.Column("implementation_hash", sa.String(length=128), nullable=False),
        sa.Column("context_digest", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_implementation_results")),
        sa.UniqueConstraint(
            "target_fingerprint",
            "implementation_hash",
            "context_digest",
            "stage",
            name="uq_implementation_key",
        ),
    )
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt_token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("evaluated_by", sa.String(length=255), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("needs_gpu", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("needs_gpu")
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.drop_column("evaluated_by")
        batch_op.drop_column("attempts")
        batch_op.drop_column("attempt_token")
    op.drop_table("implementation_results")
    op.drop_table("blobs")
