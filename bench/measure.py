"""What a bench step measures besides sipp: process CPU/RSS, AMI events, percentiles.

Latencies come from AMI event timestamps (``timestampevents = yes`` on the bench instance),
the same way on both sides: Asterisk stamps each event when it formats it, so the figures
include every round trip the daemon makes, and the two sides are read with one clock.
"""

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


def open_fds(pid: int) -> int | None:
    """How many file descriptors ``pid`` holds, or None when it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


@dataclass
class ProcessSampler:
    """CPU % of one core and peak RSS of groups of processes, sampled every ``interval`` s.

    CPU is averaged over the steady part of a step: from ``warm_up`` seconds after
    :meth:`start` until :meth:`mark_end` (the last call placed), like the reference harness;
    before the warm-up the step's concurrency is still climbing.
    """

    pids: dict[str, tuple[int, ...]]
    warm_up: float = 0.0
    interval: float = 1.0
    _samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _peak: dict[str, float] = field(default_factory=dict)
    _t0: float = 0.0
    _end: float | None = None
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the step."""
        self._t0 = time.monotonic()
        self._take()
        self._task = asyncio.get_running_loop().create_task(self._sample())

    def mark_end(self) -> None:
        """The last call was placed: the steady window ends here."""
        self._end = time.monotonic()
        self._take()

    def _take(self) -> None:
        cpu: dict[str, float] = {}
        for name, pids in self.pids.items():
            ticks = [cpu_seconds(p) for p in pids]
            rss = [rss_mb(p) for p in pids]
            if pids and all(t is not None for t in ticks):
                cpu[name] = sum(t for t in ticks if t is not None)
            if pids and any(r is not None for r in rss):
                total = sum(r for r in rss if r is not None)
                self._peak[name] = max(self._peak.get(name, 0.0), total)
        self._samples.append((time.monotonic(), cpu))

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._take()

    async def stop(self) -> tuple[dict[str, float | None], dict[str, float | None]]:
        """End the step: ``(cpu % of one core, peak RSS MB)`` per group (None: not run)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._take()
        end = self._end if self._end is not None else self._samples[-1][0]
        begin = self._t0 + self.warm_up if end - self._t0 > self.warm_up + 2 else self._t0
        window = [s for s in self._samples if begin - 0.5 <= s[0] <= end + 0.5]
        cpu: dict[str, float | None] = {}
        for name in self.pids:
            points = [(t, v[name]) for t, v in window if name in v]
            if len(points) < 2 or points[-1][0] <= points[0][0]:
                cpu[name] = None
                continue
            (t0, c0), (t1, c1) = points[0], points[-1]
            cpu[name] = round((c1 - c0) / (t1 - t0) * 100, 1)
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
    """A plain AMI session that keeps only the events named in ``wanted``.

    Asterisk filters them (``Filter`` actions after the login), so it formats and sends only
    what the bench reads: an observer that took every call event would load Asterisk and the
    bench's own process, and more on one side than the other.
    """

    def __init__(self, host: str, port: int, user: str, secret: str,
                 wanted: frozenset[str], classes: str = "call,dtmf") -> None:
        self._addr = (host, port)
        self._login = (user, secret)
        self.wanted = wanted
        self.classes = classes
        self.events: list[AmiEvent] = []
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, time_limit: float = 10.0) -> None:
        """Connect, log in and set the filters; raise when AMI refuses."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*self._addr),
                                                time_limit)
        self._writer = writer
        await asyncio.wait_for(reader.readline(), time_limit)  # banner
        user, secret = self._login
        actions = [f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n"
                   f"Events: {self.classes}\r\n"]
        actions += [f"Action: Filter\r\nOperation: Add\r\nFilter: Event: {name}\r\n"
                    for name in sorted(self.wanted)]
        for action in actions:
            writer.write(f"{action}\r\n".encode())
            await writer.drain()
            reply = await asyncio.wait_for(self._reply(reader), time_limit)
            if reply.get("Response") != "Success":
                raise RuntimeError(f"AMI refused {action.split(chr(13))[0]}: "
                                   f"{reply.get('Message')}")
        self._task = asyncio.get_running_loop().create_task(self._read(reader))

    @staticmethod
    async def _reply(reader: asyncio.StreamReader) -> AmiEvent:
        while True:
            message = await read_ami_message(reader)
            if "Response" in message:
                return message

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            message = await read_ami_message(reader)
            if message.get("Event") in self.wanted:
                self.events.append(message)

    def take(self) -> list[AmiEvent]:
        """The events kept since the last call."""
        events, self.events = self.events, []
        return events

    async def close(self) -> None:
        """Close the session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


CALL_EVENTS = frozenset({"Newchannel", "DTMFEnd", "MusicOnHoldStart", "BridgeEnter"})
"""The AMI events a step reads (both sides)."""


@dataclass
class CallMarks:
    """One caller channel as AMI saw it (AMI timestamps, s)."""

    uniqueid: str
    created: float
    digit: float | None = None
    prompt: float | None = None  # hold music started after the digit
    agent: float | None = None  # bridged with an agent headset after the digit


def calls_from_ami(events: list[AmiEvent], caller: str, agent_prefix: str) -> list[CallMarks]:
    """Per caller channel (``PJSIP/<caller>-...``): created, digit 1 received, hold music
    started, and bridged with an agent channel (``PJSIP/<agent_prefix>...``)."""
    calls: dict[str, CallMarks] = {}
    members: dict[str, dict[str, str]] = {}  # bridge -> uniqueid -> channel name
    for event in events:
        uid = event.get("Uniqueid", "")
        kind = event.get("Event")
        at = float(event.get("Timestamp", "nan"))
        if kind == "Newchannel":
            if event.get("Channel", "").startswith(f"PJSIP/{caller}-"):
                calls.setdefault(uid, CallMarks(uid, at))
            continue
        call = calls.get(uid)
        if kind == "DTMFEnd" and call is not None and event.get("Direction") == "Received":
            call.digit = at if call.digit is None else call.digit
        elif kind == "MusicOnHoldStart" and call is not None and call.digit is not None:
            call.prompt = at if call.prompt is None else call.prompt
        elif kind == "BridgeEnter":
            bridge = members.setdefault(event.get("BridgeUniqueid", ""), {})
            bridge[uid] = event.get("Channel", "")
            agents = any(n.startswith(f"PJSIP/{agent_prefix}") for n in bridge.values())
            for member in bridge:
                marks = calls.get(member)
                if (agents and marks is not None and marks.digit is not None
                        and marks.agent is None):
                    marks.agent = at
    return list(calls.values())
