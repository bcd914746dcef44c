"""PostgreSQL stopped for 10 s while records keep coming: all arrive, none twice, in order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcontrol.store.db import create_engine
from callcontrol.store.records import CallClosed, CallEvent, CallOpened, Record
from callcontrol.store.writer import StoreWriter
from callcontrol_testing.postgres import PrivatePostgres
from callcontrol_testing.waiting import wait_until

pytestmark = pytest.mark.postgres

OUTAGE_SECONDS = 10.0


async def test_records_survive_a_database_outage(
    private_pg: PrivatePostgres, private_pg_url: str, tmp_path: Path
) -> None:
    engine = create_engine(private_pg_url)
    writer = StoreWriter(
        engine, tmp_path / "journal", memory_queue_max=200, retry_interval=0.2, write_timeout=3
    )
    writer.start()
    appended: list[Record] = []
    stop = asyncio.Event()

    async def calls_arrive() -> None:
        n = 0
        while not stop.is_set():
            call_id = f"call{n}"
            records: list[Record] = [CallOpened(call_id=call_id, channel_id=f"ch{n}")]
            records += [CallEvent(call_id=call_id, kind="step", data={"i": i}) for i in range(3)]
            records.append(CallClosed(call_id=call_id, outcome="completed"))
            for record in records:
                writer.append(record)  # must never raise, database or not
                appended.append(record)
                await asyncio.sleep(0.002)
            n += 1

    producer = asyncio.create_task(calls_arrive())
    try:
        await wait_until(lambda: writer.link.up and len(appended) > 100, 10)
        await asyncio.to_thread(private_pg.stop)
        await wait_until(lambda: not writer.link.up, 10)
        during = len(appended)
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself: records keep arriving
        assert len(appended) - during > 1000
        assert writer.pending > 200  # more than the memory queue holds: the journal has them
        await asyncio.to_thread(private_pg.start)
        await wait_until(lambda: writer.link.up, 15)
        await asyncio.sleep(0.5)  # and a little more traffic after the recovery
        stop.set()
        await producer
        async with asyncio.timeout(60):
            await writer.flush()
        health = writer.health()
        assert health["pending"] == 0
        assert health["reconnects"] == 1
        assert health["last_down"] is not None
    finally:
        stop.set()
        await producer
        await writer.close(grace=5)

    try:
        async with engine.connect() as conn:
            events = (
                await conn.execute(
                    sa.text("SELECT record_id, call_id, data FROM call_events ORDER BY id")
                )
            ).all()
            rows = await conn.execute(sa.text("SELECT call_id, outcome FROM calls"))
            calls = {call_id: outcome for call_id, outcome in rows}
    finally:
        await engine.dispose()

    expected_events = [r for r in appended if isinstance(r, CallEvent)]
    assert [e.record_id for e in events] == [r.record_id for r in expected_events]
    steps: dict[str, list[int]] = defaultdict(list)
    for _, call_id, data in events:
        steps[call_id].append(data["i"])
    assert all(s == [0, 1, 2] for s in steps.values())
    assert set(calls) == {r.call_id for r in appended if isinstance(r, CallOpened)}
    closed = {r.call_id for r in appended if isinstance(r, CallClosed)}
    assert {c for c, outcome in calls.items() if outcome == "completed"} == closed
