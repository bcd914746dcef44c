"""Rows a restarted daemon reads to take back what the previous one left.

:func:`last_agent_states`: each agent's last journaled state change
(:func:`callcontrol.acd.adopt.restore_agents` puts the agents back in those states).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from callcontrol.store.db import session_factory
from callcontrol.store.tables import AgentEventRow


async def last_agent_states(engine: AsyncEngine) -> list[AgentEventRow]:
    """The last ``state`` event of every agent that has one."""
    last = (sa.select(sa.func.max(AgentEventRow.id))
            .where(col(AgentEventRow.kind) == "state")
            .group_by(col(AgentEventRow.agent_id)))
    query = sa.select(AgentEventRow).where(col(AgentEventRow.id).in_(last.scalar_subquery()))
    async with session_factory(engine)() as session:
        return list((await session.execute(query)).scalars())
