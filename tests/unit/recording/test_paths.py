"""Recording paths: the layout, traversal and symlinks refused, what Asterisk sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

import pytest

from callcontrol.pbx.paths import PathMap
from callcontrol.recording.paths import BadRecordingPath, RecordingPaths, relative_path

AT = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)


def test_layout_is_utc_day_then_call_and_number() -> None:
    assert relative_path("abc123", 2, AT) == "2026/12/03/abc123-2.wav"
    rome = AT.astimezone(timezone(timedelta(hours=1)))  # already Dec 4 in Rome
    assert relative_path("abc123", 2, rome) == "2026/12/03/abc123-2.wav"
    assert relative_path("1700000000.12", 1, AT) == "2026/12/03/1700000000.12-1.wav"


@pytest.mark.parametrize("call_id", ["", "../x", "a/b", ".hidden", "x" * 200, "a b", "a\x00"])
def test_bad_call_ids_cannot_name_a_file(call_id: str) -> None:
    with pytest.raises(BadRecordingPath):
        relative_path(call_id, 1, AT)


def test_number_out_of_range_is_refused() -> None:
    with pytest.raises(BadRecordingPath):
        relative_path("abc", 0, AT)


@pytest.mark.parametrize("relative", [
    "../2026/12/03/abc-1.wav",
    "2026/12/03/../../../etc/passwd",
    "2026/12/../12/abc-1.wav",
    "/etc/passwd",
    "2026/12/03/abc-1.wav/../../x-1.wav",
    "2026/12/03/abc-1.mp3",
    "2026/12/03/sub/abc-1.wav",
    "2026/12/03/abc-1.wav\n",
    "",
])
def test_traversal_and_other_shapes_are_refused(tmp_path: Path, relative: str) -> None:
    paths = RecordingPaths(tmp_path / "rec")
    with pytest.raises(BadRecordingPath):
        paths.resolve(relative)


def test_resolve_stays_inside_the_root(tmp_path: Path) -> None:
    paths = RecordingPaths(tmp_path / "rec")
    assert paths.resolve("2026/12/03/abc-1.wav") == tmp_path / "rec/2026/12/03/abc-1.wav"


def test_a_symlinked_folder_or_file_below_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "03").mkdir(parents=True)
    (outside / "03/abc-1.wav").write_bytes(b"secret")
    root = tmp_path / "rec"
    (root / "2026").mkdir(parents=True)
    (root / "2026/12").symlink_to(outside)
    paths = RecordingPaths(root)
    with pytest.raises(BadRecordingPath, match="symlink"):
        paths.resolve("2026/12/03/abc-1.wav")
    (root / "2027/01/01").mkdir(parents=True)
    (root / "2027/01/01/abc-1.wav").symlink_to(outside / "03/abc-1.wav")
    with pytest.raises(BadRecordingPath, match="symlink"):
        paths.resolve("2027/01/01/abc-1.wav")


def test_a_symlinked_root_itself_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    paths = RecordingPaths(tmp_path / "link")
    assert paths.prepare("2026/12/03/abc-1.wav").parent.is_dir()
    assert (tmp_path / "real/2026/12/03").is_dir()


def test_asterisk_sees_the_file_through_the_instance_path_map(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    mounted = RecordingPaths(root, PathMap(
        root=tmp_path / "chroot", mounts={PurePosixPath("/srv/cc/recordings"): root.resolve()}))
    assert mounted.for_pbx("2026/12/03/abc-1.wav") == "/srv/cc/recordings/2026/12/03/abc-1.wav"
    native = RecordingPaths(root)
    assert native.for_pbx("2026/12/03/abc-1.wav") == str(root.resolve() / "2026/12/03/abc-1.wav")
    with pytest.raises(BadRecordingPath):
        mounted.for_pbx("../abc-1.wav")


def test_files_lists_everything_below_the_root_but_dot_files(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    (root / "2026/12/03").mkdir(parents=True)
    (root / ".gitkeep").touch()
    (root / "2026/12/03/b-1.wav").touch()
    (root / "2026/12/03/a-1.wav").touch()
    (root / "stray.txt").touch()
    assert list(RecordingPaths(root).files()) == [
        "stray.txt", "2026/12/03/a-1.wav", "2026/12/03/b-1.wav"]
