"""Rows a restarted daemon reads to take back what the previous one left.

:func:`last_agent_states`: each agent's last journaled state change
(:func:`callcontrol.acd.adopt.restore_agents` puts the agents back in those states);
:func:`dispositions_of`: the dispositions the calls they wrapped up got (or missed).
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from callcontrol.store.db import session_factory
from callcontrol.store.tables import AgentEventRow, CallEventRow


async def last_agent_states(engine: AsyncEngine) -> list[AgentEventRow]:
    """The last ``state`` event of every agent that has one."""
    last = (sa.select(sa.func.max(AgentEventRow.id))
            .where(col(AgentEventRow.kind) == "state")
            .group_by(col(AgentEventRow.agent_id)))
    query = sa.select(AgentEventRow).where(col(AgentEventRow.id).in_(last.scalar_subquery()))
    async with session_factory(engine)() as session:
        return list((await session.execute(query)).scalars())



async def dispositions_of(engine: AsyncEngine, call_ids: Collection[str]
                          ) -> list[CallEventRow]:
    """The ``disposition`` and ``disposition_missing`` timeline entries of ``call_ids``."""
    if not call_ids:
        return []
    query = (sa.select(CallEventRow)
             .where(col(CallEventRow.call_id).in_(list(call_ids)))
             .where(col(CallEventRow.kind).in_(("disposition", "disposition_missing"))))
    async with session_factory(engine)() as session:
        return list((await session.execute(query)).scalars())
