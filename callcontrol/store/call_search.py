"""Calls found by filters, a page at a time, and what a customer history shows of each.

Pages are newest first (``started_at``, then ``call_id``, both descending) and keyset-paged: a
:class:`Cursor` names the last call of a page and the next page starts right after it, so calls
arriving meanwhile never shift a page. The history of a page of calls reads their timelines'
``step`` and ``saved`` entries (the flow path and the inputs, masked when the flow wrote them)
and their recordings in two more queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from callcontrol.store.queries import Db, open_session
from callcontrol.store.tables import CallEventRow, CallRow, RecordingRow

HANDLED_KINDS = ("agent_connected",)
"""Timeline entries whose ``data.agent_id`` names an agent who talked with the caller."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last call's start and id."""

    started_at: datetime
    call_id: str


@dataclass(frozen=True)
class CallFilter:
    """What ``GET /api/calls`` (and the customer history) may ask for; ``None``: any."""

    caller_forms: Sequence[str] | None = None
    """Stored forms of one caller number (:func:`callcontrol.numbers.stored_forms`)."""
    agent_id: str | None = None
    queue: str | None = None
    outcome: str | None = None
    disposition: str | None = None
    started_from: datetime | None = None
    """Inclusive."""
    started_to: datetime | None = None
    """Exclusive."""


@dataclass
class CallPage:
    """One page of calls and the cursor of the next (``None``: this was the last)."""

    calls: list[CallRow]
    next: Cursor | None


def _conditions(where: CallFilter) -> list[Any]:
    c = CallRow
    conditions: list[Any] = []
    if where.caller_forms is not None:
        conditions.append(col(c.caller_number).in_(list(where.caller_forms)))
    for column, value in ((c.agent_id, where.agent_id), (c.queue, where.queue),
                          (c.outcome, where.outcome), (c.disposition, where.disposition)):
        if value is not None:
            conditions.append(col(column) == value)
    if where.started_from is not None:
        conditions.append(col(c.started_at) >= where.started_from)
    if where.started_to is not None:
        conditions.append(col(c.started_at) < where.started_to)
    return conditions


async def find_calls(db: Db, where: CallFilter, limit: int, after: Cursor | None = None
                     ) -> CallPage:
    """Up to ``limit`` calls matching ``where``, newest first, after ``after``."""
    started, call_id = col(CallRow.started_at), col(CallRow.call_id)
    query = sa.select(CallRow).where(*_conditions(where))
    if after is not None:
        query = query.where(sa.or_(started < after.started_at,
                                   sa.and_(started == after.started_at, call_id < after.call_id)))
    query = query.order_by(started.desc(), call_id.desc()).limit(limit + 1)
    async with open_session(db) as session:
        rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return CallPage(rows, Cursor(last.started_at, last.call_id) if last is not None else None)


@dataclass
class CallStory:
    """What the timeline says of one call: the steps taken and the inputs saved."""

    path: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)


async def call_stories(db: Db, call_ids: Sequence[str]) -> dict[str, CallStory]:
    """For each call: its flow path (``step`` entries: ``step``, or ``flow:step`` outside the
    entry flow) and its saved inputs (``saved`` entries, as logged: masked)."""
    stories = {call_id: CallStory() for call_id in call_ids}
    if not call_ids:
        return stories
    query = (sa.select(CallEventRow)
             .where(col(CallEventRow.call_id).in_(list(call_ids)),
                    col(CallEventRow.kind).in_(("flow_started", "step", "saved")))
             .order_by(col(CallEventRow.id)))
    entry: dict[str, str] = {}
    async with open_session(db) as session:
        for row in (await session.execute(query)).scalars():
            story, data = stories[row.call_id], row.data
            if row.kind == "flow_started":
                entry.setdefault(row.call_id, str(data.get("flow")))
            elif row.kind == "step":
                flow, step = str(data.get("flow")), str(data.get("step"))
                story.path.append(step if flow == entry.get(row.call_id) else f"{flow}:{step}")
            elif "name" in data:
                story.inputs[str(data["name"])] = data.get("value")
    return stories


async def recordings_of(db: Db, call_ids: Sequence[str]) -> dict[str, list[RecordingRow]]:
    """The recordings of each call, in order (``n``)."""
    found: dict[str, list[RecordingRow]] = {call_id: [] for call_id in call_ids}
    if not call_ids:
        return found
    query = (sa.select(RecordingRow).where(col(RecordingRow.call_id).in_(list(call_ids)))
             .order_by(col(RecordingRow.call_id), col(RecordingRow.n)))
    async with open_session(db) as session:
        for row in (await session.execute(query)).scalars():
            found[row.call_id].append(row)
    return found


async def handled_by(db: Db, call: CallRow, agent_id: str) -> bool:
    """Whether ``agent_id`` handled the call: it is the call row's agent, or the timeline
    shows the agent connected with the caller (a call transferred on)."""
    if call.agent_id == agent_id:
        return True
    query = (sa.select(CallEventRow)
             .where(col(CallEventRow.call_id) == call.call_id,
                    col(CallEventRow.kind).in_(HANDLED_KINDS)))
    async with open_session(db) as session:
        return any(row.data.get("agent_id") == agent_id
                   for row in (await session.execute(query)).scalars())
