"""Purge deletes exactly what each policy's retention says, and marks those rows purged."""

from __future__ import annotations

import json
from pathlib import Path

from callcontrol.recording.policy import RecordingSettings
from callcontrol.recording.retention import purge
from callcontrol.store.recording_queries import get_recording
from callcontrol.store.records import RecordingMarked
from tests.unit.recording.conftest import NOW, Bench, run_cli, write_config

SETTINGS = RecordingSettings.model_validate({"policies": {
    "short": {"record": "all", "retention_days": 7},
    "long": {"record": "all", "retention_days": 30},
    "forever": {"record": "all"},
}})


async def test_purge_removes_exactly_what_the_policy_says(bench: Bench) -> None:
    expired = [await bench.finished("s-old", policy="short", days_ago=8),
               await bench.finished("l-old", policy="long", days_ago=31)]
    kept = [await bench.finished("s-new", policy="short", days_ago=6.9),
            await bench.finished("l-mid", policy="long", days_ago=8),
            await bench.finished("f-old", policy="forever", days_ago=4000),
            await bench.finished("g-old", policy="gone", days_ago=400)]
    still_recording = await bench.started("s-live", policy="short", days_ago=9)
    missing_id, _ = await bench.started("s-missing", policy="short", days_ago=9)
    await bench.write(RecordingMarked(recording_id=missing_id, status="missing", at=NOW))

    dry = await purge(bench.engine, bench.paths, SETTINGS, now=NOW, dry_run=True)
    assert sorted((e.row.call_id, e.file) for e in dry.expired) == [
        ("l-old", "would delete"), ("s-missing", "absent (dry run)"), ("s-old", "would delete")]
    assert all(path.exists() for _, path in expired)
    for recording_id, _ in expired:
        row = await get_recording(bench.engine, recording_id)
        assert row is not None and row.status == "complete"

    plan = await purge(bench.engine, bench.paths, SETTINGS, now=NOW)
    assert sorted((e.row.call_id, e.file) for e in plan.expired) == [
        ("l-old", "deleted"), ("s-missing", "absent"), ("s-old", "deleted")]
    assert plan.unknown_policies == ["gone"]
    for recording_id, path in expired:
        row = await get_recording(bench.engine, recording_id)
        assert not path.exists()
        assert row is not None and (row.status, row.purged_at) == ("purged", NOW)
    for recording_id, _ in [*kept, still_recording]:
        row = await get_recording(bench.engine, recording_id)
        assert row is not None and row.status in ("complete", "recording")
    assert all(path.exists() for _, path in kept)
    assert sorted(p for p in bench.paths.files()) == sorted(
        p.relative_to(bench.paths.root).as_posix() for _, p in kept)

    again = await purge(bench.engine, bench.paths, SETTINGS, now=NOW)
    assert again.expired == []


async def test_the_purge_command_keeps_what_no_configured_policy_covers(
    bench: Bench, tmp_path: Path,
) -> None:
    # The config has no recording section yet (the wiring session embeds it): no policy is
    # known, so nothing may be judged expired and everything is kept, loudly.
    _, path = await bench.finished("old", policy="short", days_ago=400)
    config = write_config(bench, tmp_path)
    for argv in (["--dry-run"], ["--json"]):
        done = await run_cli(config, "recordings", "purge", *argv)
        assert done.returncode == 1
        assert "recordings of policy 'short' kept: no such policy is configured" in done.stderr
        assert path.exists()
    assert json.loads(done.stdout) == []
