"""The store's basic behaviour on SQLite and on PostgreSQL: schema, writes, replay, queries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from callcontrol.store import tables
from callcontrol.store.db import create_engine
from callcontrol.store.queries import (
    call_timeline,
    find_by_sip_call_id,
    format_calls_json,
    format_calls_table,
    open_calls,
    recent_calls,
)
from callcontrol.store.records import (
    AgentEvent,
    CallClosed,
    CallEvent,
    CallOpened,
    CallUpdated,
    Record,
)
from callcontrol.store.writer import StoreWriter

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(store_url)
    yield engine
    await engine.dispose()


async def write(engine: AsyncEngine, journal: Path, records: list[Record]) -> None:
    writer = StoreWriter(engine, journal)
    writer.start()
    for record in records:
        writer.append(record)
    async with asyncio.timeout(20):
        await writer.flush()
    await writer.close()


def demo_calls() -> list[Record]:
    return [
        CallOpened(call_id="a", channel_id="ch-a", sip_call_id="sip-a", caller_number="1001",
                   extension="100", at=at(0)),
        CallUpdated(call_id="a", fields={"answered_at": at(1), "flow": "hotline",
                                         "flow_version": "3", "tags": ["x"]}, at=at(1)),
        CallEvent(call_id="a", kind="answered", at=at(1.0005)),
        CallEvent(call_id="a", kind="menu", data={"digit": "1", "when": at(2)}, at=at(2.25)),
        CallUpdated(call_id="a", fields={"tags": ["y", "x"]}, at=at(3)),
        CallClosed(call_id="a", outcome="completed", hangup_cause="16", at=at(10)),
        CallClosed(call_id="a", outcome="lost", at=at(11)),
        CallOpened(call_id="b", channel_id="ch-b", sip_call_id="sip-b", caller_number="1002",
                   at=at(5)),
        AgentEvent(agent_id="alice", kind="ready", data={"reason": "login"}, at=at(0)),
    ]  # fmt: skip


def _schema_diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), SQLModel.metadata))


async def test_migrations_match_the_tables(engine: AsyncEngine) -> None:
    assert tables.CallRow.__tablename__ in SQLModel.metadata.tables
    async with engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []


async def test_rows_timeline_and_queries(engine: AsyncEngine, tmp_path: Path) -> None:
    await write(engine, tmp_path / "j", demo_calls())
    b, a = await recent_calls(engine)
    assert (a.call_id, b.call_id) == ("a", "b")
    assert (a.outcome, a.ended_at, a.answered_at) == ("completed", at(10), at(1))
    assert a.tags == ["x", "y"]
    assert (a.flow, a.flow_version) == ("hotline", "3")
    assert [r.call_id for r in await recent_calls(engine, limit=1)] == ["b"]
    assert [r.call_id for r in await open_calls(engine)] == ["b"]
    assert [r.call_id for r in await find_by_sip_call_id(engine, "sip-a")] == ["a"]
    timeline = await call_timeline(engine, "a")
    assert [(e.kind, e.at) for e in timeline] == [("answered", at(1.0005)), ("menu", at(2.25))]
    assert timeline[1].data == {"digit": "1", "when": at(2).isoformat()}

    listed = json.loads(format_calls_json([b, a]))
    assert [c["call_id"] for c in listed] == ["b", "a"]
    assert listed[1]["started_at"] == "2026-03-01T09:00:00.000Z"
    assert listed[1]["ended_at"] == "2026-03-01T09:00:10.000Z"
    assert listed[0]["ended_at"] is None
    lines = format_calls_table([b, a]).splitlines()
    assert lines[0].split()[:3] == ["started", "(UTC)", "call_id"]
    assert lines[1].startswith("2026-03-01 09:00:05  b ") and lines[1].endswith("  in progress")
    assert lines[2].split()[-2:] == ["10", "completed"]


async def test_replay_of_everything_changes_nothing(engine: AsyncEngine, tmp_path: Path) -> None:
    journal = tmp_path / "j"
    await write(engine, journal, demo_calls())

    async def snapshot() -> list[list[Any]]:
        async with engine.connect() as conn:
            return [
                sorted((await conn.execute(sa.text(f"SELECT * FROM {t}"))).all(), key=repr)
                for t in ("calls", "call_events", "agent_events")
            ]

    before = await snapshot()
    (journal / "checkpoint.json").unlink()
    await write(engine, journal, [])
    assert await snapshot() == before
    assert [len(rows) for rows in before] == [2, 2, 1]
