"""One step of calls on either side: run the callers, measure, summarise.

``dialplan``: callers ``dpcaller`` -> context ``callcontrol-bench`` (Background, WaitExten,
Queue()); latencies from AMI event timestamps (DTMFEnd -> MusicOnHoldStart / AgentConnect).
``callcontrol``: callers ``benchcaller`` -> Stasis -> the daemon's ``bench`` flow and ACD;
latencies from the daemon's timeline in its database (digit -> queue_entered /
agent_connected, millisecond timestamps taken when the daemon handled the ARI events).
A step's call counts as completed when sipp saw it through *and* it reached an agent.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.measure import AmiEvent, AmiRecorder, ProcessSampler, percentiles
from bench.pbx import EXTENSION, BenchPbx
from callcontrol.pbx.settings import SipAccount
from callcontrol_testing.sipp import SippResult, run_sipp

AMI_EVENTS = frozenset({"DTMFEnd", "MusicOnHoldStart", "AgentConnect"})


@dataclass(frozen=True)
class StepPlan:
    """One step: ``cps`` new calls per second for ``seconds``; each talks ``talk_seconds``."""

    cps: float
    seconds: float
    talk_seconds: float

    @property
    def calls(self) -> int:
        """Calls placed in the step."""
        return max(1, round(self.cps * self.seconds))


async def place_calls(pbx: BenchPbx, caller: SipAccount, plan: StepPlan,
                      workdir: Path) -> tuple[SippResult, int]:
    """Run the step's callers; return sipp's result and the peak of concurrent calls."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    result = await run_sipp(
        pbx.instance.host, pbx.instance.sip_port, user=caller.username,
        password=caller.password, workdir=workdir, service=EXTENSION, calls=plan.calls,
        rate=plan.cps, call_ms=int(plan.talk_seconds * 1000), digit="1",
        seconds=plan.seconds + plan.talk_seconds + 60, recv_timeout_ms=30000,
    )
    return result, concurrent_peak(workdir / "stats.csv")


def concurrent_peak(stat_file: Path) -> int:
    """Highest ``CurrentCall`` in sipp's per-second statistics."""
    lines = [ln for ln in stat_file.read_text(encoding="latin-1").splitlines() if ln.strip()]
    header = lines[0].split(";")
    column = header.index("CurrentCall")
    return max((int(ln.split(";")[column]) for ln in lines[1:]), default=0)


async def wait_idle(pbx: BenchPbx, time_limit: float = 20.0) -> None:
    """Wait until Asterisk has no channel left (the previous step's calls are all gone)."""
    deadline = time.monotonic() + time_limit
    while time.monotonic() < deadline:
        out = await pbx.instance.cli("core show channels count")
        if "0 active channels" in out:
            return
        await asyncio.sleep(0.2)


def step_record(plan: StepPlan, sipp: SippResult, peak: int, reached_agent: int,
                cpu: dict[str, float | None], rss: dict[str, float | None],
                to_prompt: list[float], to_agent: list[float],
                db_rows: dict[str, int] | None) -> dict[str, Any]:
    """The step as DECISIONS.md "Bench results" shapes it."""
    completed = min(sipp.stats.successful, reached_agent)
    return {
        "cps": plan.cps,
        "concurrent_peak": peak,
        "attempted": plan.calls,
        "completed": completed,
        "failed": plan.calls - completed,
        "sipp": {"successful": sipp.stats.successful, "failed": sipp.stats.failed,
                 "exit": sipp.returncode, "invite_response_ms": sipp.stats.response_time_ms},
        "reached_agent": reached_agent,
        "cpu_pct_one_core": cpu,
        "peak_rss_mb": rss,
        "digit_to_prompt_ms": percentiles(to_prompt),
        "digit_to_agent_ms": percentiles(to_agent),
        "db_rows": db_rows,
    }


async def dialplan_step(pbx: BenchPbx, ami: AmiRecorder, plan: StepPlan,
                        workdir: Path) -> dict[str, Any]:
    """One step of the pure-dialplan hotline."""
    await wait_idle(pbx)
    ami.take()
    sampler = ProcessSampler({"daemon": None, "asterisk": pbx.instance.pid})
    sampler.start()
    sipp, peak = await place_calls(pbx, pbx.dialplan_caller, plan, workdir)
    cpu, rss = await sampler.stop()
    await wait_idle(pbx)
    to_prompt, to_agent, reached = ami_latencies(ami.take())
    return step_record(plan, sipp, peak, reached, cpu, rss, to_prompt, to_agent, None)


def ami_latencies(events: list[AmiEvent]) -> tuple[list[float], list[float], int]:
    """Per caller channel: digit 1 received -> hold music started / agent connected (ms)."""
    digit: dict[str, float] = {}
    to_prompt: list[float] = []
    to_agent: list[float] = []
    prompted: set[str] = set()
    for event in events:
        uid = event.get("Uniqueid", "")
        at = float(event.get("Timestamp", "nan"))
        kind = event.get("Event")
        if kind == "DTMFEnd" and event.get("Direction") == "Received":
            digit.setdefault(uid, at)
        elif kind == "MusicOnHoldStart" and uid in digit and uid not in prompted:
            prompted.add(uid)
            to_prompt.append((at - digit[uid]) * 1000)
        elif kind == "AgentConnect" and uid in digit:
            to_agent.append((at - digit[uid]) * 1000)
    return to_prompt, to_agent, len(to_agent)


async def callcontrol_step(pbx: BenchPbx, daemon_pid: int | None, db: Path, plan: StepPlan,
                           workdir: Path) -> dict[str, Any]:
    """One step of the hotline run by the daemon."""
    await wait_idle(pbx)
    before = set(_call_ids(db))
    sampler = ProcessSampler({"daemon": daemon_pid, "asterisk": pbx.instance.pid})
    sampler.start()
    sipp, peak = await place_calls(pbx, pbx.caller, plan, workdir)
    cpu, rss = await sampler.stop()
    await wait_idle(pbx)
    new = await _wait_closed(db, before, plan.calls)
    to_prompt, to_agent, reached, events = db_latencies(db, new)
    rows = {"calls": len(new), "events": events}
    return step_record(plan, sipp, peak, reached, cpu, rss, to_prompt, to_agent, rows)


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def _call_ids(db: Path) -> list[str]:
    with _connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT call_id FROM calls")]


async def _wait_closed(db: Path, before: set[str], expected: int,
                       time_limit: float = 20.0) -> list[str]:
    """The step's call ids, once all of them have a final row (or the time is up)."""
    deadline = time.monotonic() + time_limit
    while True:
        with _connect(db) as conn:
            rows = conn.execute("SELECT call_id, ended_at FROM calls").fetchall()
        new = [(cid, ended) for cid, ended in rows if cid not in before]
        done = len(new) >= expected and all(ended for _, ended in new)
        if done or time.monotonic() > deadline:
            return [cid for cid, _ in new]
        await asyncio.sleep(0.2)


def _when(text: str) -> float:
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def db_latencies(db: Path, call_ids: list[str]) -> tuple[list[float], list[float], int, int]:
    """From each call's timeline: digit -> queue entered / agent connected (ms); also how many
    calls reached an agent and how many timeline rows the calls wrote."""
    firsts: dict[str, dict[str, float]] = {cid: {} for cid in call_ids}
    events = 0
    with _connect(db) as conn:
        for start in range(0, len(call_ids), 500):
            chunk = call_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for cid, kind, at in conn.execute(
                f"SELECT call_id, kind, at FROM call_events WHERE call_id IN ({marks})", chunk
            ):
                events += 1
                key = "digit" if kind in ("barge_in", "digits") else kind
                when = _when(at)
                seen = firsts[cid].get(key)
                firsts[cid][key] = when if seen is None else min(seen, when)
    to_prompt, to_agent = [], []
    for marks_of in firsts.values():
        digit = marks_of.get("digit")
        if digit is None:
            continue
        if "queue_entered" in marks_of:
            to_prompt.append((marks_of["queue_entered"] - digit) * 1000)
        if "agent_connected" in marks_of:
            to_agent.append((marks_of["agent_connected"] - digit) * 1000)
    return to_prompt, to_agent, len(to_agent), events
