"""initial tables: calls, call_events, agent_events

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:53:31
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timeline(name: str, owner: str, owner_length: int) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column(owner, sa.String(length=owner_length), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_index(op.f(f"ix_{name}_{owner}"), name, [owner], unique=False)


def upgrade() -> None:
    """Create the three tables and their indexes."""
    _timeline("agent_events", "agent_id", 128)
    _timeline("call_events", "call_id", 64)
    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("sip_call_id", sa.String(length=255), nullable=True),
        sa.Column("caller_number", sa.String(length=128), nullable=False),
        sa.Column("caller_name", sa.String(length=255), nullable=False),
        sa.Column("extension", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("hangup_cause", sa.String(length=128), nullable=False),
        sa.Column("close_reason", sa.String(length=255), nullable=False),
        sa.Column("flow", sa.String(length=128), nullable=True),
        sa.Column("flow_version", sa.String(length=64), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=True),
        sa.Column("agent_id", sa.String(length=128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_index(op.f("ix_calls_ended_at"), "calls", ["ended_at"], unique=False)
    op.create_index(op.f("ix_calls_sip_call_id"), "calls", ["sip_call_id"], unique=False)
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"], unique=False)


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("calls")
    op.drop_table("call_events")
    op.drop_table("agent_events")
