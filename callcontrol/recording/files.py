"""A recording file's figures: duration from its WAV header, size, and sha256 (streamed).

A WAV file is *complete* when the data length its header declares is the data on disk:
Asterisk writes the final lengths when it closes the file, so a file cut by a crash declares
less (often 0). Its duration is then counted from the data on disk. The header is walked here
with :mod:`struct` rather than :mod:`wave`, which refuses a file whose RIFF length is still 0 —
exactly the files recovery has to measure.
"""

from __future__ import annotations

import hashlib
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
HEADER_MAX = 4096
"""Chunks before ``data`` (``fmt``, ``fact``, ``LIST``) must end within this many bytes."""


@dataclass(frozen=True)
class Figures:
    """What a recording row stores about its file."""

    size_bytes: int
    sha256: str
    duration_s: float | None
    """``None`` when the file is not a readable WAV."""
    channels: int | None
    complete: bool
    """The header's data length matches the data on disk."""


@dataclass(frozen=True)
class WavHeader:
    """The parts of a WAV header that give a duration."""

    channels: int
    rate: int
    frame_bytes: int
    data_offset: int
    data_declared: int


def sha256_of(path: Path) -> str:
    """The file's SHA-256 (hex), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_header(fh: BinaryIO) -> WavHeader | None:
    """The WAV header of an open file, or ``None`` when it is not a PCM-like WAV."""
    head = fh.read(HEADER_MAX)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        kind, size = struct.unpack_from("<4sI", head, pos)
        body = pos + 8
        if kind == b"fmt " and size >= 16 and body + 16 <= len(head):
            _, channels, rate, _, align, _ = struct.unpack_from("<HHIIHH", head, body)
            fmt = (channels, rate, align)
        elif kind == b"data":
            if fmt is None or not all(fmt):
                return None
            return WavHeader(fmt[0], fmt[1], fmt[2], body, size)
        pos = body + size + (size & 1)
    return None


def measure(path: Path) -> Figures:
    """The figures of the file at ``path`` (which must exist)."""
    size = path.stat().st_size
    digest = sha256_of(path)
    with path.open("rb") as fh:
        header = read_header(fh)
    if header is None:
        return Figures(size, digest, None, None, False)
    on_disk = size - header.data_offset
    complete = header.data_declared in (on_disk, on_disk - 1)  # a pad byte after odd data
    frames = min(header.data_declared, on_disk) // header.frame_bytes
    if not complete:
        frames = on_disk // header.frame_bytes
    return Figures(size, digest, round(frames / header.rate, 3), header.channels, complete)


RAW_RATE = 8000
"""Samples per second of Asterisk's ``.raw`` (signed linear) files."""


def wav_from_raw(raw: Path, wav: Path, *, channels: int, rate: int = RAW_RATE) -> None:
    """Write ``wav``: a 16-bit PCM WAV holding ``raw``'s samples (interleaved ``channels``),
    a trailing partial frame left out. Streamed; ``wav`` is written beside and renamed in."""
    frame = 2 * channels
    usable = raw.stat().st_size // frame * frame
    part = wav.with_name(f".{wav.name}.part")
    with raw.open("rb") as src, wave.open(str(part), "wb") as dst:
        dst.setnchannels(channels)
        dst.setsampwidth(2)
        dst.setframerate(rate)
        left = usable
        while left > 0:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                break
            dst.writeframesraw(chunk)
            left -= len(chunk)
    part.replace(wav)
