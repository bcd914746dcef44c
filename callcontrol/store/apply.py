"""Apply a batch of records to the database idempotently, in one transaction.

Replaying a record that is already applied changes nothing, which is what lets the writer
retry a batch whose commit result is unknown and replay the journal after a crash:

- timeline records (``CallEvent``, ``AgentEvent``) are inserted unless their ``record_id``
  is already there;
- ``CallOpened`` inserts the call row if it is absent;
- ``CallUpdated`` sets the given fields (``tags`` are merged as a set, first-seen order);
- ``CallClosed`` sets ``ended_at``, the outcome, hangup cause and reason only if the call is
  not closed yet.

Records are applied in order, so replaying an earlier update always ends with the later one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from callcontrol.logging import get_logger
from callcontrol.store.codec import jsonable
from callcontrol.store.records import (
    AgentEvent,
    CallClosed,
    CallEvent,
    CallOpened,
    CallUpdated,
    Record,
)
from callcontrol.store.tables import (
    UPDATABLE_CALL_FIELDS,
    AgentEventRow,
    CallEventRow,
    CallRow,
)

log = get_logger(__name__)

CallChange = CallOpened | CallUpdated | CallClosed
_TABLES = SQLModel.metadata.tables


async def apply_batch(session: AsyncSession, records: Sequence[Record]) -> None:
    """Apply ``records`` in order within the session's transaction (the caller commits)."""
    call_events = [
        _timeline_row(r, "call_id", r.call_id) for r in records if isinstance(r, CallEvent)
    ]
    agent_events = [
        _timeline_row(r, "agent_id", r.agent_id) for r in records if isinstance(r, AgentEvent)
    ]
    changes = [r for r in records if isinstance(r, CallOpened | CallUpdated | CallClosed)]
    if call_events:
        await _insert_new(session, _TABLES[CallEventRow.__tablename__], call_events)
    if agent_events:
        await _insert_new(session, _TABLES[AgentEventRow.__tablename__], agent_events)
    if changes:
        await _apply_call_changes(session, changes)


def _timeline_row(record: CallEvent | AgentEvent, owner: str, owner_id: str) -> dict[str, Any]:
    return {
        "record_id": record.record_id,
        owner: owner_id,
        "at": record.at,
        "kind": record.kind,
        "data": jsonable(record.data),
    }


async def _insert_new(session: AsyncSession, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(table).on_conflict_do_nothing(index_elements=["record_id"]), rows)


async def _apply_call_changes(session: AsyncSession, changes: Sequence[CallChange]) -> None:
    ids = {c.call_id for c in changes}
    result = await session.execute(sa.select(CallRow).where(col(CallRow.call_id).in_(ids)))
    rows = {row.call_id: row for row in result.scalars()}
    for change in changes:
        row = rows.get(change.call_id)
        if row is None:
            row = _new_row(change)
            rows[row.call_id] = row
            session.add(row)
        if isinstance(change, CallUpdated):
            _update(row, change)
        elif isinstance(change, CallClosed):
            _close(row, change)
        row.updated_at = max(row.updated_at, change.at)


def _new_row(change: CallChange) -> CallRow:
    if isinstance(change, CallOpened):
        return CallRow(
            call_id=change.call_id,
            channel_id=change.channel_id,
            direction=change.direction,
            sip_call_id=change.sip_call_id,
            caller_number=change.caller_number,
            caller_name=change.caller_name,
            extension=change.extension,
            started_at=change.at,
            updated_at=change.at,
        )
    log.warning("call_row_missing", call_id=change.call_id, record=type(change).__name__)
    return CallRow(call_id=change.call_id, started_at=change.at, updated_at=change.at)


def _update(row: CallRow, change: CallUpdated) -> None:
    for name, value in change.fields.items():
        if name not in UPDATABLE_CALL_FIELDS:
            log.warning("call_field_unknown", call_id=row.call_id, field=name)
        elif name == "tags":
            new = [str(t) for t in value if str(t) not in row.tags]
            if new:
                row.tags = [*row.tags, *dict.fromkeys(new)]
        else:
            setattr(row, name, value)


def _close(row: CallRow, change: CallClosed) -> None:
    if row.ended_at is not None:
        return
    row.ended_at = change.at
    row.outcome = change.outcome
    row.hangup_cause = change.hangup_cause
    row.close_reason = change.reason
