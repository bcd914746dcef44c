"""What a bench step measures besides sipp: process CPU/RSS, AMI events, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` (its threads included), or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class ProcessSampler:
    """CPU % of one core over a step and peak RSS (sampled every ``interval`` s) per process."""

    pids: dict[str, int | None]
    interval: float = 0.5
    _cpu0: dict[str, float | None] = field(default_factory=dict)
    _t0: float = 0.0
    _peak: dict[str, float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the step."""
        self._t0 = time.monotonic()
        self._cpu0 = {n: cpu_seconds(p) if p else None for n, p in self.pids.items()}
        self._task = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            for name, pid in self.pids.items():
                value = rss_mb(pid) if pid else None
                if value is not None:
                    self._peak[name] = max(self._peak.get(name, 0.0), value)
            await asyncio.sleep(self.interval)

    async def stop(self) -> tuple[dict[str, float | None], dict[str, float | None]]:
        """End the step: ``(cpu % of one core, peak RSS MB)`` per process (None: not run)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        wall = max(time.monotonic() - self._t0, 1e-6)
        cpu: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            start, end = self._cpu0.get(name), cpu_seconds(pid) if pid else None
            cpu[name] = round((end - start) / wall * 100, 1) if start is not None and end else None
        peak = {n: round(self._peak[n], 1) if n in self._peak else None for n in self.pids}
        return cpu, peak


def percentiles(values: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99 (nearest rank) in ms, rounded to 0.1; None for each when there is no value."""
    data = sorted(values)
    if not data:
        return {"p50": None, "p95": None, "p99": None}

    def rank(p: float) -> float:
        return round(data[max(0, math.ceil(p / 100 * len(data)) - 1)], 1)

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99)}


AmiEvent = dict[str, str]



async def read_ami_message(reader: asyncio.StreamReader) -> AmiEvent:
    """One AMI message (``Key: value`` lines up to a blank line) from a raw AMI stream."""
    message: AmiEvent = {}
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("AMI closed the connection")
        text = line.decode(errors="replace").rstrip("\r\n")
        if not text:
            if message:
                return message
            continue
        key, _, value = text.partition(":")
        message[key.strip()] = value.strip()


class AmiRecorder:
    """A plain AMI session that keeps the events named in ``wanted`` (with ``Timestamp``)."""

    def __init__(self, host: str, port: int, user: str, secret: str,
                 wanted: frozenset[str]) -> None:
        self._addr = (host, port)
        self._login = (user, secret)
        self.wanted = wanted
        self.events: list[AmiEvent] = []
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, time_limit: float = 10.0) -> None:
        """Connect and log in; raise when AMI refuses."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*self._addr),
                                                time_limit)
        self._writer = writer
        await asyncio.wait_for(reader.readline(), time_limit)  # banner
        user, secret = self._login
        writer.write(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n"
                     "Events: on\r\n\r\n".encode())
        await writer.drain()
        reply = await asyncio.wait_for(self._read_message(reader), time_limit)
        if reply.get("Response") != "Success":
            raise RuntimeError(f"AMI login refused: {reply.get('Message')}")
        self._task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read_message(self, reader: asyncio.StreamReader) -> AmiEvent:
        return await read_ami_message(reader)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            message = await self._read_message(reader)
            if message.get("Event") in self.wanted:
                self.events.append(message)

    def take(self) -> list[AmiEvent]:
        """The events kept since the last call."""
        events, self.events = self.events, []
        return events

    async def close(self) -> None:
        """Log off and close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
