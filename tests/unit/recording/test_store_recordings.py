"""Recording rows through the journal: started before the file, finished once, purged final."""

from __future__ import annotations

from datetime import timedelta

from callcontrol.store.recording_queries import (
    apply_now,
    call_recordings,
    get_recording,
    recordings_with_status,
)
from callcontrol.store.records import RecordingFinished, RecordingMarked
from callcontrol.store.writer import StoreWriter
from tests.unit.recording.conftest import NOW, Bench


async def test_the_row_exists_before_the_file(bench: Bench) -> None:
    recording_id, path = await bench.started("call-a")
    assert not path.exists()
    row = await get_recording(bench.engine, recording_id)
    assert row is not None
    assert (row.status, row.call_id, row.n, row.policy) == ("recording", "call-a", 1, "quality")
    assert row.path == "2026/12/03/call-a-1.wav"
    assert (row.format, row.channels, row.started_at) == ("wav", 2, NOW)


async def test_finished_sets_the_figures_once_and_purged_is_final(bench: Bench) -> None:
    recording_id, path = await bench.finished("call-b", seconds=1.5)
    await bench.started("call-b", n=2)
    row = await get_recording(bench.engine, recording_id)
    assert row is not None
    assert (row.status, row.duration_s, row.size_bytes) == ("complete", 1.5, path.stat().st_size)
    assert row.ended_at == NOW + timedelta(seconds=1.5)
    late = RecordingFinished(recording_id=recording_id, status="partial", duration_s=0.1,
                             size_bytes=1, sha256="0" * 64, at=NOW + timedelta(hours=1))
    await bench.write(late)  # a replayed or late finish changes nothing
    purge = RecordingMarked(recording_id=recording_id, status="purged", at=NOW + timedelta(1))
    await apply_now(bench.engine, [purge])
    await bench.write(RecordingMarked(recording_id=recording_id, status="missing", at=NOW))
    row = await get_recording(bench.engine, recording_id)
    assert row is not None
    assert (row.status, row.duration_s, row.purged_at) == ("purged", 1.5, NOW + timedelta(1))
    assert [r.n for r in await call_recordings(bench.engine, "call-b")] == [1, 2]
    assert [r.n for r in await recordings_with_status(bench.engine, "recording")] == [2]


async def test_replaying_the_journal_writes_each_recording_once(bench: Bench) -> None:
    await bench.finished("call-c")
    await bench.writer.close()
    (bench.journal_dir / "checkpoint.json").unlink()  # as if never confirmed: replay it all
    bench.writer = StoreWriter(bench.engine, bench.journal_dir)
    bench.writer.start()
    await bench.write()
    (row,) = await recordings_with_status(bench.engine)
    assert row.status == "complete"
