"""Recording rows: the reads recordings need, and applying recording records from a tool.

The daemon writes recording records through its journal (:class:`~callcontrol.store.writer.
StoreWriter`). A command run beside it (``recordings purge``, ``recordings check --repair``)
has no journal of its own: :func:`apply_now` applies the same records in one transaction, with
the same idempotent rules (:mod:`callcontrol.store.apply`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from callcontrol.store.apply import apply_batch
from callcontrol.store.db import session_factory
from callcontrol.store.records import Record
from callcontrol.store.tables import RecordingRow


async def apply_now(engine: AsyncEngine, records: Sequence[Record]) -> None:
    """Apply ``records`` to the database at once, in one transaction (tools only)."""
    async with engine.begin() as conn:
        await apply_batch(conn, records)


async def get_recording(engine: AsyncEngine, recording_id: str) -> RecordingRow | None:
    """One recording row, or ``None``."""
    async with session_factory(engine)() as s:
        return await s.get(RecordingRow, recording_id)


async def call_recordings(engine: AsyncEngine, call_id: str) -> list[RecordingRow]:
    """A call's recordings in order (``n``)."""
    query = sa.select(RecordingRow).where(col(RecordingRow.call_id) == call_id)
    async with session_factory(engine)() as s:
        return list((await s.execute(query.order_by(col(RecordingRow.n)))).scalars())


async def recordings_with_status(engine: AsyncEngine, *statuses: str) -> list[RecordingRow]:
    """Recordings in any of ``statuses`` (all when none is given), oldest first."""
    query = sa.select(RecordingRow).order_by(col(RecordingRow.started_at), col(RecordingRow.id))
    if statuses:
        query = query.where(col(RecordingRow.status).in_(statuses))
    async with session_factory(engine)() as s:
        return list((await s.execute(query)).scalars())


async def policies_in_use(engine: AsyncEngine) -> list[str]:
    """The policy names of recordings not purged yet, sorted."""
    query = (
        sa.select(col(RecordingRow.policy))
        .where(col(RecordingRow.status) != "purged")
        .distinct()
        .order_by(col(RecordingRow.policy))
    )
    async with session_factory(engine)() as s:
        return list((await s.execute(query)).scalars())


async def started_before(engine: AsyncEngine, policy: str, cutoff: datetime) -> list[RecordingRow]:
    """Finished recordings (``complete``, ``partial``, ``missing``) of ``policy`` that started
    before ``cutoff``, oldest first: what that policy's retention has expired."""
    query = (
        sa.select(RecordingRow)
        .where(
            col(RecordingRow.policy) == policy,
            col(RecordingRow.started_at) < cutoff,
            col(RecordingRow.status).in_(("complete", "partial", "missing")),
        )
        .order_by(col(RecordingRow.started_at), col(RecordingRow.id))
    )
    async with session_factory(engine)() as s:
        return list((await s.execute(query)).scalars())
