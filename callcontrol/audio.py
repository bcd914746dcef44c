"""Audio checks for tests and tools: loudness, tone detection, tone generation (stdlib only).

Tests give each party its own tone (caller 440 Hz, agent 1 kHz, supervisor 2 kHz) and check,
per recording, which tones are present; RMS alone would also pass on hold music.

Tone detection runs the Goertzel algorithm over short windows (100 ms by default). For each
window it computes the *share* of the window's energy that sits at the tone's frequency: about
1.0 for a pure tone, about 0.5 each when two equally loud tones are mixed, near 0 for other
tones, silence or speech. Windows quieter than :data:`SILENCE_FLOOR` are skipped.

Only uncompressed PCM WAV files are read (8, 16 or 32-bit; multi-channel files are mixed down).
"""

from __future__ import annotations

import array
import math
import sys
import wave
from pathlib import Path

SILENCE_FLOOR = 0.003
"""RMS (full scale = 1.0) under which a window counts as silence (about -50 dBFS)."""

_FULL_SCALE = {1: 128.0, 2: 32768.0, 4: 2147483648.0}
_TYPECODES = {1: "B", 2: "h", 4: "i"}


def read_samples(path: str | Path) -> tuple[list[float], int]:
    """Read a PCM WAV file as mono samples in -1.0..1.0, with its sample rate."""
    with wave.open(str(path), "rb") as wav:
        width = wav.getsampwidth()
        channels = wav.getnchannels()
        rate = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width not in _TYPECODES:
        raise ValueError(f"{path}: unsupported sample width {width} bytes")
    data = array.array(_TYPECODES[width])
    if data.itemsize != width:  # pragma: no cover - platforms where "i" is not 32-bit
        raise ValueError(f"{path}: cannot read {width}-byte samples on this platform")
    data.frombytes(raw)
    if width > 1 and sys.byteorder == "big":  # pragma: no cover - WAV is little-endian
        data.byteswap()
    scale = _FULL_SCALE[width]
    offset = 128.0 if width == 1 else 0.0
    values = [(v - offset) / scale for v in data]
    if channels > 1:
        values = [sum(values[i : i + channels]) / channels for i in range(0, len(values), channels)]
    return values, rate


def duration(path: str | Path) -> float:
    """Length of a WAV file in seconds."""
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def rms(path: str | Path) -> float:
    """Root mean square of the whole file, 0.0 (silence) to 1.0 (full-scale square wave)."""
    samples, _ = read_samples(path)
    return _rms(samples)


def tone_power(path: str | Path, freq_hz: float, *, window_s: float = 0.1) -> float:
    """Mean share (0..1) of the energy at ``freq_hz`` over the file's non-silent windows.

    A file holding only that tone gives about 1.0; a file without it, about 0.0.
    """
    shares = [share for share, _ in _window_shares(path, freq_hz, window_s)]
    return sum(shares) / len(shares) if shares else 0.0


def tone_seconds(
    path: str | Path, freq_hz: float, *, min_ratio: float = 0.2, window_s: float = 0.1
) -> float:
    """Seconds of non-silent audio in which ``freq_hz`` carries at least ``min_ratio`` of the
    energy."""
    return sum(
        seconds for share, seconds in _window_shares(path, freq_hz, window_s) if share >= min_ratio
    )


def has_tone(
    path: str | Path,
    freq_hz: float,
    min_ratio: float = 0.2,
    *,
    min_seconds: float = 0.5,
    window_s: float = 0.1,
) -> bool:
    """True when ``freq_hz`` is heard for at least ``min_seconds`` in the file.

    A window counts when the tone carries at least ``min_ratio`` of its energy; the default
    0.2 still finds each of three equally loud mixed tones, while 440 Hz, 1 kHz and 2 kHz
    never count for one another.
    """
    seconds = tone_seconds(path, freq_hz, min_ratio=min_ratio, window_s=window_s)
    return seconds >= min_seconds


def tone_seconds_between(
    path: str | Path,
    freq_hz: float,
    start_s: float,
    end_s: float,
    *,
    min_ratio: float = 0.2,
    window_s: float = 0.1,
) -> float:
    """Like :func:`tone_seconds`, over the part of the file from ``start_s`` to ``end_s``
    (seconds from its start; clipped to the file): for checks per time window of a call."""
    return sum(
        seconds for _, seconds, share in tone_windows(path, freq_hz, start_s, end_s, window_s)
        if share >= min_ratio
    )


def tone_windows(
    path: str | Path, freq_hz: float, start_s: float = 0.0, end_s: float = math.inf,
    window_s: float = 0.1,
) -> list[tuple[float, float, float]]:
    """``(start, seconds, share)`` of each non-silent window from ``start_s`` to ``end_s``:
    where the window starts (seconds from the file's start), its length and the share (0..1)
    of its energy at ``freq_hz``."""
    samples, rate = read_samples(path)
    first = max(0, round(start_s * rate))
    last = len(samples) if end_s == math.inf else min(len(samples), round(end_s * rate))
    size = max(1, round(window_s * rate))
    result = []
    for start in range(first, last - size + 1, size):
        window = samples[start : start + size]
        energy = sum(v * v for v in window)
        if math.sqrt(energy / size) < SILENCE_FLOOR:
            continue
        share = 2.0 * _goertzel_power(window, freq_hz, rate) / (size * energy)
        result.append((start / rate, size / rate, min(share, 1.0)))
    return result


def make_tone_wav(
    path: str | Path,
    freq_hz: float,
    seconds: float,
    rate: int = 8000,
    *,
    amplitude: float = 0.5,
) -> Path:
    """Write a 16-bit mono sine WAV (``amplitude`` 0 gives silence); returns the path."""
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError("amplitude must be within 0..1")
    count = round(seconds * rate)
    peak = amplitude * 32767
    step = 2 * math.pi * freq_hz / rate
    data = array.array("h", (round(peak * math.sin(step * i)) for i in range(count)))
    if sys.byteorder == "big":  # pragma: no cover - WAV is little-endian
        data.byteswap()
    out = Path(path)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data.tobytes())
    return out


def extract_channel(path: str | Path, channel: int, target: str | Path) -> Path:
    """Write ``target``: channel ``channel`` (0 = left) of the 16-bit WAV at ``path``, as a
    mono WAV (so the checks above can be run per channel of a stereo recording)."""
    with wave.open(str(path), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width != 2 or not 0 <= channel < channels:
        raise ValueError(f"{path}: no 16-bit channel {channel} (of {channels})")
    data = array.array("h")
    data.frombytes(raw)
    out = Path(target)
    with wave.open(str(out), "wb") as mono:
        mono.setnchannels(1)
        mono.setsampwidth(2)
        mono.setframerate(rate)
        mono.writeframes(data[channel::channels].tobytes())
    return out


def _rms(samples: list[float]) -> float:
    if not samples:
        return 0.0
    return math.sqrt(sum(v * v for v in samples) / len(samples))


def _window_shares(path: str | Path, freq_hz: float, window_s: float) -> list[tuple[float, float]]:
    """(tone share, window seconds) for each non-silent window of the file."""
    return [(share, seconds) for _, seconds, share in tone_windows(path, freq_hz,
                                                                    window_s=window_s)]


def _goertzel_power(window: list[float], freq_hz: float, rate: int) -> float:
    """Squared magnitude of the DFT of ``window`` at ``freq_hz`` (Goertzel)."""
    coeff = 2.0 * math.cos(2.0 * math.pi * freq_hz / rate)
    s_prev = s_prev2 = 0.0
    for v in window:
        s = v + coeff * s_prev - s_prev2
        s_prev2, s_prev = s_prev, s
    return s_prev * s_prev + s_prev2 * s_prev2 - coeff * s_prev * s_prev2
