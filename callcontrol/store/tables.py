"""The interaction store's tables (SQLModel).

``calls`` holds one row per call, ``call_events`` each call's append-only timeline and
``agent_events`` each agent's; ``agents`` holds the agents managed through the HTTP API;
``recordings`` one row per recording file.
Timeline rows carry the ``record_id`` of the journal record they came from (unique), which is
what makes replaying the journal idempotent. Every datetime is timezone-aware UTC, on SQLite
too (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; SQLite's naive values come back as UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store needs timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_list() -> Any:
    return Field(default_factory=list, sa_type=sa.JSON, sa_column_kwargs={"nullable": False})


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_type=sa.JSON, sa_column_kwargs={"nullable": False})


class CallRow(SQLModel, table=True):
    """One call: who called, what they dialled, what happened and how it ended."""

    __tablename__ = "calls"

    call_id: str = Field(primary_key=True, max_length=64)
    channel_id: str = Field(default="", max_length=128)
    direction: str = Field(default="inbound", max_length=16)
    sip_call_id: str | None = Field(default=None, index=True, max_length=255)
    caller_number: str = Field(default="", index=True, max_length=128)
    caller_name: str = Field(default="", max_length=255)
    extension: str = Field(default="", max_length=128)
    started_at: datetime = Field(sa_type=UTCDateTime, index=True)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    outcome: str | None = Field(default=None, max_length=32)
    hangup_cause: str = Field(default="", max_length=128)
    close_reason: str = Field(default="", max_length=255)
    flow: str | None = Field(default=None, max_length=128)
    flow_version: str | None = Field(default=None, max_length=64)
    tags: list[str] = _json_list()
    queue: str | None = Field(default=None, index=True, max_length=128)
    agent_id: str | None = Field(default=None, index=True, max_length=128)
    disposition: str | None = Field(default=None, index=True, max_length=32)
    """The wrap-up code the agent gave, or ``missing`` (a required code never came)."""
    disposition_label: str | None = Field(default=None, max_length=64)
    """The code's label when it was given."""
    disposition_note: str | None = Field(default=None, max_length=1000)
    disposition_by: str | None = Field(default=None, max_length=128)
    """Who gave it: ``agent:ID`` (headset), the API token's name, or ``system`` (missing)."""
    disposition_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class CallEventRow(SQLModel, table=True):
    """One entry of a call's timeline; ``at`` has (at least) millisecond precision."""

    __tablename__ = "call_events"

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(unique=True, max_length=64)
    call_id: str = Field(index=True, max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(max_length=64)
    data: dict[str, Any] = _json_dict()


class AgentEventRow(SQLModel, table=True):
    """One entry of an agent's timeline (state changes and their reasons)."""

    __tablename__ = "agent_events"

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(unique=True, max_length=64)
    agent_id: str = Field(index=True, max_length=128)
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(max_length=64)
    data: dict[str, Any] = _json_dict()



class AgentRow(SQLModel, table=True):
    """An agent managed through the HTTP API (agents of the config file are not stored).

    The headset password is not in the database: ``password_file`` names a mode-0600 file
    holding it (Asterisk's digest auth needs it in clear to render the PJSIP auth).
    """

    __tablename__ = "agents"

    id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=255)
    endpoint: str = Field(unique=True, max_length=128)
    password_file: str = Field(max_length=1024)
    skills: dict[str, int] = _json_dict()
    queues: list[str] = _json_list()
    wrap_up: float | None = Field(default=None)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)

class RecordingRow(SQLModel, table=True):
    """One recording of a call: its file (``path`` relative to the recordings root), the policy
    that caused it, and its state (``recording``, ``complete``, ``partial``, ``missing``,
    ``purged``). Written through the journal: :mod:`callcontrol.store.recording_queries`."""

    __tablename__ = "recordings"
    __table_args__ = (sa.UniqueConstraint("call_id", "n"),)

    id: str = Field(primary_key=True, max_length=64)
    call_id: str = Field(index=True, max_length=64)
    n: int
    path: str = Field(unique=True, max_length=1024)
    format: str = Field(default="wav", max_length=16)
    channels: int = Field(default=2)
    started_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_s: float | None = Field(default=None)
    size_bytes: int | None = Field(default=None, sa_type=sa.BigInteger)
    sha256: str | None = Field(default=None, max_length=64)
    policy: str = Field(max_length=128)
    status: str = Field(default="recording", index=True, max_length=16)
    purged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# Call-row columns a ``CallUpdated`` record may set.
UPDATABLE_CALL_FIELDS = frozenset(
    name for name in CallRow.model_fields if name not in {"call_id", "updated_at"}
)
