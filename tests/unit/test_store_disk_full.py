"""The journal's disk full: nothing refused, nothing lost, nothing written twice.

The disk is made full by a stand-in for ``os.write`` that fails with ENOSPC on journal segment
files only (the live fault, a filled tmpfs, runs in ``make faults``).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from callcontrol.errors import StoreError
from callcontrol.store.db import create_engine
from callcontrol.store.journal import Journal
from callcontrol.store.migrations import upgrade
from callcontrol.store.queries import call_timeline
from callcontrol.store.records import CallEvent, CallOpened
from callcontrol.store.writer import StoreWriter
from callcontrol_testing.waiting import wait_until


class Disk:
    """Makes writes to journal segments fail while :attr:`full` (or write ``short`` bytes)."""

    def __init__(self) -> None:
        self.full = False
        self.short: int | None = None
        self.refused = 0
        self._write = os.write

    def write(self, fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):
            if self.short is not None:
                short, self.short = self.short, None
                return self._write(fd, bytes(data)[:short])
            if self.full:
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._write(fd, data)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    disk = Disk()
    monkeypatch.setattr(os, "write", disk.write)  # journal segments only, see Disk
    yield disk


def event(n: int, call_id: str = "c1") -> CallEvent:
    return CallEvent(call_id=call_id, kind="step", data={"n": n})


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.jsonl"))


def journaled(directory: Path) -> list[int]:
    """The ``n`` of every event line in the journal's segments (torn lines left out)."""
    j = Journal(directory)
    j.open()
    reader = j.reader(0)
    try:
        return [rec.data["n"] for _, rec in reader.read(100_000) if isinstance(rec, CallEvent)]
    finally:
        reader.close()
        j.close()


async def stored(engine: AsyncEngine, call_id: str = "c1") -> list[int]:
    return [e.data["n"] for e in await call_timeline(engine, call_id)]


async def doubled_record_ids(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text(
            "SELECT record_id FROM call_events GROUP BY record_id HAVING count(*) > 1"))
        return len(rows.all())


def test_journal_refuses_a_record_on_a_full_disk_and_goes_on_after(
    tmp_path: Path, disk: Disk
) -> None:
    j = Journal(tmp_path / "j")
    j.open()
    assert j.append(event(1)) == 1
    disk.full = True
    with pytest.raises(StoreError, match="No space left"):
        j.append(event(2))
    assert j.last_seq == 1  # a refused record takes no sequence number
    disk.full = False
    assert j.append(event(2)) == 2
    j.close()
    assert journaled(tmp_path / "j") == [1, 2]


def test_a_line_written_in_part_is_left_behind_with_its_segment(
    tmp_path: Path, disk: Disk
) -> None:
    j = Journal(tmp_path / "j")
    j.open()
    j.append(event(1))
    disk.short = 7
    with pytest.raises(StoreError, match="short write"):
        j.append(event(2))
    j.confirm(1)  # the abandoned segment holds nothing unconfirmed, yet it is not lost track of
    assert j.append(event(2)) == 2  # in a new segment
    j.confirm(2)
    assert segments(tmp_path / "j") == ["0000000002.jsonl"]
    assert j.append(event(3)) == 3
    j.close()
    with capture_logs() as logs:
        assert journaled(tmp_path / "j") == [2, 3]
    assert "journal_torn_line" not in [e["event"] for e in logs]  # its segment is deleted


def test_a_torn_line_is_skipped_when_read_back(tmp_path: Path, disk: Disk) -> None:
    j = Journal(tmp_path / "j")
    j.open()
    j.append(event(1))
    disk.short = 7
    with pytest.raises(StoreError, match="short write"):
        j.append(event(2))
    assert j.append(event(2)) == 2
    j.close()
    with capture_logs() as logs:
        assert journaled(tmp_path / "j") == [1, 2]
    assert "journal_torn_line" in [e["event"] for e in logs]


async def test_disk_full_with_the_database_up_loses_nothing(
    engine: AsyncEngine, tmp_path: Path, disk: Disk
) -> None:
    writer = StoreWriter(engine, tmp_path / "j", retry_interval=0.05, batch_interval=0.01,
                         probe_interval=0.05)
    writer.start()
    try:
        writer.append(CallOpened(call_id="c1", channel_id="ch1"))
        for n in range(0, 50):
            writer.append(event(n))
        disk.short, disk.full = 5, True  # the last bytes taken, then nothing
        with capture_logs() as logs:
            for n in range(50, 150):  # nothing raises: the call goes on
                writer.append(event(n))
                if n % 10 == 0:
                    await asyncio.sleep(0.01)
            health = writer.journal_health()
            assert not health["up"] and "No space left" in health["last_error"]
            # journaled records reach the database, then the backlog goes there directly
            await wait_until(lambda: writer.pending == 0, 10)
            await asyncio.sleep(0.3)  # idle probes meanwhile: the disk is still full
            assert not writer.journal_link.up
        assert [e["event"] for e in logs].count("journal_down") == 1
        assert await stored(engine) == list(range(150))
        disk.full = False
        for n in range(150, 200):
            writer.append(event(n))
        async with asyncio.timeout(10):
            await writer.flush()
        await wait_until(lambda: writer.journal_link.up, 5)
        assert writer.journal_health()["backlog"] == writer.dropped == 0
    finally:
        await writer.close()
    assert await stored(engine) == list(range(200))
    assert await doubled_record_ids(engine) == 0


async def test_disk_full_with_the_database_down_keeps_a_backlog_until_space_returns(
    tmp_path: Path, disk: Disk
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/late.db"
    engine = create_engine(url)  # no tables yet: every write fails until the upgrade
    writer = StoreWriter(engine, tmp_path / "j", retry_interval=0.05, probe_interval=0.05)
    writer.start()
    try:
        writer.append(CallOpened(call_id="c1", channel_id="ch1"))
        disk.full = True
        for n in range(100):
            writer.append(event(n))
        assert writer.journal_health()["backlog"] == 100 and writer.pending == 101
        await wait_until(lambda: disk.refused >= 3, 5)  # retried, still full
        assert writer.journal_health()["backlog"] == 100
        disk.full = False  # space returns first: the backlog goes to the journal, in order
        await wait_until(lambda: writer.journal_link.up, 5)
        assert writer.journal_health()["backlog"] == 0 and writer.pending == 101
        assert journaled(tmp_path / "j") == list(range(100))
        await upgrade(url)  # then the database
        async with asyncio.timeout(10):
            await writer.flush()
        assert await stored(engine) == list(range(100))
        assert await doubled_record_ids(engine) == 0
    finally:
        await writer.close()
        await engine.dispose()


async def test_a_full_backlog_drops_and_counts(
    engine: AsyncEngine, tmp_path: Path, disk: Disk
) -> None:
    writer = StoreWriter(engine, tmp_path / "j", retry_interval=0.05, backlog_max=10)
    writer.start()
    try:
        disk.full = True
        with capture_logs() as logs:
            for n in range(15):  # no await in between: the writer cannot drain the backlog
                writer.append(event(n))
        assert writer.journal_health()["backlog"] == 10
        assert writer.journal_health()["dropped"] == writer.dropped == 5
        assert [e["event"] for e in logs].count("journal_backlog_full_record_dropped") == 5
        async with asyncio.timeout(10):
            await writer.flush()  # the backlog goes straight to the database
    finally:
        await writer.close()
    assert await stored(engine) == list(range(10))
