"""Recordings on disk and their rows in a real SQLite store, written through the journal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.config import RecordingSettings
from callcontrol.flows.simulate import SimulatedCall
from callcontrol.recording.files import measure
from callcontrol.recording.paths import RecordingPaths, relative_path
from callcontrol.recording.runtime import CallRecorder, RecordingService
from callcontrol.store.records import Record, RecordingFinished, RecordingStarted, new_id
from callcontrol.store.writer import StoreWriter

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]
CONFIG = """\
asterisk:
  ari: {{password: {{env: TEST_ARI_PASSWORD}}}}
  ami: {{password: {{env: TEST_AMI_PASSWORD}}}}
  recordings_dir: {root}
database:
  url: sqlite+aiosqlite:///{db}
"""


async def run_cli(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``callcontrol --config CONFIG ARGV...`` as its own process (this checkout's code)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "callcontrol", "--config", str(config), *argv],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60)


def write_config(bench: Bench, tmp_path: Path) -> Path:
    """A config naming the bench's recordings root and database."""
    config = tmp_path / "callcontrol.yaml"
    config.write_text(CONFIG.format(root=bench.paths.root, db=tmp_path / "store.db"))
    return config


def write_wav(path: Path, seconds: float, channels: int = 2, rate: int = 8000) -> None:
    """A real WAV file of ``seconds`` of a ramp (so files differ by content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * rate)
    data = bytes((i * 7) % 256 for i in range(frames * 2 * channels))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data)


@dataclass
class Bench:
    """A migrated SQLite store, its journal writer, and a recordings root."""

    engine: AsyncEngine
    writer: StoreWriter
    paths: RecordingPaths
    journal_dir: Path

    async def write(self, *records: Record) -> None:
        for record in records:
            self.writer.append(record)
        async with asyncio.timeout(10):
            await self.writer.flush()

    async def started(self, call_id: str, *, policy: str = "quality", days_ago: float = 0,
                      n: int = 1) -> tuple[str, Path]:
        """A ``recording_started`` row (through the journal) and the host path of its file."""
        at = NOW - timedelta(days=days_ago)
        relative = relative_path(call_id, n, at)
        recording_id = new_id()
        await self.write(RecordingStarted(recording_id=recording_id, call_id=call_id, n=n,
                                          path=relative, policy=policy, at=at))
        return recording_id, self.paths.prepare(relative)

    async def finished(self, call_id: str, *, seconds: float = 1.0, policy: str = "quality",
                       days_ago: float = 0, n: int = 1) -> tuple[str, Path]:
        """A complete recording: row started, file written, row finished with its figures."""
        recording_id, path = await self.started(call_id, policy=policy, days_ago=days_ago, n=n)
        write_wav(path, seconds)
        figures = measure(path)
        at = NOW - timedelta(days=days_ago) + timedelta(seconds=seconds)
        await self.write(RecordingFinished(
            recording_id=recording_id, status="complete", duration_s=figures.duration_s,
            size_bytes=figures.size_bytes, sha256=figures.sha256, at=at))
        return recording_id, path


@pytest.fixture
async def bench(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Bench]:
    writer = StoreWriter(engine, tmp_path / "journal", batch_interval=0.01)
    writer.start()
    root = tmp_path / "recordings"
    root.mkdir()
    yield Bench(engine, writer, RecordingPaths(root), tmp_path / "journal")
    await writer.close()


class Records(list[Any]):
    """The records a recorder appended, in order (the store's sink, in memory)."""

    def append(self, record: Any) -> None:
        super().append(record)


def recorder(tmp_path: Path, settings: RecordingSettings
             ) -> tuple[CallRecorder, SimulatedCall, Records]:
    """A recorder for one simulated call, its records kept in memory, files under
    ``tmp_path/rec`` and Asterisk's spool at ``tmp_path/spool``."""
    call = SimulatedCall(auto=True)
    records = Records()
    service = RecordingService(settings, RecordingPaths(tmp_path / "rec"), call.fake, records,
                               tmp_path / "spool")
    rec = service.for_call(call)
    call.recordings = rec
    return rec, call, records
