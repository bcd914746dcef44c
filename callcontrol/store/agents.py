"""The rows of the agents managed through the HTTP API, read back as the records that wrote
them (:class:`~callcontrol.store.records.AgentSaved`; writes go through the journal writer)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.store.db import session_factory
from callcontrol.store.records import AgentSaved
from callcontrol.store.tables import AgentRow


async def load_agents(engine: AsyncEngine) -> list[AgentSaved]:
    """Every stored agent definition."""
    async with session_factory(engine)() as session:
        rows = list((await session.execute(sa.select(AgentRow))).scalars())
    return [
        AgentSaved(agent_id=row.id, at=row.updated_at, name=row.name, endpoint=row.endpoint,
                   password_file=row.password_file, skills=dict(row.skills),
                   queues=list(row.queues), wrap_up=row.wrap_up)
        for row in rows
    ]
