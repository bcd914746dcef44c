"""Apply a batch of records to the database idempotently, in one transaction.

Replaying a record that is already applied changes nothing, which is what lets the writer
retry a batch whose commit result is unknown and replay the journal after a crash:

- timeline records (``CallEvent``, ``AgentEvent``) are inserted unless their ``record_id``
  is already there;
- ``CallOpened`` inserts the call row if it is absent;
- ``CallUpdated`` sets the given fields (``tags`` are merged as a set, first-seen order);
- ``CallClosed`` sets ``ended_at``, the outcome, hangup cause and reason only if the call is
  not closed yet;
- ``RecordingStarted`` inserts the recording row if it is absent; ``RecordingFinished`` sets
  the figures only on a row still ``recording``; ``RecordingMarked`` sets ``missing`` or
  ``purged`` on a row not purged yet.

Records are applied in order, so replaying an earlier update always ends with the later one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from callcontrol.logging import get_logger
from callcontrol.store.codec import jsonable
from callcontrol.store.records import (
    AgentEvent,
    CallClosed,
    CallEvent,
    CallOpened,
    CallUpdated,
    Record,
    RecordingFinished,
    RecordingMarked,
    RecordingStarted,
)
from callcontrol.store.tables import (
    UPDATABLE_CALL_FIELDS,
    AgentEventRow,
    CallEventRow,
    CallRow,
    RecordingRow,
)

log = get_logger(__name__)

CallChange = CallOpened | CallUpdated | CallClosed
_TABLES = SQLModel.metadata.tables
_CALLS = _TABLES[CallRow.__tablename__]
# One statement for every changed call row (executemany): all columns but the key are set.
_UPDATE_CALL = (
    sa.update(_CALLS)
    .where(_CALLS.c.call_id == sa.bindparam("key_call_id"))
    .values({c.name: sa.bindparam(f"new_{c.name}") for c in _CALLS.columns if c.name != "call_id"})
)


async def apply_batch(conn: AsyncConnection, records: Sequence[Record]) -> None:
    """Apply ``records`` in order within the connection's transaction (the caller commits).

    SQLAlchemy core statements, a few per batch: every statement is a round trip to the
    database (a thread hop on SQLite), which is what a batch costs.
    """
    for record in records:  # recording records are few: one statement each, in order
        if isinstance(record, RecordingStarted | RecordingFinished | RecordingMarked):
            await _apply_recording(conn, record)
    call_events = [
        _timeline_row(r, "call_id", r.call_id) for r in records if isinstance(r, CallEvent)
    ]
    agent_events = [
        _timeline_row(r, "agent_id", r.agent_id) for r in records if isinstance(r, AgentEvent)
    ]
    changes = [r for r in records if isinstance(r, CallOpened | CallUpdated | CallClosed)]
    if call_events:
        await _insert_new(conn, _TABLES[CallEventRow.__tablename__], call_events)
    if agent_events:
        await _insert_new(conn, _TABLES[AgentEventRow.__tablename__], agent_events)
    if changes:
        await _apply_call_changes(conn, changes)


def _timeline_row(record: CallEvent | AgentEvent, owner: str, owner_id: str) -> dict[str, Any]:
    return {
        "record_id": record.record_id,
        owner: owner_id,
        "at": record.at,
        "kind": record.kind,
        "data": jsonable(record.data),
    }


async def _insert_new(conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(insert(table).on_conflict_do_nothing(index_elements=["record_id"]), rows)


async def _apply_call_changes(conn: AsyncConnection, changes: Sequence[CallChange]) -> None:
    """Read the rows the changes touch, change them in memory in order, write each once."""
    ids = {c.call_id for c in changes}
    result = await conn.execute(sa.select(_CALLS).where(_CALLS.c.call_id.in_(ids)))
    rows: dict[str, dict[str, Any]] = {row.call_id: dict(row._mapping) for row in result}
    added: dict[str, dict[str, Any]] = {}
    for change in changes:
        row = rows.get(change.call_id)
        if row is None:
            row = _new_row(change)
            rows[change.call_id] = added[change.call_id] = row
        if isinstance(change, CallUpdated):
            _update(row, change)
        elif isinstance(change, CallClosed):
            _close(row, change)
        row["updated_at"] = max(row["updated_at"], change.at)
    if added:
        await conn.execute(sa.insert(_CALLS), list(added.values()))
    updated = [
        {"key_call_id": call_id, **{f"new_{k}": v for k, v in row.items() if k != "call_id"}}
        for call_id, row in rows.items() if call_id not in added
    ]
    if updated:
        await conn.execute(_UPDATE_CALL, updated)


def _call_defaults() -> dict[str, Any]:
    """A call row's column defaults (fresh mutable values), as :class:`CallRow` has them."""
    defaults: dict[str, Any] = {}
    for name, info in CallRow.model_fields.items():
        value = info.get_default(call_default_factory=True)
        if value is not PydanticUndefined:
            defaults[name] = value
    return defaults


def _new_row(change: CallChange) -> dict[str, Any]:
    if isinstance(change, CallOpened):
        return {
            **_call_defaults(),
            "call_id": change.call_id,
            "channel_id": change.channel_id,
            "direction": change.direction,
            "sip_call_id": change.sip_call_id,
            "caller_number": change.caller_number,
            "caller_name": change.caller_name,
            "extension": change.extension,
            "started_at": change.at,
            "updated_at": change.at,
        }
    log.warning("call_row_missing", call_id=change.call_id, record=type(change).__name__)
    return {**_call_defaults(), "call_id": change.call_id, "started_at": change.at,
            "updated_at": change.at}


def _update(row: dict[str, Any], change: CallUpdated) -> None:
    for name, value in change.fields.items():
        if name not in UPDATABLE_CALL_FIELDS:
            log.warning("call_field_unknown", call_id=row["call_id"], field=name)
        elif name == "tags":
            new = [str(t) for t in value if str(t) not in row["tags"]]
            if new:
                row["tags"] = [*row["tags"], *dict.fromkeys(new)]
        else:
            row[name] = value


def _close(row: dict[str, Any], change: CallClosed) -> None:
    if row["ended_at"] is not None:
        return
    row["ended_at"] = change.at
    row["outcome"] = change.outcome
    row["hangup_cause"] = change.hangup_cause
    row["close_reason"] = change.reason


_RECORDINGS = _TABLES[RecordingRow.__tablename__]


async def _apply_recording(
    conn: AsyncConnection, record: RecordingStarted | RecordingFinished | RecordingMarked
) -> None:
    rec = _RECORDINGS.c
    if isinstance(record, RecordingStarted):
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        row = {"id": record.recording_id, "call_id": record.call_id, "n": record.n,
               "path": record.path, "format": record.format, "channels": record.channels,
               "started_at": record.at, "policy": record.policy, "status": "recording"}
        await conn.execute(insert(_RECORDINGS).on_conflict_do_nothing(), row)
        return
    if isinstance(record, RecordingFinished):
        where = rec.status == "recording"
        values: dict[str, Any] = {
            "status": record.status, "ended_at": record.at, "duration_s": record.duration_s,
            "size_bytes": record.size_bytes, "sha256": record.sha256}
    else:
        where = rec.status != "purged"
        values = {"status": record.status}
        if record.status == "purged":
            values["purged_at"] = record.at
    await conn.execute(
        sa.update(_RECORDINGS).where(rec.id == record.recording_id, where).values(values)
    )
