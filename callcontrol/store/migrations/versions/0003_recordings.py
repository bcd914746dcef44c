"""recordings: one row per recording file

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the ``recordings`` table and its indexes."""
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("policy", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "n"),
        sa.UniqueConstraint("path"),
    )
    op.create_index(op.f("ix_recordings_call_id"), "recordings", ["call_id"], unique=False)
    op.create_index(op.f("ix_recordings_started_at"), "recordings", ["started_at"], unique=False)
    op.create_index(op.f("ix_recordings_status"), "recordings", ["status"], unique=False)


def downgrade() -> None:
    """Drop the ``recordings`` table."""
    op.drop_table("recordings")
