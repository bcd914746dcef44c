"""Serving a recording's file: only a regular file below the root, never through a symlink,
and the row's state decides first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callcontrol.errors import Gone, UnknownObject, WrongState
from callcontrol.recording.access import open_recording
from callcontrol.store.recording_queries import get_recording
from callcontrol.store.records import RecordingMarked

from .conftest import Bench


async def _row(bench: Bench, recording_id: str):  # type: ignore[no-untyped-def]
    row = await get_recording(bench.engine, recording_id)
    assert row is not None
    return row


async def test_a_finished_file_opens_and_reads_by_offset(bench: Bench) -> None:
    recording_id, path = await bench.finished("call-a")
    opened = open_recording(bench.paths, await _row(bench, recording_id))
    try:
        data = path.read_bytes()
        assert opened.size == len(data)
        assert opened.read(10, 20) == data[10:30]
        assert opened.read(len(data) - 4, 100) == data[-4:]
    finally:
        opened.close()


async def test_the_rows_state_comes_first(bench: Bench) -> None:
    writing, _ = await bench.started("call-b")
    with pytest.raises(WrongState) as caught:
        open_recording(bench.paths, await _row(bench, writing))
    assert caught.value.error_id == "recording_in_progress"
    purged, path = await bench.finished("call-c")
    path.unlink()
    await bench.write(RecordingMarked(recording_id=purged, status="purged"))
    with pytest.raises(Gone):
        open_recording(bench.paths, await _row(bench, purged))
    gone, path = await bench.finished("call-d")
    path.unlink()
    with pytest.raises(UnknownObject) as missing:
        open_recording(bench.paths, await _row(bench, gone))
    assert missing.value.error_id == "recording_file_missing"


async def test_symlinks_below_the_root_are_refused(bench: Bench, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"RIFF secret")
    linked, path = await bench.finished("call-e")
    path.unlink()
    path.symlink_to(outside / "secret.wav")
    with pytest.raises(UnknownObject) as caught:
        open_recording(bench.paths, await _row(bench, linked))
    assert caught.value.error_id == "recording_path_refused"

    folder, path = await bench.finished("call-f", n=1)
    day = path.parent
    moved = tmp_path / "day"
    day.rename(moved)
    os.symlink(moved, day)  # the day folder now leads outside the root
    with pytest.raises(UnknownObject) as caught:
        open_recording(bench.paths, await _row(bench, folder))
    assert caught.value.error_id == "recording_path_refused"


async def test_a_folder_where_the_file_should_be_is_refused(bench: Bench) -> None:
    recording_id, path = await bench.finished("call-g")
    path.unlink()
    path.mkdir()
    with pytest.raises(UnknownObject) as caught:
        open_recording(bench.paths, await _row(bench, recording_id))
    assert caught.value.error_id == "recording_path_refused"
