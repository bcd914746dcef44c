"""The stream of callers: one sipp UAC for the whole run, every SIP message traced.

sipp's message trace (``-trace_msg``) gives, per SIP Call-ID, when the call started and how it
went from the caller's side: whether the INVITE was answered, its final status, whether the
caller's BYE got its 200 (the call went through) and whether the far end hung up first.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from callcontrol.pbx.ports import free_port
from callcontrol_testing.sipp import (
    UAC_AUTH_PCAP_DTMF,
    SippError,
    SippStats,
    free_media_port,
    parse_stat_csv,
    prepare_workdir,
)

_SEPARATOR = re.compile(r"^-{20,}\s+(\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2}(?:\.\d+)?)", re.M)
_HEADER = re.compile(r"^(Call-ID|i|CSeq):\s*(.+?)\s*$", re.M | re.I)


@dataclass
class SippCall:
    """One call as the caller saw it."""

    call_id: str
    started: float  # epoch seconds of its first message
    last: float  # epoch seconds of its last message
    invite_status: int | None = None  # final status of the authenticated INVITE
    completed: bool = False  # the caller's BYE got its 200: the call went through
    far_end_bye: bool = False  # Asterisk hung up the caller

    @property
    def answered(self) -> bool:
        """The INVITE got a 200."""
        return self.invite_status == 200


def _epoch(day: str, clock: str) -> float:
    # sipp writes local time
    return datetime.fromisoformat(f"{day} {clock}").timestamp()


def parse_message_trace(text: str) -> dict[str, SippCall]:
    """Per Call-ID, the calls of a sipp ``-trace_msg`` file, in the order they started."""
    calls: dict[str, SippCall] = {}
    marks = list(_SEPARATOR.finditer(text))
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        body = text[mark.end():end]
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        if len(lines) < 2:
            continue
        headers = {key.lower(): value for key, value in _HEADER.findall(body)}
        call_id = headers.get("call-id") or headers.get("i")
        if call_id is None:
            continue
        at = _epoch(mark.group(1), mark.group(2))
        call = calls.setdefault(call_id, SippCall(call_id, at, at))
        call.last = max(call.last, at)
        sent = "sent" in lines[0].lower()
        start_line = lines[1]
        cseq = headers.get("cseq", "").upper()
        if start_line.startswith("SIP/2.0 ") and not sent:
            status = int(start_line.split()[1])
            if cseq.endswith("INVITE") and status >= 200 and status not in (401, 407):
                call.invite_status = status
            elif cseq.endswith("BYE") and status == 200 and not call.far_end_bye:
                call.completed = True
        elif start_line.startswith("BYE ") and not sent:
            call.far_end_bye = True
    return calls


@dataclass(frozen=True)
class StreamPlan:
    """``cps`` new calls per second for ``seconds``; each talks ``talk_seconds`` after the
    digit; a call fails when an awaited message takes more than ``recv_timeout`` seconds."""

    cps: float
    seconds: float
    talk_seconds: float
    recv_timeout: float = 10.0

    @property
    def calls(self) -> int:
        """Calls placed in the stream."""
        return max(1, round(self.cps * self.seconds))


@dataclass(frozen=True)
class StreamResult:
    """sipp's exit code and statistics, and every call it placed."""

    returncode: int
    stats: SippStats
    calls: dict[str, SippCall]


class CallStream:
    """Runs the callers' sipp in ``workdir`` (pcap, credentials, statistics, message trace)."""

    def __init__(self, host: str, port: int, user: str, password: str, service: str,
                 workdir: Path) -> None:
        self.target = f"{host}:{port}"
        self.user = user
        self.password = password
        self.service = service
        self.workdir = workdir

    async def run(self, plan: StreamPlan) -> StreamResult:
        """Place the calls; return once sipp has ended (killed 30 s after its own bound)."""
        if shutil.which("sipp") is None:
            raise SippError("sipp is not installed (Debian package sip-tester)")
        await asyncio.to_thread(self.workdir.mkdir, parents=True, exist_ok=True)
        injection = await asyncio.to_thread(prepare_workdir, self.workdir, self.user,
                                            self.password, "1")
        bound = plan.seconds + plan.talk_seconds + 4 * plan.recv_timeout + 30
        argv = [
            "sipp", self.target,
            "-sf", str(UAC_AUTH_PCAP_DTMF),
            "-inf", str(injection),
            "-s", self.service,
            "-m", str(plan.calls),
            "-r", str(plan.cps),
            "-l", str(plan.calls),
            "-d", str(int(plan.talk_seconds * 1000)),
            "-i", "127.0.0.1",
            "-p", str(free_port(udp_too=True)),
            "-mi", "127.0.0.1",
            "-mp", str(free_media_port()),
            "-recv_timeout", str(int(plan.recv_timeout * 1000)),
            "-timeout", f"{int(bound)}s",
            "-trace_stat", "-stf", str(self.workdir / "stats.csv"), "-fd", "1",
            "-trace_msg", "-message_file", str(self.workdir / "messages.log"),
            "-trace_err", "-error_file", str(self.workdir / "errors.log"),
            "-nostdin",
        ]  # fmt: skip
        log = await asyncio.to_thread(open, self.workdir / "sipp.log", "ab")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, cwd=self.workdir, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )
        finally:
            log.close()
        try:
            await asyncio.wait_for(process.wait(), bound + 30)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise SippError(f"the callers' sipp ran longer than {bound + 30:.0f} s") from None
        return await asyncio.to_thread(self._result, process.returncode or 0)

    def _result(self, returncode: int) -> StreamResult:
        try:
            stats = parse_stat_csv((self.workdir / "stats.csv").read_text(encoding="latin-1"))
            trace = (self.workdir / "messages.log").read_text(encoding="latin-1")
        except OSError as exc:
            raise SippError(f"sipp exited {returncode} without its traces: {exc}") from exc
        return StreamResult(returncode % 256, stats, parse_message_trace(trace))
