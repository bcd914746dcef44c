"""dispositions: the wrap-up code, label, note, who and when on the call row; indexes for the
call filters and the customer history

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED = ("caller_number", "queue", "agent_id", "disposition")


def upgrade() -> None:
    """Add the disposition columns and the indexes of the call filters."""
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("disposition", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("disposition_label", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("disposition_note", sa.String(length=1000), nullable=True))
        batch.add_column(sa.Column("disposition_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("disposition_at", sa.DateTime(timezone=True), nullable=True))
    for column in INDEXED:
        op.create_index(op.f(f"ix_calls_{column}"), "calls", [column], unique=False)


def downgrade() -> None:
    """Drop the indexes and the disposition columns."""
    for column in INDEXED:
        op.drop_index(op.f(f"ix_calls_{column}"), table_name="calls")
    with op.batch_alter_table("calls") as batch:
        for column in ("disposition_at", "disposition_by", "disposition_note",
                       "disposition_label", "disposition"):
            batch.drop_column(column)
