"""StoreWriter on SQLite: call rows, idempotent replay, order, spill to the journal, outages."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from callcontrol.errors import StoreError
from callcontrol.store.db import create_engine
from callcontrol.store.migrations import upgrade
from callcontrol.store.queries import call_timeline, recent_calls
from callcontrol.store.records import CallClosed, CallEvent, CallOpened, CallUpdated, Record
from callcontrol.store.writer import StoreWriter
from callcontrol_testing.waiting import wait_until

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def call_records(call_id: str, events: int = 3) -> list[Record]:
    return [
        CallOpened(call_id=call_id, channel_id=f"ch-{call_id}", caller_number="555", at=at(0)),
        CallUpdated(call_id=call_id, fields={"answered_at": at(1), "tags": ["a"]}, at=at(1)),
        *(
            CallEvent(call_id=call_id, kind="step", data={"n": n}, at=at(1 + n / 1000))
            for n in range(events)
        ),
        CallClosed(call_id=call_id, outcome="completed", hangup_cause="16", at=at(9)),
    ]


async def run_writer(
    engine: AsyncEngine, journal: Path, records: list[Record], **kw: float
) -> None:
    writer = StoreWriter(engine, journal, **kw)  # type: ignore[arg-type]
    writer.start()
    for record in records:
        writer.append(record)
    async with asyncio.timeout(10):
        await writer.flush()
    await writer.close()


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        calls, events, agents = [
            (await conn.execute(sa.text(f"SELECT count(*) FROM {t}"))).scalar_one()
            for t in ("calls", "call_events", "agent_events")
        ]
    return calls, events, agents


async def test_call_row_lifecycle(engine: AsyncEngine, tmp_path: Path) -> None:
    records = [
        *call_records("c1"),
        CallUpdated(call_id="c1", fields={"tags": ["b", "a"], "queue": "sales"}, at=at(2)),
        CallClosed(call_id="c1", outcome="lost", reason="late duplicate", at=at(20)),
    ]
    await run_writer(engine, tmp_path / "journal", records)
    (row,) = await recent_calls(engine)
    assert row.caller_number == "555"
    assert row.answered_at == at(1)
    assert row.ended_at == at(9)
    assert (row.outcome, row.hangup_cause, row.close_reason) == ("completed", "16", "")
    assert row.tags == ["a", "b"]
    assert row.queue == "sales"
    assert row.updated_at == at(20)
    timeline = await call_timeline(engine, "c1")
    assert [e.data["n"] for e in timeline] == [0, 1, 2]
    assert timeline[1].at == at(1.001)  # millisecond precision, timezone-aware


async def test_replaying_the_journal_twice_writes_nothing_twice(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    records = [r for i in range(5) for r in call_records(f"c{i}")]
    await run_writer(engine, journal, records)
    first = await counts(engine)
    rows_before = [r.model_dump() for r in await recent_calls(engine)]
    for _ in range(2):  # as if the checkpoint had never been written: replay everything
        (journal / "checkpoint.json").unlink()
        await run_writer(engine, journal, [])
    assert first == (5, 15, 0)
    assert await counts(engine) == first
    assert [r.model_dump() for r in await recent_calls(engine)] == rows_before


async def test_update_for_unknown_call_creates_the_row(engine: AsyncEngine, tmp_path: Path) -> None:
    await run_writer(
        engine,
        tmp_path / "j",
        [CallClosed(call_id="ghost", outcome="interrupted", reason="not owned", at=at(5))],
    )
    (row,) = await recent_calls(engine)
    assert (row.call_id, row.outcome, row.ended_at) == ("ghost", "interrupted", at(5))


async def test_full_memory_queue_spills_to_the_journal_in_order(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    records = [
        CallEvent(call_id=f"c{n % 3}", kind="step", data={"n": n}, at=at(n)) for n in range(400)
    ]
    writer = StoreWriter(engine, tmp_path / "j", memory_queue_max=10, batch_max=37)
    writer.start()
    with capture_logs() as logs:
        for record in records[:200]:  # no await in between: the queue fills at 10
            writer.append(record)
    assert writer.pending == 200
    assert [e["event"] for e in logs] == ["store_queue_full"]
    # the writer is now reading back from the journal...
    await wait_until(lambda: writer.pending <= 150, 10, step=0.001)
    for record in records[200:]:  # ...while more records arrive behind it
        writer.append(record)
    async with asyncio.timeout(10):
        await writer.flush()
    await writer.close()
    assert await counts(engine) == (0, 400, 0)
    for c in range(3):
        assert [e.data["n"] for e in await call_timeline(engine, f"c{c}")] == list(range(c, 400, 3))


async def test_database_unavailable_then_back(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/late.db"
    engine = create_engine(url)  # no tables yet: every write fails until the upgrade
    writer = StoreWriter(engine, tmp_path / "j", retry_interval=0.05, probe_interval=0.05)
    writer.start()
    try:
        for record in call_records("c1"):
            writer.append(record)
        await wait_until(lambda: writer.link.last_error is not None, 5)
        assert not writer.link.up
        assert writer.pending == 6
        await upgrade(url)
        async with asyncio.timeout(10):
            await writer.flush()
        assert writer.link.up
        assert writer.health()["pending"] == 0
        assert await counts(engine) == (1, 3, 0)
    finally:
        await writer.close()
        await engine.dispose()


async def test_close_with_database_down_keeps_records_for_next_start(tmp_path: Path) -> None:
    down = create_engine(f"sqlite+aiosqlite:///{tmp_path}/no-tables.db")
    writer = StoreWriter(down, tmp_path / "j", retry_interval=0.05)
    writer.start()
    for record in call_records("c1"):
        writer.append(record)
    await writer.close(grace=0.3)
    await down.dispose()

    url = f"sqlite+aiosqlite:///{tmp_path}/good.db"
    await upgrade(url)
    good = create_engine(url)
    try:
        await run_writer(good, tmp_path / "j", [])
        assert await counts(good) == (1, 3, 0)
    finally:
        await good.dispose()


async def test_append_needs_a_started_writer(engine: AsyncEngine, tmp_path: Path) -> None:
    writer = StoreWriter(engine, tmp_path / "j")
    with pytest.raises(StoreError):
        writer.append(call_records("c1")[0])
    writer.start()
    await writer.close()
    with pytest.raises(StoreError):
        writer.append(call_records("c1")[0])
    shutil.rmtree(tmp_path / "j")
