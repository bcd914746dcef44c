"""Rows for reports, read back as the records the domain appended.

:func:`period_records` feeds the queue statistics (``GET /api/queues/{name}/stats``,
:func:`callcontrol.acd.stats.queue_period_stats`): the call events of the given kinds and the
agents' state changes in ``[start, until)``, in the order they were appended.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from callcontrol.store.db import session_factory
from callcontrol.store.records import AgentEvent, CallEvent, Record
from callcontrol.store.tables import AgentEventRow, CallEventRow


async def period_records(
    engine: AsyncEngine, start: datetime, until: datetime, call_kinds: Collection[str]
) -> list[Record]:
    """Call events of ``call_kinds`` and agent ``state`` events in ``[start, until)``."""
    calls = (
        sa.select(CallEventRow)
        .where(col(CallEventRow.at) >= start, col(CallEventRow.at) < until,
               col(CallEventRow.kind).in_(call_kinds))
        .order_by(col(CallEventRow.id))
    )
    agents = (
        sa.select(AgentEventRow)
        .where(col(AgentEventRow.at) >= start, col(AgentEventRow.at) < until,
               col(AgentEventRow.kind) == "state")
        .order_by(col(AgentEventRow.id))
    )
    records: list[Record] = []
    async with session_factory(engine)() as session:
        for row in (await session.execute(calls)).scalars():
            records.append(CallEvent(record_id=row.record_id, at=row.at, call_id=row.call_id,
                                     kind=row.kind, data=row.data))
        for arow in (await session.execute(agents)).scalars():
            records.append(AgentEvent(record_id=arow.record_id, at=arow.at,
                                      agent_id=arow.agent_id, kind=arow.kind, data=arow.data))
    return records
