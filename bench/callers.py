"""The step's callers: one sipp UAC placing ``cps`` calls per second of ``bench/sipp/caller.xml``.

sipp paces the calls itself (``-r`` calls per ``-rp 1000`` ms, no cap on concurrent calls below
5000), logs each call's SIP Call-ID when it starts and when it ends well (``-trace_logs``), and
writes its statistics every second (``-trace_stat``) for the concurrency peak.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.pbx import BENCH, BenchPbx
from callcontrol.pbx.ports import free_port
from callcontrol.pbx.settings import SipAccount
from callcontrol_testing.sipp import (
    SippError,
    SippStats,
    free_media_port,
    parse_stat_csv,
    prepare_workdir,
)

SCENARIO = BENCH / "sipp" / "caller.xml"
BYE_MARGIN_S = 20.0  # the agent's BYE may come this long after the talk time


@dataclass(frozen=True)
class CallerRun:
    """What the callers' sipp saw."""

    returncode: int
    stats: SippStats
    started: frozenset[str]  # SIP Call-IDs of the calls challenged by Asterisk
    ended_well: frozenset[str]  # ... and of those that got the BYE after their agent's talk
    concurrent_peak: int
    errors: str


async def run_callers(pbx: BenchPbx, caller: SipAccount, extension: str, calls: int,
                      cps: float, talk_seconds: float, workdir: Path,
                      on_spawn: Callable[[int], None] | None = None) -> CallerRun:
    """Place ``calls`` calls at ``cps``; ``on_spawn(pid)`` runs once sipp is started."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    injection = await asyncio.to_thread(prepare_workdir, workdir, caller.username,
                                        caller.password, "1")
    recv_timeout_ms = int((talk_seconds + BYE_MARGIN_S) * 1000)
    bound = calls / cps + talk_seconds + BYE_MARGIN_S + 30
    argv = [
        "sipp", f"{pbx.instance.host}:{pbx.instance.sip_port}",
        "-sf", str(SCENARIO), "-inf", str(injection), "-s", extension,
        "-m", str(calls), "-r", f"{cps:g}", "-rp", "1000", "-l", "5000",
        "-i", "127.0.0.1", "-p", str(free_port(udp_too=True)),
        "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-max_socket", "4096",
        "-recv_timeout", str(recv_timeout_ms), "-timeout", f"{int(bound)}s",
        "-trace_stat", "-stf", str(workdir / "stats.csv"), "-fd", "1",
        "-trace_err", "-error_file", str(workdir / "errors.log"),
        "-trace_logs", "-log_file", str(workdir / "calls.log"),
        "-nostdin",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=workdir, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    if on_spawn is not None:
        on_spawn(process.pid)
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), bound + 15)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SippError(f"the callers' sipp ran longer than {bound + 15:.0f} s") from None
    return await asyncio.to_thread(_read_run, workdir, process.returncode or 0,
                                   stderr.decode(errors="replace"))


def _read_run(workdir: Path, returncode: int, stderr: str) -> CallerRun:
    try:
        stat_text = (workdir / "stats.csv").read_text(encoding="latin-1")
    except OSError as exc:
        raise SippError(f"the callers' sipp exited {returncode} without statistics: "
                        f"{stderr.strip()[-500:]}") from exc
    started: set[str] = set()
    ended: set[str] = set()
    log = workdir / "calls.log"
    for line in (log.read_text(encoding="latin-1").splitlines() if log.exists() else []):
        mark, _, call_id = line.strip().partition(";")
        (started if mark == "start" else ended if mark == "ok" else set()).add(call_id)
    errors = workdir / "errors.log"
    tail = errors.read_text(encoding="latin-1")[-2000:] if errors.exists() else stderr[-2000:]
    return CallerRun(returncode % 256, parse_stat_csv(stat_text), frozenset(started),
                     frozenset(ended), concurrent_peak(stat_text), tail)


def concurrent_peak(stat_text: str) -> int:
    """Highest ``CurrentCall`` in sipp's per-second statistics."""
    lines = [ln for ln in stat_text.splitlines() if ln.strip()]
    column = lines[0].split(";").index("CurrentCall")
    return max((int(ln.split(";")[column]) for ln in lines[1:]), default=0)
