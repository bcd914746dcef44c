"""Unit tests for the per-time-window checks of callcontrol.audio."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from callcontrol import audio


def _sequence(path: Path, parts: list[tuple[float, float]], rate: int = 8000) -> Path:
    """Write ``(freq, seconds)`` parts one after the other (freq 0: silence)."""
    frames = b""
    for index, (freq, seconds) in enumerate(parts):
        part = audio.make_tone_wav(path.with_name(f"part{index}.wav"), freq, seconds, rate,
                                   amplitude=0.5 if freq else 0.0)
        with wave.open(str(part), "rb") as wav:
            frames += wav.readframes(wav.getnframes())
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


def test_tone_seconds_between_counts_only_the_window(tmp_path: Path) -> None:
    wav = _sequence(tmp_path / "seq.wav", [(440, 1.0), (0, 1.0), (1000, 2.0)])
    assert audio.tone_seconds_between(wav, 440, 0.0, 1.0) == pytest.approx(1.0)
    assert audio.tone_seconds_between(wav, 440, 1.0, 4.0) == 0.0
    assert audio.tone_seconds_between(wav, 1000, 0.0, 2.0) == 0.0
    assert audio.tone_seconds_between(wav, 1000, 2.5, 3.5) == pytest.approx(1.0)
    assert audio.tone_seconds_between(wav, 1000, 3.0, 99.0) == pytest.approx(1.0)  # clipped


def test_tone_windows_give_start_length_and_share_and_skip_silence(tmp_path: Path) -> None:
    wav = _sequence(tmp_path / "seq.wav", [(440, 0.5), (0, 0.5), (1000, 0.5)])
    windows = audio.tone_windows(wav, 1000)
    assert [round(start, 1) for start, _, _ in windows] == [0.0, 0.1, 0.2, 0.3, 0.4,
                                                           1.0, 1.1, 1.2, 1.3, 1.4]
    assert all(seconds == pytest.approx(0.1) for _, seconds, _ in windows)
    shares = [share for _, _, share in windows]
    assert max(shares[:5]) < 0.05 and min(shares[5:]) > 0.95
    assert audio.tone_windows(wav, 1000, 1.2, 1.4) == windows[7:9]
