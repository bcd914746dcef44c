"""Unit tests for callcontrol.audio: RMS, Goertzel tone detection, tone generation."""

from __future__ import annotations

import array
import math
import wave
from pathlib import Path

import pytest

from callcontrol import audio

CALLER, AGENT, SUPERVISOR = 440, 1000, 2000


def _mix(path: Path, freqs: list[float], seconds: float, rate: int = 8000) -> Path:
    """Write equally loud tones mixed together (total peak below full scale)."""
    count = round(seconds * rate)
    peak = 0.8 / len(freqs) * 32767
    data = array.array(
        "h",
        (
            round(peak * sum(math.sin(2 * math.pi * f * i / rate) for f in freqs))
            for i in range(count)
        ),
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data.tobytes())
    return path


def test_tone_file_has_its_tone_and_not_the_others(tmp_path: Path) -> None:
    path = audio.make_tone_wav(tmp_path / "caller.wav", CALLER, 1.0)
    assert audio.has_tone(path, CALLER)
    assert not audio.has_tone(path, AGENT)
    assert not audio.has_tone(path, SUPERVISOR)
    assert audio.tone_power(path, CALLER) > 0.95
    assert audio.tone_power(path, AGENT) < 0.01


@pytest.mark.parametrize("rate", [8000, 16000])
def test_each_party_tone_is_told_apart(tmp_path: Path, rate: int) -> None:
    for freq in (CALLER, AGENT, SUPERVISOR):
        path = audio.make_tone_wav(tmp_path / f"{freq}.wav", freq, 1.0, rate)
        found = {f for f in (CALLER, AGENT, SUPERVISOR) if audio.has_tone(path, f)}
        assert found == {freq}


def test_three_mixed_tones_are_all_found(tmp_path: Path) -> None:
    path = _mix(tmp_path / "mix.wav", [CALLER, AGENT, SUPERVISOR], 1.0)
    for freq in (CALLER, AGENT, SUPERVISOR):
        assert audio.has_tone(path, freq)
    assert not audio.has_tone(path, 1500)


def test_two_mixed_tones_share_the_energy(tmp_path: Path) -> None:
    path = _mix(tmp_path / "mix.wav", [CALLER, AGENT], 1.0)
    assert audio.tone_power(path, CALLER) == pytest.approx(0.5, abs=0.05)
    assert audio.tone_power(path, AGENT) == pytest.approx(0.5, abs=0.05)
    assert not audio.has_tone(path, SUPERVISOR)


def test_silence_has_rms_zero_and_no_tone(tmp_path: Path) -> None:
    path = audio.make_tone_wav(tmp_path / "silence.wav", CALLER, 1.0, amplitude=0.0)
    assert audio.rms(path) == pytest.approx(0.0, abs=1e-6)
    assert not audio.has_tone(path, CALLER)
    assert audio.tone_power(path, CALLER) == 0.0


def test_rms_of_a_sine_is_amplitude_over_root_two(tmp_path: Path) -> None:
    path = audio.make_tone_wav(tmp_path / "tone.wav", AGENT, 0.5, amplitude=0.5)
    assert audio.rms(path) == pytest.approx(0.5 / math.sqrt(2), rel=0.01)


def test_short_tone_is_not_enough(tmp_path: Path) -> None:
    path = audio.make_tone_wav(tmp_path / "blip.wav", CALLER, 0.3)
    assert audio.tone_seconds(path, CALLER) == pytest.approx(0.3, abs=0.01)
    assert not audio.has_tone(path, CALLER)
    assert audio.has_tone(path, CALLER, min_seconds=0.2)


def test_tone_after_silence_is_found(tmp_path: Path) -> None:
    quiet = audio.read_samples(audio.make_tone_wav(tmp_path / "q.wav", 0, 2.0, amplitude=0.0))
    tone = audio.read_samples(audio.make_tone_wav(tmp_path / "t.wav", CALLER, 1.0))
    path = tmp_path / "late.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        samples = quiet[0] + tone[0]
        wav.writeframes(array.array("h", (round(v * 32767) for v in samples)).tobytes())
    assert audio.duration(path) == pytest.approx(3.0)
    assert audio.has_tone(path, CALLER)
    assert audio.rms(path) < audio.rms(tmp_path / "t.wav")


def test_duration_and_read_samples(tmp_path: Path) -> None:
    path = audio.make_tone_wav(tmp_path / "t.wav", CALLER, 1.5, 16000)
    samples, rate = audio.read_samples(path)
    assert rate == 16000
    assert len(samples) == 24000
    assert audio.duration(path) == pytest.approx(1.5)
    assert max(samples) <= 0.5 + 1e-4


def test_eight_bit_stereo_is_mixed_down(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        frames = bytearray()
        for i in range(8000):
            v = round(128 + 100 * math.sin(2 * math.pi * AGENT * i / 8000))
            frames += bytes([v, v])
        wav.writeframes(bytes(frames))
    assert audio.has_tone(path, AGENT)
    assert not audio.has_tone(path, CALLER)


def test_bad_amplitude_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        audio.make_tone_wav(tmp_path / "x.wav", CALLER, 0.1, amplitude=1.5)
