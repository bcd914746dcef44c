"""Files against rows: check finds planted problems, --repair marks, recovery finishes rows."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from callcontrol.recording.reconcile import check, recover, repair
from callcontrol.store.recording_queries import get_recording
from callcontrol.store.records import RecordingMarked
from tests.unit.recording.conftest import NOW, Bench, run_cli, write_config, write_wav


async def plant(bench: Bench) -> dict[str, str]:
    """A clean recording, an orphan file, a missing file, a sha256 and a size mismatch."""
    await bench.finished("clean")
    orphan = bench.paths.prepare("2026/12/02/orphan-1.wav")
    write_wav(orphan, 0.5)
    missing_id, missing = await bench.finished("gone")
    missing.unlink()
    tampered_id, tampered = await bench.finished("tampered")
    data = bytearray(tampered.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    tampered.write_bytes(bytes(data))
    grown_id, grown = await bench.finished("grown")
    with grown.open("ab") as fh:
        fh.write(b"\0\0")
    await bench.started("live")  # being written: no file yet, not a finding
    return {"missing": missing_id, "tampered": tampered_id, "grown": grown_id}


async def test_check_finds_orphan_missing_and_mismatches(bench: Bench) -> None:
    ids = await plant(bench)
    findings = await check(bench.engine, bench.paths)
    assert sorted((f.kind, f.path, f.recording_id) for f in findings) == sorted([
        ("orphan_file", "2026/12/02/orphan-1.wav", None),
        ("missing_file", "2026/12/03/gone-1.wav", ids["missing"]),
        ("sha256_mismatch", "2026/12/03/tampered-1.wav", ids["tampered"]),
        ("size_mismatch", "2026/12/03/grown-1.wav", ids["grown"]),
    ])


async def test_repair_marks_missing_files_and_the_next_check_no_longer_lists_them(
    bench: Bench,
) -> None:
    ids = await plant(bench)
    assert await repair(bench.engine, await check(bench.engine, bench.paths), now=NOW) == 1
    row = await get_recording(bench.engine, ids["missing"])
    assert row is not None and row.status == "missing"
    kinds = sorted(f.kind for f in await check(bench.engine, bench.paths))
    assert kinds == ["orphan_file", "sha256_mismatch", "size_mismatch"]


async def test_a_file_whose_row_is_purged_is_an_orphan(bench: Bench) -> None:
    recording_id, path = await bench.finished("back")
    await bench.write(RecordingMarked(recording_id=recording_id, status="purged", at=NOW))
    (finding,) = await check(bench.engine, bench.paths)
    assert (finding.kind, finding.recording_id, finding.detail) == (
        "orphan_file", recording_id, "its row is purged")
    path.unlink()
    assert await check(bench.engine, bench.paths) == []


async def test_recovery_finishes_rows_a_crash_left_recording(bench: Bench) -> None:
    whole_id, whole = await bench.started("whole")
    write_wav(whole, 2.0)  # Asterisk closed it normally while the daemon was down
    cut_id, cut = await bench.started("cut")
    write_wav(cut, 3.0)
    data = bytearray(cut.read_bytes())
    struct.pack_into("<I", data, 4, 0)
    struct.pack_into("<I", data, 40, 0)
    cut.write_bytes(bytes(data[: 44 + 8000 * 4]))  # Asterisk died: 1 s on disk, header open
    none_id, _ = await bench.started("never")
    adopted_id, _ = await bench.started("adopted")

    done = await recover(bench.engine, bench.paths, bench.writer, now=NOW, active={adopted_id})
    await bench.write()
    assert done == {whole_id: "complete", cut_id: "partial", none_id: "missing"}
    whole_row, cut_row, adopted_row = [
        await get_recording(bench.engine, i) for i in (whole_id, cut_id, adopted_id)]
    assert whole_row is not None and cut_row is not None and adopted_row is not None
    assert (whole_row.status, whole_row.duration_s, whole_row.size_bytes) == (
        "complete", 2.0, whole.stat().st_size)
    assert (cut_row.status, cut_row.duration_s, cut_row.size_bytes) == (
        "partial", 1.0, cut.stat().st_size)
    assert adopted_row.status == "recording"  # still being written: left alone
    assert whole_row.ended_at is not None and whole_row.ended_at >= whole_row.started_at
    assert await check(bench.engine, bench.paths) == []


async def test_the_check_command_prints_one_line_per_finding_and_exits_1(
    bench: Bench, tmp_path: Path,
) -> None:
    ids = await plant(bench)
    config = write_config(bench, tmp_path)

    done = await run_cli(config, "recordings", "check", "--json")
    assert done.returncode == 1, done.stderr
    found = json.loads(done.stdout)
    assert sorted(f["kind"] for f in found) == [
        "missing_file", "orphan_file", "sha256_mismatch", "size_mismatch"]

    done = await run_cli(config, "recordings", "check", "--repair")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["finding", "recording", "call", "path", "detail"]
    assert len(lines) == 5
    assert any(line.startswith("missing_file") and ids["missing"] in line for line in lines)
    assert "marked 1 recording(s) missing" in done.stderr
    row = await get_recording(bench.engine, ids["missing"])
    assert row is not None and row.status == "missing"

    for path in bench.paths.root.rglob("*.wav"):
        if path.name != "clean-1.wav":
            path.unlink()
    await bench.write(*[RecordingMarked(recording_id=ids[k], status="purged", at=NOW)
                        for k in ("tampered", "grown")])
    done = await run_cli(config, "recordings", "check")
    assert (done.returncode, done.stdout.splitlines()[1:]) == (0, []), done.stderr
