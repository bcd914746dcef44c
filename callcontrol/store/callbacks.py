"""Rows of the callbacks still open: the timelines of the calls that asked for one.

:func:`callcontrol.acd.callback_store.load_pending_callbacks` replays them at start.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased
from sqlmodel import col

from callcontrol.store.db import session_factory
from callcontrol.store.tables import CallEventRow


async def open_callback_timelines(
    engine: AsyncEngine, closing_kinds: Collection[str]
) -> dict[str, list[CallEventRow]]:
    """Call id -> whole timeline, for every call with a ``callback_requested`` entry that no
    entry of ``closing_kinds`` for the same ``entry_id`` closed."""
    requested, closing = aliased(CallEventRow), aliased(CallEventRow)
    closed = sa.exists().where(
        col(closing.call_id) == col(requested.call_id),
        col(closing.kind).in_(closing_kinds),
        closing.data["entry_id"].as_string() == requested.data["entry_id"].as_string(),
    )
    calls = (sa.select(col(requested.call_id))
             .where(col(requested.kind) == "callback_requested", ~closed).distinct())
    query = (sa.select(CallEventRow).where(col(CallEventRow.call_id).in_(calls))
             .order_by(col(CallEventRow.id)))
    async with session_factory(engine)() as session:
        rows = list((await session.execute(query)).scalars())
    timelines: dict[str, list[CallEventRow]] = {}
    for row in rows:
        timelines.setdefault(row.call_id, []).append(row)
    return timelines
