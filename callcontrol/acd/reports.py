"""Queue figures over a period, read from the store (``GET /api/queues/{name}/stats``).

The rows are turned back into the records the ACD appended and handed to
:func:`~callcontrol.acd.stats.period_stats`, the one implementation of the definitions in
``docs/queue-statistics.md``. A caller who entered in ``[start, end)`` may leave the queue (and
finish wrap-up) later: rows are read up to ``end + horizon``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from callcontrol.acd.stats import QueueStats, period_stats
from callcontrol.config import QueueConfig
from callcontrol.store.db import session_factory
from callcontrol.store.records import AgentEvent, CallEvent, Record
from callcontrol.store.tables import AgentEventRow, CallEventRow

QUEUE_KINDS = ("queue_entered", "queue_left", "queue_refused", "agent_disconnected")
"""The call events :func:`period_stats` reads."""


async def queue_period_stats(
    engine: AsyncEngine, queue: str, config: QueueConfig, start: datetime, end: datetime,
    horizon: timedelta,
) -> QueueStats:
    """Figures of ``queue`` for the callers that entered it in ``[start, end)``."""
    until = end + horizon
    calls = (
        sa.select(CallEventRow)
        .where(col(CallEventRow.at) >= start, col(CallEventRow.at) < until,
               col(CallEventRow.kind).in_(QUEUE_KINDS))
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
    return period_stats(records, queue, config, start, end)
