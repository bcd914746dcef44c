"""Which calls of Asterisk's fallback ledger the store already has a row for.

:class:`callcontrol.fallback_ledger.FallbackLedger` imports only the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from callcontrol.store.db import session_factory
from callcontrol.store.tables import CallRow

QUERY_CHUNK = 400
"""Ids per query (bound parameters stay well under every database's limit)."""


async def known_calls(
    engine: AsyncEngine, channels: Sequence[tuple[str, str | None]]
) -> tuple[set[str], set[str]]:
    """Of ``(channel id, SIP Call-ID)`` pairs, the channel ids and SIP Call-IDs that already
    have a call row."""
    channel_ids: set[str] = set()
    sip_call_ids: set[str] = set()
    if not channels:
        return channel_ids, sip_call_ids
    async with session_factory(engine)() as session:
        for start in range(0, len(channels), QUERY_CHUNK):
            chunk = channels[start:start + QUERY_CHUNK]
            ids = [channel for channel, _ in chunk]
            sips = [sip for _, sip in chunk if sip]
            query = sa.select(col(CallRow.channel_id), col(CallRow.sip_call_id)).where(
                sa.or_(col(CallRow.channel_id).in_(ids), col(CallRow.sip_call_id).in_(sips)))
            for channel_id, sip_call_id in (await session.execute(query)).all():
                channel_ids.add(channel_id)
                if sip_call_id:
                    sip_call_ids.add(sip_call_id)
    return channel_ids, sip_call_ids
