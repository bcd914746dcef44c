"""Voicemail messages as recordings: the row before Asterisk writes (the call's next n, mono,
policy ``voicemail``), the message moved from the spool into the tree and sealed with its
figures, beside a call recording in progress (muted or not), across file systems, after a
crash, and kept as long as ``recording.voicemail.retention_days`` says."""

from __future__ import annotations

import errno
import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from callcontrol.config import VOICEMAIL, RecordingSettings
from callcontrol.flows.simulate import SimulatedCall
from callcontrol.recording import voicemail
from callcontrol.recording.reconcile import check
from callcontrol.recording.retention import purge
from callcontrol.recording.runtime import CallRecorder, RecordingService
from callcontrol.store.recording_queries import get_recording
from callcontrol.store.records import RecordingFinished, RecordingMarked, RecordingStarted
from tests.unit.recording.conftest import NOW, Bench, Records, write_wav
from tests.unit.recording.conftest import recorder as shared_recorder

SETTINGS = RecordingSettings.model_validate({
    "policies": {"kept": {"record": "all"}}, "flows": {"ivr": "kept"},
    "voicemail": {"retention_days": 30},
})


def recorder(tmp_path: Path) -> tuple[CallRecorder, SimulatedCall, Records]:
    return shared_recorder(tmp_path, SETTINGS)


async def test_a_message_gets_its_row_first_then_joins_the_tree_sealed(tmp_path: Path) -> None:
    rec, call, records = recorder(tmp_path)
    message = rec.voicemail()
    (started,) = records
    assert isinstance(started, RecordingStarted)
    assert (started.recording_id, started.n, started.policy, started.channels) == (
        message.recording_id, 1, VOICEMAIL, 1)
    assert started.path == message.path and message.path.endswith(f"/{call.call_id}-1.wav")
    assert message.name == f"vm-{call.call_id}-1"  # one ARI URL segment, derived from the row
    assert call.fake.commands == []  # nothing asked of Asterisk here: the engine records

    spooled = tmp_path / "spool" / f"{message.name}.wav"  # what Asterisk wrote
    write_wav(spooled, 1.5, channels=1)
    digest = hashlib.sha256(spooled.read_bytes()).hexdigest()
    rec.voicemail_ended(message)
    await rec.service.close()

    final = rec.service.paths.resolve(message.path)
    assert not spooled.exists() and final.is_file()
    assert list(rec.service.paths.files()) == [message.path]  # no hidden file left behind
    finished = records[-1]
    assert isinstance(finished, RecordingFinished)
    assert (finished.recording_id, finished.status) == (message.recording_id, "complete")
    assert (finished.duration_s, finished.sha256) == (1.5, digest)
    assert finished.size_bytes == final.stat().st_size


async def test_a_message_beside_a_muted_call_recording_is_the_next_n_and_not_muted(
    tmp_path: Path,
) -> None:
    rec, call, records = recorder(tmp_path)
    await rec.leg(flow="ivr")
    assert await rec.start()
    call_recording = rec.active
    assert call_recording is not None
    await rec.mute("agent:a1", "headset code")
    message = rec.voicemail()
    assert message.n == 2 and message.path.endswith(f"/{call.call_id}-2.wav")
    assert rec.active is call_recording  # the call recording goes on
    write_wav(tmp_path / "spool" / f"{message.name}.wav", 1.0, channels=1)
    rec.voicemail_ended(message)
    await rec.service.close()
    mutes = [a["muted"] for n, a in call.fake.commands if n == "mute_call_recording"]
    assert mutes == [True]  # the mute is the call recording's alone
    finished = [r for r in records if isinstance(r, RecordingFinished)]
    assert [(r.recording_id, r.status) for r in finished] == [(message.recording_id, "complete")]
    call_recording.partial.write_bytes(b"\x00\x01" * 16000)
    await rec.finish()
    await rec.service.close()
    assert sorted(rec.service.paths.files()) == sorted([call_recording.relative, message.path])


async def test_a_message_asterisk_never_wrote_is_marked_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("callcontrol.recording.runtime.CLOSE_WAIT_S", 0.2)
    rec, _, records = recorder(tmp_path)
    message = rec.voicemail()
    rec.voicemail_ended(message)  # the record request failed: no file in the spool
    await rec.service.close()
    marked = records[-1]
    assert isinstance(marked, RecordingMarked)
    assert (marked.recording_id, marked.status) == (message.recording_id, "missing")


def test_bring_in_copies_across_file_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, partial = tmp_path / "spool" / "vm-c1-1.wav", tmp_path / "rec" / ".c1-1.wav"
    write_wav(source, 0.5, channels=1)
    partial.parent.mkdir()
    data = source.read_bytes()
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert voicemail.bring_in(source, partial)
    assert partial.read_bytes() == data and not source.exists()
    assert [p.name for p in partial.parent.iterdir()] == [partial.name]  # no copy left
    assert not voicemail.bring_in(source, partial)  # nothing more to bring


def test_bring_in_copies_from_a_spool_it_may_only_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, partial = tmp_path / "spool" / "vm-c1-1.wav", tmp_path / "rec" / ".c1-1.wav"
    write_wav(source, 0.5, channels=1)
    partial.parent.mkdir()
    real_replace, real_unlink = os.replace, Path.unlink

    def replace(src: Any, dst: Any) -> None:
        if Path(src) == source:
            raise PermissionError(errno.EACCES, "Permission denied")
        real_replace(src, dst)

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path == source:
            raise PermissionError(errno.EACCES, "Permission denied")
        real_unlink(path, missing_ok)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(Path, "unlink", unlink)
    assert voicemail.bring_in(source, partial)  # the copy is the recording; the source stays
    assert partial.read_bytes() == source.read_bytes()


async def test_recovery_brings_a_message_left_in_the_spool_into_the_tree(
    bench: Bench, tmp_path: Path,
) -> None:
    recording_id, final = await bench.started("vm-crash", policy=VOICEMAIL)
    relative = final.relative_to(bench.paths.root).as_posix()
    spool = tmp_path / "spool"
    write_wav(voicemail.spool_file(spool, voicemail.spool_name(relative)), 2.0, channels=1)
    service = RecordingService(SETTINGS, bench.paths, SimulatedCall().fake, bench.writer, spool)
    await service.recover(bench.engine, now=NOW)
    await bench.write()
    row = await get_recording(bench.engine, recording_id)
    assert row is not None and (row.status, row.duration_s) == ("complete", 2.0)
    assert final.is_file() and list(spool.iterdir()) == []
    assert await check(bench.engine, bench.paths) == []


async def test_messages_are_kept_for_the_voicemail_retention(bench: Bench) -> None:
    old_id, old = await bench.finished("vm-old", policy=VOICEMAIL, days_ago=31, seconds=0.5)
    _, new = await bench.finished("vm-new", policy=VOICEMAIL, days_ago=29, seconds=0.5)
    plan = await purge(bench.engine, bench.paths, SETTINGS, now=NOW)
    assert [(e.row.id, e.file) for e in plan.expired] == [(old_id, "deleted")]
    assert plan.unknown_policies == [] and not old.exists() and new.exists()
    forever = SETTINGS.model_copy(update={"voicemail": SETTINGS.voicemail.model_copy(
        update={"retention_days": None})})
    later = await purge(bench.engine, bench.paths, forever, now=NOW + timedelta(days=400))
    assert later.expired == [] and later.unknown_policies == [] and new.exists()


def test_voicemail_is_a_reserved_policy_name() -> None:
    with pytest.raises(ValidationError, match="'voicemail' is built in"):
        RecordingSettings.model_validate({"policies": {"voicemail": {"record": "all"}}})
    assert RecordingSettings().retention_days(VOICEMAIL) is None
    with pytest.raises(KeyError):
        RecordingSettings().retention_days("gone")
