"""Read-side queries of the store and the output of ``callcontrol calls list``.

Every query takes an :class:`AsyncEngine` or an open :class:`AsyncSession`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import SQLModel, col

from callcontrol.store.db import session_factory
from callcontrol.store.tables import CallEventRow, CallRow

Db = AsyncEngine | AsyncSession

DEFAULT_LIMIT = 20


@asynccontextmanager
async def open_session(db: Db) -> AsyncIterator[AsyncSession]:
    """A session on ``db`` (an engine: a new one, closed after; a session: itself)."""
    if isinstance(db, AsyncSession):
        yield db
    else:
        async with session_factory(db)() as session:
            yield session


async def _rows(db: Db, query: Any) -> list[Any]:
    """Every row ``query`` selects."""
    async with open_session(db) as session:
        return list((await session.execute(query)).scalars())


async def recent_calls(db: Db, limit: int = DEFAULT_LIMIT) -> list[CallRow]:
    """The ``limit`` most recently started calls, newest first."""
    query = sa.select(CallRow).order_by(col(CallRow.started_at).desc()).limit(limit)
    return await _rows(db, query)


async def get_call(db: Db, call_id: str) -> CallRow | None:
    """One call row, or ``None``."""
    async with open_session(db) as session:
        return await session.get(CallRow, call_id)


async def call_timeline(db: Db, call_id: str) -> list[CallEventRow]:
    """The timeline of one call, in the order it was logged."""
    query = (
        sa.select(CallEventRow)
        .where(col(CallEventRow.call_id) == call_id)
        .order_by(col(CallEventRow.id))
    )
    return await _rows(db, query)


async def open_calls(db: Db) -> list[CallRow]:
    """Calls without ``ended_at``, oldest first (the daemon closes those it no longer owns)."""
    query = (
        sa.select(CallRow).where(col(CallRow.ended_at).is_(None)).order_by(col(CallRow.started_at))
    )
    return await _rows(db, query)


async def find_by_sip_call_id(db: Db, sip_call_id: str) -> list[CallRow]:
    """The calls whose SIP Call-ID is ``sip_call_id`` (normally one), oldest first."""
    query = (
        sa.select(CallRow)
        .where(col(CallRow.sip_call_id) == sip_call_id)
        .order_by(col(CallRow.started_at))
    )
    return await _rows(db, query)


def iso_utc(value: datetime | None) -> str | None:
    """``value`` in ISO-8601 UTC with milliseconds (``...Z``); ``None`` stays ``None``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def call_to_json(row: CallRow) -> dict[str, Any]:
    """One call row as a JSON-ready dict, times in ISO-8601 UTC (``...Z``)."""
    return row_to_json(row)


def row_to_json(row: SQLModel) -> dict[str, Any]:
    """A row as a JSON-ready dict, times in ISO-8601 UTC (``...Z``)."""
    out: dict[str, Any] = row.model_dump()
    for name, value in out.items():
        if isinstance(value, datetime):
            out[name] = iso_utc(value)
    return out


def event_to_json(row: CallEventRow) -> dict[str, Any]:
    """One timeline entry as a JSON-ready dict (``at`` in ISO-8601 UTC)."""
    return {"at": iso_utc(row.at), "kind": row.kind, "data": row.data}


def format_calls_json(rows: Sequence[CallRow]) -> str:
    """``callcontrol calls list --json``: a JSON array of the rows."""
    return json.dumps([call_to_json(row) for row in rows], indent=2)


_COLUMNS = (
    "started (UTC)",
    "call_id",
    "caller",
    "ext",
    "flow",
    "queue",
    "agent",
    "secs",
    "outcome",
)


def _cells(row: CallRow) -> tuple[str, ...]:
    started = row.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    secs = f"{(row.ended_at - row.started_at).total_seconds():.0f}" if row.ended_at else ""
    return (
        started,
        row.call_id,
        row.caller_number or "-",
        row.extension or "-",
        row.flow or "-",
        row.queue or "-",
        row.agent_id or "-",
        secs,
        row.outcome or "in progress",
    )


def format_table(columns: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    """An aligned text table with a header, one line per item (the CLI's list format)."""
    table = [tuple(columns), *(tuple(line) for line in lines)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


def format_calls_table(rows: Sequence[CallRow]) -> str:
    """``callcontrol calls list``: an aligned text table, one call per line, with a header."""
    return format_table(_COLUMNS, (_cells(row) for row in rows))
