"""Recording rows on both backends: journal records, tool-applied marks, and the queries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.store.db import create_engine
from callcontrol.store.recording_queries import (
    apply_now,
    call_recordings,
    policies_in_use,
    recordings_with_status,
    started_before,
)
from callcontrol.store.records import RecordingFinished, RecordingMarked, RecordingStarted
from callcontrol.store.writer import StoreWriter

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(store_url)
    yield engine
    await engine.dispose()


def started(n: int, policy: str, days: int) -> RecordingStarted:
    at = T0 - timedelta(days=days)
    return RecordingStarted(recording_id=f"r{n}", call_id="c1", n=n, policy=policy, at=at,
                            path=f"{at:%Y/%m/%d}/c1-{n}.wav")


async def test_recording_rows_and_queries(engine: AsyncEngine, tmp_path: Path) -> None:
    writer = StoreWriter(engine, tmp_path / "journal")
    writer.start()
    for record in [
        started(1, "short", 10), started(2, "long", 10), started(3, "short", 1),
        started(1, "short", 10),  # a replayed start: still one row
        RecordingFinished(recording_id="r1", status="complete", duration_s=3.5,
                          size_bytes=56044, sha256="a" * 64, at=T0),
        RecordingFinished(recording_id="r2", status="partial", duration_s=1.0,
                          size_bytes=16044, sha256="b" * 64, at=T0),
    ]:
        writer.append(record)
    async with asyncio.timeout(20):
        await writer.flush()
    await writer.close()

    rows = await call_recordings(engine, "c1")
    assert [(r.n, r.status, r.size_bytes) for r in rows] == [
        (1, "complete", 56044), (2, "partial", 16044), (3, "recording", None)]
    assert rows[0].started_at == T0 - timedelta(days=10)
    assert await policies_in_use(engine) == ["long", "short"]
    cutoff = T0 - timedelta(days=5)
    assert [r.id for r in await started_before(engine, "short", cutoff)] == ["r1"]

    await apply_now(engine, [RecordingMarked(recording_id="r1", status="purged", at=T0)])
    await apply_now(engine, [RecordingMarked(recording_id="r1", status="missing", at=T0)])
    assert [r.id for r in await recordings_with_status(engine, "purged")] == ["r1"]
    assert await started_before(engine, "short", cutoff) == []
    assert await policies_in_use(engine) == ["long", "short"]  # r3 is still recording
