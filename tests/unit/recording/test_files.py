"""A recording's figures: duration from the WAV header, size, sha256; a cut file is partial."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from callcontrol.recording.files import measure
from tests.unit.recording.conftest import write_wav


def test_a_complete_stereo_file(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_wav(path, 2.5, channels=2)
    figures = measure(path)
    assert figures.complete
    assert figures.duration_s == 2.5
    assert figures.channels == 2
    assert figures.size_bytes == path.stat().st_size == 44 + 2.5 * 8000 * 4
    assert figures.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_cut_by_a_crash_is_incomplete_and_timed_from_its_data(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    write_wav(path, 3.0, channels=1)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, 0)  # what Asterisk leaves before it closes the file
    struct.pack_into("<I", data, 40, 0)
    path.write_bytes(bytes(data[: 44 + 8000 * 2 * 2]))  # and only 2 s reached the disk
    figures = measure(path)
    assert not figures.complete
    assert figures.duration_s == 2.0
    assert figures.channels == 1


def test_a_file_with_extra_chunks_before_the_data(tmp_path: Path) -> None:
    path = tmp_path / "list.wav"
    write_wav(path, 1.0, channels=1)
    raw = path.read_bytes()
    extra = b"LIST" + struct.pack("<I", 5) + b"hello" + b"\0"  # odd size: a pad byte
    body = raw[12:36] + extra + raw[36:]
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    figures = measure(path)
    assert (figures.complete, figures.duration_s) == (True, 1.0)


def test_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"not audio at all")
    figures = measure(path)
    assert (figures.complete, figures.duration_s, figures.size_bytes) == (False, None, 16)
